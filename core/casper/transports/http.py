"""One HTTP listener (h11) for the web transports: WebSocket, BOSH and a health check.

Routes:

- ``GET /xmpp-websocket`` with ``Upgrade: websocket`` and the ``xmpp`` subprotocol:
  XMPP over WebSocket (:mod:`casper.transports.websocket`); without them, 426 or 400.
- ``POST /http-bind``: BOSH (:mod:`casper.transports.bosh`); ``GET`` says what it is.
- ``GET /health``: 200 with JSON counts (bound sessions, WebSocket connections, BOSH
  sessions).
- ``OPTIONS`` on any of them: the CORS preflight answer.

Origins: a request with an ``Origin`` header is served only if ``http.allowed_origins``
contains it or ``"*"`` (403 otherwise); allowed origins get CORS headers. Requests without
``Origin`` (non-browser clients) are always served.

Limits: request headers must arrive within ``http.request_timeout`` seconds (408 after
that), a body above ``http.bosh_max_body_size`` gets 413, malformed HTTP gets h11's own
status hint. Connections are kept alive between requests.

Error handling: a failing connection is logged and closed; it never reaches the listener.
Resource handling: every connection is closed; BOSH sessions live in this listener's
nursery and end with it.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import h11
import trio

from ..limits import peer_address
from ..listening import open_tcp_listeners
from ..tls_stream import server_tls_stream
from .bosh import BoshService
from .tcp import describe
from .websocket import SUBPROTOCOL, handle_websocket

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("casper.http")
WEBSOCKET_PATH = "/xmpp-websocket"
BOSH_PATH = "/http-bind"
HEALTH_PATH = "/health"
MAX_HEADER_BYTES = 16384
RECEIVE_SIZE = 65536
SERVER_HEADER = b"casper"
_CLOSE_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)


class _Refused(Exception):
    """Answer the current request with ``status`` and close the connection."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass
class _Counts:
    websocket: int = 0
    http_connections: int = 0
    started: float = field(default_factory=time.monotonic)


def listener_urls(listener: trio.abc.Listener[trio.abc.Stream], tls: bool) -> tuple[str, str]:
    """The WebSocket and BOSH URLs served by ``listener``."""
    address = describe(getattr(listener, "transport_listener", listener))
    host, _, port = address.rpartition(":")
    if ":" in host:
        host = f"[{host}]"
    base = f"{host}:{port}"
    ws, http = ("wss", "https") if tls else ("ws", "http")
    return f"{ws}://{base}{WEBSOCKET_PATH}", f"{http}://{base}{BOSH_PATH}"


class HttpService:
    """Route the requests of one HTTP connection at a time (see the module docstring)."""

    def __init__(self, server: Server, bosh: BoshService, *, tls: bool) -> None:
        config = server.config
        self.server, self.bosh = server, bosh
        self.secure = tls or config.http_proxy_tls
        self._tls = tls
        self.origins = frozenset(config.http_allowed_origins)
        self.timeout = config.http_request_timeout
        self.counts = _Counts()

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's current context (:meth:`Server.reload_tls` may replace it)."""
        return self.server.ssl_context if self._tls else None

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one HTTP connection until it closes or turns into a WebSocket."""
        self.counts.http_connections += 1
        # behind a proxy every request comes from its address: nobody's to count
        peer = None if self.server.config.http_proxy_tls else peer_address(stream)
        try:
            if self.ssl_context is not None:
                stream = tls = server_tls_stream(stream, self.ssl_context)
                with trio.fail_after(self.timeout):
                    await tls.do_handshake()
            await self._serve(stream, peer)
        except (*_CLOSE_ERRORS, trio.TooSlowError):
            pass  # the peer is gone
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            self.counts.http_connections -= 1
            with trio.move_on_after(1, shield=True):
                try:
                    await stream.aclose()
                except _CLOSE_ERRORS:
                    pass

    async def _serve(self, stream: trio.abc.Stream, peer: str | None) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        while True:
            raw = bytearray(conn.trailing_data[0])
            try:
                with trio.fail_after(self.timeout):
                    request = await _next_event(conn, stream, raw)
                if not isinstance(request, h11.Request):
                    return  # ConnectionClosed: the client is done
                if _is_websocket(request):
                    await self._websocket(conn, stream, request, bytes(raw), peer)
                    return
                with trio.fail_after(self.timeout):
                    body = await self._read_body(conn, stream, request)
                status, headers, content = await self._route(request, body, peer)
            except trio.TooSlowError:
                status, headers, content = 408, [], b"request timeout\n"
                await _respond(conn, stream, status, headers, content, close=True)
                return
            except _Refused as exc:
                headers = (self._cors(request) if isinstance(request, h11.Request) else None) or []
                await _respond(conn, stream, exc.status, headers, f"{exc}\n".encode(), close=True)
                return
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    text = f"bad request: {exc}\n".encode()
                    await _respond(conn, stream, exc.error_status_hint, [], text, close=True)
                return
            await _respond(conn, stream, status, headers, content)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _read_body(self, conn: h11.Connection, stream: trio.abc.Stream,
                         request: h11.Request) -> bytes:  # fmt: skip
        limit = self.server.config.bosh_max_body_size
        declared = _header(request, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(413, f"request body larger than {limit} bytes")
        body = bytearray()
        while True:
            event = await _next_event(conn, stream, None)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise _Refused(413, f"request body larger than {limit} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise _Refused(400, "incomplete request")

    async def _route(
        self, request: h11.Request, body: bytes, peer: str | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path = request.target.split(b"?", 1)[0].decode("ascii", "replace")
        method = request.method
        cors = self._allowed(request)
        if path not in (WEBSOCKET_PATH, BOSH_PATH, HEALTH_PATH):
            return 404, cors, b"not found\n"
        if method == b"OPTIONS":
            return 204, cors + _PREFLIGHT, b""
        if path == HEALTH_PATH and method == b"GET":
            return 200, cors + [(b"content-type", b"application/json")], self._health()
        if path == WEBSOCKET_PATH:
            return 426, cors + [(b"upgrade", b"websocket")], b"XMPP over WebSocket: upgrade\n"
        if method == b"GET":
            return 200, cors + [(b"content-type", b"text/plain")], b"XMPP over BOSH: POST here\n"
        if method != b"POST":
            return 405, cors + [(b"allow", b"GET, POST, OPTIONS")], b"method not allowed\n"
        status, content = await self.bosh.handle(body, peer)
        headers = cors + [
            (b"content-type", b"text/xml; charset=utf-8"),
            (b"cache-control", b"no-store"),
        ]
        return status, headers, content

    def _cors(self, request: h11.Request) -> list[tuple[bytes, bytes]] | None:
        """CORS headers for the request's origin (none without one); ``None`` if refused."""
        origin = _header(request, b"origin")
        if origin is None:
            return []
        if "*" not in self.origins and origin not in self.origins:
            return None
        return [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]

    def _allowed(self, request: h11.Request) -> list[tuple[bytes, bytes]]:
        """The CORS headers, or :class:`_Refused` (403) for an origin not allowed."""
        cors = self._cors(request)
        if cors is None:
            raise _Refused(403, f"origin {_header(request, b'origin')} is not allowed")
        return cors

    async def _websocket(self, conn: h11.Connection, stream: trio.abc.Stream,
                         request: h11.Request, raw: bytes, peer: str | None) -> None:  # fmt: skip
        path = request.target.split(b"?", 1)[0].decode("ascii", "replace")
        if path != WEBSOCKET_PATH:
            raise _Refused(404, "not found")
        self._allowed(request)
        protocols = _header(request, b"sec-websocket-protocol") or ""
        if SUBPROTOCOL not in (p.strip() for p in protocols.split(",")):
            raise _Refused(400, f"the {SUBPROTOCOL!r} WebSocket subprotocol is required")
        limits = self.server.limits
        if not limits.connection_opened(peer):
            log.warning("refused a WebSocket from %s: too many connections from there", peer)
            raise _Refused(429, "too many connections from your address")
        self.counts.websocket += 1
        try:
            ping = self.server.config.http_ws_ping_interval
            await handle_websocket(self.server, stream, raw, secure=self.secure, ping_interval=ping)
        finally:
            self.counts.websocket -= 1
            limits.connection_closed(peer)

    def _health(self) -> bytes:
        return json.dumps({
            "status": "ok",
            "domain": self.server.domain,
            "sessions": len(self.server.router.all_sessions()),
            "websocket_connections": self.counts.websocket,
            "bosh_sessions": len(self.bosh.sessions),
            "http_connections": self.counts.http_connections,
            "uptime": round(time.monotonic() - self.counts.started, 3),
        }).encode()  # fmt: skip


