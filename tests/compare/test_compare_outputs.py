"""``casper compare`` end to end: the terminal table, JSON, Markdown and the HTML report,
which a real headless browser (Debian's chromium) renders to a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from casper.cli import main as casper_main
from casper.compare.report import SCHEMA, SCHEMA_VERSION, VERDICTS
from casper.compare.text import ProgressBar

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real run through the ``casper`` entry point, two scenarios, two columns."""
    base = tmp_path_factory.mktemp("compare")
    paths = {kind: base / f"report.{kind}" for kind in ("json", "md", "html")}
    status = casper_main(["compare", "--strategies", "none,privacy-lists", "--scenarios",
                          "visible-to-contact,second-resource", "--no-progress",
                          "--json", str(paths["json"]), "--markdown", str(paths["md"]),
                          "--html", str(paths["html"])])  # fmt: skip
    assert status == 0
    return paths


def test_json_follows_the_documented_schema(outputs: dict[str, Path]) -> None:
    report = json.loads(outputs["json"].read_text())
    assert report["schema"] == SCHEMA and report["version"] == SCHEMA_VERSION == 1
    assert set(report) == {"schema", "version", "generated", "casper", "duration_seconds", "verdicts",
                           "columns", "scenarios", "rows", "summary", "flows"}  # fmt: skip
    assert report["verdicts"] == list(VERDICTS)
    assert [c["id"] for c in report["columns"]] == ["none", "privacy-lists"]
    assert {c["server"] for c in report["columns"]} == {"casper"}
    assert [s["id"] for s in report["scenarios"]] == ["visible-to-contact", "second-resource"]
    for row in report["rows"]:
        assert set(row) == {
            "id",
            "scenario",
            "step",
            "channel",
            "title",
            "observer",
            "kind",
            "cells",
        }
        for cell in row["cells"].values():
            assert set(cell) == {"verdict", "detail", "subject", "control"}
            assert cell["verdict"] in VERDICTS
            assert cell["verdict"] != "error", (row["id"], cell)
    for column, counts in report["summary"].items():
        assert sum(counts.values()) == len(report["rows"]), column
    flow = report["flows"]["second-resource"]
    assert set(flow) == {"none", "privacy-lists", "offline"}
    event = flow["privacy-lists"][0]
    assert set(event) == {"seq", "t", "step", "actor", "direction", "kind", "type", "from", "to",
                          "summary", "auto", "check", "xml"}  # fmt: skip
    assert event["xml"].startswith("<")


def test_markdown_has_the_matrix(outputs: dict[str, Path]) -> None:
    text = outputs["md"].read_text()
    assert "| check | `none` | `privacy-lists` |" in text
    assert "### A second resource, also invisible" in text
    assert (
        "| software version of the full JID (`iq-version`) | **LEAKS** 3/3 | **LEAKS** 3/3 |"
        in text
    )
    assert re.search(
        r"\| visible to friend only · user and contact can chat both ways · friend \| works \| works \|",
        text,
    )


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.urls.append(value)


def test_html_is_self_contained_with_a_diagram_per_world(outputs: dict[str, Path]) -> None:
    text = outputs["html"].read_text()
    parser = _Collector()
    parser.feed(text)
    assert parser.urls == []  # nothing loaded from anywhere: no scripts, styles, images, fonts
    assert parser.tags.get("script", 0) == 0 and parser.tags.get("link", 0) == 0
    assert parser.tags["svg"] == 2 * 3  # two scenarios, each: offline, none, privacy-lists
    assert parser.tags["details"] >= 2 * 3  # raw stanzas one click away
    assert 'id="f-second-resource-privacy-lists"' in text


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
def test_html_renders_in_headless_chromium(outputs: dict[str, Path], tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000"]  # fmt: skip
    assert CHROMIUM is not None
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", outputs["html"].as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1400, 1000)
    assert len(png) > 30_000  # a blank page compresses to a few kB
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", outputs["html"].as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    assert dom.count("<svg") == 6 and "LEAKS" in dom


def test_terminal_table_and_cli_hook(capsys: pytest.CaptureFixture[str]) -> None:
    assert casper_main(["compare", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "login-invisible" in listed and "privacy-lists" in listed
    assert (
        casper_main(
            ["compare", "--strategies", "xep0018", "--scenarios", "come-back", "--no-progress"]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert table.startswith("casper compare: 1 scenarios × 1 columns")
    assert "Come back: visible to all again (come-back)" in table
    assert re.search(r"visible again · chat · friend +works", table)
    assert casper_main(["compare", "--strategies", "bogus"]) == 2


def test_progress_bar_without_a_terminal(tmp_path: Path) -> None:
    log = tmp_path / "progress.txt"
    with log.open("w") as stream:
        bar = ProgressBar(stream, width=10)
        for done in range(21):
            bar(done, 20, f"world {done}", elapsed=done / 10)
    lines = log.read_text().splitlines()
    assert lines[0] == "[..........] 0/20 worlds    0.0 s  world 0"
    assert lines[-1] == "[##########] 20/20 worlds    2.0 s  world 20"
    assert len(lines) == 11  # one line per tenth in a log file
