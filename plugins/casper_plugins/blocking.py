"""Blocking command (XEP-0191, ``urn:xmpp:blocking``): a view of the default privacy list.

Plugin ``blocking``. It stores nothing of its own: as XEP-0191 §5 requires of a server
offering both protocols, the blocklist lives in the privacy-lists store, so blocking and
``jabber:iq:privacy`` always agree. It works with or without the ``privacy-lists`` plugin:
both use one engine per server (:func:`casper_plugins.privacy_lists.shared_strategy`: the
store, its caches and the enforcing strategy); without ``privacy-lists`` the strategy
enforces the default lists and no ``jabber:iq:privacy`` protocol is offered.

The blocklist is the ``jid`` items with action ``deny`` and no stanza-kind child (they
block everything) of the account's **default** privacy list, in list order:

- ``<blocklist/>`` get: those JIDs. The requesting resource now gets blocklist pushes.
- ``<block>`` with one or more items: each JID not yet blocked becomes such an item at the
  front of the default list (before every other item, so it takes effect whatever the
  list says; existing items keep their order and, where the orders below the first item
  leave no room, are renumbered). An account without a default list gets one, named
  ``blocklist`` (or ``blocklist-2``... if a list already has that name), made the default.
  No item: ``bad-request``; a child that is not ``<item/>``: ``bad-request``; a missing or
  invalid ``jid``: ``jid-malformed``; beyond ``max_items``/``max_lists`` of
  ``[plugin.privacy-lists]``: ``not-allowed``. JIDs are compared prepared and match as
  XEP-0016 says (``user@domain``, ``user@domain/resource``, ``domain/resource``, ``domain``
  and its subdomains).
- ``<unblock>`` with items: those items are removed (JIDs not blocked are ignored);
  empty ``<unblock/>``: every such item is removed (unblock all). The default list stays,
  possibly empty; every other item of it is kept.
- Only the account itself may do any of this (anyone else: ``forbidden``).

Pushes (XEP-0191 §3.3-3.5): only to the account's resources that have requested the
blocklist, an IQ set carrying ``<block>`` or ``<unblock>`` with the items of the command
(empty ``<unblock/>`` for unblock all). A change of the default list through
``jabber:iq:privacy`` (an edit adding or removing such items, another default, none) is
pushed to them as the items it blocked and unblocked; a blocking command is pushed to
``jabber:iq:privacy`` clients as a privacy list push of the default list's name.

Enforcement is the privacy strategy's, for the list in force (a session's active privacy
list if it set one, else the default list: XEP-0191 §5 item 5):

- from a blocked JID, as for an offline account: presence (also subscriptions and probes)
  dropped without an answer, except that the core answers a local client's probe itself
  with exactly the offline answer (unavailable from the bare JID); IQ get/set
  ``service-unavailable``, other IQs dropped; messages bounced ``service-unavailable``
  (or dropped, ``blocked_message_reply``), never stored offline; groupchat messages
  dropped silently;
- to a blocked JID: ``not-acceptable`` with ``<blocked xmlns='urn:xmpp:blocking:errors'/>``;
- presence: a block is applied at once: the blocked entity gets unavailable from every
  resource it saw (directed presence it was sent included), and the user gets unavailable
  for the blocked entity's resources; an unblock sends the current presence both ways,
  where the subscription allows it. The core's visibility decision does this, asked
  through the shared strategy's ``casper_presence_blocked`` and ``casper_hidden_from``.
- the account's own resources and the server's domain are never blocked.

The administrator's invisibility policy: blocking is communication blocking, not
invisibility, so it is never refused ``not-allowed``, and a block hides the user's
presence from the blocked entity even where the policy forbids the account to hide
(``casper_presence_blocked``, which the core's visibility decision asks before the
policy's ``enabled``/``allowed``). Only ``never_hidden_from`` wins over a block: such an
observer keeps seeing the user's presence (and directed presence sent to it) while its
stanzas are still blocked both ways.

What it does not do: a block of a full JID (``user@domain/resource``) does not hide
broadcast presence, which goes to the contact's bare JID; subscriptions are not cancelled
("polite blocking", XEP-0191 §4).

Hooks: ``casper_configure``, ``casper_iq_handlers`` (on the account), ``casper_disco_features``
(``urn:xmpp:blocking`` for the server), ``casper_filter_outgoing`` (``tryfirst``: the
``<blocked/>`` condition); the enforcement hooks, ``casper_presence_blocked`` included,
are the shared privacy strategy's.

Config keys: none of its own. ``[plugin.privacy-lists]`` (``blocked_message_reply``,
``block_chat_states``, ``max_lists``, ``max_items``) configures the shared engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, SubElement

from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.jid import JID, InvalidJID
from casper.stanza import Stanza, make_stanza
from casper.verdicts import Bounce, Verdict

from casper_plugins.privacy_lists import PrivacyLists, shared_strategy
from casper_plugins.privacy_lists.model import PrivacyItem, PrivacyList, is_block_item

CLUSTER_READY = True  # looks only at the sessions of the account it acts for

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session

NAME = "blocking"
NS = "urn:xmpp:blocking"
ERRORS_NS = "urn:xmpp:blocking:errors"
BLOCKED = (ERRORS_NS, "blocked")
LIST_NAME = "blocklist"
ITEM = f"{{{NS}}}item"


# ------------------------------------------------------------------ the view (sans-IO)


def blocklist(plist: PrivacyList | None) -> list[str]:
    """The blocked JIDs (prepared) of a default list, in list order."""
    if plist is None:
        return []
    return list(dict.fromkeys(str(i.value) for i in plist.items if is_block_item(i)))


def with_blocked(plist: PrivacyList, jids: Iterable[str]) -> PrivacyList:
    """``plist`` with a block item in front for each of ``jids`` not yet blocked
    (``plist`` itself when nothing changes)."""
    present = set(blocklist(plist))
    new = [jid for jid in dict.fromkeys(jids) if jid not in present]
    if not new:
        return plist
    count = len(new)
    first = plist.items[0].order if plist.items else count
    rest = plist.items
    if first >= count:  # room below the first item: nothing else moves
        first -= count
    else:
        first = 0
        rest = tuple(replace(item, order=count + i) for i, item in enumerate(plist.items))
    added = tuple(PrivacyItem("deny", first + i, "jid", jid) for i, jid in enumerate(new))
    return PrivacyList(plist.name, added + rest)


def without_blocked(plist: PrivacyList, jids: Collection[str] | None) -> PrivacyList:
    """``plist`` without the block items for ``jids`` (``None``: all of them)."""
    keep = tuple(
        item for item in plist.items
        if not (is_block_item(item) and (jids is None or item.value in jids))
    )  # fmt: skip
    return plist if len(keep) == len(plist.items) else PrivacyList(plist.name, keep)


def parse_jids(element: Element) -> list[str]:
    """The prepared JIDs of ``<item jid/>`` children, in order, without repeats."""
    jids = []
    for child in element:
        if child.tag != ITEM:
            raise StanzaError("bad-request", f"unexpected element {child.tag}")
        try:
            jids.append(str(JID.parse(child.get("jid") or "")))
        except InvalidJID as exc:
            raise StanzaError("jid-malformed", f"invalid JID {child.get('jid')!r}: {exc}") from None
    return list(dict.fromkeys(jids))


def command(name: str, jids: Iterable[str]) -> Element:
    """``<blocklist/>``, ``<block/>`` or ``<unblock/>`` with an item per JID."""
    element = Element(f"{{{NS}}}{name}")
    for jid in jids:
        SubElement(element, ITEM, {"jid": jid})
    return element


def _free_name(taken: Collection[str]) -> str:
    name, n = LIST_NAME, 1
    while name in taken:
        n += 1
        name = f"{LIST_NAME}-{n}"
    return name


def _require_self(request: IqRequest) -> None:
    if not request.from_self:
        raise StanzaError("forbidden", "only the account itself manages its blocklist")


# ------------------------------------------------------------------ the plugin


@dataclass
class BlockingSession:
    """Per-session state: whether the resource requested the blocklist (gets pushes)."""

    requested: bool = False


class Blocking:
    """The IQ handlers and the ``<blocked/>`` condition, over the shared privacy engine."""

    def __init__(self, server: Server, engine: PrivacyLists) -> None:
        self._server = server
        self._engine = engine
        self._store = engine.store
        self._store.watch_default(self._default_changed)

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return [
            IqHandler("get", NS, "blocklist", self.get, target="account"),
            IqHandler("set", NS, "block", self.block, target="account"),
            IqHandler("set", NS, "unblock", self.unblock, target="account"),
        ]

    @hookimpl
    def casper_disco_features(self, target: str) -> list[str]:
        return [NS] if target == "server" else []

    @hookimpl(tryfirst=True)
    def casper_filter_outgoing(self, stanza: Stanza, session: Session) -> Verdict | None:
        """To a blocked JID: ``not-acceptable`` with ``<blocked/>`` (XEP-0191 §3.3). The
        privacy strategy answers other denials, without the condition."""
        item = self._engine.outbound_denial(stanza, session)
        if item is not None and is_block_item(item):
            return Bounce("not-acceptable", type="cancel", app_condition=BLOCKED)
        return None

    # ------------------------------------------------------------------ IQ handlers

    async def get(self, request: IqRequest) -> Element:
        _require_self(request)
        if request.session is not None:
            request.session.plugin_state(NAME, BlockingSession).requested = True
        return command("blocklist", blocklist(self._store.default(request.target)))

    async def block(self, request: IqRequest) -> None:
        _require_self(request)
        jids = parse_jids(request.payload)
        if not jids:
            raise StanzaError("bad-request", "a block names at least one JID")
        await self._edit(request.target, lambda plist: with_blocked(plist, jids))
        self._push(request.target, command("block", jids))

    async def unblock(self, request: IqRequest) -> None:
        _require_self(request)
        jids = parse_jids(request.payload)
        unblocked = set(jids) if jids else None  # an empty unblock unblocks everyone
        await self._edit(request.target, lambda plist: without_blocked(plist, unblocked))
        self._push(request.target, command("unblock", jids))

    # ------------------------------------------------------------------ changes

    async def _edit(self, account: JID, change: Callable[[PrivacyList], PrivacyList]) -> None:
        """Change the default list (creating one if needed) and apply it at once."""
        store = self._store
        config = self._engine.config
        async with store.edit_lock:
            lists = await store.lists(account)
            current = store.default(account)
            base = current if current is not None else PrivacyList(_free_name(lists), ())
            edited = change(base)
            if edited is base:
                return  # nothing to change (and no empty default list to create)
            if len(edited.items) > max(config.max_items, len(base.items)):
                raise StanzaError("not-allowed", f"at most {config.max_items} items in a list")
            if current is None and len(lists) >= config.max_lists:
                raise StanzaError("not-allowed", f"at most {config.max_lists} privacy lists")
            await store.put(account, edited, by=self)
            if current is None:
                await store.set_default(account, edited.name, by=self)
            self._withdraw_directed(account)
            await self._engine.applied(account)

    def _blocks(self, session: Session, observer: JID) -> bool:
        """Whether the list in force for ``session`` blocks ``observer`` entirely."""
        item = self._engine.presence_denial(session, observer)
        return item is not None and is_block_item(item)

    def _withdraw_directed(self, account: JID) -> None:
        """Directed presence to a now blocked entity is withdrawn (it gets unavailable),
        whatever the invisibility policy, unless it is ``never_hidden_from``."""
        always = self._server.policy.never_hidden_from
        for session in self._server.router.sessions_of(account):
            for target in list(session.directed_to):
                if str(target.bare) not in always and self._blocks(session, target):
                    self._server.presence.withdraw_directed(session, target)

    def _default_changed(self, account: JID, before: PrivacyList | None,
                         after: PrivacyList | None, by: object) -> None:  # fmt: skip
        """Store watcher: a default list changed through ``jabber:iq:privacy``; push what
        that blocked and unblocked."""
        if by is self:
            return  # our own commands push themselves
        old, new = blocklist(before), blocklist(after)
        added = [jid for jid in new if jid not in old]
        removed = [jid for jid in old if jid not in new]
        if added:
            self._push(account, command("block", added))
        if removed:
            self._push(account, command("unblock", removed))

    def _push(self, account: JID, payload: Element) -> None:
        """Blocklist push to the account's resources that requested the blocklist."""
        for session in self._server.router.sessions_of(account):
            state: BlockingSession | None = session.peek_plugin_state(NAME)
            if state is None or not state.requested:
                continue
            push = make_stanza("iq", to=session.jid, type="set", id=self._server.new_id(),
                               children=[payload])  # fmt: skip
            session.deliver_nowait(push)


@hookimpl
def casper_configure(server: Server) -> None:
    server.pm.register(Blocking(server, shared_strategy(server)), f"{NAME}.state")
