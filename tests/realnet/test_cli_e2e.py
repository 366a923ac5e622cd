"""The ``casper`` command end to end, run as a subprocess exactly as a user types it.

``casper serve`` with no arguments at all in an empty directory; configuration mistakes that
must end with status 2 and one ``casper: error:`` line; the ``casper user`` round trip
checked by logging in with slixmpp; ``casper plugins``.
"""

from __future__ import annotations

import signal
import socket
import ssl
import stat

import pytest

pytestmark = pytest.mark.realnet

BASELINE = {
    "disco": "XEP-0030",
    "version": "XEP-0092",
    "time": "XEP-0202",
    "ping": "XEP-0199",
    "last-activity": "XEP-0012",
    "offline": "XEP-0160",
}
STREAM_OPEN = (
    b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0'"
    b" xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)


def _features(sock: socket.socket) -> bytes:
    """Open a stream on ``sock`` and return what the server sends up to its features."""
    sock.settimeout(10)
    sock.sendall(STREAM_OPEN)
    data = b""
    while b"</stream:features>" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before the stream features: {data!r}"
        data += chunk
    return data


def _one_error_line(result) -> str:
    """Check status 2 and a single ``casper: error:`` line on stderr; return the message."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("casper: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0].removeprefix("casper: error: ")


# -- casper serve -------------------------------------------------------------------------------


def _serve_with_defaults(start_casper, cwd):
    """Run ``casper serve`` without arguments; skip if the default ports are taken."""
    server = start_casper("serve", cwd=cwd)
    listeners = server.wait_for_listeners(2)
    if len(listeners) < 2:
        status = server.stop()
        if status == 2 and "address already in use" in server.log.lower():
            pytest.skip(f"the default ports 5222/5223 are in use on this machine: {server.log}")
        pytest.fail(f"`casper serve` exited with status {status}:\n{server.log}")
    return server, listeners


def test_serve_without_arguments_in_an_empty_directory(tmp_path, start_casper):
    server, listeners = _serve_with_defaults(start_casper, tmp_path)

    found = {(lst.host, lst.port, lst.kind, lst.domain) for lst in listeners}
    assert found == {
        ("127.0.0.1", 5222, "STARTTLS", "localhost"),
        ("127.0.0.1", 5223, "direct TLS (XEP-0368)", "localhost"),
    }

    data = tmp_path / "casper-data"
    cert, key = data / "tls" / "cert.pem", data / "tls" / "key.pem"
    assert cert.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (data / "casper.sqlite3").is_file()

    with socket.create_connection(("127.0.0.1", 5222), timeout=10) as sock:
        features = _features(sock)
    assert b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" in features

    ctx = ssl.create_default_context(cafile=str(cert))  # verifies chain and name "localhost"
    with (
        socket.create_connection(("127.0.0.1", 5223), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        features = _features(sock)
    assert b"<mechanism>SCRAM-SHA-256</mechanism>" in features
    assert b"<mechanism>PLAIN</mechanism>" in features  # offered because TLS is up

    assert server.stop() == 0  # Ctrl-C is a clean exit
    assert server.log.count("listening for XMPP clients on") == 2
    assert "Traceback" not in server.log

    generated = cert.read_bytes()
    again, _ = _serve_with_defaults(start_casper, tmp_path)
    assert again.stop() == 0
    assert cert.read_bytes() == generated  # the certificate is made once, then reused


def test_ctrl_c_as_soon_as_the_server_listens_is_never_lost(tmp_path, start_casper):
    # the signal lands while the server is still starting up; it used to be dropped
    # about one time in four, leaving the process running until killed
    for _ in range(8):
        server, _ = _serve_with_defaults(start_casper, tmp_path)
        assert server.stop() == 0, server.log


def test_sigterm_ends_open_streams_with_system_shutdown(tmp_path, start_casper):
    server, _ = _serve_with_defaults(start_casper, tmp_path)
    cert = tmp_path / "casper-data" / "tls" / "cert.pem"
    ctx = ssl.create_default_context(cafile=str(cert))
    with (
        socket.create_connection(("127.0.0.1", 5223), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        _features(sock)
        server.proc.send_signal(signal.SIGTERM)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b"<system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" in data
    assert data.endswith(b"</stream:stream>")
    assert server.stop() == 0
    assert "stopping on SIGTERM" in server.log
    assert "Traceback" not in server.log


CONFIG_ERRORS = [
    pytest.param(
        [], '[plugins]\nenable = ["nosuch"]\n', "unknown plugin 'nosuch'", id="plugin-file"
    ),
    pytest.param(["--plugins", "nosuch"], "", "unknown plugin 'nosuch'", id="plugin-flag"),
    pytest.param([], "[server]\nport = 70000\n", "server.port = 70000 is out of range", id="port"),
    pytest.param(["--port", "65536"], "", "server.port = 65536 is out of range", id="port-flag"),
    pytest.param([], '[server]\nport = "5222"\n', "server.port must be an integer", id="port-str"),
    pytest.param([], "[server]\ntls_port = -1\n", "server.tls_port = -1", id="tls-port"),
    pytest.param(
        [],
        '[tls]\ncert_file = "missing.pem"\nkey_file = "missing.key"\n',
        "TLS certificate file missing.pem does not exist",
        id="missing-cert",
    ),
    pytest.param([], '[tls]\ncert_file = "c.pem"\n', "must be set together", id="cert-no-key"),
    pytest.param([], "[server\nport = 1\n", "is not valid TOML", id="bad-toml"),
    pytest.param(
        [],
        '[s2s]\nenabled = true\nport = 0\nca_file = "nope.pem"\n',
        "s2s.ca_file nope.pem does not exist",
        id="missing-ca-file",
    ),
    pytest.param([], "[server]\nprot = 5222\n", "unknown config key server.prot", id="typo"),
    pytest.param(["--config", "nope.toml"], None, "config file nope.toml not found", id="no-file"),
]


@pytest.mark.parametrize(("flags", "toml", "message"), CONFIG_ERRORS)
def test_serve_rejects_bad_configuration(tmp_path, casper_cli, flags, toml, message):
    args = ["serve", *flags]
    if toml is not None:
        (tmp_path / "casper.toml").write_text(toml)
        args += ["--config", "casper.toml"]
    result = casper_cli(*args, cwd=tmp_path, timeout=15)
    assert message in _one_error_line(result)
    assert not (tmp_path / "casper-data").exists()  # nothing is created before the check


def test_serve_reports_a_port_in_use(tmp_path, casper_server, casper_cli):
    (tmp_path / "starttls.toml").write_text("[server]\ntls_port = false\n")
    (tmp_path / "direct.toml").write_text(f"[server]\ntls_port = {casper_server.tls_port}\n")
    cases = (("starttls.toml", casper_server.port, f"{casper_server.port} (c2s)"),
             ("direct.toml", 0, f"{casper_server.tls_port} (direct TLS)"))  # fmt: skip
    for run, (config, port, named) in enumerate(cases):
        args = ("serve", "--config", config, "--port", str(port))
        result = casper_cli(*args, cwd=tmp_path, timeout=15)
        if run == 0:  # the first start in this folder makes the certificate, and says so
            generated, _, rest = result.stderr.partition("\n")
            assert "generated a self-signed certificate for localhost" in generated
            result.stderr = rest
        error = _one_error_line(result)
        assert named in error and "address already in use" in error.lower(), error


# -- casper user --------------------------------------------------------------------------------


def test_user_commands_round_trip_then_login(casper_server, open_peer, run_async):
    def ok(*args):
        result = casper_server.casper("user", *args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout.splitlines()

    def error(*args):
        return _one_error_line(casper_server.casper("user", *args))

    assert ok("list") == []
    assert ok("add", "romeo@localhost", "--password", "one") == ["created romeo@localhost"]
    assert ok("add", "Juliet@LOCALHOST", "--password", "secret") == ["created juliet@localhost"]
    assert sorted(ok("list")) == ["juliet@localhost", "romeo@localhost"]

    assert error("add", "romeo@localhost", "--password", "x") == (
        "account romeo@localhost already exists"
    )
    assert "not on this server's domain" in error("add", "romeo@example.org", "--password", "x")
    assert "not a bare JID" in error("add", "romeo@localhost/balcony", "--password", "x")
    assert "must not be empty" in error("add", "tybalt@localhost", "--password", "")
    assert error("passwd", "nobody@localhost", "--password", "x") == (
        "no such account: nobody@localhost"
    )

    # The server is running: the new password counts at the next login.
    assert ok("passwd", "romeo@localhost", "--password", "two") == [
        "changed the password of romeo@localhost"
    ]
    assert ok("delete", "juliet@localhost") == ["deleted juliet@localhost"]
    assert ok("list") == ["romeo@localhost"]
    assert error("delete", "juliet@localhost") == "no such account: juliet@localhost"

    async def scenario():
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"):
            async with open_peer("romeo", "one", login=False, mechanism=mechanism) as old:
                with pytest.raises(old.LoginFailed, match="not-authorized"):
                    await old.login()
            async with open_peer("romeo", "two", mechanism=mechanism) as romeo:
                assert romeo.mechanism == mechanism
        async with open_peer("juliet", "secret", login=False) as juliet:
            with pytest.raises(juliet.LoginFailed, match="not-authorized"):
                await juliet.login()

    run_async(scenario())


# -- casper plugins -----------------------------------------------------------------------------


def _plugin_rows(stdout: str) -> dict[str, tuple[str, str]]:
    rows = {}
    for line in stdout.splitlines():
        name, state, summary = line.split(None, 2)
        rows[name] = (state, summary)
    return rows


def test_plugins_lists_the_baseline_with_descriptions(tmp_path, casper_cli):
    result = casper_cli("plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _plugin_rows(result.stdout)
    assert set(BASELINE) <= set(rows)
    for name, xep in BASELINE.items():
        state, summary = rows[name]
        assert state == "enabled"
        assert f"({xep})" in summary, summary  # the first line of the module docstring

    (tmp_path / "casper.toml").write_text('[plugins]\ndisable = ["ping"]\n')
    result = casper_cli("plugins", "--config", "casper.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = _plugin_rows(result.stdout)
    assert rows["ping"][0] == "disabled"
    assert rows["disco"][0] == "enabled"
