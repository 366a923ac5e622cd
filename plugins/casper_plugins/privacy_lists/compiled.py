"""A privacy list compiled for matching: a few dict lookups per decision, whatever its length.

Sans-IO and pure, like :mod:`.model`. XEP-0016's rule is "ascending order, first match
wins": the deciding item is the *lowest-order* item among all items that match the
contact and cover the stanza kind. So, per kind, each way an item can match becomes an
index holding, per key, the lowest-order item with that key; a decision looks up the
contact's few keys and keeps the lowest order among the hits:

- ``user@domain/resource`` and ``domain/resource`` items: the contact's JID itself;
- ``user@domain`` items: the contact's bare JID;
- ``domain`` items: the contact's domain, and (neither being an IP literal) each parent
  domain of it (``conference.example.com`` → ``example.com``, ``com``);
- ``group`` items: each of the contact's roster groups;
- ``subscription`` items: the contact's subscription (``none`` when not in the roster);
- with the roster unknown, the lowest-order group or subscription item that denies (the
  restrictive reading of :mod:`.model`);
- the lowest-order item without a type (fall-through).

The cost depends on the contact (its domain's labels, its groups), never on the list's
length. The plain linear reading of the same rules is kept as the reference in
``tests/plugins/privacy_lists/test_privacy_compiled.py``, which checks both agree.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeAlias

from casper.jid import JID
from casper.storage.base import RosterItem

if TYPE_CHECKING:
    from .model import PrivacyItem


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
"""The contact's roster item could not be looked up (roster not loaded)."""

RosterLookup: TypeAlias = "RosterItem | None | _Unknown"


def is_ip(domain: str) -> bool:
    """Whether a prepared domainpart is an IP literal (IPv6 in brackets, or IPv4)."""
    if domain.startswith("["):
        return True
    if not domain[-1:].isdigit():
        return False  # every IPv4 address ends with a digit: skip the parse
    try:
        ipaddress.IPv4Address(domain)
    except ValueError:
        return False
    return True


def _lower(best: PrivacyItem | None, hit: PrivacyItem | None) -> PrivacyItem | None:
    if hit is None:
        return best
    if best is None or hit.order < best.order:
        return hit
    return best


@dataclass(frozen=True, slots=True)
class KindIndex:
    """The items covering one stanza kind, indexed by what they match on."""

    exact: dict[JID, PrivacyItem]
    bare: dict[JID, PrivacyItem]
    domain: dict[str, PrivacyItem]
    parent_domain: dict[str, PrivacyItem]
    group: dict[str, PrivacyItem]
    subscription: dict[str, PrivacyItem]
    roster_deny: PrivacyItem | None
    fall_through: PrivacyItem | None

    def match(self, contact: JID, roster_item: RosterLookup) -> PrivacyItem | None:
        """The lowest-order item matching ``contact`` (prepared), or ``None``."""
        best = self.fall_through
        if self.exact and contact.resource is not None:
            best = _lower(best, self.exact.get(contact))
        if self.bare and contact.local is not None:
            best = _lower(best, self.bare.get(contact.bare))
        if self.domain:
            best = _lower(best, self.domain.get(contact.domain))
        if self.parent_domain:
            best = _lower(best, self._parent_domain_match(contact.domain))
        if self.group or self.subscription:
            best = _lower(best, self._roster_match(roster_item))
        return best

    def _parent_domain_match(self, domain: str) -> PrivacyItem | None:
        if is_ip(domain):
            return None  # IP literals have no subdomains
        best = None
        dot = domain.find(".")
        while dot >= 0:
            domain = domain[dot + 1 :]
            best = _lower(best, self.parent_domain.get(domain))
            dot = domain.find(".")
        return best

    def _roster_match(self, roster_item: RosterLookup) -> PrivacyItem | None:
        if isinstance(roster_item, _Unknown):
            return self.roster_deny
        if roster_item is None:
            return self.subscription.get("none")
        best = self.subscription.get(roster_item.subscription)
        if self.group:
            for group in roster_item.groups:
                best = _lower(best, self.group.get(group))
        return best


def _index(items: Iterable[PrivacyItem]) -> KindIndex:
    """Index ``items`` (ascending order, all covering one kind): first one per key wins."""
    exact: dict[JID, PrivacyItem] = {}
    bare: dict[JID, PrivacyItem] = {}
    domain: dict[str, PrivacyItem] = {}
    parent: dict[str, PrivacyItem] = {}
    group: dict[str, PrivacyItem] = {}
    subscription: dict[str, PrivacyItem] = {}
    roster_deny = fall_through = None
    for item in items:
        if item.type is None:
            fall_through = fall_through or item
        elif item.type == "jid":
            jid = item.jid
            assert jid is not None
            if jid.resource is not None:
                exact.setdefault(jid, item)
            elif jid.local is not None:
                bare.setdefault(jid, item)
            else:
                domain.setdefault(jid.domain, item)
                if not is_ip(jid.domain):
                    parent.setdefault(jid.domain, item)
        else:
            assert item.value is not None
            (group if item.type == "group" else subscription).setdefault(item.value, item)
            if item.action == "deny":
                roster_deny = roster_deny or item
    return KindIndex(exact, bare, domain, parent, group, subscription, roster_deny, fall_through)


class CompiledList:
    """A list's items indexed per stanza kind; build it once per list (it is immutable).

    :param items: the list's items in ascending order.
    :param kinds: every kind a child element can name; any other kind is covered only by
        items without children.
    """

    __slots__ = ("_by_kind", "_other")

    def __init__(self, items: tuple[PrivacyItem, ...], kinds: Iterable[str]) -> None:
        self._by_kind = {kind: _index(i for i in items if i.covers(kind)) for kind in kinds}
        self._other = _index(i for i in items if not i.kinds)

    def match(self, contact: JID, kind: str, roster_item: RosterLookup) -> PrivacyItem | None:
        """The item that decides for ``contact`` and ``kind``, or ``None`` (no match)."""
        return self._by_kind.get(kind, self._other).match(contact, roster_item)
