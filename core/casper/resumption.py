"""XEP-0198 on the Trio side: sessions waiting to be resumed, and the end of a session.

:class:`ResumableSessions` (``server.resumable``) knows every resumable session by its
SM-ID. When the transport of one breaks without ``</stream:stream>`` (reset, EOF, idle
timeout), its connection hands it over with :meth:`ResumableSessions.detach`: the session
stays bound in the router, keeps its presence, visibility and plugin state, broadcasts
nothing, and keeps what is delivered to it. One task per detached session, owned by the
manager's nursery (started by :func:`casper.server.serve`), waits up to
``stream_management.resume_timeout`` seconds; a connection that authenticates as the same
account and sends ``<resume previd=.../>`` takes it over (:meth:`ResumableSessions.claim`).
Otherwise :func:`end_session` ends it for good.

:func:`end_session` is the one way a session ends, whatever the cause (clean close, stream
error, timeout, shutdown): unbind, hand every stanza the client never acknowledged to
:func:`rescue`, then the normal end (unavailable to exactly those who saw the session, and
``casper_session_ended``). :func:`rescue` follows XEP-0198 §4: the stanzas are treated like
stanzas for an unavailable resource. ``chat``/``normal`` messages are delivered again by
the bare-JID rules to the account's other sessions, else stored offline through the core's
offline-equivalent path, else bounced with ``recipient-unavailable``; ``groupchat``
messages and iq requests are answered with ``service-unavailable``; presence, headlines,
errors and iq answers are dropped (they mean nothing to a session that is gone).

Error handling: a stanza whose rescue crashes is logged and the others go on. Resource
handling: a detached session is ended, shielded and bounded, when the server stops.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import trio

from .errors import StanzaError
from .jid import JID
from .session import Kept, Session
from .stanza import Stanza

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("casper.resumption")
TAKEOVER_SECONDS = 5.0  # a resuming connection waits this long for the old one to let go
SHUTDOWN_SECONDS = 10.0  # ending detached sessions when the server stops


class ResumableSessions:
    """Owner of resumable sessions, and of the waiting of those whose transport broke."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._sessions: dict[str, Session] = {}  # SM-ID -> session, attached or not
        self._waiting: dict[str, trio.CancelScope] = {}  # SM-ID -> its wait, while detached
        self._nursery: trio.Nursery | None = None

    @property
    def detached(self) -> int:
        """Sessions waiting for their client to resume them."""
        return len(self._waiting)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the waiting of detached sessions until cancelled; supports ``nursery.start``."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def register(self, session: Session) -> None:
        """Remember a session that just enabled resumable stream management."""
        assert session.sm.id is not None
        self._sessions[session.sm.id] = session

    def forget(self, session: Session) -> None:
        """The session ends for good: its SM-ID resumes nothing any more."""
        sm_id = session.sm.id
        if sm_id is not None and self._sessions.get(sm_id) is session:
            del self._sessions[sm_id]

    def detach(self, session: Session) -> bool:
        """Keep ``session`` (whose connection let go) until resumed or timed out.

        :return: ``False`` if it can't be kept (not resumable, or the server is stopping):
            the caller ends it with :func:`end_session`.
        """
        sm_id, nursery = session.sm.id, self._nursery
        if nursery is None or sm_id is None or not session.resumable or session.sm.max is None:
            return False
        scope = trio.CancelScope(deadline=trio.current_time() + session.sm.max)
        self._waiting[sm_id] = scope
        nursery.start_soon(self._hold, session, scope, name=f"detached {session.jid}")
        log.info("%s detached; resumable for %ss", session.jid, session.sm.max)
        return True

    async def claim(self, previd: str, account: JID) -> Session | None:
        """Take the session ``previd`` of ``account`` for a resuming connection.

        A session still held by a connection (whose transport hasn't been noticed broken
        yet, or which is still reading after a failed write) is taken from it: that
        connection stops (``conflict``) and lets go.

        :return: the session, now owned by the caller; ``None`` if there is no such
            resumable session of this account (unknown, expired, ended, another account's).
        """
        session = self._sessions.get(previd)
        if session is None or session.account != account or not session.resumable:
            return None
        if previd not in self._waiting and session.held:  # even after a failed write
            session.take_over()
            with trio.move_on_after(TAKEOVER_SECONDS):
                await session.wait_released()
        scope = self._waiting.pop(previd, None)
        if scope is None or not session.resumable:
            return None
        scope.cancel()
        return session

    async def _hold(self, session: Session, scope: trio.CancelScope) -> None:
        sm_id = session.sm.id
        assert sm_id is not None
        try:
            with scope:
                await session.wait_closed()  # e.g. its resource was bound again: end it now
        finally:
            if self._waiting.get(sm_id) is scope:  # not claimed: timed out, closed or shutdown
                del self._waiting[sm_id]
                with trio.move_on_after(SHUTDOWN_SECONDS) as ending:
                    ending.shield = True
                    log.info("%s was not resumed; ending it", session.jid)
                    await end_session(self._server, session)


async def end_session(server: Server, session: Session, unwritten: Iterable[Kept] = ()) -> None:
    """End ``session`` for good (see the module docstring).

    :param unwritten: stanzas that were queued for writing but never written, in order;
        they come after the unacknowledged ones and before those kept meanwhile.
    """
    await retire(server, session, unwritten)
    try:
        await server.session_ended(session)
    finally:
        session.mark_ended()
        log.info("%s ended", session.jid)


async def retire(server: Server, session: Session, unwritten: Iterable[Kept] = ()) -> None:
    """Unbind ``session`` (nothing new is routed to it) and rescue what it holds.

    The first step of :func:`end_session`; a connection takes it early, before its
    goodbye, so that what its client never got is disposed of before anything sent to the
    account after the unbinding (offline storage keeps the order). May be repeated.
    """
    server.resumable.forget(session)
    server.router.unbind(session)
    session.sm.hold_first(unwritten)
    await rescue(server, session, session.sm.take_all())


async def rescue(server: Server, session: Session, items: Iterable[Kept]) -> None:
    """Dispose of what the client of ``session`` never acknowledged (XEP-0198 §4)."""
    for item in items:
        if not isinstance(item, Stanza):
            continue  # an answer meant for that stream only
        try:
            await _rescue(server, session, item)
        except Exception:
            log.exception("%s: could not dispose of unacknowledged stanza %s", session.jid, item.id)


async def _rescue(server: Server, session: Session, stanza: Stanza) -> None:
    router = server.router
    if stanza.kind == "message":
        kind = stanza.type or "normal"
        if kind in ("normal", "chat"):
            await router.redeliver(stanza, session.account)
        elif kind == "groupchat":
            await router.bounce(stanza, StanzaError("service-unavailable"))
    elif stanza.kind == "iq" and stanza.type in ("get", "set"):
        await router.bounce(stanza, StanzaError("service-unavailable"))
