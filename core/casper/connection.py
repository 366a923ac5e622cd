"""One client connection: drive the sans-IO negotiation over a stream, then run the
bound session with a reader and a writer task in the connection's own nursery.

Error handling: a protocol error becomes a stream error sent to the client; a broken or
closed transport means the peer is gone (not an error); anything else is logged, answered
with ``internal-server-error`` and never reaches the listener. Cancellation is re-raised.

Resource handling: the stream is always closed; the session is always unbound and its
presence cleaned up, shielded from cancellation, with a bounded time to flush.
"""

from __future__ import annotations

import logging
import math
import secrets
import ssl
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import trio

from . import negotiation as neg
from .dispatch import handle_client_element
from .errors import StreamError
from .jid import JID
from .limits import peer_address
from .plugins import call_safely
from .sasl import Failure
from .session import Session
from .stanza import Stanza
from .xml import serialize

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("casper.connection")
RECEIVE_SIZE = 65536
FLUSH_SECONDS = 5.0
TOO_MANY_FAILURES = "too many failed attempts; try again later"
Outgoing = Stanza | bytes


class Connection:
    def __init__(self, server: Server, stream: trio.abc.Stream, *, secure: bool,
                 ssl_context: ssl.SSLContext | None) -> None:  # fmt: skip
        config = server.config
        self.server = server
        self.stream = stream
        self.ssl_context = ssl_context
        self.peer = peer_address(stream)  # None for WebSocket, BOSH and memory streams
        self.username: str | None = None
        self.neg = neg.C2SNegotiation(
            domain=server.domain,
            tls_available=ssl_context is not None and not secure,
            tls_required=config.require_starttls and (ssl_context is not None or secure),
            secure=secure,
            allow_plain=config.allow_plain,
            scram_iterations=config.scram_iterations,
            max_stanza_bytes=config.max_stanza_size,
            max_depth=config.max_depth,
            scram_fake_key=server.scram_secret,
        )
        features = call_safely(server.pm, "casper_stream_features", [], server=server)
        core_features = [Element("{urn:xmpp:features:pre-approval}sub")]  # RFC 6121 §3.4
        self.neg.set_extra_features(core_features + [f for batch in features for f in batch or ()])
        self._final: bytes = b""

    # ------------------------------------------------------------------ negotiation

    async def negotiate(self) -> JID | None:
        """Run negotiation to a bound JID; ``None`` if the stream ended first."""
        while True:
            event = self.neg.next_event()
            if event is neg.NEED_DATA:
                await self._receive()
            elif isinstance(event, neg.SendData):
                await self.stream.send_all(event.data)
            elif isinstance(event, neg.StartTLS):
                await self._start_tls()
            elif isinstance(event, neg.CredentialsNeeded):
                await self._provide_credentials(event)
            elif isinstance(event, neg.Authenticated):
                self.username = event.username
                self.server.limits.auth_succeeded(event.username)
            elif isinstance(event, neg.AuthFailed):
                now = trio.current_time()
                self.server.limits.auth_failed(self.peer, event.username, event.condition, now)
            elif isinstance(event, neg.BindRequested):
                self.neg.bind_done(self._bind_jid(event.resource))
            elif isinstance(event, neg.Established):
                return event.jid
            elif isinstance(event, neg.Closed):
                return None

    async def _receive(self) -> None:
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except StreamError as exc:  # a framing transport (WebSocket, BOSH) refused the input
            self.neg.close(exc)
            return
        if data:
            self.neg.receive_data(data)
        else:
            self.neg.receive_eof()

    async def _start_tls(self) -> None:
        assert self.ssl_context is not None
        self.stream = trio.SSLStream(self.stream, self.ssl_context, server_side=True)
        await self.stream.do_handshake()
        self.neg.tls_started()

    async def _provide_credentials(self, event: neg.CredentialsNeeded) -> None:
        if not self.server.limits.auth_allowed(self.peer, event.username, trio.current_time()):
            log.warning("authentication as %s from %s refused: too many failures",
                        event.username, self.peer or "an unknown address")  # fmt: skip
            self.neg.refuse_credentials(Failure("temporary-auth-failure", TOO_MANY_FAILURES))
            return
        account = f"{event.username}@{self.server.domain}"
        storage = self.server.storage
        creds = await self.server.db(storage.get_credentials, account, event.mechanism)
        self.neg.provide_credentials(creds)

    def _bind_jid(self, resource: str | None) -> JID:
        assert self.username is not None
        return JID.make(self.username, self.server.domain, resource or secrets.token_hex(6))

    # ------------------------------------------------------------------ bound session

    async def run_session(self, jid: JID) -> None:
        send, receive = trio.open_memory_channel[Outgoing](self.server.config.outbox_size)
        session = Session(self.server, jid, send)
        self.server.router.bind(session)
        log.info("%s bound", jid)
        try:
            await self.server.session_bound(session)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop, receive, session)
                with trio.CancelScope() as reader_scope:
                    nursery.start_soon(self._watch_close, session, reader_scope)
                    await self._read_loop(session)
                await self._end(session, send)
                session.close()  # stops the close watcher; the writer ends once drained
                nursery.cancel_scope.deadline = trio.current_time() + FLUSH_SECONDS
        finally:
            with trio.CancelScope(shield=True):
                await self.server.session_ended(session)
            log.info("%s ended", jid)

    async def _read_loop(self, session: Session) -> None:
        idle = self.server.config.idle_timeout
        with trio.CancelScope() as idle_scope:
            while True:
                event = self.neg.next_event()
                if event is neg.NEED_DATA:
                    if idle is not None:
                        idle_scope.deadline = trio.current_time() + idle
                    await self._receive()
                    idle_scope.deadline = math.inf
                elif isinstance(event, neg.StanzaIn):
                    await handle_client_element(self.server, session, event.element)
                elif isinstance(event, neg.SendData):
                    session.deliver_nowait_bytes(event.data)
                elif isinstance(event, neg.Closed):
                    return
        if idle_scope.cancelled_caught:
            session.close(StreamError("connection-timeout", "idle for too long"))

    async def _watch_close(self, session: Session, reader_scope: trio.CancelScope) -> None:
        await session.wait_close_requested()
        reader_scope.cancel()

    async def _end(self, session: Session, send: trio.MemorySendChannel[Outgoing]) -> None:
        """Unbind first so nothing new is routed here, clean up presence, then say goodbye."""
        with trio.CancelScope(shield=True):
            await self.server.unbind(session)
        if session.closing is not None and not session.transport_lost:
            self.neg.close(session.closing)
            if session.closing.condition == "resource-constraint":
                session.discard_queued = True
        self._final = self._drain_negotiation()
        send.close()

    def _drain_negotiation(self) -> bytes:
        chunks = []
        while True:
            event = self.neg.next_event()
            if isinstance(event, neg.SendData):
                chunks.append(event.data)
            elif event is neg.NEED_DATA or isinstance(event, neg.Closed):
                return b"".join(chunks)

    async def _write_loop(self, receive: trio.MemoryReceiveChannel[Outgoing], session: Session) -> None:
        """Write queued stanzas, coalescing whatever is already queued into one send."""
        try:
            async for first in receive:
                batch = [first]
                while len(batch) < 256:
                    try:
                        batch.append(receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                if not session.discard_queued:
                    await self.stream.send_all(b"".join(map(_encode, batch)))
            if self._final:
                await self.stream.send_all(self._final)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            session.transport_lost = True
            session.close()


def _encode(item: Outgoing) -> bytes:
    return item if isinstance(item, bytes) else serialize(item.element)


async def handle_connection(server: Server, stream: trio.abc.Stream, *, secure: bool,
                            ssl_context: ssl.SSLContext | None) -> None:  # fmt: skip
    """Serve one client connection from accept to close."""
    connection = Connection(server, stream, secure=secure, ssl_context=ssl_context)
    try:
        with trio.fail_after(server.config.negotiation_timeout):
            jid = await connection.negotiate()
        if jid is not None:
            await connection.run_session(jid)
    except trio.TooSlowError:
        await _send_error(connection, StreamError("connection-timeout", "negotiation took too long"))
    except Exception as exc:
        if not _peer_gone(exc):
            log.exception("connection failed")
            await _send_error(connection, StreamError("internal-server-error"))
    finally:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            await _close(connection.stream)


_TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError)


def _peer_gone(exc: BaseException) -> bool:
    """Whether ``exc`` (or every exception of a group) only says the transport is gone."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_peer_gone(e) for e in exc.exceptions)
    return isinstance(exc, _TRANSPORT_ERRORS)


async def _send_error(connection: Connection, error: StreamError) -> None:
    connection.neg.close(error)
    data = connection._drain_negotiation()
    with trio.move_on_after(1) as scope:
        scope.shield = True
        try:
            await connection.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass


async def _close(stream: trio.abc.Stream) -> None:
    try:
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
        pass
