"""The soak benchmark runs end to end at a tiny size and prints its figures.

A smoke test only: it checks that ``python -m casper.bench.soak`` spawns a server, churns
clients, samples ``/proc`` and ``/health``, and reports; no figure is asserted beyond the
fd and session bookkeeping coming back to where it started (the point of a soak run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_soak_runs_at_tiny_size_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "casper.bench.soak",
            "--clients",
            "6",
            "--duration",
            "4",
            "--sample",
            "1",
            "--step-timeout",
            "10",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(baseline, no client)" in result.stdout
    assert "file descriptors: baseline" in result.stdout and "no leak" in result.stdout
    summary = json.loads(out.read_text())
    assert summary["logins"] >= 6
    assert summary["server_sessions_after"] == 0
    assert not summary["fd_leak"] and summary["server_tracebacks"] == 0
    assert summary["samples"][0]["clients"] == 0
