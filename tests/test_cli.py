"""casper.cli: account management, plugin listing, and one-line errors with exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from casper.cli import CommandError, main, read_new_password
from casper.sasl.scram import verify_password
from casper.storage import open_storage


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def config_file(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "casper.toml"
    path.write_text(
        f'[server]\ndomain = "example.com"\ndata_dir = "{data_dir}"\n'
        "[auth]\nscram_iterations = 5000\n",
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(result: tuple[int, str, str], *fragments: str) -> None:
    status, _, err = result
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("casper: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def credentials(data_dir: Path, jid: str, mechanism: str = "SCRAM-SHA-256"):
    with open_storage(data_dir) as storage:
        return storage.get_credentials(jid, mechanism)


# -- user ---------------------------------------------------------------------------------------


def test_user_add_list_passwd_delete_round_trip(capsys, data_dir: Path) -> None:
    dd = ("--data-dir", str(data_dir))
    assert run(capsys, "user", "add", "romeo@localhost", "--password", "s3cret", *dd)[0] == 0
    assert run(capsys, "user", "add", "Juliet@LOCALHOST", "--password", "x", *dd)[0] == 0
    assert run(capsys, "user", "list", *dd) == (0, "juliet@localhost\nromeo@localhost\n", "")
    creds = credentials(data_dir, "romeo@localhost")
    assert verify_password(creds, "s3cret") and not verify_password(creds, "wrong")

    assert run(capsys, "user", "passwd", "romeo@localhost", "--password", "n3w", *dd)[0] == 0
    creds = credentials(data_dir, "romeo@localhost")
    assert verify_password(creds, "n3w") and not verify_password(creds, "s3cret")

    assert run(capsys, "user", "delete", "romeo@localhost", *dd)[0] == 0
    assert run(capsys, "user", "list", *dd) == (0, "juliet@localhost\n", "")


def test_user_add_uses_configured_domain_and_iterations(capsys, config_file, data_dir) -> None:
    status, out, _ = run(
        capsys, "user", "add", "romeo@example.com", "--password", "pw", "--config", str(config_file)
    )
    assert status == 0 and "romeo@example.com" in out
    creds = credentials(data_dir, "romeo@example.com")
    assert creds.iterations == 5000 and verify_password(creds, "pw")


def test_data_dir_flag_wins_over_config_file(capsys, config_file, tmp_path) -> None:
    other = tmp_path / "other"
    args = ("--config", str(config_file), "--data-dir", str(other))
    assert run(capsys, "user", "add", "romeo@example.com", "--password", "pw", *args)[0] == 0
    assert credentials(other, "romeo@example.com") is not None


def test_user_add_existing_account_is_an_error(capsys, data_dir) -> None:
    args = ("user", "add", "romeo@localhost", "--password", "pw", "--data-dir", str(data_dir))
    run(capsys, *args)
    assert_one_line_error(run(capsys, *args), "romeo@localhost", "already exists")


@pytest.mark.parametrize("command", [("passwd", "--password", "pw"), ("delete",)])
def test_unknown_account_is_an_error(capsys, data_dir, command) -> None:
    result = run(
        capsys, "user", command[0], "nobody@localhost", *command[1:], "--data-dir", str(data_dir)
    )
    assert_one_line_error(result, "nobody@localhost")


@pytest.mark.parametrize(
    ("jid", "fragment"),
    [
        ("romeo@example.org", "domain"),
        ("localhost", "bare JID"),
        ("romeo@localhost/balcony", "bare JID"),
        ("rom eo@localhost", "invalid JID"),
        ("@localhost", "invalid JID"),
    ],
)
def test_user_add_rejects_jids_not_bare_on_our_domain(capsys, data_dir, jid, fragment) -> None:
    result = run(capsys, "user", "add", jid, "--password", "pw", "--data-dir", str(data_dir))
    assert_one_line_error(result, fragment)
    assert run(capsys, "user", "list", "--data-dir", str(data_dir)) == (0, "", "")


def test_empty_password_is_an_error(capsys, data_dir) -> None:
    result = run(
        capsys, "user", "add", "romeo@localhost", "--password", "", "--data-dir", str(data_dir)
    )
    assert_one_line_error(result, "password")


def test_password_refused_by_saslprep_is_an_error(capsys, data_dir) -> None:
    args = ("user", "add", "romeo@localhost", "--password", "a\x07b", "--data-dir", str(data_dir))
    assert_one_line_error(run(capsys, *args), "unusable password")


def test_password_prompt_asks_twice() -> None:
    answers = iter(["pw", "pw"])
    assert read_new_password(None, prompt=lambda _: next(answers)) == "pw"


def test_password_prompt_mismatch_is_an_error() -> None:
    answers = iter(["pw", "other"])
    with pytest.raises(CommandError, match="do not match"):
        read_new_password(None, prompt=lambda _: next(answers))


def test_given_password_is_not_prompted_for() -> None:
    def refuse(_: str) -> str:
        raise AssertionError("prompted")

    assert read_new_password("pw", prompt=refuse) == "pw"


# -- configuration errors -----------------------------------------------------------------------


def test_bad_toml_is_an_error(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n", encoding="utf-8")
    assert_one_line_error(run(capsys, "user", "list", "--config", str(bad)), "not valid TOML")


def test_missing_config_file_is_an_error(capsys, tmp_path) -> None:
    assert_one_line_error(run(capsys, "plugins", "--config", str(tmp_path / "x.toml")), "not found")


def test_serve_with_unknown_plugin_is_an_error(capsys, data_dir) -> None:
    result = run(capsys, "serve", "--plugins", "ping,nope", "--data-dir", str(data_dir))
    assert_one_line_error(result, "unknown plugin 'nope'; installed: ", "disco")


def test_serve_with_bad_port_is_an_error(capsys, data_dir) -> None:
    result = run(capsys, "serve", "--port", "70000", "--data-dir", str(data_dir))
    assert_one_line_error(result, "server.port")


@pytest.fixture
def occupied_port():
    """A loopback port something else already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize(
    ("flags", "purpose"),
    [
        (("--port", "{port}", "--tls-port", "off"), "c2s"),
        (("--port", "0", "--tls-port", "{port}"), "direct TLS"),
    ],
)
def test_serve_on_an_occupied_port_names_the_port_and_its_purpose(
    capsys, data_dir, occupied_port, flags, purpose
) -> None:
    argv = [flag.format(port=occupied_port) for flag in flags]
    result = run(capsys, "serve", "--host", "127.0.0.1", *argv, "--data-dir", str(data_dir))
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{occupied_port} ({purpose})")


