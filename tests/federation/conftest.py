"""Federation against real servers nobody here wrote: Debian's Prosody and ejabberd.

Each runs as a private process on loopback under its own domain (``prosody.test`` with a
MUC component ``rooms.prosody.test``; ``ejabberd.test``), with a config file, data
directory and certificates (from one throwaway ``trustme`` CA) under a temporary
directory. Every server trusts that CA (Prosody ``ssl.cafile``, ejabberd ``ca_file``,
Casper ``[s2s] ca_file``), so streams authenticate with SASL EXTERNAL; a Casper with a
self-signed certificate and no ``ca_file`` exercises dialback. No DNS is involved: Casper (``casper.test``) has static routes to them, and they
reach Casper's s2s port through a static route of their own (a small Prosody module,
``prosody/mod_casper_static_routes.lua``; for ejabberd, an Erlang ``inetrc`` hosts entry
plus ``outgoing_s2s_port``).

The servers start once per session (sync fixtures, subprocesses); Casper starts per test,
in-process, on a fixed s2s port chosen at session start. Tests use fresh account names so
they don't see each other's rosters. A server that is not installed makes its tests skip:
``apt-get install -y prosody ejabberd``.

Remote users are driven with :class:`casper.testing.TestClient` over real TCP and TLS
(PLAIN over TLS), so every test is an ordinary Trio test.
"""

from __future__ import annotations

import datetime
import itertools
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from casper.testing import TestClient, TestServer
from casper.testing.client import closing

from tests.core.conftest import message_with_id, send_message
from tests.federation.fakedns import FakeDNS, fake_dns
from tests.s2s.conftest import open_server
from tests.s2s.scenarios import TIMEOUT

HERE = Path(__file__).parent
CASPER = "casper.test"
START_TIMEOUT = 30.0
_names = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "federation: runs Prosody or ejabberd subprocesses (skipped if missing)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    """A fresh account name, so tests sharing a remote server don't share rosters."""
    return f"{prefix}{os.getpid()}x{next(_names)}"


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"server did not listen on {port} in {START_TIMEOUT}s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class RemoteServer:
    """A running Prosody or ejabberd."""

    name: str
    domain: str
    c2s_port: int
    s2s_port: int
    log: Path
    client_context: ssl.SSLContext
    muc: str | None = None
    users: dict[str, str] = field(default_factory=dict)
    _add_user: Any = None
    register_in_band: bool = False  # accounts are created by the first login (XEP-0077)
    _registered: set[str] = field(default_factory=set)

    def add_user(self, local: str, password: str = "secret") -> str:
        if self._add_user is not None:
            self._add_user(local, password)
        self.users[local] = password
        return f"{local}@{self.domain}"

    def log_tail(self) -> str:
        return _tail(self.log)


class RemoteSide:
    """A :class:`RemoteServer` as the scenarios' ``Side`` (``tests/s2s/scenarios.py``)."""

    def __init__(self, server: RemoteServer) -> None:
        self.server, self.domain, self.muc = server, server.domain, server.muc

    async def add_user(self, local: str) -> str:
        return self.server.add_user(local)

    def client(self, local: str, *, presence: bool = True,
               resource: str = "r") -> AbstractAsyncContextManager[TestClient]:  # fmt: skip
        return remote_client(self.server, local, presence=presence, resource=resource)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def dns_server(casper_s2s_port: int) -> Iterator[FakeDNS]:
    """A DNS server with ``_xmpp-server._tcp.casper.test`` -> ``casper.test:PORT`` and
    ``casper.test`` -> 127.0.0.1."""
    with fake_dns() as server:
        server.srv[f"_xmpp-server._tcp.{CASPER}"] = [(0, 0, casper_s2s_port, "127.0.0.1")]
        server.a[CASPER] = "127.0.0.1"
        yield server


@pytest.fixture(scope="session")
def casper_s2s_port() -> int:
    """Casper's s2s port, fixed for the session: the remote servers' routes name it."""
    return free_port()


def _write_cert(ca: trustme.CA, directory: Path, *domains: str) -> tuple[Path, Path]:
    cert = ca.issue_cert(*domains)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# ---------------------------------------------------------------------- Prosody

PROSODY_CONFIG = """\
pidfile = "{dir}/prosody.pid"
daemonize = false
run_as_root = true
data_path = "{dir}/data"
plugin_paths = {{ "{plugins}" }}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = "{dir}/prosody.log" }} }}
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "disco", "ping",
                    "casper_static_routes" }}
modules_disabled = {{ "offline" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ {s2s} }}
c2s_direct_tls_ports = {{ }}
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false
authentication = "internal_plain"
storage = "internal"
allow_registration = false
casper_static_routes = {{ ["{casper}"] = {{ "127.0.0.1", {casper_port} }} }}
ssl = {{ certificate = "{cert}", key = "{key}", cafile = "{cafile}" }}
VirtualHost "prosody.test"
Component "rooms.prosody.test" "muc"
  restrict_room_creation = false
"""


