"""One client connection: drive the sans-IO negotiation over a stream, then run the
bound session with a reader and a writer task in the connection's own nursery.

Error handling: a protocol error becomes a stream error sent to the client; a broken or
closed transport means the peer is gone (not an error); anything else is logged, answered
with ``internal-server-error`` and never reaches the listener. Cancellation is re-raised.

Resource handling: the stream is always closed; the session is always unbound and its
presence cleaned up, shielded from cancellation, with a bounded time to flush.

Stream management (XEP-0198; the sans-IO rules are in :mod:`casper.stream_management`):
the reader counts the stanzas it handles and answers ``<enable/>``, ``<r/>`` and ``<a/>``;
the writer counts what it writes into the session's unacknowledged queue and asks for an
ack (``<r/>``) at most ``stream_management.ack_interval`` seconds after writing. When the
transport of a resumable session breaks (reset, EOF without ``</stream:stream>``, idle
timeout), the connection lets go of the session instead of ending it: it goes on waiting,
bound, in :class:`casper.resumption.ResumableSessions`. A connection that sends
``<resume/>`` instead of binding takes such a session over, retransmits what the client
did not acknowledge, and runs it as if it had bound it. Every other end goes through
:func:`casper.resumption.end_session`, which disposes of what the client never got.
"""

from __future__ import annotations

import logging
import math
import secrets
import ssl
from functools import partial
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import trio

from . import negotiation as neg
from . import stream_management as sm
from .dispatch import handle_client_element
from .errors import StanzaError, StreamError
from .jid import JID
from .limits import peer_address
from .outbox import (
    BATCH,
    close_if_over_limit,
    drain,
    encode_with_request,
    next_batch,
    worth_keeping,
)
from .plugins import call_safely
from .resumption import end_session, retire
from .sasl import Failure
from .session import Kept, Outgoing, Session, StreamData
from .stanza import IQ, MESSAGE, PRESENCE, Stanza
from .tls import channel_bindings
from .tls_stream import TLS_STREAMS, SocketTLSStream, server_tls_stream

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("casper.connection")
RECEIVE_SIZE = 65536
FLUSH_SECONDS = 5.0
READ_GRACE = 1.0  # seconds the reader goes on after a failed write (input may be pending)
TOO_MANY_FAILURES = "too many failed attempts; try again later"
_STANZAS = (MESSAGE, PRESENCE, IQ)


