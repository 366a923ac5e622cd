"""Fixtures for the web transports: a test server with the HTTP listener on a real port.

``web`` runs :func:`casper.testing.open_test_server` on a loopback TCP port (so TCP test
clients connect for real) and :func:`casper.transports.http.serve_http` on another, with
accounts romeo, juliet and benvolio (password ``secret``). Tests that need other limits
use ``make_web(**config)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import trio
from casper.testing import TestServer, open_test_server
from casper.transports.http import serve_http

HOST = "127.0.0.1"


@dataclass
class Web:
    srv: TestServer
    port: int
    ws_url: str
    bosh_url: str

    @property
    def domain(self) -> str:
        return self.srv.domain


@asynccontextmanager
async def open_web(**config: Any) -> AsyncIterator[Web]:
    config.setdefault("default_plugins", False)
    async with open_test_server(
        tcp=True, accounts=("romeo", "juliet", "benvolio"), **config
    ) as srv:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(serve_http, srv.server, listeners))
            ws_url, bosh_url = urls[0]
            yield Web(srv, port, ws_url, bosh_url)
            nursery.cancel_scope.cancel()


@pytest.fixture
async def web() -> AsyncIterator[Web]:
    async with open_web() as server:
        yield server


@pytest.fixture
def make_web() -> Callable[..., AbstractAsyncContextManager[Web]]:
    return open_web
