"""The one visibility decision, and the offline-equivalent answers built on it.

Every enforcement point asks :meth:`Visibility.visible`: presence broadcast, probe
replies, unavailable on logoff, directed presence bookkeeping, bare-JID routing, and the
answers the server gives on an account's behalf (last activity, disco#items). Plugins
take part through the ``casper_hidden_from`` hook; any plugin hiding wins.

When a session is not visible to someone, the answer they get is the answer for an
account with no session at all — the same code path, so the two can't be told apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .jid import JID
from .plugins import call_guarded, call_safely

if TYPE_CHECKING:
    from .server import Server
    from .session import Session

# An observer no strategy knows: a session hidden from it is hidden from the world.
STRANGER = JID.make("stranger", "invalid")


class Visibility:
    """The decision, owned by the server; reads live session state and plugin answers."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def hidden(self, session: Session, observer: JID) -> bool:
        """Whether ``session`` must look offline to ``observer``.

        In order: an account's own resources always see each other; the administrator's
        ``never_hidden_from`` always sees; a communication block (``casper_presence_blocked``)
        hides; where the policy forbids this account to hide, nothing else hides; then
        any strategy plugin hiding wins (``casper_hidden_from``).
        """
        if observer.bare == session.account:
            return False
        policy = self._server.policy
        if policy.always_sees(observer):
            return False
        pm = self._server.pm
        if any(call_guarded(pm, "casper_presence_blocked", session=session, observer=observer)):
            return True
        if not policy.may_hide(session.account):
            return False
        return any(call_guarded(pm, "casper_hidden_from", session=session, observer=observer))

    def visible(self, session: Session, observer: JID) -> bool:
        """Whether ``observer`` may learn that ``session`` is online.

        True when the session is publicly available or sent ``observer`` directed
        presence, and no plugin hides it.
        """
        shown = (
            session.available
            or observer in session.directed_to
            or observer.bare in session.directed_to
        )
        return shown and not self.hidden(session, observer)

    def visible_sessions(self, account: JID, observer: JID) -> list[Session]:
        """Sessions ``observer`` may reach: shown to it (publicly or by directed presence)
        and not hidden. For routing; presence knowledge is :meth:`sessions_known_to`."""
        return [s for s in self._server.router.sessions_of(account) if self.visible(s, observer)]

    async def sessions_known_to(self, account: JID, observer: JID) -> list[Session]:
        """Sessions whose being online ``observer`` is entitled to know (RFC 6121 §4).

        The account itself knows all of them; others know a session that sent them
        directed presence, or, with a from/both subscription, an available one — in every
        case unless a strategy hides it. Server answers on an account's behalf (probes,
        last activity, disco#items) all use this, so none reveals more than presence does.
        """
        sessions = self._server.router.sessions_of(account)
        if observer.bare == account:
            return sessions
        roster = await self._server.rosters.get(account)
        item = roster.get(str(observer.bare))
        subscribed = item is not None and item.subscription in ("from", "both")
        return [s for s in sessions if self._knows(s, observer, subscribed)]

    def _knows(self, session: Session, observer: JID, subscribed: bool) -> bool:
        if observer in session.directed_to or observer.bare in session.directed_to:
            return True  # the user showed itself to this entity explicitly
        return subscribed and session.available and not self.hidden(session, observer)

    def hidden_from_world(self, session: Session) -> bool:
        """Whether the session hides from everyone (what a stranger would see)."""
        return self.hidden(session, STRANGER)

    def bare_targets(self, account: JID, sender: JID) -> list[Session]:
        """Sessions a bare-JID message from ``sender`` goes to (RFC 6121 §8.5.2.1.1).

        Available, non-negative priority, not hidden from the sender; plugins may admit
        sessions without broadcast presence (``casper_bare_route_while_unavailable``).
        Only the highest priority wins.
        """
        eligible = [s for s in self._server.router.sessions_of(account)
                    if s.priority >= 0 and self._admits_bare(s, sender)]  # fmt: skip
        if not eligible:
            return []
        top = max(s.priority for s in eligible)
        return [s for s in eligible if s.priority == top]

    def _admits_bare(self, session: Session, sender: JID) -> bool:
        if sender in session.directed_to or sender.bare in session.directed_to:
            return True  # it showed itself to the sender explicitly: the sender knows
        if not session.available:
            allowed = call_safely(self._server.pm, "casper_bare_route_while_unavailable", None,
                                  session=session, sender=sender)  # fmt: skip
            if not allowed:
                return False
        return not self.hidden(session, sender)

    async def last_seen(self, account: JID, observer: JID) -> tuple[float, str | None] | None:
        """When ``observer`` last saw the account online, for XEP-0012-style answers.

        :return: ``None`` while ``observer`` may know a session is online; otherwise
            ``(posix_time, status)`` of the last logoff it could see, or ``(0.0, None)``
            when it never saw one. A hidden session yields exactly what offline yields.
        """
        if await self.sessions_known_to(account, observer):
            return None
        return await self._server.lastseen.for_observer(account, observer)
