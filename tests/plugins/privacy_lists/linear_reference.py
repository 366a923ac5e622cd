"""The XEP-0016 match rule read literally: every item in ascending order, first match wins.

The reference the compiled evaluator (:mod:`casper_plugins.privacy_lists.compiled`) is
checked against (``test_privacy_compiled.py``); this is what ``model.match`` did before
lists were compiled. Kept as plain as possible: one item at a time, no index.
"""

from __future__ import annotations

import ipaddress

from casper.jid import JID
from casper_plugins.privacy_lists.model import UNKNOWN, PrivacyItem, PrivacyList, RosterLookup


def jid_matches(pattern: JID, contact: JID) -> bool:
    """The four XEP-0016 JID forms (both JIDs already prepared)."""
    if pattern.local is not None:
        if pattern.resource is not None:
            return contact == pattern  # user@domain/resource: only that resource
        return contact.bare == pattern  # user@domain: any resource
    if pattern.resource is not None:
        return contact == pattern  # domain/resource: only that resource
    if contact.domain == pattern.domain:  # domain: the domain and anything at it
        return True
    if _is_ip(pattern.domain) or _is_ip(contact.domain):
        return False  # IP literals have no subdomains
    return contact.domain.endswith("." + pattern.domain)


def _is_ip(domain: str) -> bool:
    if domain.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(domain)
    except ValueError:
        return False
    return True


def _item_matches(item: PrivacyItem, contact: JID, roster_item: RosterLookup) -> bool | None:
    """Whether ``item`` matches ``contact``; ``None`` when the roster is unknown."""
    if item.type is None:
        return True
    if item.type == "jid":
        assert item.jid is not None
        return jid_matches(item.jid, contact)
    if roster_item is UNKNOWN:
        return None
    assert not isinstance(roster_item, type(UNKNOWN))
    if item.type == "group":
        return roster_item is not None and item.value in roster_item.groups
    subscription = "none" if roster_item is None else roster_item.subscription
    return subscription == item.value


def linear_match(
    plist: PrivacyList, contact: JID, kind: str, roster_item: RosterLookup = None
) -> PrivacyItem | None:
    """The item that decides for ``contact`` and ``kind``, or ``None`` (no match)."""
    for item in plist.items:
        if not item.covers(kind):
            continue
        matched = _item_matches(item, contact, roster_item)
        if matched is None:  # unknown roster: a deny matches, an allow does not
            if item.action == "deny":
                return item
            continue
        if matched:
            return item
    return None
