"""Privacy lists as values: items, lists, their XML and storage forms, and the match rule.

Sans-IO: no trio, no server. Everything here is synchronous and pure, so it is tested
table-driven (``tests/plugins/privacy_lists/test_privacy_model.py``).

Validation errors are :class:`casper.errors.StanzaError` carrying the protocol answer
(``bad-request``), like h11's ``error_status_hint``: the IQ handler only passes them on.

Matching (XEP-0016 §2.1, §2.2):

- items are processed in ascending ``order``; the first item that matches the contact
  *and* covers the stanza kind decides; no match means ``allow``;
- an item with no child covers every kind (and stanzas no child names: subscription
  presence, probes, outbound messages and IQs); with children, only the kinds named;
- ``jid`` items have four forms, compared on prepared (case-folded) JIDs:
  ``user@domain/resource`` only that full JID; ``user@domain`` any resource of it;
  ``domain/resource`` only that full JID of the domain; ``domain`` the domain itself,
  anything at it (``user@domain``, ``domain/resource``) and any address at a subdomain
  (``conference.domain``), as the XEP says (IP-literal domains match only themselves);
- ``group`` items match contacts in that roster group;
- ``subscription`` items match the contact's roster subscription, where ``none`` also
  covers entities not in the roster at all;
- with the roster unknown (:data:`UNKNOWN`), a roster-dependent item is assumed to match
  when it denies and not to when it allows: the most restrictive answer (fail closed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal
from xml.etree.ElementTree import Element, SubElement

from casper.errors import StanzaError
from casper.jid import JID, InvalidJID
from casper.storage.base import RosterItem

from .compiled import UNKNOWN, CompiledList, RosterLookup

PRIVACY_NS = "jabber:iq:privacy"
MESSAGE = "message"
IQ = "iq"
PRESENCE_IN = "presence-in"
PRESENCE_OUT = "presence-out"
KINDS = (MESSAGE, IQ, PRESENCE_IN, PRESENCE_OUT)
OTHER = "other"
"""Stanzas that no child element names; only items without children cover them."""
TYPES = ("jid", "group", "subscription")
SUBSCRIPTIONS = ("both", "to", "from", "none")
ACTIONS = ("allow", "deny")
MAX_ORDER = 2**32 - 1  # xs:unsignedInt
MAX_NAME = 1023
_DIGITS = re.compile(r"[0-9]{1,10}")

Action = Literal["allow", "deny"]


def _tag(name: str) -> str:
    return f"{{{PRIVACY_NS}}}{name}"


def _bad(text: str) -> StanzaError:
    return StanzaError("bad-request", text)


# ------------------------------------------------------------------ values


@dataclass(frozen=True)
class PrivacyItem:
    """One rule. ``value`` is stored prepared (a JID in canonical form).

    :raises StanzaError: ``bad-request`` when an attribute is missing or invalid.
    """

    action: str
    order: int
    type: str | None = None
    value: str | None = None
    kinds: frozenset[str] = frozenset()
    jid: JID | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise _bad("an item's action must be allow or deny")
        if isinstance(self.order, bool) or not isinstance(self.order, int):
            raise _bad("an item's order must be an integer")
        if not 0 <= self.order <= MAX_ORDER:
            raise _bad("an item's order must be a non-negative integer")
        if not self.kinds <= set(KINDS):
            raise _bad(f"unknown stanza kind in {sorted(self.kinds)}")
        if self.type is None:
            object.__setattr__(self, "value", None)  # a fall-through item has no value
            return
        if self.type not in TYPES:
            raise _bad("an item's type must be jid, group or subscription")
        if not self.value:
            raise _bad(f"a {self.type} item needs a value")
        if self.type == "jid":
            try:
                jid = JID.parse(self.value)
            except InvalidJID:
                raise _bad(f"invalid JID {self.value!r}") from None
            object.__setattr__(self, "jid", jid)
            object.__setattr__(self, "value", str(jid))
        elif self.type == "subscription" and self.value not in SUBSCRIPTIONS:
            raise _bad("a subscription item's value must be both, to, from or none")
        elif self.type == "group" and len(self.value) > MAX_NAME:
            raise _bad("group name too long")

    def covers(self, kind: str) -> bool:
        """Whether this item applies to stanzas of ``kind`` (no child: every kind)."""
        return not self.kinds or kind in self.kinds

    @property
    def roster_dependent(self) -> bool:
        return self.type in ("group", "subscription")


@dataclass(frozen=True)
class PrivacyList:
    """A named list; ``items`` are kept sorted by ``order``, which is unique.

    :raises StanzaError: ``bad-request`` for an empty or overlong name or duplicate orders.
    """

    name: str
    items: tuple[PrivacyItem, ...]

    def __post_init__(self) -> None:
        check_name(self.name)
        orders = [item.order for item in self.items]
        if len(set(orders)) != len(orders):
            raise _bad("item orders must be unique within a list")
        object.__setattr__(self, "items", tuple(sorted(self.items, key=lambda i: i.order)))

    @cached_property
    def roster_dependent(self) -> bool:
        """Whether deciding needs the roster (a group or subscription item)."""
        return any(item.roster_dependent for item in self.items)

    @cached_property
    def hides(self) -> bool:
        """Whether an item denies ``<presence-out/>`` by name: an invisibility list
        (XEP-0126), as opposed to blocking all communication (an item without children)."""
        return any(item.action == "deny" and PRESENCE_OUT in item.kinds for item in self.items)

    @cached_property
    def compiled(self) -> CompiledList:
        """The items indexed for matching, built on first use (the list is immutable)."""
        return CompiledList(self.items, KINDS)

    @cached_property
    def groups(self) -> frozenset[str]:
        return frozenset(item.value for item in self.items if item.type == "group" and item.value)


def check_name(name: str | None) -> str:
    """Validate a list name from the wire; return it."""
    if not name:
        raise _bad("a list needs a non-empty name")
    if len(name) > MAX_NAME:
        raise _bad("list name too long")
    return name


# ------------------------------------------------------------------ XML


def parse_item(element: Element) -> PrivacyItem:
    """``<item action order [type value]>[<message/>...]</item>`` → :class:`PrivacyItem`."""
    if element.tag != _tag("item"):
        raise _bad(f"unexpected element {element.tag} in a list")
    order_text = element.get("order")
    if order_text is None or not _DIGITS.fullmatch(order_text.strip()):
        raise _bad("an item's order must be a non-negative integer")
    kinds = set()
    for child in element:
        name = child.tag.removeprefix(f"{{{PRIVACY_NS}}}")
        if name not in KINDS:
            raise _bad(f"unknown stanza kind {child.tag}")
        kinds.add(name)
    return PrivacyItem(
        action=element.get("action", ""),
        order=int(order_text),
        type=element.get("type"),
        value=element.get("value"),
        kinds=frozenset(kinds),
    )


def parse_list(element: Element) -> PrivacyList:
    """``<list name>items</list>`` → :class:`PrivacyList` (may be empty: a removal)."""
    if element.tag != _tag("list"):
        raise _bad(f"expected a list, got {element.tag}")
    return PrivacyList(element.get("name", ""), tuple(parse_item(child) for child in element))


def item_element(item: PrivacyItem) -> Element:
    attrs = {"action": item.action, "order": str(item.order)}
    if item.type is not None and item.value is not None:
        attrs.update(type=item.type, value=item.value)
    element = Element(_tag("item"), attrs)
    for kind in KINDS:  # schema order is free; a fixed order keeps answers stable
        if kind in item.kinds:
            SubElement(element, _tag(kind))
    return element


def list_element(plist: PrivacyList | str, *, items: bool = True) -> Element:
    """``<list name='X'>`` with its items, or empty (names, pushes) for a bare name."""
    name = plist if isinstance(plist, str) else plist.name
    element = Element(_tag("list"), {"name": name})
    if items and isinstance(plist, PrivacyList):
        element.extend(item_element(item) for item in plist.items)
    return element


# ------------------------------------------------------------------ storage form


def dump_list(plist: PrivacyList) -> str:
    """Serialize for the plugin key-value store (JSON)."""
    rows = [
        {"action": i.action, "order": i.order, "type": i.type, "value": i.value,
         "kinds": sorted(i.kinds)}
        for i in plist.items
    ]  # fmt: skip
    return json.dumps(rows)


def load_list(name: str, text: str) -> PrivacyList:
    """Inverse of :func:`dump_list`; raises ``ValueError``/``StanzaError`` if corrupt."""
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise TypeError("stored privacy list is not a JSON array")
    return PrivacyList(name, tuple(_load_item(row) for row in rows))


def _load_item(row: Mapping[str, object]) -> PrivacyItem:
    kinds = row.get("kinds") or []
    assert isinstance(kinds, list)
    return PrivacyItem(
        action=str(row["action"]),
        order=row["order"],  # type: ignore[arg-type]
        type=row.get("type"),  # type: ignore[arg-type]
        value=row.get("value"),  # type: ignore[arg-type]
        kinds=frozenset(str(k) for k in kinds),
    )


# ------------------------------------------------------------------ matching


def match(
    plist: PrivacyList, contact: JID, kind: str, roster_item: RosterLookup = None
) -> PrivacyItem | None:
    """The item that decides for ``contact`` and ``kind``, or ``None`` (no match).

    Evaluated on the list's compiled form (:mod:`.compiled`): a few dict lookups,
    whatever the list's length.

    :param plist: the list in force.
    :param contact: the other party (sender inbound, recipient outbound), prepared.
    :param kind: one of :data:`KINDS` or :data:`OTHER`.
    :param roster_item: the contact's item in the user's roster, ``None`` if not in it,
        :data:`UNKNOWN` if the roster is not available (restrictive answer).
    """
    return plist.compiled.match(contact, kind, roster_item)


def decide(
    plist: PrivacyList | None, contact: JID, kind: str, roster_item: RosterLookup = None
) -> Action:
    """``'allow'`` or ``'deny'``: first match in ascending order; no list or no match allows."""
    if plist is None:
        return "allow"
    item = match(plist, contact, kind, roster_item)
    return "deny" if item is not None and item.action == "deny" else "allow"


def lookup(roster: Mapping[str, RosterItem] | None, contact: JID) -> RosterLookup:
    """The contact's roster item from a roster keyed by bare JID (``UNKNOWN`` if no roster)."""
    if roster is None:
        return UNKNOWN
    return roster.get(str(contact.bare))


def is_block_item(item: PrivacyItem) -> bool:
    """A block: a ``jid`` item denying every kind of stanza (what XEP-0191 stores)."""
    return item.type == "jid" and item.action == "deny" and not item.kinds