_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type"),
    (b"access-control-max-age", b"86400"),
]


def _header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _is_websocket(request: h11.Request) -> bool:
    upgrade = _header(request, b"upgrade") or ""
    return request.method == b"GET" and upgrade.lower() == "websocket"


async def _next_event(
    conn: h11.Connection, stream: trio.abc.Stream, raw: bytearray | None
) -> h11.Event:
    """The next h11 event, reading as needed; ``raw`` collects the bytes read."""
    while True:
        event = conn.next_event()
        if event is h11.PAUSED:  # they pipelined past an upgrade: nothing more for us
            return h11.ConnectionClosed()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]  # the sentinels are handled above
        data = bytes(await stream.receive_some(RECEIVE_SIZE))
        if raw is not None:
            raw += data
        conn.receive_data(data)


async def _respond(conn: h11.Connection, stream: trio.abc.Stream, status: int,
                   headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool = False) -> None:  # fmt: skip
    if conn.our_state is not h11.SEND_RESPONSE and conn.our_state is not h11.IDLE:
        return
    headers = [*headers, (b"content-length", str(len(body)).encode()), (b"server", SERVER_HEADER)]
    if close:
        headers.append((b"connection", b"close"))
    if not any(k == b"content-type" for k, _ in headers):
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
    await stream.send_all(conn.send(h11.Data(data=body)) if body else b"")
    await stream.send_all(conn.send(h11.EndOfMessage()))


async def serve_http(
    server: Server,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]] | None = None,
    *,
    task_status: trio.TaskStatus[list[tuple[str, str]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket, BOSH and ``/health`` forever; supports ``nursery.start``.

    :param listeners: listeners to serve instead of opening ``http.port`` on ``server.host``.
    :param task_status: ``started(urls)``, one ``(websocket_url, bosh_url)`` per listener,
        once every listener accepts connections.
    """
    config = server.config
    if listeners is None:
        assert config.http_port is not None
        listeners = await open_tcp_listeners("WebSocket and BOSH", config.http_port, config.host)
    tls = config.http_tls
    urls = [listener_urls(listener, tls) for listener in listeners]
    async with trio.open_nursery() as nursery:
        bosh = BoshService(server, nursery, secure=tls or config.http_proxy_tls)
        service = HttpService(server, bosh, tls=tls)
        for ws_url, bosh_url in urls:
            log.info("XMPP over WebSocket at %s for domain %s", ws_url, server.domain)
            log.info("XMPP over BOSH at %s for domain %s", bosh_url, server.domain)
        await nursery.start(partial(trio.serve_listeners, service.handle, list(listeners),
                                    handler_nursery=nursery))  # fmt: skip
        task_status.started(urls)
