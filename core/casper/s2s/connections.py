"""Trio at the edges: one incoming and one outgoing s2s connection over a byte stream.

Each connection drives its sans-IO machine (:mod:`.inbound`, :mod:`.outbound`). Writes go
through one lock, each bounded by ``send_timeout`` (a peer that stops reading is dropped,
not waited on); reads reset the idle deadline. STARTTLS swaps the stream under that lock
for a :class:`~.tlsstream.PyOpenSSLStream`, whose peer certificate (verified or not: the
handshake never fails for that) goes to the sans-IO machine, which picks SASL EXTERNAL or
dialback with it. Each stream logs, at info, how it was authenticated.

Error handling: a transport failure means the peer is gone, not an error; a protocol fault
becomes a stream error sent to the peer; the connection's owner (:mod:`.manager`) learns
how it ended from the exception or the return value. Cancellation is re-raised.
Resource handling: the stream is always closed, within a bounded time.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from casper.errors import StreamError

from . import inbound, outbound
from .inbound import InboundStream
from .outbound import OutboundStream
from .tlsstream import PyOpenSSLStream

if TYPE_CHECKING:
    from OpenSSL import SSL

    from casper.stanza import Stanza

    from .certs import PeerCertificate
    from .manager import Route, S2SManager

log = logging.getLogger("casper.s2s")
RECEIVE_SIZE = 65536
TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)


class WriteTimeout(Exception):
    """The peer did not read what was written within ``send_timeout``."""


class _Wire:
    """The byte stream plus the write lock and the write deadline."""

    def __init__(self, stream: trio.abc.Stream, send_timeout: float) -> None:
        self.stream = stream
        self.lock = trio.StrictFIFOLock()
        self._send_timeout = send_timeout

    async def write(self, data: bytes) -> None:
        if not data:
            return
        async with self.lock:
            with trio.move_on_after(self._send_timeout) as scope:
                await self.stream.send_all(data)
        if scope.cancelled_caught:
            raise WriteTimeout(f"the peer read nothing for {self._send_timeout:g}s")

    async def start_tls(self, context: SSL.Context, *, server_side: bool,
                        hostname: str | None = None) -> PeerCertificate | None:  # fmt: skip
        """Wrap the stream in TLS; return the peer's certificate, verified or not."""
        async with self.lock:
            tls = PyOpenSSLStream(self.stream, context, server_side=server_side,
                                  server_hostname=hostname)  # fmt: skip
            await tls.do_handshake()
            self.stream = tls
        return tls.peer_certificate()

    async def receive(self) -> bytes:
        return bytes(await self.stream.receive_some(RECEIVE_SIZE))

    async def aclose(self) -> None:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            try:
                await self.stream.aclose()
            except TRANSPORT_ERRORS:
                pass


# ---------------------------------------------------------------------- incoming


async def handle_inbound(manager: S2SManager, stream: trio.abc.Stream) -> None:
    """Serve one incoming server connection from accept to close."""
    config = manager.config
    neg = InboundStream(
        hosted=manager.hosted,
        default_domain=manager.domain,
        dialback_key=manager.dialback_key,
        tls_available=manager.tls is not None,
        require_tls=config.s2s_require_encryption,
        max_stanza_bytes=config.max_stanza_size,
        max_depth=config.max_depth,
    )
    wire = _Wire(stream, config.s2s_send_timeout)
    peer = "?"
    try:
        async with trio.open_nursery() as nursery:
            with trio.CancelScope() as scope:
                scope.deadline = trio.current_time() + config.s2s_negotiation_timeout
                await _inbound_loop(manager, neg, wire, nursery, scope)
            if scope.cancelled_caught and neg.authorized:
                neg.close()  # idle (RFC 6120 §4.4): the peer reconnects when it needs to
            elif scope.cancelled_caught:
                neg.close(StreamError("connection-timeout", "negotiation took too long"))
            peer = neg.peer_domain or peer
            await _flush_quietly(wire, neg.data_to_send())
            nursery.cancel_scope.cancel()
    except Exception as exc:
        if _only(exc, WriteTimeout):
            log.warning("s2s in from %s: the peer stopped reading; dropped", neg.peer_domain)
        elif not _only(exc, *TRANSPORT_ERRORS):
            log.exception("s2s in from %s failed", neg.peer_domain)
            neg.close(StreamError("internal-server-error"))
            await _flush_quietly(wire, neg.data_to_send())
    finally:
        manager.inbound_closed(neg)
        await wire.aclose()
    closed = neg.closed
    if closed is not None and closed.error is not None:
        log.info("s2s in from %s closed: %s", peer, closed.error)