class Connection:
    """A client connection; ``authenticated`` = (username, pending bytes) for a stream
    another worker authenticated and hands over (:mod:`casper.cluster`)."""

    def __init__(self, server: Server, stream: trio.abc.Stream, *, secure: bool,
                 ssl_context: ssl.SSLContext | None,
                 authenticated: tuple[str, bytes] | None = None) -> None:  # fmt: skip
        config = server.config
        self.server = server
        self.stream = stream
        self.ssl_context = ssl_context
        self.peer = peer_address(stream)  # None for WebSocket, BOSH and memory streams
        self.username: str | None = None
        self._secure = secure
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
        if config.sm_enabled:
            core_features.append(sm.feature())  # XEP-0198
        self.neg.set_extra_features(core_features + [f for batch in features for f in batch or ()])
        self._final: bytes = b""
        self.resumed: Session | None = None  # claimed by <resume/>, this connection's to run
        self._running = False
        self._peer_eof = False  # the transport ended without </stream:stream>
        self.activity = 0  # reads and writes; :class:`~casper.heap.IdleStreams` watches it
        self._peer_closed = False  # the client ended its stream: the session ends (XEP-0198 §5)
        self._unwritten: list[Kept] = []  # taken from the outbox, never written
        self._in_flight: list[Kept] = []  # being written, not counted by stream management
        self._handed_over: list[Kept] = []  # written now in part; the writer finishes them
        self._request_at = math.inf  # when the writer sends <r/> (stream management)
        self._backlog: list[Kept] = []  # to resend first on a resumed stream
        self._binding: JID | None = None  # account of a bind answered, not yet bound
        self.hand_off: bytes | None = None  # pending bytes: the account lives on another worker
        if authenticated is not None:
            self.username = authenticated[0]
            self.neg.continue_authenticated(*authenticated)

    # ------------------------------------------------------------------ negotiation

    async def negotiate(self) -> JID | None:
        """Run negotiation to a bound JID; ``None`` if the stream ended first."""
        if self._secure:
            await self._bind_channel()
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
                cluster = self.server.cluster
                if cluster is not None:
                    await cluster.auth_succeeded(event.username)
                    if cluster.elsewhere(JID.make(event.username, self.server.domain)):
                        self.hand_off = self.neg.take_pending()
                        return None
            elif isinstance(event, neg.AuthFailed):
                now = trio.current_time()
                self.server.limits.auth_failed(self.peer, event.username, event.condition, now)
                if self.server.cluster is not None:  # every worker counts it
                    await self.server.cluster.auth_failed(
                        self.peer, event.username, event.condition
                    )
            elif isinstance(event, neg.BindRequested):
                self._bind(event.resource)
            elif isinstance(event, neg.ResumeRequested):
                await self._resume(event)
            elif isinstance(event, neg.Established | neg.Resumed):
                return event.jid
            elif isinstance(event, neg.Closed):
                return None

    async def _receive(self) -> None:
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except StreamError as exc:  # a framing transport (WebSocket, BOSH) refused the input
            self.neg.close(exc)
            return
        self.activity += 1
        if data:
            self.neg.receive_data(data)
        else:
            self._peer_eof = True
            self.neg.receive_eof()

    async def _start_tls(self) -> None:
        assert self.ssl_context is not None
        self.stream = tls = server_tls_stream(self.stream, self.ssl_context)
        await tls.do_handshake()
        self.neg.tls_started()
        self.neg.set_channel_bindings(channel_bindings(tls))

    async def _bind_channel(self) -> None:
        """Finish the TLS handshake (which direct TLS would start lazily; done once) and
        hand the channel bindings to the negotiation, for SCRAM-*-PLUS. WebSocket and BOSH
        behind their own TLS have none to give: their stream carries no TLS itself."""
        if isinstance(self.stream, TLS_STREAMS):
            await self.stream.do_handshake()
            self.neg.set_channel_bindings(channel_bindings(self.stream))

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

    def _bind(self, resource: str | None) -> None:
        """Answer a bind request: the full JID, or ``resource-constraint`` when the account
        has as many sessions as it may (replacing one of its resources adds none)."""
        assert self.username is not None
        jid = JID.make(self.username, self.server.domain, resource or secrets.token_hex(6))
        router, limits = self.server.router, self.server.limits
        if router.session_for(jid) is None:
            bound = len(router.sessions_of(jid.bare)) + limits.binding(jid.bare)
            if not limits.session_allowed(bound):
                self.neg.bind_failed(StanzaError("resource-constraint", "too many sessions"))
                return
            self._binding = jid.bare  # counted until the session is bound (_bind_finished)
            limits.bind_started(jid.bare)
        self.neg.bind_done(jid)

    def _bind_finished(self) -> None:
        if self._binding is not None:
            self.server.limits.bind_finished(self._binding)
            self._binding = None

    async def _resume(self, event: neg.ResumeRequested) -> None:
        """XEP-0198 §5: take over a resumable session of the authenticated account."""
        h = sm.parse_counter(event.h)
        if not self.server.config.sm_enabled:
            self.neg.resume_failed(sm.failed("feature-not-implemented"))
            return
        if h is None:
            self.neg.resume_failed(sm.failed("bad-request"))
            return
        assert self.username is not None
        account = JID.make(self.username, self.server.domain)
        session = await self.server.resumable.claim(event.previd, account)
        if session is None:  # unknown, expired, or another account's: all look the same
            self.neg.resume_failed(sm.failed("item-not-found"))
            return
        self.resumed = session  # ours now: run it, or give it back (_give_back)
        try:
            resumed = session.sm.resume(h)
        except StreamError as exc:  # handled-count-too-high
            self.neg.close(exc)
            return
        self.neg.resume_done(session.jid, resumed)

    async def _give_back(self) -> None:
        """A session claimed by ``<resume/>`` but never run waits again (or ends)."""
        session, self.resumed = self.resumed, None
        if session is not None and not self._running and not self.server.resumable.detach(session):
            await end_session(self.server, session)

    # ------------------------------------------------------------------ bound session

    async def run_session(self, jid: JID) -> None:
        """Run the bound (or resumed) session until it ends or its transport breaks."""
        send, receive = trio.open_memory_channel[Outgoing](self.server.config.outbox_size)
        session, self._running = self.resumed, True
        if session is None:
            await self._replace_previous(jid)
            session = Session(self.server, jid, send)
            self.server.router.bind(session)
            self._bind_finished()
            log.info("%s bound", jid)
        else:
            session.attach(send)  # from here on stanzas queue behind the backlog
            self._backlog = session.sm.retransmit()
            log.info("%s resumed; resending %d stanzas", jid, len(self._backlog))
        try:
            if self.resumed is None:
                await self.server.session_bound(session)
            self.server.idle_streams.watch(self)
            if isinstance(self.stream, SocketTLSStream):
                session.write_now = partial(self._write_now, session, self.stream)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop, receive, session)
                with trio.CancelScope() as reader_scope:
                    session.on_stop(partial(self._stop_reader, session, reader_scope))
                    await self._read_loop(session)
                if self._detaching(session):
                    nursery.cancel_scope.cancel()  # what was not acknowledged is kept
                else:
                    await self._end(session, send, receive)
                    session.close()  # the writer ends once drained
                    nursery.cancel_scope.deadline = trio.current_time() + FLUSH_SECONDS
        finally:
            self.server.idle_streams.forget(self)
            with trio.CancelScope(shield=True):
                await self._let_go(session, send, receive)

    async def _replace_previous(self, jid: JID) -> None:
        """End a session bound to the same full JID first (RFC 6120 §7.7.2.2), so that its
        unavailable presence goes out before the new session's available one."""
        old = self.server.router.session_for(jid)
        if old is not None:
            old.close(StreamError("conflict", "replaced by a new connection"))
            with trio.move_on_after(FLUSH_SECONDS):
                await old.wait_ended()

    async def _read_loop(self, session: Session) -> None:
        idle = self.server.config.idle_timeout
        with trio.CancelScope() as idle_scope:
            while True:
                event = self.neg.next_event()
                if event is neg.NEED_DATA:
                    if idle is not None:
                        idle_scope.deadline = trio.current_time() + idle
                    try:
                        await self._receive()
                    except _TRANSPORT_ERRORS:
                        session.transport_gone()
                        return
                    if idle is not None:  # a deadline's every change costs: none by default
                        idle_scope.deadline = math.inf
                elif isinstance(event, neg.StanzaIn):
                    element = event.element
                    if sm.is_sm_element(element):
                        self._stream_management(session, element)
                        continue
                    await handle_client_element(self.server, session, element)
                    if element.tag in _STANZAS:
                        session.sm.stanza_received()
                elif isinstance(event, neg.SendData):  # counted if a stanza (a session iq's result)
                    session.deliver_stream_data(
                        StreamData(event.data, counted=event.data.startswith(b"<iq"))
                    )
                elif isinstance(event, neg.Closed):
                    if event.error is None:
                        if self._peer_eof:  # no </stream:stream>: unfinished (XEP-0198 §7)
                            session.transport_gone()
                        else:
                            self._peer_closed = True
                    return
        if idle_scope.cancelled_caught:
            if session.resumable:  # likely a half-open connection: keep the session
                self.neg.close(StreamError("connection-timeout", "idle for too long"))
                session.transport_gone()
            else:
                session.close(StreamError("connection-timeout", "idle for too long"))

    def _stream_management(self, session: Session, element: Element) -> None:
        """Answer ``<enable/>``, ``<r/>``, ``<a/>`` (and a late ``<resume/>``)."""
        if not self.server.config.sm_enabled:
            session.close(StreamError("unsupported-stanza-type", element.tag))
            return
        try:
            answer = session.sm.receive(element)
        except StreamError as exc:
            session.close(exc)
            return
        if answer is None:
            return
        if answer.enabled and session.sm.resumable:
            self.server.resumable.register(session)
        session.deliver_stream_data(StreamData(answer.data, enables_sm=answer.enabled))

    def _detaching(self, session: Session) -> bool:
        """Whether the connection lets go of the session rather than ending it."""
        return (
            session.resumable
            and not self._peer_closed
            and (session.transport_lost or session.taken_over)
        )

    def _stop_reader(self, session: Session, reader_scope: trio.CancelScope) -> None:
        """Stop the reader when the session must stop; after a failed write, first give it
        a moment to read what the peer sent before going (its ``</stream:stream>`` says the
        session ends rather than waits for resumption)."""
        if session.transport_lost and not session.taken_over and session.closing is None:
            reader_scope.deadline = min(reader_scope.deadline, trio.current_time() + READ_GRACE)
        else:
            reader_scope.cancel()

    async def _end(self, session: Session, send: trio.MemorySendChannel[Outgoing],
                   receive: trio.MemoryReceiveChannel[Outgoing]) -> None:  # fmt: skip
        """Unbind first so nothing new is routed here, dispose of what the client will not
        get (with stream management: what it did not acknowledge, and what is queued, which
        it could not acknowledge any more), clean up presence, then say goodbye."""
        with trio.CancelScope(shield=True):
            session.flush_corked()  # held in this step: written and counted before the rescue
            queued = [i for i in drain(receive) if worth_keeping(i)] if session.sm.counting else []
            await retire(self.server, session, queued)
            await self.server.unbind(session)
        if session.closing is not None and not session.transport_lost:
            self.neg.close(session.closing)
            if session.closing.condition == "resource-constraint":
                session.discard_queued = True
        self._final = self._drain_negotiation()
        send.close()

    def release_idle_memory(self) -> None:
        """Idle since the last sweep: let the parser free expat's state, if it can."""
        self.neg.release_idle_memory()

    async def _let_go(self, session: Session, send: trio.MemorySendChannel[Outgoing],
                      receive: trio.MemoryReceiveChannel[Outgoing]) -> None:  # fmt: skip
        """After the connection's last write: detach a resumable session whose transport
        broke, end any other; what was queued but never written is kept either way."""
        send.close()
        await self._settle_handed_over()
        drained = [i for i in drain(receive) if worth_keeping(i)]
        unwritten = self._in_flight + self._handed_over + self._unwritten + self._backlog + drained
        self._in_flight, self._handed_over, self._unwritten, self._backlog = [], [], [], []
        if self._detaching(session):
            session.sm.hold_first(unwritten)
            session.release()
            if self.server.resumable.detach(session):
                if session.taken_over:
                    self.neg.close(StreamError("conflict", "the session was resumed elsewhere"))
                data = self._drain_negotiation()  # a farewell, if the peer might hear it
                if data and not self._peer_eof:
                    await send_quietly(self.stream, data)
                return
            unwritten = []  # nobody to keep it (the server is stopping): end it now
        await end_session(self.server, session, unwritten)

    async def _settle_handed_over(self) -> None:
        """Stanzas a direct write left in part with OpenSSL are written now (within a
        second) or never: then the stream is broken, and they are kept as unwritten."""
        if not self._handed_over or not isinstance(self.stream, SocketTLSStream):
            return
        await send_quietly(self.stream, b"")
        if not self.stream.send_pending and not self.stream.broken:
            self._handed_over = []  # written
        self.stream.abandon_pending()

    def _drain_negotiation(self) -> bytes:
        chunks = []
        while True:
            event = self.neg.next_event()
            if isinstance(event, neg.SendData):
                chunks.append(event.data)
            elif event is neg.NEED_DATA or isinstance(event, neg.Closed):
                return b"".join(chunks)

    async def _write_loop(
        self, receive: trio.MemoryReceiveChannel[Outgoing], session: Session
    ) -> None:
        """Write the backlog (resumption), then queued items, coalescing what is already
        queued into one send; ask for acks (``<r/>``) when stanzas wait for one."""
        try:
            while True:
                batch: list[Outgoing] = []
                if self._backlog:
                    batch.extend(self._backlog[:BATCH])
                    del self._backlog[:BATCH]
                elif self._request_at == math.inf:  # no deadline, no cancel scope: most often
                    batch = await next_batch(receive, session)
                    if not batch:
                        break  # the outbox was closed and is empty
                else:
                    with trio.move_on_at(self._request_at) as waiting:
                        batch = await next_batch(receive, session)
                    if not batch and not waiting.cancelled_caught:
                        break
                    if not batch:  # stanzas have waited long enough for an ack
                        await self._write(sm.REQUEST_DATA)
                        session.sm.request_sent()
                        self._request_at = math.inf
                        continue
                self.activity += 1
                if session.discard_queued or (session.sm.counting and session.closing is not None):
                    self._unwritten.extend(i for i in batch if worth_keeping(i))  # rescued
                    continue
                data, uncounted = encode_with_request(batch, session)
                if not session.sm.unrequested:
                    self._request_at = math.inf
                elif self._request_at == math.inf:
                    self._request_at = trio.current_time() + self.server.config.sm_ack_interval
                await self._write(data, uncounted)
                close_if_over_limit(session)
            if self._final:
                await self._write(self._final)
        except _TRANSPORT_ERRORS:
            session.transport_gone()

    async def _write(self, data: bytes, uncounted: list[Kept] | None = None) -> None:
        """Write for the writer. A write also finishes what a direct write left with
        OpenSSL, so its stanzas count as in flight with ``uncounted``: rescued if the write
        fails, written if it succeeds."""
        self._in_flight = self._handed_over + (uncounted or [])
        self._handed_over = []
        await self.stream.send_all(data)
        self._in_flight = []

    def _write_now(self, session: Session, stream: SocketTLSStream, stanzas: list[Stanza]) -> bool:
        """Write ``stanzas`` from the delivering task while the writer waits on an empty
        outbox: the writer is not woken for them. Under stream management they are
        counted and acks are asked for as the writer would; the writer is woken only to
        start its ack-request deadline. False: queue them instead."""
        if session.discard_queued or not stream.can_send_now:
            return False
        try:
            data, uncounted = encode_with_request(stanzas, session)
        except (ValueError, TypeError):  # the writer meets it again, in its own task
            return False
        # taken from here on: counted stanzas are kept by stream management, the others
        # are rescued by the writer if the stream broke (it says so at the next write)
        stream.send_now(data)
        self.activity += 1
        wake_writer = bool(session.sm.unrequested) and self._request_at == math.inf
        if stream.send_pending or stream.broken:  # the writer's next write finishes it, or
            self._handed_over.extend(uncounted)  # fails and rescues it
            wake_writer = True
        if wake_writer:
            session.deliver_nowait_bytes(b"")
        close_if_over_limit(session)
        return True