def _prosody_add_user(data: Path, local: str, password: str) -> None:
    accounts = data / "prosody%2etest" / "accounts"
    accounts.mkdir(parents=True, exist_ok=True)
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    (accounts / f"{local}.dat").write_text(f'return {{\n\t["password"] = "{escaped}";\n}};\n')


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA,
            casper_s2s_port: int) -> Iterator[RemoteServer]:  # fmt: skip
    """Prosody for ``prosody.test`` (+ MUC ``rooms.prosody.test``) on loopback."""
    binary = shutil.which("prosody")
    if binary is None:
        pytest.skip("prosody is not installed (apt-get install -y prosody)")
    directory = tmp_path_factory.mktemp("prosody")
    (directory / "data").mkdir()
    cert, key = _write_cert(ca, directory, "prosody.test", "rooms.prosody.test")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))  # verifies Casper's certificate
    c2s, s2s = free_port(), free_port()
    config = directory / "prosody.cfg.lua"
    config.write_text(PROSODY_CONFIG.format(
        dir=directory, plugins=HERE / "prosody", c2s=c2s, s2s=s2s, casper=CASPER,
        casper_port=casper_s2s_port, cert=cert, key=key, cafile=directory / "ca.pem"))  # fmt: skip
    log = directory / "prosody.log"
    with (directory / "stdout.txt").open("wb") as out:
        process = subprocess.Popen([binary, "-F", "--config", str(config)], stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_listening(c2s, process, log)
        wait_listening(s2s, process, log)
        server = RemoteServer("prosody", "prosody.test", c2s, s2s, log, _client_context(ca),
                              muc="rooms.prosody.test")  # fmt: skip
        server._add_user = lambda local, password: _prosody_add_user(
            directory / "data", local, password
        )
        yield server
    finally:
        stop(process)


# ---------------------------------------------------------------------- ejabberd

EJABBERD_CONFIG = """\
hosts:
  - ejabberd.test
loglevel: debug
log_rotate_count: 0
certfiles:
  - {dir}/server.pem
ca_file: {dir}/ca.pem
listen:
  - port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: true
  - port: {s2s}
    ip: "127.0.0.1"
    module: ejabberd_s2s_in
s2s_use_starttls: required
outgoing_s2s_port: {casper_port}
outgoing_s2s_families: [ipv4]
s2s_dns_timeout: 2
s2s_dns_retries: 1
s2s_max_retry_delay: 1
registration_timeout: infinity
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  register:
    allow: all
  local:
    allow: local
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_s2s_dialback: {{}}
  mod_register:
    access: register
    ip_access: all
"""


@pytest.fixture(scope="session")
def ejabberd(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA, casper_s2s_port: int,
             dns_server: FakeDNS) -> Iterator[RemoteServer]:  # fmt: skip
    """ejabberd for ``ejabberd.test`` on loopback; it finds ``casper.test`` by asking the
    tests' DNS server (Erlang ``inetrc``) for SRV and A records. Users sign up in-band."""
    erl = shutil.which("erl")
    if erl is None or not Path("/usr/sbin/ejabberdctl").exists():
        pytest.skip("ejabberd is not installed (apt-get install -y ejabberd)")
    directory = tmp_path_factory.mktemp("ejabberd")
    cert = ca.issue_cert("ejabberd.test", not_after=datetime.datetime.now(datetime.UTC)
                         + datetime.timedelta(days=30))  # fmt: skip
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))  # verifies SASL EXTERNAL peers
    c2s, s2s = free_port(), free_port()
    config = directory / "ejabberd.yml"
    config.write_text(EJABBERD_CONFIG.format(dir=directory, c2s=c2s, s2s=s2s,
                                             casper_port=casper_s2s_port))  # fmt: skip
    # inet_res (DNS only) finds casper.test: at this test's own DNS server
    (directory / "inetrc").write_text(
        '{resolv_conf, ""}.\n{hosts_file, ""}.\n'  # first: they reset the nameservers
        f"{{nameserver, {{127,0,0,1}}, {dns_server.port}}}.\n{{lookup, [dns]}}.\n"
    )
    (directory / "logs").mkdir()
    node = f"casperfed{os.getpid()}@localhost"
    env = {**os.environ, "EJABBERD_CONFIG_PATH": str(config), "HOME": str(directory),
           "EJABBERD_LOG_PATH": str(directory / "logs" / "ejabberd.log"),
           "ERL_INETRC": str(directory / "inetrc"), "ERL_LIBS": "/usr/lib/x86_64-linux-gnu",
           "ERL_CRASH_DUMP": str(directory / "logs" / "erl_crash.dump")}  # fmt: skip
    # erl execs the VM itself, so this process is ejabberd (no su, no epmd: a fixed
    # distribution port instead), and terminate() stops it cleanly
    command = [erl, "-sname", node, "-erl_epmd_port", str(free_port()), "-start_epmd", "false",
               "-mnesia", "dir", f'"{directory / "spool"}"', "-s", "ejabberd", "-noinput"]  # fmt: skip
    log = directory / "logs" / "ejabberd.log"
    with (directory / "stdout.txt").open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env, cwd=directory)  # fmt: skip
    try:
        wait_listening(c2s, process, log)
        wait_listening(s2s, process, log)
        server = RemoteServer("ejabberd", "ejabberd.test", c2s, s2s, log, _client_context(ca))
        server.register_in_band = True
        yield server
    finally:
        stop(process)


