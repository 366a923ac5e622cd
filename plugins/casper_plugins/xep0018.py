"""Legacy invisible presence: <presence type='invisible'/> and 'visible', global and per contact (XEP-0018).

Strategy plugin ``xep0018``. Many old clients still send these types; the XEP is
historical (Rejected) but its behaviour is well defined, and this plugin implements it on
top of the core's single visibility decision:

- Undirected ``type='invisible'`` (also as initial presence): the session is invisible to
  all. Nothing is broadcast; contacts who saw it get unavailable; it stays able to chat
  (full-JID messages and IQs reach it; bare-JID messages take the offline path like for
  an offline account).
- Undirected ``type='visible'``: visible to all again; the last undirected presence the
  client sent goes to everyone who should see it.
- Directed ``type='visible'`` to a contact: visible to that contact only, who gets the
  current presence (never a 'visible' stanza). Directed ``type='invisible'`` to a contact
  while visible: that contact gets unavailable and no later update.
- Later undirected presence (auto-away, xa, status changes) reaches only those the
  session is visible to: the decision is asked per recipient at every broadcast, so
  nothing makes the user visible by accident.
- No stanza of type 'invisible' or 'visible' ever leaves the server: the plugin consumes
  them; without the plugin the core answers them with ``bad-request``.
- Probes, last activity, disco#items and logoff unavailable answer as if offline to
  anyone the session is invisible to (core).
- The administrator's policy (``[invisibility]``) wins: a forbidden request to hide gets
  a presence error ``not-allowed`` and changes nothing.

What it cannot hide: the client still answers IQs sent to its full JID (version, time,
disco#info) by anyone who knows it; chat states and receipts the client sends while
chatting are delivered like any message. Use ``privacy-lists`` to block those.

Hooks: ``casper_handle_outgoing``, ``casper_hidden_from``, ``casper_filter_incoming``.
Config: none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.stanza import Stanza, make_stanza
from casper.verdicts import Drop

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session

NAME = "xep0018"
LEGACY_TYPES = ("invisible", "visible")


@dataclass
class InvisibilityState:
    """Per-session mode plus the contacts that are the exception to it."""

    invisible: bool = False
    # invisible mode: whom the session is visible to; visible mode: whom it hides from
    exceptions: set[JID] = field(default_factory=set)

    def hides_from(self, observer: JID) -> bool:
        excepted = observer in self.exceptions or observer.bare in self.exceptions
        return excepted != self.invisible

    def set_for(self, contact: JID, *, visible: bool) -> None:
        """Make the session visible (or not) to ``contact`` only."""
        if visible == self.invisible:  # the contact becomes an exception to the mode
            self.exceptions.add(contact)
        else:
            self.exceptions.discard(contact)


class Xep0018:
    def __init__(self, server: Server) -> None:
        self._server = server

    @hookimpl
    def casper_handle_outgoing(
        self, stanza: Stanza, session: Session
    ) -> Callable[[], Awaitable[None]] | None:
        if stanza.kind != "presence" or stanza.type not in LEGACY_TYPES:
            return None
        if stanza.to is None:
            return lambda: self._set_mode(session, invisible=stanza.type == "invisible")
        return lambda: self._set_for_contact(session, stanza.to, visible=stanza.type == "visible")  # type: ignore[arg-type]

    @hookimpl
    def casper_hidden_from(self, session: Session, observer: JID) -> bool | None:
        state: InvisibilityState | None = session.peek_plugin_state(NAME)
        return None if state is None else state.hides_from(observer)

    @hookimpl
    def casper_filter_incoming(self, stanza: Stanza) -> Drop | None:
        if stanza.kind == "presence" and stanza.type in LEGACY_TYPES:
            return Drop("XEP-0018 presence types never leave the server")
        return None

    def _check_policy(self, session: Session, contact: JID | None) -> None:
        """Refuse a request to hide that the administrator's policy forbids."""
        policy = self._server.policy
        allowed = policy.may_hide(session.account) if contact is None else (
            policy.may_hide_from(session.account, contact))  # fmt: skip
        if not allowed:
            raise StanzaError("not-allowed", "invisibility is not allowed by this server's policy")

    async def _set_mode(self, session: Session, *, invisible: bool) -> None:
        if invisible:
            self._check_policy(session, None)
        state = session.plugin_state(NAME, InvisibilityState)
        state.invisible = invisible
        state.exceptions.clear()
        await self._apply(session)

    async def _set_for_contact(self, session: Session, contact: JID, *, visible: bool) -> None:
        if not visible:
            self._check_policy(session, contact)
        first_use = session.peek_plugin_state(NAME) is None
        state = session.plugin_state(NAME, InvisibilityState)
        if first_use and visible and not session.available:
            state.invisible = True  # shown to one contact before any presence: hidden from the rest
        state.set_for(contact, visible=visible)
        if not visible:
            self._server.presence.withdraw_directed(session, contact)
        if session.available:
            await self._server.presence.reconcile(session)
        elif visible:
            await self._apply(session)  # come online, seen by this contact only
        if visible and session.available and not _has_seen(session, contact):
            # not a subscriber: show the current presence as directed presence
            current = session.presence or make_stanza("presence", from_=session.jid)
            await self._server.presence.outbound(current.readdressed(to=contact), session)

    async def _apply(self, session: Session) -> None:
        """Become available if not yet (invisible or not), else re-ask the decision."""
        presence = self._server.presence
        if not session.available:
            await presence.outbound(make_stanza("presence", from_=session.jid), session)
        else:
            await presence.reconcile(session)


def _has_seen(session: Session, contact: JID) -> bool:
    return contact in session.seen_by or contact.bare in session.seen_by


@hookimpl
def casper_configure(server: Server) -> None:
    server.pm.register(Xep0018(server), f"{NAME}.state")
