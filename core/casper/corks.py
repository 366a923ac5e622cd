"""Stanzas for one client written together: what a task step delivers to a session whose
writer is idle is held until the step ends, then written in one send.

A reader that took several stanzas from one receive (a busy client, a presence broadcast
of several updates) would otherwise write each recipient one TLS record per stanza. Held
stanzas are written by :meth:`casper.session.Session.flush_corked` from a Trio instrument
that runs after every task step, so nothing waits longer than the step that delivered it,
whatever that step awaits next. A session flushes its held stanzas itself before anything
that changes how it writes (close, detach, a queued item), so their order and fate are
what they would have been without holding them.

Resource handling: :meth:`Corks.serve` installs the instrument for the server's lifetime;
before and after it, deliveries are written at once. Trio drops an instrument that raises,
so :meth:`Corks.flush` never does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("casper.corks")

CORK_LIMIT = 256  # stanzas held for one session before they are written regardless


class Corks(trio.abc.Instrument):
    """The sessions holding stanzas during the current task step."""

    def __init__(self) -> None:
        self.active = False
        self._sessions: list[Session] = []

    def hold(self, session: Session) -> None:
        """``session`` started holding stanzas in this step."""
        self._sessions.append(session)

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._sessions:
            self.flush()

    def flush(self) -> None:
        """Write what every holding session holds. Never raises: Trio would drop an
        instrument that does, and held stanzas would wait forever."""
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            try:
                session.flush_corked()
            except Exception:  # a bug; the session queued what it could not write
                log.exception("%s: writing held stanzas failed", session.jid)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold deliveries until the end of each task step, until cancelled."""
        trio.lowlevel.add_instrument(self)
        self.active = True
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:  # every step that held something was flushed when it ended
            self.active = False
            trio.lowlevel.remove_instrument(self)
