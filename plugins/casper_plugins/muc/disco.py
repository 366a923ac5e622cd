"""Service discovery for the MUC service and its rooms (XEP-0045 §6, XEP-0030, XEP-0128).

- The service: identity ``conference/text``, the MUC feature; its items are the public,
  configured rooms.
- A room: identity ``conference/text`` with the room's name, and one feature per setting,
  among them exactly one of ``muc_nonanonymous``, ``muc_semianonymous`` and
  ``muc_fullyanonymous`` — the client-visible statement of who will see a joiner's real
  JID — plus the ``muc#roominfo`` form. A room being set up (locked) answers
  ``item-not-found`` to everyone but its owners, as if it did not exist.
- A room's items are its occupant JIDs, shown to occupants only: others get the empty
  list, which is what an empty room answers (XEP-0045 §6.5 allows it), so the list never
  tells a stranger who is in the room.

Sans-IO: functions return the ``<query/>`` payloads.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree.ElementTree import Element, SubElement

from casper.jid import JID
from casper.stanza import qname

from .forms import roominfo_form
from .model import ADMIN_NS, MUC_NS, OWNER_NS, USER_NS, Room

INFO_NS = "http://jabber.org/protocol/disco#info"
ITEMS_NS = "http://jabber.org/protocol/disco#items"
PING_NS = "urn:xmpp:ping"
ANONYMITY_FEATURES = {"anyone": "muc_nonanonymous", "moderators": "muc_semianonymous",
                      "none": "muc_fullyanonymous"}  # fmt: skip


def _info(name: str, features: Iterable[str]) -> Element:
    query = Element(qname(INFO_NS, "query"))
    SubElement(query, qname(INFO_NS, "identity"),
               {"category": "conference", "type": "text", "name": name})  # fmt: skip
    for feature in sorted(set(features)):
        SubElement(query, qname(INFO_NS, "feature"), {"var": feature})
    return query


def service_info(name: str) -> Element:
    return _info(name, (INFO_NS, ITEMS_NS, MUC_NS, PING_NS))


def service_items(rooms: Iterable[Room]) -> Element:
    query = Element(qname(ITEMS_NS, "query"))
    for room in sorted(rooms, key=lambda r: str(r.jid)):
        if room.config.public and not room.locked:
            SubElement(query, qname(ITEMS_NS, "item"),
                       {"jid": str(room.jid), "name": room.config.name or room.jid.local or ""})  # fmt: skip
    return query


def room_features(room: Room) -> list[str]:
    config = room.config
    return [
        INFO_NS, ITEMS_NS, MUC_NS, USER_NS, ADMIN_NS, OWNER_NS, PING_NS,
        "muc_public" if config.public else "muc_hidden",
        "muc_persistent" if config.persistent else "muc_temporary",
        "muc_membersonly" if config.members_only else "muc_open",
        "muc_moderated" if config.moderated else "muc_unmoderated",
        "muc_passwordprotected" if config.password_protected else "muc_unsecured",
        ANONYMITY_FEATURES[config.whois],
    ]  # fmt: skip


def room_info(room: Room) -> Element:
    query = _info(room.config.name or room.jid.local or str(room.jid), room_features(room))
    query.append(roominfo_form(room))
    return query


def room_items(room: Room, requester: JID) -> Element:
    query = Element(qname(ITEMS_NS, "query"))
    if room.by_real(requester) is None:
        return query
    for occupant in room.occupants.values():
        SubElement(query, qname(ITEMS_NS, "item"), {"jid": str(occupant.occupant_jid)})
    return query
