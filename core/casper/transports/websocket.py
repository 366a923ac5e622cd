"""XMPP over WebSocket (RFC 7395) on trio-websocket: a framing adapter over the TCP core.

:class:`WebSocketStream` is a ``trio.abc.Stream`` that turns RFC 7395 messages into the
RFC 6120 byte stream :class:`~casper.connection.Connection` speaks, and back:

- ``<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to=.. version='1.0'/>`` becomes a
  stream header; a new ``<open/>`` after SASL success is the stream restart;
  ``<close/>`` becomes ``</stream:stream>``; every other message must be exactly one
  complete XML element (``not-well-formed`` otherwise) no larger than ``max_stanza_size``
  (``policy-violation``). A refused message is raised as a
  :class:`~casper.errors.StreamError`, which the connection turns into a stream error.
- outbound, each top-level element becomes one text message that is a complete document
  (``xmlns='jabber:client'`` on stanzas, ``xmlns:stream`` on ``<stream:features/>`` and
  ``<stream:error/>``); the stream header becomes ``<open/>`` and its end ``<close/>``.

So negotiation (SASL, bind), hooks and plugins run unchanged. The HTTP listener
(:mod:`casper.transports.http`) has already checked the path, origin and subprotocol.

Resource handling: :func:`handle_websocket` owns a per-connection nursery holding
trio-websocket's reader task (its bounded message queue is the backpressure) and the
heartbeat; a peer that stops answering pings is gone, and the connection is cancelled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream

from ..connection import handle_connection
from ..errors import RemoteProtocolError, StreamError
from ..xml import STREAM_CLOSE
from .framing import (
    CLOSE,
    FRAMING_NS,
    Closed,
    ElementOut,
    Opened,
    StreamSplitter,
    open_element,
    parse_element,
    standalone,
    stream_header_for,
)

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("casper.websocket")
SUBPROTOCOL = "xmpp"
MESSAGE_QUEUE = 4  # messages trio-websocket buffers before it stops reading the socket
HANDSHAKE_TIMEOUT = 10.0
_OPEN = "{" + FRAMING_NS + "}open"
_CLOSE = "{" + FRAMING_NS + "}close"


class WebSocketStream(trio.abc.Stream):
    """An RFC 6120 byte stream over an RFC 7395 WebSocket (see the module docstring)."""

    def __init__(self, ws: WebSocketConnection, *, max_stanza_bytes: int, max_depth: int) -> None:
        self.ws = ws
        self._max_bytes, self._max_depth = max_stanza_bytes, max_depth
        self._splitter = StreamSplitter()
        self._inbound = b""

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if not self._inbound:
            try:
                message = await self.ws.get_message()
            except ConnectionClosed:
                return b""
            self._inbound = self._translate(message)
        size = len(self._inbound) if max_bytes is None else max_bytes
        data, self._inbound = self._inbound[:size], self._inbound[size:]
        return data

    def _translate(self, message: str | bytes) -> bytes:
        if isinstance(message, bytes):
            raise StreamError("unsupported-encoding", "RFC 7395 uses text messages only")
        data = message.encode()
        if len(data) > self._max_bytes:
            raise StreamError("policy-violation", f"message larger than {self._max_bytes} bytes")
        element = parse_element(data, max_bytes=self._max_bytes, max_depth=self._max_depth)
        if element.tag == _OPEN:
            return stream_header_for(element.attrib)
        if element.tag == _CLOSE:
            return STREAM_CLOSE
        return standalone(element, "jabber:client")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            frames = self._splitter.feed(bytes(data))
        except RemoteProtocolError as exc:  # e.g. an element over OUTBOUND_LIMIT: nothing more
            raise trio.BrokenResourceError(f"output cannot be framed: {exc}") from exc
        for frame in frames:
            if isinstance(frame, Opened):
                message = open_element(frame.attrs)
            elif isinstance(frame, ElementOut):
                message = standalone(frame.element)
            else:
                assert isinstance(frame, Closed)
                message = CLOSE
            try:
                await self.ws.send_message(message.decode())
            except ConnectionClosed:
                raise trio.BrokenResourceError("the WebSocket is closed") from None

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self.ws.aclose()


class _ReplayStream(trio.abc.Stream):
    """``stream`` with ``prefix`` put back in front: the request the HTTP router already read."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self.stream, self._prefix = stream, prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


async def handle_websocket(server: Server, stream: trio.abc.Stream, request_bytes: bytes, *,
                           secure: bool, ping_interval: float | None) -> None:  # fmt: skip
    """Run one XMPP session over the WebSocket upgrade request in ``request_bytes``.

    :param stream: the HTTP connection, positioned after ``request_bytes``.
    :param request_bytes: everything read from it so far (the upgrade request and any
        frames that followed it).
    :param secure: whether the connection counts as encrypted (wss, or a TLS proxy).
    :param ping_interval: seconds between our pings; ``None`` sends none.
    """
    config = server.config
    limit = 2 * config.max_stanza_size + 4096  # beyond this trio-websocket closes with 1009
    async with trio.open_nursery() as nursery:
        ws: WebSocketConnection | None = None
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
            request = await wrap_server_stream(nursery, _ReplayStream(stream, request_bytes),
                                               MESSAGE_QUEUE, limit)  # fmt: skip
            ws = await request.accept(subprotocol=SUBPROTOCOL)
        if ws is not None:
            if ping_interval is not None:
                nursery.start_soon(_heartbeat, ws, ping_interval, nursery.cancel_scope)
            adapter = WebSocketStream(ws, max_stanza_bytes=config.max_stanza_size,
                                      max_depth=config.max_depth)  # fmt: skip
            await handle_connection(server, adapter, secure=secure, ssl_context=None)
        nursery.cancel_scope.cancel()


async def _heartbeat(ws: WebSocketConnection, interval: float, scope: trio.CancelScope) -> None:
    """Ping every ``interval`` seconds; no pong within another ``interval``: the peer is gone."""
    while True:
        await trio.sleep(interval)
        with trio.move_on_after(interval) as wait:
            try:
                await ws.ping()
            except ConnectionClosed:
                return
        if wait.cancelled_caught:
            log.info("WebSocket peer %s stopped answering pings", ws.remote)
            scope.cancel()
            return
