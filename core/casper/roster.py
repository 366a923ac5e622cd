"""Rosters (RFC 6121 §2): an in-memory cache over storage, the roster IQ and pushes.

The cache holds the rosters of accounts with sessions (and of accounts touched while
offline, until evicted), so the presence hot path never waits on storage. Writes go
through to storage at once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from .errors import StanzaError
from .iq import IqHandler, IqRequest
from .jid import JID, InvalidJID
from .plugins import call_safely
from .stanza import make_stanza, qname
from .storage.base import RosterItem

if TYPE_CHECKING:
    from .server import Server
    from .session import Session

ROSTER_NS = "jabber:iq:roster"
MAX_ROSTER_ITEMS = 1000
MAX_NAME = 1023
MAX_GROUPS = 32  # groups per item
MAX_GROUP_CHARS = 4096  # all of an item's group names together: a roster stays a few MB


class Rosters:
    """Roster cache, persistence and pushes for one server."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._cache: dict[JID, dict[str, RosterItem]] = {}

    async def get(self, account: JID) -> dict[str, RosterItem]:
        """The account's roster keyed by contact bare-JID string (cached)."""
        roster = self._cache.get(account)
        if roster is None:
            items = await self._server.db(self._server.storage.get_roster, str(account))
            roster = {i.jid: i for i in items}
            if self._server.router.sessions_of(account):  # only connected accounts stay cached
                roster = self._cache.setdefault(account, roster)
        return roster

    def cached(self, account: JID) -> dict[str, RosterItem] | None:
        """The cached roster, for synchronous readers (filters); ``None`` if not loaded."""
        return self._cache.get(account)

    def evict(self, account: JID) -> None:
        self._cache.pop(account, None)

    async def put(self, account: JID, item: RosterItem, *, push: bool = True) -> None:
        roster = await self.get(account)
        roster[item.jid] = item
        await self._server.db(self._server.storage.put_roster_item, str(account), item)
        self._notify(account, item.jid, item)
        if push:
            self.push(account, item)

    async def remove(self, account: JID, contact: str) -> None:
        roster = await self.get(account)
        item = roster.pop(contact, None)
        await self._server.db(self._server.storage.delete_roster_item, str(account), contact)
        self._notify(account, contact, None)
        if item is not None:
            self.push(account, item, removed=True)

    def _notify(self, account: JID, contact: str, item: RosterItem | None) -> None:
        call_safely(self._server.pm, "casper_roster_changed", None,
                    account=account, contact=contact, item=item)  # fmt: skip

    def push(self, account: JID, item: RosterItem, *, removed: bool = False) -> None:
        """Roster push to every interested resource (RFC 6121 §2.1.6)."""
        for session in self._server.router.sessions_of(account):
            if self._server.wants_roster_push(session):
                query = Element(qname(ROSTER_NS, "query"))
                query.append(item_element(item, removed=removed))
                push = make_stanza("iq", to=session.jid, type="set",
                                   id=self._server.new_id(), children=[query])  # fmt: skip
                session.deliver_nowait(push)

    # ------------------------------------------------------------ the roster IQ

    def iq_handlers(self) -> list[IqHandler]:
        return [
            IqHandler("get", ROSTER_NS, "query", self._get, target="account"),
            IqHandler("set", ROSTER_NS, "query", self._set, target="account"),
        ]

    async def _get(self, request: IqRequest) -> Element:
        if not request.from_self:
            raise StanzaError("forbidden")
        if request.session is not None:
            request.session.requested_roster = True
        roster = await self.get(request.target)
        query = Element(qname(ROSTER_NS, "query"))
        for item in roster.values():
            query.append(item_element(item))
        return query

    async def _set(self, request: IqRequest) -> None:
        if not request.from_self:
            raise StanzaError("forbidden")
        items = list(request.payload)
        if len(items) != 1 or items[0].tag != qname(ROSTER_NS, "item"):
            raise StanzaError("bad-request", "a roster set carries exactly one item")
        element = items[0]
        contact = _contact(element)
        account = request.target
        if contact == account:
            raise StanzaError("not-allowed", "an account cannot be in its own roster")
        if element.get("subscription") == "remove":
            await self._remove(account, contact, request.session)
            return
        await self._update(account, contact, element)

    async def _update(self, account: JID, contact: JID, element: Element) -> None:
        roster = await self.get(account)
        name = element.get("name") or None
        if name is not None and len(name) > MAX_NAME:
            raise StanzaError("not-acceptable", "name too long")
        groups = [g.text or "" for g in element.findall(qname(ROSTER_NS, "group"))]
        if any(not g.strip() or len(g) > MAX_NAME for g in groups):
            raise StanzaError("not-acceptable", "empty or overlong group name")
        if len(set(groups)) != len(groups):
            raise StanzaError("bad-request", "duplicate group")
        if len(groups) > MAX_GROUPS or sum(map(len, groups)) > MAX_GROUP_CHARS:
            raise StanzaError(
                "not-acceptable", f"at most {MAX_GROUPS} groups of {MAX_GROUP_CHARS} characters"
            )
        current = roster.get(str(contact))
        if current is None and len(roster) >= MAX_ROSTER_ITEMS:
            raise StanzaError("not-allowed", "roster is full")
        base = current or RosterItem(jid=str(contact))
        await self.put(account, replace(base, name=name, groups=tuple(groups)))
        await self._server.visibility_inputs_changed(account)

    async def _remove(self, account: JID, contact: JID, session: Session | None) -> None:
        roster = await self.get(account)
        item = roster.get(str(contact))
        if item is None:
            raise StanzaError("item-not-found")
        await self._server.presence.subscriptions.cancel_for_removal(account, contact, item)
        await self.remove(account, str(contact))
        await self._server.visibility_inputs_changed(account)


def item_element(item: RosterItem, *, removed: bool = False) -> Element:
    """``<item jid subscription [name] [ask]><group/>...</item>``; ``removed`` pushes
    ``subscription='remove'`` (RFC 6121 §2.5.2)."""
    attrs = {"jid": item.jid, "subscription": "remove" if removed else item.subscription}
    if item.name:
        attrs["name"] = item.name
    if item.ask and not removed:
        attrs["ask"] = "subscribe"
    if item.approved and not removed:
        attrs["approved"] = "true"  # pre-approved (RFC 6121 §3.4)
    element = Element(qname(ROSTER_NS, "item"), attrs)
    for group in item.groups:
        SubElement(element, qname(ROSTER_NS, "group")).text = group
    return element


def _contact(element: Element) -> JID:
    try:
        jid = JID.parse(element.get("jid") or "")
    except InvalidJID:
        raise StanzaError("bad-request", "invalid or missing jid") from None
    if jid.resource is not None:
        raise StanzaError("bad-request", "roster items are bare JIDs")
    return jid
