"""Figures of a bench run: what each means, the text table with ratios, the JSON document.

Ratios divide a target's figure by the baseline's (the first target measured in the same
run); the table says for each figure whether higher or lower is better. CPU figures are
there to tell who set the pace (server or bench), not to be ranked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

# (key, label, which is better); the table's rows, in order
FIGURES = (
    ("logins_per_s", "logins/s", "higher"),
    ("login_p50_ms", "login p50 ms", "lower"),
    ("login_p99_ms", "login p99 ms", "lower"),
    ("messages_per_s", "messages/s", "higher"),
    ("message_p50_ms", "message p50 ms", "lower"),
    ("message_p99_ms", "message p99 ms", "lower"),
    ("kb_per_idle_connection", "KB per idle connection", "lower"),
    ("login_server_cpu_pct", "server CPU % in login", "-"),
    ("login_client_cpu_pct", "client CPU % in login", "-"),
    ("chat_server_cpu_pct", "server CPU % in chat", "-"),
    ("chat_client_cpu_pct", "client CPU % in chat", "-"),
)
_RANKED = frozenset(key for key, _, better in FIGURES if better != "-")


@dataclass
class TargetResult:
    """What one target measured: ``figures`` are medians of ``samples`` (one per round)."""

    name: str
    target: dict[str, object]
    figures: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)


def ratios(results: Sequence[TargetResult]) -> dict[str, dict[str, float]]:
    """Each later target's figures divided by the first target's (where both exist)."""
    if not results:
        return {}
    base = results[0].figures
    out = {}
    for result in results[1:]:
        out[result.name] = {
            key: value / base[key]
            for key, value in result.figures.items()
            if base.get(key) and key in _RANKED
        }
    return out


def format_table(results: Sequence[TargetResult]) -> str:
    """A plain text table: one row per figure, one column per target, ratios in brackets."""
    table = ratios(results)
    header = ["figure", "better", *(r.name for r in results)]
    rows = [header]
    for key, label, better in FIGURES:
        if not any(key in r.figures for r in results):
            continue
        cells = [label, better]
        for index, result in enumerate(results):
            value = result.figures.get(key)
            cell = "-" if value is None else f"{value:,.1f}"
            ratio = table.get(result.name, {}).get(key)
            if index and ratio is not None:
                cell += f" ({ratio:.2f}x)"
            cells.append(cell)
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    for result in results:
        for workload, reason in result.errors.items():
            lines.append(f"{result.name}: {workload} failed: {reason}")
    if len(results) > 1:
        lines.append(f"(x) = ratio to {results[0].name}, measured in the same run")
    return "\n".join(lines)


def to_json(params: Mapping[str, object], results: Sequence[TargetResult]) -> dict[str, object]:
    """The ``--json`` document: parameters, baseline name, per-target results and ratios."""
    return {
        "params": dict(params),
        "baseline": results[0].name if results else None,
        "targets": {r.name: asdict(r) for r in results},
        "ratios": ratios(results),
    }