async def handle_connection(server: Server, stream: trio.abc.Stream, *, secure: bool,
                            ssl_context: ssl.SSLContext | None,
                            authenticated: tuple[str, bytes] | None = None) -> None:  # fmt: skip
    """Serve one client connection from accept to close (``authenticated``: see
    :class:`Connection`). An account living on another worker gets its stream relayed
    there once authenticated."""
    connection = Connection(server, stream, secure=secure, ssl_context=ssl_context,
                            authenticated=authenticated)  # fmt: skip
    try:
        with trio.fail_after(server.config.negotiation_timeout):
            jid = await connection.negotiate()
        if jid is not None:
            await connection.run_session(jid)
        elif connection.hand_off is not None and server.cluster is not None:
            assert connection.username is not None
            await server.cluster.hand_off(connection.stream, connection.username,
                                          connection.hand_off)  # fmt: skip
    except trio.TooSlowError:
        await _send_error(
            connection, StreamError("connection-timeout", "negotiation took too long")
        )
    except Exception as exc:
        if not _peer_gone(exc):
            log.exception("connection failed")
            await _send_error(connection, StreamError("internal-server-error"))
    except BaseException:  # Cancelled, or (from a bound session's nursery) a group of them
        if server.shutting_down:
            await _send_error(connection, StreamError("system-shutdown"))
        raise
    finally:
        connection._bind_finished()  # if it ended between its bind's answer and the binding
        with trio.CancelScope(shield=True):
            await connection._give_back()
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
        except Exception:  # the farewell is best effort: the connection ends either way
            log.debug("the stream error could not be written", exc_info=True)


async def send_quietly(stream: trio.abc.Stream, data: bytes) -> None:
    """Write ``data`` if the peer takes it within a second; it may be gone."""
    with trio.move_on_after(1) as scope:
        scope.shield = True
        try:
            await stream.send_all(data)
        except (*_TRANSPORT_ERRORS, trio.BusyResourceError):
            pass


async def _close(stream: trio.abc.Stream) -> None:
    try:
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
        pass
