"""Client-to-server listeners over TCP: STARTTLS ports and direct TLS ports (XEP-0368)."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import trio

from ..connection import handle_connection

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("casper.listen")


def describe(listener: trio.abc.Listener[trio.abc.Stream]) -> str:
    """``host:port`` of a socket listener, or the listener's repr."""
    sock = getattr(listener, "socket", None)
    if sock is None:
        return repr(listener)
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


async def serve_c2s(
    server: Server,
    listener: trio.abc.Listener[trio.abc.Stream],
    direct_tls: bool,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept client connections on ``listener`` forever; supports ``nursery.start``."""
    if direct_tls:
        assert server.ssl_context is not None
        listener = trio.SSLListener(listener, server.ssl_context, https_compatible=False)
    handler = partial(handle_connection, server, secure=direct_tls, ssl_context=server.ssl_context)
    kind = "direct TLS (XEP-0368)" if direct_tls else "STARTTLS"
    inner = getattr(listener, "transport_listener", listener)
    log.info("listening for XMPP clients on %s (%s) for domain %s", describe(inner), kind, server.domain)
    task_status.started()
    await trio.serve_listeners(handler, [listener])
