"""Run a real Casper server over memory streams, with accounts, for tests."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from casper.config import Config
from casper.jid import JID
from casper.sasl import derive_credentials
from casper.server import C2SListener, Server, serve
from casper.storage import SQLiteStorage
from casper.testing.client import TestClient, closing
from casper.testing.memory import MemoryListener


@dataclass
class TestServer:
    """A running in-memory server and the means to connect to it."""

    __test__ = False

    server: Server
    listener: MemoryListener | None
    client_context: ssl.SSLContext
    passwords: dict[str, str] = field(default_factory=dict)
    tcp_port: int | None = None

    @property
    def domain(self) -> str:
        return self.server.domain

    def jid(self, user: str, resource: str | None = None) -> JID:
        return JID.make(user, self.domain, resource)

    async def connect(self) -> TestClient:
        """A raw connection, nothing negotiated (a loopback TCP socket for ``tcp=True``)."""
        if self.tcp_port is not None:
            return TestClient(await trio.open_tcp_stream("127.0.0.1", self.tcp_port), self.domain)
        assert self.listener is not None
        return TestClient(await self.listener.connect(), self.domain)

    @asynccontextmanager
    async def client(self, user: str, *, resource: str | None = None, presence: bool = False,
                     password: str | None = None) -> AsyncIterator[TestClient]:  # fmt: skip
        """A logged-in client (STARTTLS, SCRAM-SHA-256, bind), closed on exit.

        :param presence: also send initial presence and wait for its reflection.
        """
        client = await self.connect()
        async with closing(client):
            await client.open_stream()
            await client.starttls(self.client_context)
            await client.authenticate(user, password or self.passwords[user])
            await client.bind(resource)
            if presence:
                await client.send("<presence/>")
                await client.expect(
                    lambda e: e.tag.endswith("presence") and e.get("from") == str(client.jid)
                )
            yield client

    async def add_account(self, user: str, password: str = "secret") -> None:
        creds = derive_credentials(password, iterations=4096)
        await self.server.db(self.server.storage.create_account, f"{user}@{self.domain}", creds)
        self.passwords[user] = password


def _tls_pair(domain: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(domain).configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


@asynccontextmanager
async def open_test_server(
    *,
    plugins: Sequence[str] = (),
    default_plugins: bool = True,
    extra_plugins: Sequence[tuple[object, str]] = (),
    accounts: Mapping[str, str] | Sequence[str] = ("romeo", "juliet"),
    domain: str = "localhost",
    plugin_settings: Mapping[str, Mapping[str, Any]] | None = None,
    tcp: bool = False,
    **config: Any,
) -> AsyncIterator[TestServer]:
    """Start a server on a memory listener with in-memory SQLite and the given accounts.

    :param plugins: plugin names to enable (by entry point) beside the baseline set.
    :param extra_plugins: ``(object, name)`` pairs registered directly.
    :param accounts: names (password ``secret``) or a name → password mapping.
    :param tcp: listen on a real loopback TCP socket (127.0.0.1, a free port) instead of
        memory streams; clients then connect over real sockets and real TLS.
    """
    server_ctx, client_ctx = _tls_pair(domain)
    config.setdefault("busy_wait", None)  # the test's own tasks share the loop (and clocks)
    cfg = Config(domain=domain, port=0, tls_port=None, data_dir=Path("unused"),
                 plugins=tuple(plugins), default_plugins=default_plugins,
                 plugin_settings=plugin_settings or {}, **config)  # fmt: skip
    storage = SQLiteStorage(":memory:")
    listener: MemoryListener | None = None
    tcp_listeners: list[trio.SocketListener] = []
    if tcp:
        tcp_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        listeners = [C2SListener(lst) for lst in tcp_listeners]
        port: int | None = tcp_listeners[0].socket.getsockname()[1]
    else:
        listener = MemoryListener()
        listeners, port = [C2SListener(listener)], None
    try:
        async with trio.open_nursery() as nursery:
            start = partial(serve, cfg, listeners=listeners, storage=storage,
                            ssl_context=server_ctx, plugins=extra_plugins)  # fmt: skip
            server = await nursery.start(start)
            test_server = TestServer(server, listener, client_ctx, tcp_port=port)
            names = (
                accounts.items()
                if isinstance(accounts, Mapping)
                else ((a, "secret") for a in accounts)
            )
            for user, password in names:
                await test_server.add_account(user, password)
            yield test_server
            nursery.cancel_scope.cancel()
    finally:
        storage.close()
        for tcp_listener in tcp_listeners:  # serve() closes them, unless it never started
            await tcp_listener.aclose()


@asynccontextmanager
async def open_test_cluster(
    run_dir: Path,
    *,
    workers: int = 2,
    plugins: Sequence[str] = (),
    extra_plugins: Callable[[int], Sequence[tuple[object, str]]] = lambda index: (),
    accounts: Mapping[str, str] | Sequence[str] = ("romeo", "juliet"),
    domain: str = "localhost",
    **config: Any,
) -> AsyncIterator[list[TestServer]]:
    """Start ``workers`` servers in this process as the workers of one cluster
    (:mod:`casper.cluster`): one memory listener each, one SQLite file in ``run_dir``
    shared by all, their bus sockets in a temporary directory of their own.

    A client connects to a worker of its choice (``servers[i].client(...)``); whichever
    worker is the account's home holds its session.

    :param extra_plugins: ``extra_plugins(index)`` gives the ``(plugin, name)`` pairs to
        register on worker ``index``.
    """
    from casper.cluster.worker import WorkerPlace

    server_ctx, client_ctx = _tls_pair(domain)
    config.setdefault("busy_wait", None)  # the test's own tasks share the loop (and clocks)
    cfg = Config(domain=domain, port=0, tls_port=None, data_dir=run_dir, workers=workers,
                 plugins=tuple(plugins), **config)  # fmt: skip
    storages = [SQLiteStorage(run_dir / "casper.sqlite3") for _ in range(workers)]
    listeners = [MemoryListener() for _ in range(workers)]
    bus_dir = Path(tempfile.mkdtemp(prefix="casper-"))  # short: ipc paths hold ~100 bytes
    try:
        async with trio.open_nursery() as nursery:
            servers = []
            for index in range(workers):
                place = WorkerPlace(index, workers, bus_dir, scram_secret=b"cluster test")
                start = partial(serve, cfg, listeners=[C2SListener(listeners[index])],
                                storage=storages[index], ssl_context=server_ctx,
                                plugins=extra_plugins(index), worker=place)  # fmt: skip
                server = await nursery.start(start)
                servers.append(TestServer(server, listeners[index], client_ctx))
            names = accounts.items() if isinstance(accounts, Mapping) else (
                (a, "secret") for a in accounts)  # fmt: skip
            for user, password in names:
                await servers[0].add_account(user, password)
                for other in servers[1:]:
                    other.passwords[user] = password
            yield servers
            nursery.cancel_scope.cancel()
    finally:
        for storage in storages:
            storage.close()
        shutil.rmtree(bus_dir, ignore_errors=True)


async def settle(servers: Sequence[TestServer]) -> None:
    """Return once no stanza is on its way between the workers of a test cluster: every
    one forwarded has been routed, including those forwarded by that routing."""
    while True:
        before = [srv.server.cluster.forwarded for srv in servers if srv.server.cluster]
        for srv in servers:
            if srv.server.cluster is not None:
                await srv.server.cluster.flush()
        if before == [srv.server.cluster.forwarded for srv in servers if srv.server.cluster]:
            return
