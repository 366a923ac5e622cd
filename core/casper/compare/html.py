"""The self-contained HTML report: the matrix, then per scenario the stanza flows of every
column side by side as sequence diagrams (inline SVG), raw stanzas one click away.

No scripts, fonts, images or links to anything outside the file. Each diagram has one lane
per connection (the user's resources, the observers) and one for the server; a row is one
stanza a client sent (arrow to the server) or received (arrow from it). The steps of the
scenario are bands across every diagram, at the same height in each, so the columns can
be read side by side. Rows that answer a check that *leaks* in that column are red.
"""

from __future__ import annotations

import html
from typing import Any

from .catalogue import CHANNELS, Action, Scenario
from .report import VERDICTS, Report
from .text import SHORT, headline

GUTTER, LANE, ROW, BAND, HEAD = 250, 62, 15, 19, 30
LABEL_CHARS = 40

CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0 24px 48px}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:28px 0 6px;border-bottom:2px solid var(--line)}
.muted{color:var(--muted)}code,pre{font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,monospace}
nav a{margin-right:12px}
table.matrix{border-collapse:collapse;margin-top:8px}
.matrix th,.matrix td{border:1px solid var(--line);padding:2px 8px;text-align:center;white-space:nowrap}
.matrix td.check{text-align:left;font-size:13px}.matrix thead th{position:sticky;top:0;background:#f9fafb;z-index:1}
.matrix tr.scn th{text-align:left;background:#f3f4f6;font-size:14px}
.matrix .kind{font-size:11px;color:var(--muted);margin-left:4px}
.v a{color:inherit;text-decoration:none;display:block}
.v-hidden{background:#dcfce7;color:#166534}.v-leaks{background:#fecaca;color:#991b1b;font-weight:700}
.v-works{background:#dbeafe;color:#1e40af}.v-fails{background:#fde68a;color:#92400e;font-weight:700}
.v-not-supported{background:#f3f4f6;color:#6b7280}.v-error{background:#f5d0fe;color:#86198f;font-weight:700}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:3px}
.flows{display:flex;gap:14px;overflow-x:auto;align-items:flex-start;padding-bottom:8px}
figure{margin:0;flex:none;border:1px solid var(--line);border-radius:4px;padding:6px;background:#fff}
figcaption{font-weight:600;margin-bottom:4px}figcaption small{font-weight:400;color:var(--muted)}
details>summary{cursor:pointer;color:#374151;margin:4px 0}
details pre{max-height:420px;overflow:auto;background:#f9fafb;padding:6px;margin:0;max-width:640px;white-space:pre}
ol.steps{margin:4px 0 8px;padding-left:22px}ol.steps li.obs{color:var(--muted)}
table.why{border-collapse:collapse;font-size:12px}.why td{border-top:1px solid var(--line);padding:3px 6px;vertical-align:top}
svg text{font:10px ui-monospace,SFMono-Regular,Menlo,monospace;fill:currentColor}
svg path{fill:none;stroke:currentColor;stroke-width:1.4}svg path.h,svg circle{fill:currentColor;stroke:none}
svg .auto path:not(.h){stroke-dasharray:4 2}svg path.lane{stroke:#d1d5db;stroke-width:1}
svg text.server{font-weight:700}svg rect.band{fill:#eef2ff}svg text.band{fill:#3730a3;font-size:10.5px}
svg rect.leak{fill:#fee2e2}.k-presence{color:#2563eb}.k-message{color:#15803d}.k-iq{color:#b45309}
.k-error{color:#dc2626}
"""


def e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _lane(actor: str) -> str:
    return actor if actor.startswith("user/") else actor.split("/", 1)[0]


def _lanes(scenario: Scenario, flows: dict[str, list[dict[str, Any]]]) -> list[str]:
    seen = {_lane(ev["actor"]) for events in flows.values() for ev in events}
    users = [f"user/{r}" for r in scenario.resources if f"user/{r}" in seen]
    users += sorted(s for s in seen if s.startswith("user/") and s[5:] not in scenario.resources)
    return users + ["server"] + [r for r in ("friend", "colleague", "stranger") if r in seen]


def _step_labels(scenario: Scenario) -> list[str]:
    labels = []
    for index, step in enumerate(scenario.steps, 1):
        if isinstance(step, Action):
            res = f" ({step.resource})" if len(scenario.resources) > 1 else ""
            labels.append(f"{index}. {step.label}{res}")
        else:
            labels.append(f"{index}. observe: {step.label}")
    return labels + ["end: log out, collect offline messages"]


def diagram(
    scenario: Scenario,
    events: list[dict[str, Any]],
    lanes: list[str],
    rows_per_step: list[int],
    leaking: set[str],
) -> str:
    """One world's flow as an SVG sequence diagram."""
    width = GUTTER + LANE * len(lanes) + 8
    x = {lane: GUTTER + LANE * i + LANE // 2 for i, lane in enumerate(lanes)}
    labels = _step_labels(scenario)
    height = HEAD + sum(BAND + ROW * n for n in rows_per_step) + 4
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for lane in lanes:
        out.append(f'<path class="lane" d="M{x[lane]} {HEAD - 6}V{height}"/>')
        bold = ' class="server"' if lane == "server" else ""
        out.append(
            f'<text x="{x[lane]}" y="{HEAD - 12}" text-anchor="middle"{bold}>{e(lane)}</text>'
        )
    y = HEAD
    by_step: dict[int, list[dict[str, Any]]] = {}
    for ev in events:
        by_step.setdefault(min(ev["step"], len(labels) - 1), []).append(ev)
    number = 0
    for step, rows in enumerate(rows_per_step):
        out.append(f'<rect class="band" x="0" y="{y}" width="{width}" height="{BAND - 3}"/>')
        out.append(f'<text class="band" x="4" y="{y + BAND - 7}">{e(labels[step])}</text>')
        y += BAND
        for ev in by_step.get(step, []):
            number += 1
            out.append(_row(ev, number, y, x, width, ev.get("check") in leaking))
            y += ROW
        y += ROW * (rows - len(by_step.get(step, [])))
    out.append("</svg>")
    return "".join(out)


def _row(ev: dict[str, Any], number: int, y: int, x: dict[str, int], width: int, leak: bool) -> str:
    """One stanza: a label in the gutter, an arrow between the actor's lane and the server."""
    kind = "error" if ev["type"] == "error" else ev["kind"]
    out = ev["direction"] == "out"
    a, s = x.get(_lane(ev["actor"]), GUTTER), x["server"]
    x1, x2 = (a, s) if out else (s, a)
    mid = y + ROW // 2
    tip = -5 if x2 > x1 else 5
    peer = ev["to"] if out else ev["from"]
    peer = f" {'→' if out else '←'} {peer.removesuffix('/obs')}" if peer else ""
    label = f"{number:>3} {ev['summary']}{peer}"
    label = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"
    auto = " (sent automatically by the client)" if ev.get("auto") else ""
    classes = f"k-{kind}" + (" auto" if ev.get("auto") else "")
    parts = [
        f'<g class="{classes}"><title>#{number} {e(ev["actor"])} {"sends" if out else "receives"}{auto}</title>'
    ]
    if leak:
        parts.append(f'<rect class="leak" x="0" y="{y}" width="{width}" height="{ROW}"/>')
    parts.append(f'<text x="2" y="{mid + 4}">{e(label)}</text><path d="M{x1} {mid}H{x2 + tip}"/>')
    parts.append(
        f'<path class="h" d="M{x2} {mid}l{tip} -3.5v7z"/><circle cx="{x1}" cy="{mid}" r="2"/></g>'
    )
    return "".join(parts)


def _raw(events: list[dict[str, Any]]) -> str:
    lines = []
    for number, ev in enumerate(events, 1):
        arrow = "->" if ev["direction"] == "out" else "<-"
        auto = " (auto)" if ev.get("auto") else ""
        lines.append(f"{number:>3} {ev['t']:7.3f}s {ev['actor']:<14} {arrow} {ev['xml']}{auto}")
    return f"<details><summary>raw stanzas ({len(events)})</summary><pre>{e(chr(10).join(lines))}</pre></details>"


def _matrix(report: Report) -> str:
    cols = report.columns
    out = ['<table class="matrix"><thead><tr><th>check</th>']
    out += [f'<th title="{e(c.summary)}">{e(c.id)}</th>' for c in cols]
    out.append("</tr></thead><tbody>")
    for scenario in report.scenarios:
        out.append(
            f'<tr class="scn"><th colspan="{len(cols) + 1}"><a href="#s-{e(scenario.id)}">'
            f"{e(scenario.title)}</a></th></tr>"
        )
        for check in scenario.checks:
            out.append(
                f'<tr><td class="check">{e(check.step)} · {e(check.title)} · <b>{e(check.observer)}</b>'
                f'<span class="kind">{e(check.kind)}</span></td>'
            )
            for col in cols:
                cell = report.cell(check.id, col.id)
                tip = cell.detail
                if cell.verdict == "leaks":
                    tip = (
                        f"{tip}\ninvisible: {' '.join(cell.subject)}\noffline: {' '.join(cell.control)}"
                    ).strip()
                out.append(
                    f'<td class="v v-{cell.verdict}"><a href="#f-{e(scenario.id)}-{e(col.id)}" '
                    f'title="{e(tip)}">{SHORT[cell.verdict]}</a></td>'
                )
            out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _totals(report: Report) -> str:
    summary = report.summary()
    head = "".join(f"<th>{e(c.id)}</th>" for c in report.columns)
    rows = "".join(
        f'<tr><td class="check">{v}</td>'
        + "".join(f'<td class="v v-{v}">{summary[c.id][v]}</td>' for c in report.columns)
        + "</tr>"
        for v in VERDICTS
    )
    return f'<table class="matrix"><thead><tr><th>verdict</th>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _by_channel(report: Report) -> str:
    head = "".join(f"<th>{e(c.id)}</th>" for c in report.columns)
    rows = []
    for channel, cells in report.by_channel().items():
        tds = []
        for column in report.columns:
            word = cells[column.id]
            verdict = {"LEAKS": "leaks", "FAILS": "fails", "n/s": "not-supported"}.get(
                word.split()[0], word.split()[0]
            )
            tds.append(f'<td class="v v-{e(verdict)}">{e(word)}</td>')
        rows.append(
            f'<tr><td class="check">{e(CHANNELS[channel].title)} <code>{e(channel)}</code></td>{"".join(tds)}</tr>'
        )
    return f'<table class="matrix"><thead><tr><th>channel</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _why(report: Report, scenario: Scenario) -> str:
    rows = []
    for check in scenario.checks:
        for col in report.columns:
            cell = report.cell(check.id, col.id)
            if cell.verdict in ("hidden", "works"):
                continue
            evidence = [e(cell.detail)] if cell.detail else []
            if cell.verdict == "leaks":
                evidence.append(f"invisible: <code>{e(' '.join(cell.subject))}</code>")
                evidence.append(f"offline: <code>{e(' '.join(cell.control))}</code>")
            rows.append(
                f"<tr><td>{e(check.step)} · {e(check.channel)} · {e(check.observer)}</td>"
                f"<td>{e(col.id)}</td><td class='v v-{cell.verdict}'>{SHORT[cell.verdict]}</td>"
                f"<td>{'<br>'.join(evidence)}</td></tr>"
            )
    if not rows:
        return ""
    return (
        f"<details><summary>why: every cell that is not hidden/works ({len(rows)})</summary>"
        f"<table class='why'>{''.join(rows)}</table></details>"
    )


def _scenario(report: Report, scenario: Scenario) -> str:
    flows = report.flows.get(scenario.id, {})
    keys = [c.id for c in report.columns if c.id in flows]
    offline = [k for k in flows if k.startswith("offline")]
    order = offline[:1] + keys + offline[1:]
    lanes = _lanes(scenario, flows)
    steps = len(scenario.steps) + 1
    rows = [
        max([sum(1 for ev in flows[k] if min(ev["step"], steps - 1) == s) for k in order] + [0])
        for s in range(steps)
    ]
    steps_html = "".join(
        f'<li class="{"obs" if not isinstance(s, Action) else ""}">{e(label.split(". ", 1)[1])}</li>'
        for s, label in zip(scenario.steps, _step_labels(scenario), strict=False)
    )
    figures = []
    for key in order:
        leaking = {c.id for c in scenario.checks if report.cell(c.id, key).verdict == "leaks"}
        caption = (
            "the same account, truly offline (control)"
            if key.startswith("offline")
            else "user hides"
        )
        figures.append(
            f'<figure id="f-{e(scenario.id)}-{e(key)}"><figcaption>{e(key)} <small>{caption}'
            f"</small></figcaption>{diagram(scenario, flows[key], lanes, rows, leaking)}"
            f"{_raw(flows[key])}</figure>"
        )
    return (
        f'<section id="s-{e(scenario.id)}"><h2>{e(scenario.title)} <small class="muted">'
        f"{e(scenario.id)}</small></h2><p>{e(scenario.summary)}</p><ol class='steps'>{steps_html}</ol>"
        f"{_why(report, scenario)}<div class='flows'>{''.join(figures)}</div></section>"
    )


def html_report(report: Report) -> str:
    """The whole report as one HTML document."""
    legend = "".join(
        f'<span class="v-{v}">{SHORT[v]}: {e(text)}</span>'
        for v, text in (
            ("hidden", "same as offline"),
            ("leaks", "differs from offline"),
            ("works", "usable"),
            ("fails", "not usable"),
            ("not-supported", "strategy can't"),
            ("error", "run failed"),
        )
    )
    columns = "".join(
        f"<li><b>{e(c.id)}</b>: {e(c.summary)}"
        + (f" <span class='muted'>(plugins: {e(', '.join(c.plugins))})</span>" if c.plugins else "")
        + (
            f" <span class='muted'>on {e(c.target['host'])}:{e(c.target['port'])}</span>"
            if c.target
            else ""
        )
        + "</li>"
        for c in report.columns
    )
    nav = "".join(f'<a href="#s-{e(s.id)}">{e(s.title)}</a>' for s in report.scenarios)
    generated = report.to_json()["generated"]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>casper compare</title><style>{CSS}</style></head><body>"
        "<h1>casper compare: what each invisibility strategy hides, leaks and costs</h1>"
        f"<p class='muted'>{e(headline(report))}; generated {e(generated)}"
        f"{' by Casper ' + e(report.casper_version) if report.casper_version else ''}.</p>"
        "<p>Every check is run twice: with the user hiding, and with the same account truly offline. "
        "<b>hidden</b> means the observer got exactly what it gets for an offline account, after "
        "normalising ids, timestamps and names; <b>LEAKS</b> means it got something else. Usability "
        "checks either work or fail. Hover a cell for the evidence, click it for the stanza flow.</p>"
        f"<p class='legend'>{legend}</p><ul>{columns}</ul><nav>{nav}</nav>"
        f"<h2>By channel, over all scenarios</h2>{_by_channel(report)}"
        f"<h2 id='matrix'>Matrix</h2>{_matrix(report)}<h2>Totals</h2>{_totals(report)}"
        + "".join(_scenario(report, s) for s in report.scenarios)
        + "</body></html>\n"
    )
