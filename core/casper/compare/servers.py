"""Casper servers the comparison starts itself: real servers on loopback TCP, with TLS.

Each world gets its own fresh server (in-memory SQLite), so nothing carries over from one
world to the next. One self-signed certificate, made once per run, serves them all, and
the clients trust exactly that certificate. Accounts share precomputed SCRAM credentials:
deriving them is the slowest part of creating an account.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from casper.bench.client import client_ssl_context
from casper.config import Config
from casper.sasl import ScramCredentials, derive_credentials
from casper.server import C2SListener, serve
from casper.storage import SQLiteStorage
from casper.tls import ensure_certificate, server_ssl_context

from .world import Endpoint

DOMAIN = "localhost"


@dataclass
class LocalTLS:
    """The run's certificate: the servers' context and the clients' matching one."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    _credentials: dict[str, Mapping[str, ScramCredentials]] = field(default_factory=dict)

    def credentials(self, password: str) -> Mapping[str, ScramCredentials]:
        if password not in self._credentials:
            self._credentials[password] = derive_credentials(password, iterations=4096)
        return self._credentials[password]


@contextmanager
def local_tls(domain: str = DOMAIN) -> Iterator[LocalTLS]:
    with tempfile.TemporaryDirectory(prefix="casper-compare-") as tmp:
        cert, key = ensure_certificate(Path(tmp), domain)
        yield LocalTLS(server_ssl_context(cert, key), client_ssl_context(cert))


@asynccontextmanager
async def open_local_server(
    plugins: Sequence[str], accounts: Mapping[str, str], tls: LocalTLS, domain: str = DOMAIN
) -> AsyncIterator[Endpoint]:
    """Run a Casper server with the baseline plugins plus ``plugins`` on 127.0.0.1.

    :param accounts: username -> password.
    :raises casper.config.ConfigError: for an unknown or broken plugin.
    """
    config = Config(
        domain=domain,
        port=0,
        tls_port=None,
        data_dir=Path("unused"),
        plugins=tuple(plugins),
        log_level="error",
    )
    storage = SQLiteStorage(":memory:")
    tcp = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = tcp[0].socket.getsockname()[1]
    try:
        async with trio.open_nursery() as nursery:
            start = partial(
                serve,
                config,
                listeners=[C2SListener(lst) for lst in tcp],
                storage=storage,
                ssl_context=tls.server,
            )
            server = await nursery.start(start)
            for user, password in accounts.items():
                await server.db(
                    storage.create_account, f"{user}@{server.domain}", tls.credentials(password)
                )
            muc = next((d for d in server.components if d.startswith("conference.")), None)
            yield Endpoint("127.0.0.1", port, server.domain, tls.client, muc)
            nursery.cancel_scope.cancel()
    finally:
        storage.close()
        for listener in tcp:
            await listener.aclose()
