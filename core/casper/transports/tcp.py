"""Client-to-server listeners over TCP: STARTTLS ports and direct TLS ports (XEP-0368).

Each accepted connection is counted against ``limits.max_connections_per_ip`` first (see
:mod:`casper.limits`); one over the limit gets its stream error and is closed without TLS
or authentication. The TLS context is read per connection, so a certificate reloaded with
:meth:`~casper.server.Server.reload_tls` applies to every connection accepted afterwards.
"""

from __future__ import annotations

import logging
import secrets
import ssl
from functools import partial
from typing import TYPE_CHECKING

import trio

from ..connection import handle_connection
from ..errors import StreamError
from ..limits import peer_address
from ..tls_stream import server_tls_stream
from ..xml import STREAM_CLOSE, stream_error_of, stream_header

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("casper.listen")
REFUSE_SECONDS = 5.0  # at most this long is spent telling a refused client why


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
    kind = "direct TLS (XEP-0368)" if direct_tls else "STARTTLS"
    log.info(
        "listening for XMPP clients on %s (%s) for domain %s",
        describe(listener),
        kind,
        server.domain,
    )
    task_status.started()
    await trio.serve_listeners(partial(_serve_one, server, direct_tls), [listener])


async def _serve_one(server: Server, direct_tls: bool, stream: trio.abc.Stream) -> None:
    """Count the connection against its address's limit, then serve or refuse it."""
    peer = peer_address(stream)
    if not server.limits.connection_opened(peer):
        log.warning("refused a connection from %s: too many connections from there", peer)
        await _refuse(
            server,
            stream,
            direct_tls,
            StreamError("policy-violation", "too many connections from your address"),
        )
        return
    try:
        context = server.ssl_context
        if direct_tls:
            assert context is not None
            stream = server_tls_stream(stream, context)
        await handle_connection(server, stream, secure=direct_tls, ssl_context=context)
    finally:
        server.limits.connection_closed(peer)


async def _refuse(
    server: Server, stream: trio.abc.Stream, direct_tls: bool, error: StreamError
) -> None:
    """Send our stream header and ``error`` (over TLS on a direct TLS port), then close."""
    data = stream_header(from_=server.domain, id=secrets.token_urlsafe(16))
    data += stream_error_of(error) + STREAM_CLOSE
    with trio.move_on_after(REFUSE_SECONDS):
        try:
            if direct_tls and server.ssl_context is not None:
                stream = server_tls_stream(stream, server.ssl_context)
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            pass
    with trio.move_on_after(1) as scope:
        scope.shield = True
        try:
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            pass
