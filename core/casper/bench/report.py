"""Figures of a bench run: what each means, the text tables with ratios, the JSON document.

The first target measured is the baseline (normally Casper). Every other target's figure is
printed with the ratio ``baseline / target`` measured in the same run — Casper/peer when
Casper comes first. For a "higher" figure a ratio above 1 means the baseline is ahead; for
a "lower" figure, below 1. The ``vs best peer`` column divides the baseline's figure by the
best figure of the targets that are not Casper (another kind of server), the issue's
Casper/best-peer. CPU figures are there to tell who set the pace (server or bench), not to
be ranked. One table per mode (``fresh``, ``warm``).
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
    ("rate_achieved_per_s", "fixed rate: sent/s", "-"),
    ("rate_p50_ms", "fixed rate: p50 ms", "lower"),
    ("rate_p99_ms", "fixed rate: p99 ms", "lower"),
    ("broadcasts_per_s", "presence broadcasts/s", "higher"),
    ("broadcast_p50_ms", "broadcast p50 ms", "lower"),
    ("broadcast_p99_ms", "broadcast p99 ms", "lower"),
    ("kb_per_idle_connection", "KB per idle connection", "lower"),
    ("login_server_cpu_pct", "server CPU % in login", "-"),
    ("login_client_cpu_pct", "client CPU % in login", "-"),
    ("chat_server_cpu_pct", "server CPU % in chat", "-"),
    ("chat_client_cpu_pct", "client CPU % in chat", "-"),
    ("presence_server_cpu_pct", "server CPU % in presence", "-"),
    ("presence_client_cpu_pct", "client CPU % in presence", "-"),
)
_BETTER = {key: better for key, _, better in FIGURES}
_RANKED = frozenset(key for key, better in _BETTER.items() if better != "-")


@dataclass
class TargetResult:
    """What one target measured: ``figures`` are medians of ``samples`` (one per round)."""

    name: str
    target: dict[str, object]
    kind: str = "server"
    version: str = ""
    figures: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)


def ratios(results: Sequence[TargetResult]) -> dict[str, dict[str, float]]:
    """The first target's figures divided by each later target's (where both exist)."""
    if not results:
        return {}
    base = results[0].figures
    out = {}
    for result in results[1:]:
        out[result.name] = {
            key: base[key] / value
            for key, value in result.figures.items()
            if value and key in base and key in _RANKED
        }
    return out


def best_peer(results: Sequence[TargetResult]) -> dict[str, tuple[str, float]]:
    """Per ranked figure, the best (name, value) among targets of another kind than the first."""
    if not results:
        return {}
    peers = [r for r in results[1:] if r.kind != results[0].kind]
    best: dict[str, tuple[str, float]] = {}
    for key in _RANKED:
        values = [(r.name, r.figures[key]) for r in peers if r.figures.get(key)]
        if values:
            pick = max if _BETTER[key] == "higher" else min
            best[key] = pick(values, key=lambda item: item[1])
    return best


def format_table(results: Sequence[TargetResult], title: str | None = None) -> str:
    """A plain text table: one row per figure, one column per target, ratios in brackets."""
    table = ratios(results)
    best = best_peer(results)
    header = ["figure", "better", *(r.name for r in results)]
    if best:
        header.append("vs best peer")
    rows = [header]
    for key, label, better in FIGURES:
        if not any(key in r.figures for r in results):
            continue
        cells = [label, better]
        for index, result in enumerate(results):
            value = result.figures.get(key)
            cell = "-" if value is None else f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
            ratio = table.get(result.name, {}).get(key)
            if index and ratio is not None:
                cell += f" ({ratio:.2f}x)"
            cells.append(cell)
        if best:
            base = results[0].figures.get(key)
            peer = best.get(key)
            cells.append(f"{base / peer[1]:.2f}x {peer[0]}" if base and peer else "")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"== {title} =="] if title else []
    for row in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    for result in results:
        for workload, reason in result.errors.items():
            lines.append(f"{result.name}: {workload} failed: {reason}")
    if len(results) > 1:
        lines.append(
            f"(x) = {results[0].name} / that target, measured in the same run: above 1 puts "
            f"{results[0].name} ahead on 'higher' rows, below 1 on 'lower' rows"
        )
    return "\n".join(lines)


def to_json(
    params: Mapping[str, object], modes: Mapping[str, Sequence[TargetResult]]
) -> dict[str, object]:
    """The ``--json`` document: parameters, baseline, and per mode the results and ratios."""
    first = next(iter(modes.values()), [])
    return {
        "params": dict(params),
        "baseline": first[0].name if first else None,
        "modes": {
            mode: {
                "targets": {r.name: asdict(r) for r in results},
                "ratios": ratios(results),
                "vs_best_peer": {
                    key: {"peer": name, "value": value, "ratio": results[0].figures[key] / value}
                    for key, (name, value) in best_peer(results).items()
                    if results[0].figures.get(key)
                },
            }
            for mode, results in modes.items()
        },
    }
