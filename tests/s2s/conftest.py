"""Casper <-> Casper federation in one process: two real servers whose s2s listeners are
loopback TCP sockets (port 0, opened first so each server's static route can name the
other's port), clients over memory streams. No DNS, no external servers; fast.

Each server's certificate comes from one throwaway CA that both trust through
``[s2s] ca_file`` (so streams authenticate with SASL EXTERNAL), unless the test asks for a
self-signed one (``self_signed=True``: dialback).
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from casper.config import Config
from casper.server import C2SListener, serve
from casper.storage import SQLiteStorage
from casper.testing import MemoryListener, TestServer
from casper.tls import ensure_certificate

A, B = "a.test", "b.test"


@dataclass
class Federation:
    a: TestServer
    b: TestServer
    ports: dict[str, int]


def _server_context(ca: trustme.CA, domain: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(domain).configure_cert(context)
    return context


def write_tls_files(ca: trustme.CA, domain: str, directory: Path, *,
                    self_signed: bool = False) -> dict[str, Path]:  # fmt: skip
    """Certificate, key and the CA as files: the ``Config`` options for them."""
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    if self_signed:
        cert, key = ensure_certificate(directory, domain)
    else:
        cert, key = directory / "cert.pem", directory / "key.pem"
        issued = ca.issue_cert(domain)
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
    return {"cert_file": cert, "key_file": key, "s2s_ca_file": ca_file}


@asynccontextmanager
async def open_server(ca: trustme.CA, domain: str,
                      s2s_listener: trio.SocketListener | None, *,
                      accounts: Sequence[str] = ("romeo", "juliet"),
                      plugins: Sequence[str] = (), default_plugins: bool = False,
                      self_signed: bool = False, **config: Any) -> AsyncIterator[TestServer]:  # fmt: skip
    """One server on ``domain`` with its c2s on memory and s2s on ``s2s_listener``; its
    s2s certificate is issued by ``ca`` (trusted for peers) or ``self_signed``."""
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    config.setdefault("s2s_enabled", True)
    tls_dir = tempfile.TemporaryDirectory(prefix="casper-s2s-tls-")
    for option, path in write_tls_files(ca, domain, Path(tls_dir.name),
                                        self_signed=self_signed).items():  # fmt: skip
        config.setdefault(option, path)
    cfg = Config(domain=domain, port=0, tls_port=None, data_dir=Path("unused"), s2s_port=0,
                 plugins=tuple(plugins), default_plugins=default_plugins, **config)  # fmt: skip
    storage = SQLiteStorage(":memory:")
    listener = MemoryListener()
    try:
        start = partial(serve, cfg, listeners=[C2SListener(listener)], storage=storage,
                        ssl_context=_server_context(ca, domain),
                        s2s_listeners=[s2s_listener] if s2s_listener else None)  # fmt: skip
        async with trio.open_nursery() as inner:
            server = await inner.start(start)
            test_server = TestServer(server, listener, client_context)
            for user in accounts:
                await test_server.add_account(user)
            yield test_server
            inner.cancel_scope.cancel()
    finally:
        storage.close()
        tls_dir.cleanup()


@asynccontextmanager
async def open_federation(*, a: Mapping[str, Any] | None = None,
                          b: Mapping[str, Any] | None = None,
                          **common: Any) -> AsyncIterator[Federation]:  # fmt: skip
    """Servers ``a.test`` and ``b.test`` with static routes to each other."""
    ca = trustme.CA()
    listeners = {d: (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0] for d in (A, B)}
    ports = {d: lst.socket.getsockname()[1] for d, lst in listeners.items()}
    routes = {d: ("127.0.0.1", port) for d, port in ports.items()}
    async with AsyncExitStack() as stack:
        servers = []
        for domain, extra in ((A, a), (B, b)):
            options = {"s2s_routes": routes, **common, **(extra or {})}
            servers.append(
                await stack.enter_async_context(
                    open_server(ca, domain, listeners[domain], **options)
                )
            )
        yield Federation(servers[0], servers[1], ports)


@pytest.fixture
async def fed() -> AsyncIterator[Federation]:
    async with open_federation() as federation:
        yield federation
