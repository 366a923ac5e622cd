"""Auditing another server: a second Casper, started here, targeted as a foreign server.

The CLI runs in a worker thread (it has its own ``trio.run``) while the foreign server
runs in the test's event loop, on loopback TCP. It is reached by host, port and domain
with four accounts, exactly as a Prosody or ejabberd would be.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from casper.compare.cli import main
from casper.testing import TestServer, open_test_server

ACCOUNTS = {"alice": "a-pw", "bob": "b-pw", "carol": "c-pw", "dave": "d-pw"}


def target_args(srv: TestServer, *accounts: str) -> list[str]:
    given = accounts or tuple(f"{u}:{p}" for u, p in ACCOUNTS.items())
    args = ["--target", f"foreign=127.0.0.1:{srv.tcp_port}", "--domain", srv.domain, "--insecure",
            "--muc", f"conference.{srv.domain}", "--grace", "0.02", "--no-progress"]  # fmt: skip
    for account in given:
        args += ["--account", account]
    return args


async def run_cli(args: list[str]) -> int:
    return await trio.to_thread.run_sync(main, args)


async def test_foreign_casper_gives_the_same_matrix_as_the_built_in_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    async with open_test_server(
        tcp=True, plugins=["privacy-lists", "muc"], accounts=ACCOUNTS
    ) as srv:
        status = await run_cli(
            ["--strategies", "privacy-lists", "--via", "privacy-lists,invisible-command",
             "--scenarios", "login-invisible,invisible-after-online", "--json", str(out)]
            + target_args(srv)
        )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    columns = {c["id"]: c for c in report["columns"]}
    assert columns["foreign/privacy-lists"]["target"]["port"] == srv.tcp_port
    assert columns["foreign/privacy-lists"]["server"] == "target"
    differ = {
        row["id"]: (
            row["cells"]["privacy-lists"]["verdict"],
            row["cells"]["foreign/privacy-lists"]["verdict"],
        )
        for row in report["rows"]
        if row["cells"]["privacy-lists"]["verdict"]
        != row["cells"]["foreign/privacy-lists"]["verdict"]
    }
    assert not differ, differ
    # the target has no invisible-command plugin: the server refuses <invisible/>, and says so
    for row in report["rows"]:
        cell = row["cells"]["foreign/invisible-command"]
        assert cell["verdict"] == "not-supported", cell
        assert "service-unavailable to <invisible/>" in cell["detail"]
    assert "offline:foreign" in report["flows"]["login-invisible"]


async def test_bad_password_is_named_before_anything_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with open_test_server(tcp=True, accounts=ACCOUNTS) as srv:
        args = target_args(srv, "alice:a-pw", "bob:b-pw", "friend=carol:wrong", "dave:d-pw")
        status = await run_cli(["--only-target"] + args)
    err = capsys.readouterr().err
    assert status == 2
    assert (
        f"target foreign (127.0.0.1:{srv.tcp_port}): account friend (carol@localhost) cannot log in"
        in err
    )
    assert "not-authorized" in err


async def test_untrusted_certificate_suggests_insecure(capsys: pytest.CaptureFixture[str]) -> None:
    async with open_test_server(tcp=True, accounts=ACCOUNTS) as srv:
        args = [a for a in target_args(srv) if a != "--insecure"]
        status = await run_cli(["--only-target"] + args)
    assert status == 2
    assert "certificate not trusted" in capsys.readouterr().err


async def test_unreachable_target(capsys: pytest.CaptureFixture[str]) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await listeners[0].aclose()  # nobody listens there now
    args = ["--only-target", "--target", f"gone=127.0.0.1:{port}", "--domain", "example.org"]
    for account in ("u:p", "f:p", "c:p", "s:p"):
        args += ["--account", account]
    assert await run_cli(args) == 2
    err = capsys.readouterr().err
    assert f"casper compare: error: target gone (127.0.0.1:{port}) is unreachable" in err
    assert "Connection refused" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "x=h"], "--target must look like NAME=HOST:PORT"),
        (["--target", "x=h:5222"], "--target needs --domain"),
        (
            ["--target", "x=h:5222", "--domain", "d", "--account", "u:p"],
            "needs an account for friend",
        ),
        (
            ["--target", "x=h:5222", "--domain", "d"] + ["--account", "u:p"] * 4,
            "each role needs its own",
        ),
        (
            ["--target", "x=h:5222", "--domain", "d", "--account", "u@other:p"],
            "not on the target's domain",
        ),
        (
            ["--target", "x=h:5222", "--domain", "d", "--account", "nopassword"],
            "[ROLE=]USER:PASSWORD",
        ),
        (["--domain", "d"], "need --target"),
        (["--strategies", "xep0018+telepathy"], "unknown strategy 'telepathy'"),
        (["--scenarios", "nope"], "unknown scenario 'nope'"),
        (["--strategies", "none", "--json", "/nonexistent/dir/r.json"], "no such directory"),
    ],
)
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args + ["--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("casper compare: error: ")
    assert message in err
