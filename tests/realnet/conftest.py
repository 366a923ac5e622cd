"""Real-network fixtures: the ``casper`` command run as a user runs it, and slixmpp peers.

Everything here talks to a ``casper serve`` subprocess over real TCP and TLS on 127.0.0.1:

- :class:`CasperProcess` starts the command, reads its stderr in a thread and waits, with a
  deadline, for the ``listening for XMPP clients on HOST:PORT (KIND) for domain D`` lines.
  Stopping sends SIGINT (what Ctrl-C does), then kills it if it is still there after
  :data:`STOP_TIMEOUT`.
- ``start_casper`` starts ``casper`` subprocesses and stops them all at teardown;
  ``casper_cli`` runs one-shot commands (``user``, ``plugins``, a ``serve`` that must fail).
- ``casper_server`` runs one server per test: ``--port 0`` and ``tls_port = 0`` (the config
  file) let the kernel pick both ports, which are parsed from the log. Teardown fails the test
  if the server died, logged a traceback, or did not exit with status 0 on SIGINT.
- ``open_peer`` logs a slixmpp client in (asyncio), trusting only the server's generated
  certificate; ``run_async`` runs a test coroutine under a global deadline.

The tests are plain sync functions, so pytest-trio leaves them alone; they carry the
``realnet`` marker (``-m "not realnet"`` deselects them).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import slixmpp

DOMAIN = "localhost"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0  # seconds for `casper serve` to log its listeners
STOP_TIMEOUT = 5.0  # seconds for it to exit after SIGINT
CLI_TIMEOUT = 30.0  # seconds for a one-shot `casper ...` command
STEP_TIMEOUT = 10.0  # seconds for any single network round trip in a test
TEST_TIMEOUT = 30.0  # seconds for a whole test coroutine

STARTTLS = "STARTTLS"
DIRECT_TLS = "direct TLS (XEP-0368)"
LISTENING = re.compile(
    r"listening for XMPP clients on (?P<host>\S+):(?P<port>\d+)"
    r" \((?P<kind>STARTTLS|direct TLS \(XEP-0368\))\) for domain (?P<domain>\S+)$"
)
# slixmpp plugins the tests use: disco, software version, ping, entity time, delayed delivery.
CLIENT_PLUGINS = ("xep_0030", "xep_0092", "xep_0199", "xep_0202", "xep_0203")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnet: runs `casper` subprocesses and talks to them over real sockets"
    )


def casper_command() -> list[str]:
    """The ``casper`` console script of the running environment (what a user types)."""
    script = Path(sys.executable).with_name("casper")
    if script.exists():
        return [str(script)]
    found = shutil.which("casper")
    if found is None:
        pytest.fail("the `casper` console script is not installed (pip install -e .)")
    return [found]


def run_casper(
    *args: str | Path, cwd: Path | None = None, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run one ``casper`` command to completion and return its status and output."""
    return subprocess.run(
        [*casper_command(), *map(str, args)],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- the server process -------------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """One ``listening for XMPP clients ...`` log line."""

    host: str
    port: int
    kind: str  # STARTTLS or DIRECT_TLS
    domain: str


class CasperProcess:
    """A ``casper`` subprocess whose stderr is collected line by line in a reader thread.

    Resource handling: :meth:`stop` always leaves no process behind (SIGINT, then SIGKILL).
    """

    def __init__(self, args: list[str | Path], cwd: Path) -> None:
        self.args = [str(arg) for arg in args]
        with _sigint_not_ignored():
            self.proc = subprocess.Popen(
                [*casper_command(), *self.args],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)  # EOF: the process is exiting

    @property
    def log(self) -> str:
        """Everything read from stderr so far."""
        return "\n".join(self.lines)

    def wait_for_listeners(self, count: int, timeout: float = START_TIMEOUT) -> list[Listener]:
        """Return the first ``count`` listener lines; fail if the process exits or is too slow.

        :return: fewer than ``count`` listeners if the process exited first.
        """
        found: list[Listener] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                pytest.fail(
                    f"`casper {' '.join(self.args)}` did not listen in {timeout}s:\n{self.log}"
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT)
                return found
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                port = int(match["port"])
                found.append(Listener(match["host"], port, match["kind"], match["domain"]))
        return found

    def drain(self) -> None:
        """Move whatever stderr lines have arrived into :attr:`lines`, without waiting."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def stop(self) -> int:
        """Stop the process like Ctrl-C does, kill it if it lingers, and return its status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self._reader.join(timeout=STOP_TIMEOUT)
        self.drain()
        if not self._reader.is_alive() and self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """Let the child see SIGINT even if this runner ignores it (e.g. started with ``&``).

    A process inherits an *ignored* SIGINT across exec, and Python then never raises
    KeyboardInterrupt; a handled one is reset to the default, which Python turns into
    KeyboardInterrupt.
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        yield


@pytest.fixture
def casper_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Return :func:`run_casper`: ``casper_cli(*args, cwd=None)`` runs one command to the end."""
    return run_casper


@pytest.fixture
def start_casper() -> Iterator[Callable[..., CasperProcess]]:
    """Return ``start(*args, cwd=DIR)``, which runs ``casper *args``; all are stopped at the end."""
    started: list[CasperProcess] = []

    def start(*args: str | Path, cwd: Path) -> CasperProcess:
        process = CasperProcess(list(args), cwd)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@dataclass
class RunningServer:
    """A ``casper serve`` subprocess with both listeners up."""

    process: CasperProcess
    data_dir: Path
    config_file: Path
    port: int  # STARTTLS
    tls_port: int  # direct TLS (XEP-0368)
    domain: str = DOMAIN

    @property
    def cert(self) -> Path:
        """The generated self-signed certificate, which the clients trust."""
        return self.data_dir / "tls" / "cert.pem"

    def jid(self, local: str) -> str:
        return f"{local}@{self.domain}"

    def casper(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``casper *args --config ... --data-dir ...`` against this server's data."""
        return run_casper(*args, "--config", self.config_file, "--data-dir", self.data_dir)

    def add_user(self, local: str, password: str = "secret") -> str:
        """Create ``local@domain`` with ``casper user add`` and return the bare JID."""
        jid = self.jid(local)
        result = self.casper("user", "add", jid, "--password", password)
        assert result.returncode == 0, result.stderr
        return jid

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts exactly the server's certificate."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture
def casper_server(
    tmp_path: Path, start_casper: Callable[..., CasperProcess]
) -> Iterator[RunningServer]:
    """``casper serve`` with both ports chosen by the kernel; checked for a clean exit."""
    config_file = tmp_path / "casper.toml"
    config_file.write_text('[server]\ntls_port = 0\n\n[log]\nlevel = "info"\n')
    data_dir = tmp_path / "data"
    process = start_casper(
        "serve", "--config", config_file, "--port", "0", "--data-dir", data_dir, cwd=tmp_path
    )
    listeners = {lst.kind: lst for lst in process.wait_for_listeners(2)}
    if set(listeners) != {STARTTLS, DIRECT_TLS}:
        status = process.stop()
        pytest.fail(f"casper serve exited with status {status} before listening:\n{process.log}")
    server = RunningServer(
        process,
        data_dir,
        config_file,
        port=listeners[STARTTLS].port,
        tls_port=listeners[DIRECT_TLS].port,
    )
    yield server
    process.drain()
    crashed = process.proc.poll()
    status = process.stop()
    print(f"--- casper serve log ---\n{process.log}")  # shown by pytest for failing tests
    assert crashed is None, f"casper serve died during the test with status {crashed}"
    assert "Traceback" not in process.log, "casper serve logged a traceback"
    assert status == 0, f"casper serve exited with status {status} on SIGINT"


# -- slixmpp peers ------------------------------------------------------------------------------


class LoginFailed(Exception):
    """slixmpp reported ``failed_auth``; the argument is the SASL condition."""


class Peer:
    """A slixmpp ClientXMPP with queues of the events a test waits for.

    Create it inside the running asyncio loop. Events are recorded from creation on, so a
    test can trigger something and then await its consequence without racing.
    """

    LoginFailed = LoginFailed  # for pytest.raises(peer.LoginFailed): tests can't import conftest

    EVENTS = (
        "message",
        "presence",
        "presence_available",
        "presence_unavailable",
        "presence_subscribe",
        "presence_subscribed",
        "failed_auth",
        "disconnected",
    )

    def __init__(
        self,
        server: RunningServer,
        local: str,
        password: str,
        *,
        resource: str = "peer",
        direct_tls: bool = False,
        mechanism: str | None = None,
    ) -> None:
        self.server = server
        self.port = server.tls_port if direct_tls else server.port
        xmpp = slixmpp.ClientXMPP(
            f"{local}@{server.domain}/{resource}", password, sasl_mech=mechanism
        )
        xmpp.enable_plaintext = False
        xmpp.enable_starttls = not direct_tls
        xmpp.enable_direct_tls = direct_tls
        xmpp.ssl_context.load_verify_locations(cafile=str(server.cert))
        xmpp.auto_authorize = None  # the tests answer subscription requests themselves
        xmpp.auto_subscribe = False
        xmpp.whitespace_keepalive = False
        for name in CLIENT_PLUGINS:
            xmpp.register_plugin(name)
        self.xmpp = xmpp
        self.events: dict[str, asyncio.Queue[Any]] = {name: asyncio.Queue() for name in self.EVENTS}
        for name, events in self.events.items():
            xmpp.add_event_handler(name, events.put_nowait)

    @property
    def jid(self) -> slixmpp.JID:
        """The bound full JID (the requested one until binding)."""
        return self.xmpp.boundjid

    @property
    def mechanism(self) -> str:
        """The SASL mechanism slixmpp chose for the last authentication."""
        return self.xmpp.plugin["feature_mechanisms"].mech.name

    @property
    def tls_version(self) -> str | None:
        """The TLS version of the connection, ``None`` if it is not encrypted."""
        transport = self.xmpp.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        return ssl_object.version() if ssl_object is not None else None

    async def login(self, *, initial_presence: bool = True) -> None:
        """Connect, authenticate, bind, fetch the roster and (by default) become available.

        :raises LoginFailed: if authentication fails.
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[None] = loop.create_future()

        def started(_: object) -> None:
            if not outcome.done():
                outcome.set_result(None)

        def failed(stanza: Any) -> None:
            if not outcome.done():
                outcome.set_exception(LoginFailed(stanza["condition"]))

        self.xmpp.add_event_handler("session_start", started, disposable=True)
        self.xmpp.add_event_handler("failed_auth", failed, disposable=True)
        self.xmpp.connect(HOST, self.port)
        try:
            await asyncio.wait_for(outcome, STEP_TIMEOUT)
        except (TimeoutError, LoginFailed):
            self.xmpp.cancel_connection_attempt()  # no reconnection attempts behind our back
            raise
        await asyncio.wait_for(self.xmpp.get_roster(), STEP_TIMEOUT)
        if initial_presence:
            self.xmpp.send_presence()

    async def next(
        self,
        event: str,
        *,
        sender: str | None = None,
        where: Callable[[Any], bool] | None = None,
        timeout: float = STEP_TIMEOUT,
    ) -> Any:
        """Return the next ``event`` payload recorded, waiting at most ``timeout`` seconds.

        :param sender: skip stanzas whose bare ``from`` is not this JID.
        :param where: skip payloads for which this returns false.
        """

        async def wanted() -> Any:
            while True:
                payload = await self.events[event].get()
                if sender is not None and payload["from"].bare != sender:
                    continue
                if where is None or where(payload):
                    return payload

        return await asyncio.wait_for(wanted(), timeout)

    async def sync(self) -> None:
        """Ping the server and wait for the answer.

        The server handles one client's stanzas in order and queues what it sends to a
        session in order, so once the answer is here, every effect of what this peer sent
        before, and every stanza queued for it before, has arrived.
        """
        await self.xmpp.plugin["xep_0199"].send_ping(self.server.domain, timeout=STEP_TIMEOUT)

    def queued(self, event: str) -> list[Any]:
        """Take every payload of ``event`` recorded so far, without waiting."""
        found = []
        while not self.events[event].empty():
            found.append(self.events[event].get_nowait())
        return found

    async def close(self) -> None:
        """Close the stream politely and wait for the connection to end (bounded)."""
        self.xmpp.cancel_connection_attempt()
        if self.xmpp.transport is None:
            return
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=STOP_TIMEOUT), STEP_TIMEOUT)
        except TimeoutError:
            self.xmpp.abort()


@pytest.fixture
def open_peer(
    casper_server: RunningServer,
) -> Callable[..., contextlib.AbstractAsyncContextManager[Peer]]:
    """Return ``open_peer(local, password="secret", *, login=True, **options)``.

    An async context manager yielding a logged-in :class:`Peer` (or one to log in yourself
    with ``login=False``), closed on exit. ``options`` go to :class:`Peer`.
    """

    @contextlib.asynccontextmanager
    async def open_(
        local: str, password: str = "secret", *, login: bool = True, **options: Any
    ) -> AsyncIterator[Peer]:
        peer = Peer(casper_server, local, password, **options)
        try:
            if login:
                await peer.login()
            yield peer
        finally:
            await peer.close()

    return open_


@pytest.fixture
def run_async() -> Callable[[Coroutine[Any, Any, None]], None]:
    """Return ``run(coro)``: ``asyncio.run`` with a deadline of :data:`TEST_TIMEOUT` seconds."""

    def run(coro: Coroutine[Any, Any, None], timeout: float = TEST_TIMEOUT) -> None:
        async def bounded() -> None:
            await asyncio.wait_for(coro, timeout)

        asyncio.run(bounded())

    return run


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read from a blocking socket (plain or TLS) until ``marker`` has arrived."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}: {data!r}"
        data += chunk
    return data
