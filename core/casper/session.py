"""A bound client session: its address, presence state and outbox.

The session's task (:mod:`casper.connection`) owns the receiving end of the outbox; the
router delivers with :meth:`Session.deliver_nowait` and never awaits one recipient.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .errors import StreamError
from .jid import JID
from .stanza import Stanza

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("casper.session")
T = TypeVar("T")


class Session:
    """State of one bound resource.

    Presence bookkeeping (RFC 6121 §4):

    - ``available``: sent available broadcast presence and not since unavailable.
    - ``presence``: the last available broadcast presence (``from`` stamped).
    - ``directed_to``: entities sent directed available presence, not since unavailable.
    - ``seen_by``: every entity that currently believes this session is available, i.e.
      got an available presence from it (broadcast or directed). Unavailable goes to
      exactly these and no one else, so nobody learns of a login they never saw.
    """

    def __init__(self, server: Server, jid: JID, outbox: trio.MemorySendChannel[Stanza | bytes]) -> None:
        self.server = server
        self.jid = jid
        self.account = jid.bare
        self.outbox = outbox
        self.available = False
        self.initial_presence_sent = False
        self.presence: Stanza | None = None
        self.priority = 0
        self.directed_to: set[JID] = set()
        self.seen_by: set[JID] = set()
        self.audience: set[JID] = set()  # subscribers it is publicly available to now
        self.requested_roster = False
        self.shown_publicly = False  # was available while not hidden from the world
        self.closing: StreamError | None = None
        self.transport_lost = False
        self.discard_queued = False
        self._close_request: trio.Event = trio.Event()
        self._plugin_state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Session {self.jid} available={self.available}>"

    # -------------------------------------------------------------- delivery

    def deliver_nowait(self, stanza: Stanza) -> None:
        """Queue ``stanza`` for this client; a full outbox ends the session."""
        if self.closing is not None:
            return
        self._put(stanza)

    def _put(self, item: Stanza | bytes) -> None:
        try:
            self.outbox.send_nowait(item)
        except trio.WouldBlock:
            log.warning("%s: outbox full, closing the session", self.jid)
            self.close(StreamError("resource-constraint", "too many queued stanzas"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def deliver_nowait_bytes(self, data: bytes) -> None:
        """Queue raw stream bytes (negotiation answers) behind the queued stanzas."""
        self._put(data)

    def close(self, error: StreamError | None = None) -> None:
        """Ask the session's task to end the stream (with ``error`` if given)."""
        if self.closing is None:
            self.closing = error or StreamError("reset")
            self._close_request.set()

    async def wait_close_requested(self) -> None:
        await self._close_request.wait()

    # -------------------------------------------------------------- plugin state

    def plugin_state(self, name: str, factory: type[T]) -> T:
        """Per-session state owned by plugin ``name``, created by ``factory()`` on first use."""
        state = self._plugin_state.get(name)
        if state is None:
            state = self._plugin_state[name] = factory()
        return state  # type: ignore[no-any-return]

    def peek_plugin_state(self, name: str) -> Any:
        """The plugin's state if created, else ``None`` (never creates it)."""
        return self._plugin_state.get(name)
