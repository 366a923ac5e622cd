"""Enforcement: the list in force for each stanza, turned into the core's verdicts.

The list in force (XEP-0016 business rules 1-3): a session's active list if it set one,
else the account's default list; for account-level decisions (``session=None``: offline
storage, answers on the account's behalf) the default list. No layering.

Direction and kind:

- inbound message → ``message``; IQ → ``iq``; availability presence (no type, or
  ``unavailable``) → ``presence-in``; anything else (subscriptions, probes, errors) is
  covered only by items without children;
- outbound availability presence → ``presence-out``; everything else outbound (messages,
  IQs, subscription presence) only by items without children.

The account's own resources and the server's domain JID are never blocked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from casper.config import ConfigError
from casper.hookspecs import AsyncCallable, hookimpl
from casper.jid import JID
from casper.stanza import CLIENT_NS, Stanza, make_stanza, qname
from casper.verdicts import Bounce, Drop, OfflineEquivalent, Verdict

from .model import (
    IQ,
    MESSAGE,
    OTHER,
    PRESENCE_IN,
    PRESENCE_OUT,
    PrivacyItem,
    PrivacyList,
    is_block_item,
    lookup,
    match,
)
from .protocol import PrivacyProtocol
from .store import NAME, PrivacyStore

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session

log = logging.getLogger("casper_plugins.privacy_lists")

AVAILABILITY = (None, "unavailable")
BODY = qname(CLIENT_NS, "body")
# What a client sends on its own while chatting, revealing that it is online.
NOTIFICATION_NS = (
    "http://jabber.org/protocol/chatstates",  # XEP-0085
    "jabber:x:event",  # XEP-0022
    "urn:xmpp:receipts",  # XEP-0184
    "urn:xmpp:chat-markers:0",  # XEP-0333, the same leak as receipts
)
REPLIES = ("bounce", "drop")
MAX_LISTS = 1000
MAX_ITEMS = 10000
REFRESH_QUEUE = 1024


@dataclass(frozen=True)
class Config:
    """``[plugin.privacy-lists]``."""

    blocked_message_reply: str = "bounce"
    block_chat_states: bool = True
    max_lists: int = 50
    max_items: int = 250

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> Config:
        """Validate the settings; raise ConfigError naming the bad key."""
        values = dict(settings or {})
        unknown = set(values) - {"blocked_message_reply", "block_chat_states", "max_lists",
                                 "max_items"}  # fmt: skip
        if unknown:
            raise ConfigError(f"unknown config key plugin.{NAME}.{min(unknown)}")
        reply = values.get("blocked_message_reply", cls.blocked_message_reply)
        if reply not in REPLIES:
            raise ConfigError(
                f"plugin.{NAME}.blocked_message_reply must be bounce or drop, got {reply!r}"
            )
        block = values.get("block_chat_states", cls.block_chat_states)
        if not isinstance(block, bool):
            raise ConfigError(
                f"plugin.{NAME}.block_chat_states must be true or false, got {block!r}"
            )
        limits = {}
        for key, high in (("max_lists", MAX_LISTS), ("max_items", MAX_ITEMS)):
            value = values.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ConfigError(
                    f"plugin.{NAME}.{key} must be an integer in 1..{high}, got {value!r}"
                )
            limits[key] = value
        return cls(blocked_message_reply=str(reply), block_chat_states=block, **limits)


@dataclass
class SessionPrivacy:
    """Per-session state: the active list's name, and the contacts' sessions this session
    was sent unavailable for on their behalf (presence-in newly blocked)."""

    active: str | None = None
    blocked_in: set[JID] = field(default_factory=set)


def _directed_to_bare(session: Session, peer: JID) -> bool:
    """Whether ``session`` sent directed presence to any JID of ``peer``'s bare JID
    (a room reflects occupants from several nicknames)."""
    return any(target.bare == peer.bare for target in session.directed_to)


def _is_notification(stanza: Stanza) -> bool:
    """A message without a body that carries a chat state, event, receipt or marker."""
    if stanza.element.find(BODY) is not None:
        return False
    return any(child.tag[1:].split("}")[0] in NOTIFICATION_NS for child in stanza.element)


class PrivacyLists:
    """The strategy: enforcement hooks over the store and the sessions' active lists.

    The ``jabber:iq:privacy`` protocol (:attr:`protocol`) is registered apart from it, by
    the ``privacy-lists`` plugin only; the blocking command (XEP-0191) may run this
    strategy without it (see :func:`casper_plugins.privacy_lists.shared_strategy`).
    """

    def __init__(self, server: Server, config: Config, store: PrivacyStore) -> None:
        self._server = server
        self.config = config
        self.store = store
        self.protocol = PrivacyProtocol(server, store, self, config.max_lists, config.max_items)
        self._refresh_send, self._refresh_receive = trio.open_memory_channel[JID](REFRESH_QUEUE)
        self._refreshing: set[JID] = set()

    # ------------------------------------------------------------------ the list in force

    def active_name(self, session: Session) -> str | None:
        state: SessionPrivacy | None = session.peek_plugin_state(NAME)
        return None if state is None else state.active

    def set_active(self, session: Session, name: str | None) -> None:
        session.plugin_state(NAME, SessionPrivacy).active = name

    def governing_name(self, session: Session) -> str | None:
        active = self.active_name(session)
        return active if active is not None else self.store.default_name(session.account)

    def governing(self, session: Session | None, account: JID) -> PrivacyList | None:
        """The list in force for ``session`` (``None``: the account-level default)."""
        active = None if session is None else self.active_name(session)
        if active is None:
            return self.store.default(account)
        plist = self.store.cached(account, active)
        if plist is None:  # can't happen while the session lives; never fail open
            log.error("active privacy list %r of %s not loaded: denying", active, account)
            return PrivacyList(active, (PrivacyItem("deny", 0),))
        return plist

    def _exempt(self, peer: JID, account: JID) -> bool:
        """The account's own resources and the server itself are never blocked."""
        if peer.bare == account:
            return True
        return peer.local is None and peer.resource is None and peer.domain == self._server.domain

    def _decide(
        self, session: Session | None, account: JID, peer: JID, kind: str
    ) -> PrivacyItem | None:
        """The item that denies ``kind`` between the account and ``peer``, or ``None``."""
        plist = self.governing(session, account)
        if plist is None:
            return None
        roster_item = None  # only group and subscription items read it
        if plist.roster_dependent:
            if not self._server.router.sessions_of(account):
                self._request_refresh(account)  # an offline snapshot: refresh it for next time
            roster_item = lookup(self.store.roster(account), peer)
        item = match(plist, peer, kind, roster_item)
        return item if item is not None and item.action == "deny" else None

    # ------------------------------------------------------------------ hooks: filters

    @hookimpl
    def casper_filter_incoming(
        self, stanza: Stanza, recipient: JID, session: Session | None
    ) -> Verdict | None:
        sender = stanza.from_
        if sender is None or self._exempt(sender, recipient):
            return None
        presence = stanza.kind == "presence"
        if stanza.kind == "message":
            kind = MESSAGE
        elif stanza.kind == "iq":
            kind = IQ
        else:
            kind = PRESENCE_IN if stanza.type in AVAILABILITY else OTHER
        item = self._decide(session, recipient, sender, kind)
        if item is None:
            return None
        if presence:
            directed = session is not None and _directed_to_bare(session, sender)
            if directed and item.type != "jid" and stanza.type in (*AVAILABILITY, "error"):
                return None  # presence from where the user sent directed presence (rooms)
            return Drop("privacy list: presence")
        if stanza.kind == "iq":
            if stanza.type in ("get", "set"):
                return OfflineEquivalent("privacy list: iq")
            return Drop("privacy list: iq result")
        if stanza.type in ("groupchat", "error"):
            return Drop("privacy list: message")  # an error back would get a room to kick us
        if session is not None:
            return OfflineEquivalent("privacy list: message")  # other resources, then the default
        if self.config.blocked_message_reply == "drop":
            return Drop("privacy list: message")
        return Bounce("service-unavailable")

    def outbound_denial(self, stanza: Stanza, session: Session) -> PrivacyItem | None:
        """The item of the list in force that stops what ``session`` sends
        (``not-acceptable``), or ``None``. The blocking command asks it too."""
        to = stanza.to
        if to is None or self._exempt(to, session.account):
            return None
        availability = stanza.kind == "presence" and stanza.type in AVAILABILITY
        item = self._decide(session, session.account, to, PRESENCE_OUT if availability else OTHER)
        # directed presence is the user's own act: only an explicit jid item stops it
        if item is None or (availability and item.type != "jid"):
            return None
        return item

    @hookimpl
    def casper_filter_outgoing(self, stanza: Stanza, session: Session) -> Verdict | None:
        if self.outbound_denial(stanza, session) is not None:
            return Bounce("not-acceptable")
        to = stanza.to
        if (to is not None and self.config.block_chat_states and stanza.kind == "message"
                and _is_notification(stanza) and self._server.visibility.hidden(session, to)):  # fmt: skip
            return Drop("privacy list: chat notification while hidden")
        return None

    # ------------------------------------------------------------------ hooks: visibility

    def presence_denial(self, session: Session, observer: JID) -> PrivacyItem | None:
        """The item of ``session``'s list in force denying its presence to ``observer``,
        or ``None``. The blocking command asks it too."""
        if self._exempt(observer, session.account):
            return None
        return self._decide(session, session.account, observer, PRESENCE_OUT)

    @hookimpl
    def casper_presence_blocked(self, session: Session, observer: JID) -> bool:
        """A deny-everything ``jid`` item is a block, not invisibility: it hides presence
        even where the policy forbids hiding (only ``never_hidden_from`` overrides it)."""
        item = self.presence_denial(session, observer)
        return item is not None and is_block_item(item)

    @hookimpl
    def casper_hidden_from(self, session: Session, observer: JID) -> bool | None:
        # not asked about entities the session sent directed presence to: the core never
        # hides from them (an explicit jid deny withdraws that presence: see applied())
        return self.presence_denial(session, observer) is not None

    # ------------------------------------------------------------------ hooks: the rest

    @hookimpl
    def casper_serve(self, server: Server, nursery: Any) -> None:
        nursery.start_soon(self._refresh_rosters)

    @hookimpl
    def casper_session_bound(self, session: Session) -> AsyncCallable:
        return partial(self.store.track, session.account)

    @hookimpl
    def casper_session_ended(self, session: Session) -> None:
        if not self._server.router.sessions_of(session.account):
            self.store.forget(session.account)

    # ------------------------------------------------------------------ after a change

    async def applied(self, account: JID) -> None:
        """A list, active or default changed: who sees whom follows at once.

        The core's reconcile sends unavailable to those who saw a session and no longer
        may (presence-out newly denied: XEP-0016's MUST) and presence to those who now
        may; then each session is sent unavailable for contacts whose presence it may no
        longer receive (presence-in newly denied: the XEP's SHOULD), or their current
        presence when it may again.

        Directed presence is the user's explicit act, and the core never hides a session
        from its recipients; but a ``jid`` item denying presence-out to a recipient is
        just as explicit, so it withdraws that directed presence first (the recipient
        then gets unavailable, as XEP-0016 requires).
        """
        policy = self._server.policy
        for session in self._server.router.sessions_of(account):
            for target in list(session.directed_to):
                item = self._decide(session, account, target, PRESENCE_OUT)
                if (
                    item is not None
                    and item.type == "jid"
                    and policy.may_hide_from(account, target)
                ):
                    self._server.presence.withdraw_directed(session, target)
        await self._server.visibility_inputs_changed(account)
        for session in self._server.router.sessions_of(account):
            await self._reconcile_inbound(session)

    async def _reconcile_inbound(self, session: Session) -> None:
        """Contacts the session knows to be online (``session.heard``) whose presence it
        may no longer receive get sent as unavailable; those it may again, their current
        presence (asked of their account, which may live on another worker)."""
        state = session.plugin_state(NAME, SessionPrivacy)
        allowed_again: set[JID] = set()
        for contact in sorted(session.heard, key=str):
            probe = make_stanza("presence", from_=contact, to=session.jid)
            blocked = self.casper_filter_incoming(probe, session.account, session) is not None
            if blocked and contact not in state.blocked_in:
                state.blocked_in.add(contact)
                session.deliver_nowait(make_stanza("presence", from_=contact, to=session.jid,
                                                   type="unavailable"))  # fmt: skip
            elif not blocked and contact in state.blocked_in:
                state.blocked_in.discard(contact)
                allowed_again.add(contact.bare)
        state.blocked_in &= session.heard
        for account in sorted(allowed_again, key=str):  # one answer covers its resources
            await self._server.presence.send_current_presence(session, account)

    # ------------------------------------------------------------------ offline rosters

    def _request_refresh(self, account: JID) -> None:
        if account in self._refreshing:
            return
        try:
            self._refresh_send.send_nowait(account)
        except trio.WouldBlock:
            return  # the snapshot stays as it is until a later request gets through
        self._refreshing.add(account)

    async def _refresh_rosters(self) -> None:
        """Background task: reload offline accounts' roster snapshots on request."""
        async for account in self._refresh_receive:
            try:
                await self.store.refresh_roster(account)
            except Exception:
                log.exception("privacy lists: reloading the roster of %s failed", account)
            finally:
                self._refreshing.discard(account)
