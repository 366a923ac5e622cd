"""BOSH (XEP-0124 with XEP-0206): the trio side of :mod:`casper.transports.bosh_session`.

:class:`BoshService` keeps the live sessions, keyed by ``sid``, in its own nursery. Each
session is one :func:`~casper.connection.handle_connection` over a :class:`BoshStream`, a
``trio.abc.Stream`` whose input is the payload of the client's requests (translated into
RFC 6120 stream bytes by the sans-IO session) and whose output is cut into elements that
wait for the client's next request. Negotiation, hooks and plugins run unchanged.

The HTTP side (:mod:`casper.transports.http`) calls :meth:`BoshService.handle` with each
request body and sends back the body it returns, which may take up to ``wait`` seconds.

Error handling: a malformed body, an unknown ``sid`` or a bad ``rid`` is answered with a
terminal binding condition and ends at most the session it names; every other session
carries on. Resource handling: a session ends when its stream does, when it is inactive,
or when the client terminates it; its open requests are all answered first.
Backpressure: a client that does not collect its output makes :meth:`BoshStream.send_all`
wait once ``max_pending`` elements are queued, so the session's outbox fills up and the
core ends it with ``resource-constraint``, as for any slow client.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

import trio

from ..connection import handle_connection
from ..errors import RemoteProtocolError
from .bosh_session import BoshError, BoshLimits, BoshRequest, BoshSession, State, parse_request
from .framing import Closed, ElementOut, Opened, StreamSplitter

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("casper.bosh")


class _Live:
    """A running session: the sans-IO state plus the event that wakes its waiters."""

    def __init__(self, session: BoshSession) -> None:
        self.session = session
        self._changed = trio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()


class BoshStream(trio.abc.Stream):
    """The XMPP byte stream of one BOSH session (see the module docstring)."""

    def __init__(self, live: _Live) -> None:
        self._live = live
        self._splitter = StreamSplitter()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while True:
            data = self._live.session.take_inbound(max_bytes or 65536)
            if data is None:
                await trio.lowlevel.checkpoint()
                return b""
            if data:
                await trio.lowlevel.checkpoint()
                return data
            await self._live.wait_changed()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        session = self._live.session
        if session.state is State.TERMINATED:
            raise trio.BrokenResourceError("the BOSH session has ended")
        now = trio.current_time()
        try:
            frames = self._splitter.feed(bytes(data))
        except RemoteProtocolError as exc:  # e.g. an element over OUTBOUND_LIMIT: nothing more
            raise trio.BrokenResourceError(f"output cannot be framed: {exc}") from exc
        for frame in frames:
            if isinstance(frame, Opened):
                session.stream_opened(frame.attrs, now)
            elif isinstance(frame, ElementOut):
                session.send(frame.element, now)
            else:
                assert isinstance(frame, Closed)
                session.close(now)
        self._live.changed()
        while session.pending >= session.limits.max_pending and session.state is State.ACTIVE:
            await self._live.wait_changed()
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._live.session.close(trio.current_time())
        self._live.changed()
        await trio.lowlevel.checkpoint()


class BoshService:
    """The BOSH connection manager of one HTTP listener.

    :param server: the running server.
    :param nursery: where the sessions run.
    :param secure: whether requests arrive encrypted (https, or through a TLS proxy).
    """

    def __init__(self, server: Server, nursery: trio.Nursery, *, secure: bool) -> None:
        config = server.config
        self.server, self._nursery, self._secure = server, nursery, secure
        self.limits = BoshLimits(
            max_wait=config.bosh_max_wait,
            max_hold=config.bosh_max_hold,
            inactivity=config.bosh_inactivity,
            polling=config.bosh_polling,
            max_body_bytes=config.bosh_max_body_size,
            max_depth=config.max_depth,
            max_pending=config.outbox_size,
        )
        self.sessions: dict[str, _Live] = {}

    async def handle(self, body: bytes, peer: str | None = None) -> tuple[int, bytes]:
        """Answer one request body from ``peer`` (an IP address, ``None`` if not counted):
        ``(HTTP status, response body)``."""
        now = trio.current_time()
        try:
            request = parse_request(body, limits=self.limits)
        except BoshError as exc:
            log.info("refused a BOSH request: %s", exc)
            return exc.status, exc.body()
        if request.sid is None:
            return await self._create(request, now, peer)
        live = self.sessions.get(request.sid)
        if live is None:
            return 200, BoshError("item-not-found", "no such session").body()
        try:
            live.session.receive(request, now)
        except BoshError as exc:
            log.info("BOSH session %s: %s", request.sid, exc)
            live.changed()
            return exc.status, exc.body()
        live.changed()
        return 200, await self._answer(live, request.rid)

    async def _create(
        self, request: BoshRequest, now: float, peer: str | None
    ) -> tuple[int, bytes]:
        """A new session, counted against its address's connections like a TCP one."""
        sid = secrets.token_urlsafe(18)
        try:
            session = BoshSession.create(sid, request, domain=self.server.domain,
                                         limits=self.limits, now=now)  # fmt: skip
        except BoshError as exc:
            return exc.status, exc.body()
        if not self.server.limits.connection_opened(peer):
            log.warning("refused a BOSH session from %s: too many connections from there", peer)
            refusal = BoshError("policy-violation", "too many connections from your address")
            return refusal.status, refusal.body()
        live = _Live(session)
        self.sessions[sid] = live
        self._nursery.start_soon(self._run, sid, live, peer)
        return 200, await self._answer(live, request.rid)

    async def _answer(self, live: _Live, rid: int) -> bytes:
        while (body := live.session.response(rid)) is None:
            await live.wait_changed()
        return body

    async def _run(self, sid: str, live: _Live, peer: str | None) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer, live)
                await handle_connection(self.server, BoshStream(live), secure=self._secure,
                                        ssl_context=None)  # fmt: skip
                nursery.cancel_scope.cancel()
        except Exception:  # one session's failure must not end the HTTP service
            log.exception("BOSH session %s failed", sid)
        finally:
            live.session.close(trio.current_time())
            live.changed()
            del self.sessions[sid]
            self.server.limits.connection_closed(peer)

    async def _timer(self, live: _Live) -> None:
        """Tick the session whenever its next deadline passes (cancel scopes, no timers)."""
        session = live.session
        while True:
            with trio.move_on_at(session.next_deadline()):
                await live.wait_changed()
            now = trio.current_time()
            if session.next_deadline() <= now:
                session.tick(now)
                live.changed()
