"""The matrix as a terminal table and as Markdown, and the progress bar."""

from __future__ import annotations

import sys
from typing import TextIO

from .catalogue import CHANNELS, Check
from .report import VERDICTS, Report

SHORT = {
    "hidden": "hidden",
    "leaks": "LEAKS",
    "works": "works",
    "fails": "FAILS",
    "not-supported": "n/s",
    "error": "error",
}
COLOURS = {
    "hidden": "32",
    "leaks": "1;31",
    "works": "32",
    "fails": "1;33",
    "not-supported": "2",
    "error": "1;35",
}
MARKDOWN = {
    "hidden": "hidden",
    "leaks": "**LEAKS**",
    "works": "works",
    "fails": "**FAILS**",
    "not-supported": "n/s",
    "error": "error",
}


LEGEND = (
    "Each check is also run against the same account truly offline: **hidden** means the "
    "observer sees exactly what it sees for an offline account (after normalising ids, "
    "timestamps and names), **LEAKS** that it sees something else. Usability checks "
    "**work** or **FAIL**; n/s = not supported."
)


def row_label(check: Check) -> str:
    return f"{check.step} · {check.channel} · {check.observer}"


def headline(report: Report) -> str:
    worlds = sum(len(flows) for flows in report.flows.values())
    return (
        f"casper compare: {len(report.scenarios)} scenarios × {len(report.columns)} columns, "
        f"{len(report.rows())} checks, {worlds} stanza flows recorded, "
        f"{report.duration:.1f} s"
    )


def terminal_table(report: Report, *, colour: bool = False) -> str:
    """Rows per scenario, one column per strategy; the verdict counts at the end."""
    columns = [c.id for c in report.columns]
    label_width = max([len(row_label(c)) + 2 for _, c in report.rows()] + [24])
    channel_words = report.by_channel()
    widths = [
        max([len(c), 7] + [len(words[c]) for words in channel_words.values()]) for c in columns
    ]

    def paint(verdict: str, width: int) -> str:
        text = SHORT[verdict].rjust(width)
        return f"\x1b[{COLOURS[verdict]}m{text}\x1b[0m" if colour else text

    header = " " * label_width + "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))
    lines = [headline(report), "", header]
    for scenario in report.scenarios:
        lines.append(f"{scenario.title} ({scenario.id})")
        for check in scenario.checks:
            cells = [
                paint(report.cell(check.id, c).verdict, w)
                for c, w in zip(columns, widths, strict=True)
            ]
            lines.append(f"  {row_label(check):<{label_width - 2}}" + "  ".join(cells))
    lines += [
        "",
        "totals".ljust(label_width)
        + "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)),
    ]
    summary = report.summary()
    for verdict in VERDICTS:
        counts = [str(summary[c][verdict]).rjust(w) for c, w in zip(columns, widths, strict=True)]
        lines.append(f"  {verdict:<{label_width - 2}}" + "  ".join(counts))
    lines += [
        "",
        "by channel".ljust(label_width)
        + "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)),
    ]
    for channel, words in channel_words.items():
        lines.append(
            f"  {channel:<{label_width - 2}}"
            + "  ".join(words[c].rjust(w) for c, w in zip(columns, widths, strict=True))
        )
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: Report) -> str:
    """A self-contained Markdown document: legend, totals, then the matrix per scenario."""
    columns = [c.id for c in report.columns]
    head = "| check | " + " | ".join(f"`{c}`" for c in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    version = f", Casper {report.casper_version}" if report.casper_version else ""
    out = [
        "# casper compare: what each invisibility strategy hides, leaks and costs",
        "",
        f"_{headline(report)}; generated {report.to_json()['generated']}{version}._",
        "",
        LEGEND,
        "",
        "## Columns",
        "",
    ]
    for column in report.columns:
        where = f" on `{column.target['name']}`" if column.target else ""
        plugins = f" (plugins: {', '.join(column.plugins)})" if column.plugins else ""
        out.append(f"- `{column.id}`{where}: {_md_escape(column.summary)}{plugins}")
    out += [
        "",
        "## Totals",
        "",
        "| verdict | " + " | ".join(f"`{c}`" for c in columns) + " |",
        rule,
    ]
    summary = report.summary()
    for verdict in VERDICTS:
        out.append(f"| {verdict} | " + " | ".join(str(summary[c][verdict]) for c in columns) + " |")
    out += [
        "",
        "## By channel, over all scenarios",
        "",
        "| channel | " + " | ".join(f"`{c}`" for c in columns) + " |",
        rule,
    ]
    for channel, by_column in report.by_channel().items():
        marked = [
            by_column[c].replace("LEAKS", "**LEAKS**").replace("FAILS", "**FAILS**")
            for c in columns
        ]
        out.append(f"| {CHANNELS[channel].title} (`{channel}`) | " + " | ".join(marked) + " |")
    out += ["", "## Matrix", ""]
    for scenario in report.scenarios:
        out += [f"### {scenario.title}", "", _md_escape(scenario.summary), "", head, rule]
        for check in scenario.checks:
            cells = [MARKDOWN[report.cell(check.id, c).verdict] for c in columns]
            out.append(
                f"| {_md_escape(check.step)} · {check.title} · {check.observer} | "
                + " | ".join(cells)
                + " |"
            )
        out.append("")
    return "\n".join(out)


class ProgressBar:
    """``[#####.....] 45/100 worlds  12.3 s  xep0018 · reconnect`` on one stderr line."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int, label: str, elapsed: float | None = None) -> None:
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        secs = f"  {elapsed:5.1f} s" if elapsed is not None else ""
        line = f"[{bar}] {done}/{total} worlds{secs}  {label}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line[:120])
            if done >= total:
                self.stream.write("\n")
        else:  # a log file: one line per tenth
            tenth = 10 * done // max(total, 1)
            if tenth != self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(line + "\n")
        self.stream.flush()