def test_tls_port_off_disables_direct_tls_and_other_words_are_usage_errors(capsys) -> None:
    from casper.cli import build_parser
    from casper.config import load_config

    args = build_parser().parse_args(["serve", "--tls-port", "off"])
    assert load_config(None, {"tls_port": args.tls_port}).tls_port is None
    assert main(["serve", "--tls-port", "none"]) == 2
    assert "not a port number or 'off': 'none'" in capsys.readouterr().err


def test_serve_with_missing_certificate_file_is_an_error(capsys, tmp_path) -> None:
    config = tmp_path / "casper.toml"
    config.write_text(
        f'[tls]\ncert_file = "{tmp_path}/c.pem"\nkey_file = "{tmp_path}/k.pem"\n', encoding="utf-8"
    )
    result = run(capsys, "serve", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert_one_line_error(result, "c.pem", "does not exist")


def test_no_command_is_a_usage_error(capsys) -> None:
    assert main([]) == 2
    assert "usage: casper" in capsys.readouterr().err


def test_help_exits_zero(capsys) -> None:
    assert main(["--help"]) == 0
    assert "serve" in capsys.readouterr().out


# -- plugins ------------------------------------------------------------------------------------


def test_plugins_lists_every_entry_point_with_state_and_summary(capsys, tmp_path) -> None:
    config = tmp_path / "casper.toml"
    config.write_text('[plugins]\ndisable = ["ping"]\n', encoding="utf-8")
    status, out, err = run(capsys, "plugins", "--config", str(config))
    assert status == 0 and err == ""
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in out.splitlines()}
    installed = {ep.name for ep in entry_points(group="casper")}
    assert set(rows) == installed
    assert rows["ping"][0] == "disabled"
    assert rows["disco"][0] == "enabled"
    for _, summary in rows.values():
        assert summary.strip()  # a docstring line or "(fails to import: ...)"
        assert "``" not in summary  # reST literals are shown plain
    assert "at conference.<domain>" in rows["muc"][1]


def test_plugin_that_fails_to_import_is_reported_not_raised(capsys) -> None:
    from importlib.metadata import EntryPoint

    from casper.cli import plugin_summary

    ep = EntryPoint(name="ghost", value="casper_no_such_module.ghost", group="casper")
    assert plugin_summary(ep).startswith("(fails to import: ModuleNotFoundError")


def test_python_m_casper_runs_the_cli(data_dir) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "casper", "user", "list", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")