async def _inbound_loop(manager: S2SManager, neg: InboundStream, wire: _Wire,
                        nursery: trio.Nursery, scope: trio.CancelScope) -> None:  # fmt: skip
    config = manager.config
    idle = config.s2s_idle_timeout

    async def verify(request: inbound.DialbackRequest) -> None:
        valid = await manager.verify(request.receiving, request.originating,
                                     request.stream_id, request.key)  # fmt: skip
        neg.dialback_result(request.originating, request.receiving, valid)
        try:
            await wire.write(neg.data_to_send())
        except (WriteTimeout, *TRANSPORT_ERRORS):
            scope.cancel()  # the reader finds out too

    while True:
        event = neg.next_event()
        await wire.write(neg.data_to_send())
        if event is inbound.NEED_DATA:
            data = await wire.receive()
            if neg.authorized:
                scope.deadline = math.inf if idle is None else trio.current_time() + idle
            if data:
                neg.receive_data(data)
            else:
                neg.receive_eof()
        elif isinstance(event, inbound.StartTLS):
            assert manager.tls is not None
            neg.tls_started(await wire.start_tls(manager.tls.server_context, server_side=True))
        elif isinstance(event, inbound.DialbackRequest):
            nursery.start_soon(verify, event)
        elif isinstance(event, inbound.Authorized):
            log.info("s2s in: %s -> %s authenticated (%s; %s)", event.originating,
                     event.receiving, event.mechanism, _describe(neg.peer_certificate,
                                                                 event.originating))  # fmt: skip
            manager.inbound_authorized(neg)
            scope.deadline = math.inf if idle is None else trio.current_time() + idle
        elif isinstance(event, inbound.StanzaIn):
            await manager.receive(event.element, event.from_, event.to)
        elif isinstance(event, inbound.Closed):
            return


def _describe(cert: PeerCertificate | None, domain: str) -> str:
    return "no certificate" if cert is None else cert.describe(domain)


