"""The ``jabber:iq:privacy`` protocol: list management on the account's bare JID (XEP-0016 §2).

Only the account itself may manage its lists (anyone else: ``forbidden``).

get:
  - empty query: the names: ``<active/>`` (the requesting session's), ``<default/>`` (the
    account's), then every ``<list/>``;
  - one ``<list name/>``: that list with its items, ``item-not-found`` if unknown; more
    than one child: ``bad-request``.

set (exactly one child, else ``bad-request``):
  - ``<list name>items</list>``: create or replace the whole list (validated by
    :mod:`.model`: ``bad-request`` for a missing or invalid action/order/type/value or
    duplicate orders; ``item-not-found`` for a group not in the roster, as XEP-0016
    recommends; ``not-allowed`` beyond the configured limits);
  - ``<list name/>`` (no items): remove it; ``item-not-found`` if unknown;
  - ``<active name/>`` / ``<active/>``: set / decline the requesting session's active list;
  - ``<default name/>`` / ``<default/>``: set / decline the account's default list.

The administrator's invisibility policy (:mod:`casper.policy`): putting in force an
invisibility list, one with a deny item naming ``<presence-out/>`` (activating it, making
it the default, or editing a list in force into one), is refused with ``not-allowed`` for
an account that may not hide at all. Blocking lists (messages, IQs, inbound presence,
items without children) are unaffected. Either way the core's visibility decision applies
the policy (also ``never_hidden_from``) whatever a list says.

Conflicts (business rule 11): removing a list, or changing or declining the default,
while that list applies to *another* connected resource of the account (its active list,
or the default for a resource without one) answers ``conflict`` and changes nothing. The
sender's own use is no conflict: removing the sender's own active list leaves it on the
default.

Every edit and removal pushes ``<query><list name/></query>`` to all connected resources,
and so does a change of the default list made through the blocking command (XEP-0191,
:mod:`casper_plugins.blocking`, which edits the same store). Each change is applied
(presence reconciled) before the result is sent. Sets are serialized by the store's edit
lock, shared with the blocking command, so a conflict check and its change can't
interleave with another.

Registered (as ``privacy-lists.protocol``) only when the ``privacy-lists`` plugin is
enabled: the blocking command alone enforces through the same strategy without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol
from xml.etree.ElementTree import Element

from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.stanza import make_stanza

from .model import PRIVACY_NS, PrivacyList, check_name, list_element, parse_list

if TYPE_CHECKING:
    from casper.jid import JID
    from casper.server import Server
    from casper.session import Session

    from .store import PrivacyStore

QUERY = f"{{{PRIVACY_NS}}}query"
LIST = f"{{{PRIVACY_NS}}}list"
ACTIVE = f"{{{PRIVACY_NS}}}active"
DEFAULT = f"{{{PRIVACY_NS}}}default"


class Sessions(Protocol):
    """What the protocol needs to know about sessions; the strategy provides it."""

    def active_name(self, session: Session) -> str | None: ...

    def set_active(self, session: Session, name: str | None) -> None: ...

    def governing_name(self, session: Session) -> str | None: ...

    async def applied(self, account: JID) -> None:
        """A change took effect: bring presence in line with it."""
        ...


class PrivacyProtocol:
    """The IQ handlers; state lives in the store (lists) and the sessions (active)."""

    def __init__(self, server: Server, store: PrivacyStore, sessions: Sessions,
                 max_lists: int, max_items: int) -> None:  # fmt: skip
        self._server = server
        self._store = store
        self._sessions = sessions
        self._max_lists = max_lists
        self._max_items = max_items

    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return self.iq_handlers()

    @hookimpl
    def casper_disco_features(self, target: str) -> list[str]:
        return [PRIVACY_NS] if target == "server" else []

    def iq_handlers(self) -> list[IqHandler]:
        return [
            IqHandler("get", PRIVACY_NS, "query", self.get, target="account"),
            IqHandler("set", PRIVACY_NS, "query", self.set, target="account"),
        ]

    # ------------------------------------------------------------------ get

    async def get(self, request: IqRequest) -> Element:
        _require_self(request)
        children = list(request.payload)
        lists = await self._store.lists(request.target)
        query = Element(QUERY)
        if not children:
            active = (
                None if request.session is None else self._sessions.active_name(request.session)
            )
            if active is not None:
                query.append(Element(ACTIVE, {"name": active}))
            default = self._store.default_name(request.target)
            if default is not None:
                query.append(Element(DEFAULT, {"name": default}))
            query.extend(list_element(name, items=False) for name in sorted(lists))
            return query
        if len(children) > 1:
            raise StanzaError("bad-request", "retrieve one list at a time")
        if children[0].tag != LIST:
            raise StanzaError("bad-request", "a get carries nothing or one list")
        name = check_name(children[0].get("name"))
        plist = lists.get(name)
        if plist is None:
            raise StanzaError("item-not-found", f"no list named {name!r}")
        query.append(list_element(plist))
        return query

    # ------------------------------------------------------------------ set

    async def set(self, request: IqRequest) -> None:
        _require_self(request)
        children = list(request.payload)
        if len(children) != 1:
            raise StanzaError("bad-request", "a set carries exactly one list, active or default")
        child = children[0]
        handlers: dict[str, Callable[[IqRequest, Element], Awaitable[None]]] = {
            LIST: self._set_list,
            ACTIVE: self._set_active,
            DEFAULT: self._set_default,
        }
        handler = handlers.get(child.tag)
        if handler is None:
            raise StanzaError("bad-request", f"unexpected element {child.tag}")
        async with self._store.edit_lock:
            await handler(request, child)

    async def _set_list(self, request: IqRequest, element: Element) -> None:
        plist = parse_list(element)
        if not plist.items:
            await self._remove(request, plist.name)
            return
        account = request.target
        lists = await self._store.lists(account)
        if plist.name not in lists and len(lists) >= self._max_lists:
            raise StanzaError("not-allowed", f"at most {self._max_lists} privacy lists")
        if len(plist.items) > self._max_items:
            raise StanzaError("not-allowed", f"at most {self._max_items} items in a list")
        await self._check_groups(account, plist)
        sessions = self._server.router.sessions_of(account)
        in_use = self._store.default_name(account) == plist.name or any(
            self._sessions.active_name(s) == plist.name for s in sessions
        )
        if in_use:
            self._check_policy(account, plist)
        await self._store.put(account, plist, by=self)
        self.push(account, plist.name)
        await self._sessions.applied(account)

    async def _check_groups(self, account: JID, plist: PrivacyList) -> None:
        """XEP-0016: a group not in the user's roster SHOULD be ``item-not-found``."""
        if not plist.groups:
            return
        roster = await self._server.rosters.get(account)
        known = {group for item in roster.values() for group in item.groups}
        missing = sorted(plist.groups - known)
        if missing:
            raise StanzaError("item-not-found", f"no roster group {missing[0]!r}")

    async def _remove(self, request: IqRequest, name: str) -> None:
        account = request.target
        if name not in await self._store.lists(account):
            raise StanzaError("item-not-found", f"no list named {name!r}")
        if self._in_use_elsewhere(request, lambda s: self._sessions.governing_name(s) == name):
            raise StanzaError("conflict", "the list applies to another connected resource")
        await self._store.remove(account, name, by=self)
        if request.session is not None and self._sessions.active_name(request.session) == name:
            self._sessions.set_active(request.session, None)
        self.push(account, name)
        await self._sessions.applied(account)

    async def _set_active(self, request: IqRequest, element: Element) -> None:
        session = request.session
        if session is None:
            raise StanzaError("bad-request", "an active list belongs to a connected resource")
        name = element.get("name")
        if name is not None:
            plist = (await self._store.lists(request.target)).get(check_name(name))
            if plist is None:
                raise StanzaError("item-not-found", f"no list named {name!r}")
            self._check_policy(request.target, plist)
        self._sessions.set_active(session, name)
        await self._sessions.applied(request.target)

    async def _set_default(self, request: IqRequest, element: Element) -> None:
        account = request.target
        name = element.get("name")
        if name is not None:
            plist = (await self._store.lists(account)).get(check_name(name))
            if plist is None:
                raise StanzaError("item-not-found", f"no list named {name!r}")
            self._check_policy(account, plist)
        current = self._store.default_name(account)
        if name == current:
            return
        if current is not None and self._in_use_elsewhere(
            request, lambda s: self._sessions.active_name(s) is None
        ):
            raise StanzaError("conflict", "the default list applies to another connected resource")
        await self._store.set_default(account, name, by=self)
        await self._sessions.applied(account)

    # ------------------------------------------------------------------ helpers

    def _check_policy(self, account: JID, plist: PrivacyList) -> None:
        """A list that would hide the user, put in force where the administrator's policy
        forbids invisibility: refused with ``not-allowed`` (the core would ignore it)."""
        if plist.hides and not self._server.policy.may_hide(account):
            raise StanzaError("not-allowed", "invisibility is not permitted for this account")

    def _in_use_elsewhere(self, request: IqRequest, uses: Callable[[Session], bool]) -> bool:
        others = [s for s in self._server.router.sessions_of(request.target)
                  if s is not request.session]  # fmt: skip
        return any(uses(s) for s in others)

    def default_changed(self, account: JID, before: PrivacyList | None,
                        after: PrivacyList | None, by: object) -> None:  # fmt: skip
        """Store watcher: a default list edited by another protocol (the blocking
        command) is pushed like an edit made here."""
        changed = after if after is not None else before
        if by is not self and changed is not None:
            self.push(account, changed.name)

    def push(self, account: JID, name: str) -> None:
        """Privacy list push: the list's name only, to every connected resource."""
        for session in self._server.router.sessions_of(account):
            query = Element(QUERY)
            query.append(list_element(name, items=False))
            push = make_stanza("iq", to=session.jid, type="set", id=self._server.new_id(),
                               children=[query])  # fmt: skip
            session.deliver_nowait(push)


def _require_self(request: IqRequest) -> None:
    if not request.from_self:
        raise StanzaError("forbidden", "only the account itself manages its privacy lists")
