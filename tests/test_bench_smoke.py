"""casper.bench end to end: tiny sizes against a spawned Casper over real loopback sockets.

A correctness smoke test of the benchmark, not a performance test: it checks that every
workload ran and produced figures, never how large they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from casper.bench.cli import UsageError, main, parse_target
from casper.bench.report import FIGURES

TINY = [
    "--spawn-casper",
    "--users", "4",
    "--logins", "5",
    "--login-concurrency", "2",
    "--pairs", "2",
    "--messages", "10",
    "--in-flight", "3",
    "--warmup", "2",
    "--rate", "50",
    "--rate-seconds", "0.5",
    "--contacts", "5",
    "--updates", "3",
    "--idle", "10",
    "--idle-concurrency", "5",
    "--timeout", "30",
    "--step-timeout", "10",
]  # fmt: skip


def test_bench_spawned_casper_tiny_sizes_positive_figures(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"

    status = main([*TINY, "--json", str(out)])

    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert status == 0, printed
    assert report["baseline"] == "casper"
    assert list(report["modes"]) == ["warm"]
    assert report["modes"]["warm"]["ratios"] == {}
    result = report["modes"]["warm"]["targets"]["casper"]
    assert result["errors"] == {}
    assert result["target"]["host"] == "127.0.0.1" and result["target"]["pid"] > 0
    figures = result["figures"]
    for key, _label, _better in FIGURES:  # spawned, so the server's RSS and CPU are known too
        assert key in figures, key
    positive = [k for k in figures if not k.endswith("_cpu_pct")]
    assert all(figures[k] > 0 for k in positive), figures
    assert figures["logins"] == 5
    assert figures["messages"] == 2 * 10
    assert figures["idle_connections"] == 10
    assert figures["broadcasts"] == 3 * 5
    assert figures["rate_p50_ms"] <= figures["rate_p99_ms"]
    assert figures["message_p50_ms"] <= figures["message_p99_ms"]
    assert figures["login_p50_ms"] <= figures["login_p99_ms"]
    assert "messages/s" in printed and "KB per idle connection" in printed


def test_bench_refuses_non_loopback_target(capsys) -> None:
    assert main(["--target", "far=192.0.2.1:5222:example.org"]) == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_bench_needs_a_target(capsys) -> None:
    assert main([]) == 2
    assert "nothing to measure" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "host", "port", "domain", "pid"),
    [
        ("p=127.0.0.1:5322:localhost", "127.0.0.1", 5322, "localhost", None),
        ("p=[::1]:5222:example.org:42", "::1", 5222, "example.org", 42),
    ],
)
def test_parse_target_address_forms(text, host, port, domain, pid) -> None:
    spec = parse_target(text)
    assert spec.target is not None and not spec.spawn
    assert (spec.target.host, spec.target.port, spec.target.domain, spec.target.pid) == (
        host,
        port,
        domain,
        pid,
    )


@pytest.mark.parametrize("text", ["p", "p=host", "p=127.0.0.1:x:d", "p=127.0.0.1:1:d:pid"])
def test_parse_target_rejects_malformed(text) -> None:
    with pytest.raises(UsageError):
        parse_target(text)


def test_report_ratio_is_baseline_over_peer_and_best_peer_per_direction() -> None:
    from casper.bench.report import TargetResult, best_peer, ratios

    casper = TargetResult(
        "casper", {}, kind="casper", figures={"messages_per_s": 10.0, "message_p99_ms": 4.0}
    )
    privacy = TargetResult(
        "casper-privacy",
        {},
        kind="casper",
        figures={"messages_per_s": 100.0, "message_p99_ms": 1.0},
    )
    prosody = TargetResult(
        "prosody", {}, kind="prosody", figures={"messages_per_s": 20.0, "message_p99_ms": 8.0}
    )
    ejabberd = TargetResult(
        "ejabberd", {}, kind="ejabberd", figures={"messages_per_s": 40.0, "message_p99_ms": 2.0}
    )
    results = [casper, privacy, prosody, ejabberd]  # fmt: skip

    assert ratios(results)["prosody"] == {"messages_per_s": 0.5, "message_p99_ms": 0.5}
    best = best_peer(results)  # another Casper is never the peer to beat
    assert best == {"messages_per_s": ("ejabberd", 40.0), "message_p99_ms": ("ejabberd", 2.0)}


@pytest.mark.skipif(
    not (shutil.which("prosody") and shutil.which("erl")),
    reason="apt-get install -y prosody ejabberd",
)
def test_bench_spawns_prosody_and_ejabberd_with_the_same_workloads(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"

    status = main([*TINY, "--spawn-prosody", "--spawn-ejabberd", "--json", str(out)])

    report = json.loads(out.read_text())["modes"]["warm"]
    assert status == 0, report
    assert set(report["targets"]) == {"casper", "prosody", "ejabberd"}
    for name in ("prosody", "ejabberd"):
        figures = report["targets"][name]["figures"]
        assert figures["logins"] == 5 and figures["broadcasts"] == 3 * 5, figures
        assert report["targets"][name]["version"].startswith(name)
        assert "messages_per_s" in report["ratios"][name]


def test_tls_bench_prints_both_implementations_and_their_ratio(capsys) -> None:
    from casper.bench import tls

    tls.main(["--records", "300", "--rounds", "1", "--in-flight", "4"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"trio.SSLStream", "SocketTLSStream"}
    assert all(float(row[1]) > 0 for row in rows.values())
    assert rows["trio.SSLStream"][2] == "1.00x"