def _only(exc: BaseException, *types: type[BaseException]) -> bool:
    """Whether ``exc``, or every exception of a group, is one of ``types``."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only(e, *types) for e in exc.exceptions)
    return isinstance(exc, types)


async def _flush_quietly(wire: _Wire, data: bytes) -> None:
    with trio.move_on_after(1) as scope:
        scope.shield = True
        try:
            await wire.write(data)
        except (WriteTimeout, *TRANSPORT_ERRORS):
            pass


# ---------------------------------------------------------------------- outgoing


class OutboundFailed(Exception):
    """The stream could not be set up or broke; ``condition`` is the bounce to give."""

    def __init__(self, condition: str, text: str) -> None:
        super().__init__(text)
        self.condition = condition
        self.text = text


async def run_outbound(manager: S2SManager, route: Route, stream: trio.abc.Stream,
                       on_ready: Callable[[], Awaitable[None]]) -> None:  # fmt: skip
    """Negotiate an outgoing stream for ``route``, then send its queued stanzas until the
    stream is idle or the queue is closed.

    :raises OutboundFailed: negotiation failed, the peer closed the stream with an error,
        or stopped reading.
    """
    config = manager.config
    neg = OutboundStream(
        local=route.local,
        remote=route.remote,
        dialback_key=lambda stream_id: manager.dialback_key(route.remote, route.local, stream_id),
        require_tls=config.s2s_require_encryption,
        tls_available=manager.tls is not None,
        try_external=manager.tls is not None and manager.tls.presentable(route.local),
        max_stanza_bytes=config.max_stanza_size,
        max_depth=config.max_depth,
    )
    wire = _Wire(stream, config.s2s_send_timeout)
    route.attach(neg, wire)
    ready = trio.Event()
    failure: OutboundFailed | None = None
    try:
        async with trio.open_nursery() as nursery:
            reader = partial(
                _outbound_reader, manager, route, neg, wire, ready, nursery.cancel_scope
            )
            nursery.start_soon(reader)
            try:
                failure = await _negotiate_and_pump(route, neg, wire, ready, on_ready)
            except WriteTimeout as exc:
                failure = OutboundFailed("remote-server-timeout", f"{route.remote}: {exc}")
            except TRANSPORT_ERRORS as exc:
                failure = OutboundFailed("remote-server-not-found", f"{route.remote}: {exc}")
            nursery.cancel_scope.cancel()
    finally:
        route.detach()
        await wire.aclose()
    failure = failure or route.reader_failure
    if failure is not None:
        raise failure
    _check_closed(route, neg)


async def _negotiate_and_pump(route: Route, neg: OutboundStream, wire: _Wire, ready: trio.Event,
                              on_ready: Callable[[], Awaitable[None]]) -> OutboundFailed | None:  # fmt: skip
    config_timeout = route.negotiation_timeout
    neg.start()
    for request in route.verify_requests():
        neg.request_verify(*request)
    await wire.write(neg.data_to_send())
    with trio.move_on_after(config_timeout):
        await ready.wait()
    if not ready.is_set():
        neg.close(StreamError("connection-timeout", "negotiation took too long"))
        await _flush_quietly(wire, neg.data_to_send())
        return OutboundFailed("remote-server-timeout", f"{route.remote}: negotiation timed out")
    if not neg.ready:
        return None  # the stream ended during negotiation: _check_closed tells why
    log.info("s2s out: %s -> %s authenticated (%s; %s)", route.local, route.remote,
             neg.mechanism, _describe(neg.peer_certificate, route.remote))  # fmt: skip
    route.mechanism = neg.mechanism
    await on_ready()
    await _pump(route, neg, wire, route.idle_timeout)
    await _flush_quietly(wire, neg.data_to_send())
    return None


def _check_closed(route: Route, neg: OutboundStream) -> None:
    closed = neg.closed
    if closed is not None and closed.error is not None:
        error = closed.error
        condition = "remote-server-timeout" if error.condition == "connection-timeout" \
            else "remote-server-not-found"  # fmt: skip
        raise OutboundFailed(condition, f"{route.remote}: {error}")


async def _outbound_reader(manager: S2SManager, route: Route, neg: OutboundStream, wire: _Wire,
                           ready: trio.Event, cancel: trio.CancelScope) -> None:  # fmt: skip
    try:
        while True:
            event = neg.next_event()
            await wire.write(neg.data_to_send())
            if event is outbound.NEED_DATA:
                data = await wire.receive()
                route.touch()
                if data:
                    neg.receive_data(data)
                else:
                    neg.receive_eof()
            elif isinstance(event, outbound.StartTLS):
                assert manager.tls is not None
                neg.tls_started(await wire.start_tls(manager.tls.client_context,
                                                     server_side=False, hostname=route.remote))  # fmt: skip
            elif isinstance(event, outbound.Authenticated):
                ready.set()
            elif isinstance(event, outbound.VerifyResult):
                route.verified(event.receiving, event.originating, event.stream_id, event.valid)
            elif isinstance(event, outbound.Closed):
                break
    except TRANSPORT_ERRORS:
        pass
    except WriteTimeout as exc:
        route.reader_failure = OutboundFailed("remote-server-timeout", f"{route.remote}: {exc}")
    route.closing = True
    ready.set()  # wakes the negotiation wait; the closed state tells what happened
    cancel.cancel()


async def _pump(route: Route, neg: OutboundStream, wire: _Wire, idle: float | None) -> None:
    """Send queued stanzas; close politely after ``idle`` seconds without traffic."""
    while not route.closing:
        stanza: Stanza | None = None
        with trio.CancelScope() as scope:
            if idle is not None:
                scope.deadline = route.last_activity + idle
            stanza = await route.next_stanza()
        if stanza is None:
            if scope.cancelled_caught and not route.idle_for(idle):
                continue  # something was read meanwhile
            neg.close()
            return
        route.in_flight = stanza
        neg.send_stanza(stanza.element)
        await wire.write(neg.data_to_send())
        route.in_flight = None
        route.touch()