# ---------------------------------------------------------------------- Casper


@asynccontextmanager
async def open_casper(ca: trustme.CA, port: int, remotes: list[RemoteServer], *,
                      accounts: tuple[str, ...] = (), **config: Any) -> AsyncIterator[TestServer]:  # fmt: skip
    """Casper on ``casper.test`` with its s2s listener on ``port`` and static routes to
    the given remote servers (their MUC domains included)."""
    routes: dict[str, tuple[str, int]] = {}
    for remote in remotes:
        routes[remote.domain] = ("127.0.0.1", remote.s2s_port)
        if remote.muc:
            routes[remote.muc] = ("127.0.0.1", remote.s2s_port)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    async with open_server(ca, CASPER, listeners[0], accounts=accounts, s2s_routes=routes,
                           **config) as server:  # fmt: skip
        yield server


@asynccontextmanager
async def remote_client(remote: RemoteServer, local: str, *, resource: str = "r",
                        presence: bool = True) -> AsyncIterator[TestClient]:  # fmt: skip
    """A client of the remote server: STARTTLS, PLAIN, bind, then roster and presence."""
    stream = await trio.open_tcp_stream("127.0.0.1", remote.c2s_port)
    client = TestClient(stream, remote.domain)
    async with closing(client):
        await client.open_stream()
        await client.starttls(remote.client_context)
        if remote.register_in_band and local not in remote._registered:
            await _register(client, local, remote.users[local])
            remote._registered.add(local)
        await client.authenticate(local, remote.users[local], mechanism="PLAIN")
        await client.bind(resource)
        await client.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
        await client.expect(lambda e: e.get("id") == "roster1", timeout=10)
        if presence:
            await client.send("<presence/>")
        yield client


async def _register(client: TestClient, local: str, password: str) -> None:
    await client.send(
        "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'>"
        f"<username>{local}</username><password>{password}</password></query></iq>"
    )
    reply = await client.expect(lambda e: e.get("id") == "reg1", timeout=10)
    assert reply.get("type") == "result", reply.attrib


async def chat_both_ways(casper: TestServer, remote: RemoteServer, local: str) -> dict[str, str]:
    """Casper's romeo and the remote ``local`` exchange a message each way, each arriving
    from the sender's full JID; return how each s2s stream authenticated
    (``S2SManager.statistics()["mechanisms"]``)."""
    remote.add_user(local)
    async with casper.client("romeo") as romeo, remote_client(remote, local) as peer:
        msg = await send_message(romeo, f"{local}@{remote.domain}/r")
        got = await peer.expect(message_with_id(msg), timeout=TIMEOUT)
        assert got.get("from") == str(romeo.jid)
        reply = await send_message(peer, romeo.jid)
        got = await romeo.expect(message_with_id(reply), timeout=TIMEOUT)
        assert got.get("from") == f"{local}@{remote.domain}/r"
        return casper.server.s2s.statistics()["mechanisms"]


def both_ways(remote: RemoteServer, mechanism: str) -> dict[str, str]:
    """The mechanisms of ``chat_both_ways`` when both streams used ``mechanism``."""
    return {f"in {remote.domain}->{CASPER}": mechanism, f"out {CASPER}->{remote.domain}": mechanism}


async def dialback_both_ways(remote: RemoteServer, ca: trustme.CA, port: int) -> None:
    """Casper's certificate is self-signed and Casper trusts no CA of the tests: neither
    side can authenticate the other's certificate, the TLS handshakes still succeed and
    both streams authenticate with dialback (XEP-0220)."""
    async with open_casper(ca, port, [remote], accounts=("romeo",), self_signed=True,
                           s2s_ca_file=None) as casper:  # fmt: skip
        mechanisms = await chat_both_ways(casper, remote, unique("dialback"))
    assert mechanisms == both_ways(remote, "dialback"), remote.log_tail()
