"""Building the room's stanzas: ``muc#user`` payloads, occupant presence, errors.

Sans-IO and pure: every function returns new stanzas or elements.
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.etree.ElementTree import Element, SubElement

from casper.errors import StanzaError
from casper.jid import JID
from casper.stanza import CLIENT_NS, Stanza, make_stanza, qname

from .model import MUC_NS, USER_NS, Occupant, Room

# Status codes (XEP-0045 §15.6, the registry), by name.
SELF = 110
NON_ANONYMOUS = 100
CONFIG_CHANGED = 104
NOW_NON_ANONYMOUS, NOW_SEMI_ANONYMOUS, NOW_FULLY_ANONYMOUS = 172, 173, 174
CREATED = 201
NICK_ASSIGNED = 210
BANNED = 301
NICK_CHANGED = 303
KICKED = 307
AFFILIATION_REMOVED = 321
MEMBERS_ONLY_REMOVED = 322
KICKED_ON_ERROR = 333
WHOIS_STATUS = {"anyone": NOW_NON_ANONYMOUS, "moderators": NOW_SEMI_ANONYMOUS,
                "none": NOW_FULLY_ANONYMOUS}  # fmt: skip

# Presence children an occupant's presence keeps (show, status, caps...): not these.
_DROPPED_PRESENCE_CHILDREN = (qname(CLIENT_NS, "priority"), qname(CLIENT_NS, "error"))


def text_element(ns: str, name: str, text: str) -> Element:
    element = Element(qname(ns, name))
    element.text = text
    return element


def presence_children(stanza: Stanza) -> tuple[Element, ...]:
    """What of a client's presence the room passes on: not the MUC payloads, priority or
    errors."""
    return tuple(
        child
        for child in stanza.element
        if child.tag not in _DROPPED_PRESENCE_CHILDREN
        and not child.tag.startswith((f"{{{MUC_NS}}}", f"{{{MUC_NS}#"))
    )


def item_element(affiliation: str, role: str, *, jid: JID | None = None, nick: str | None = None,
                 reason: str | None = None, actor: str | None = None) -> Element:  # fmt: skip
    """``<item affiliation role [jid] [nick]><actor nick/><reason/></item>`` (muc#user)."""
    item = Element(qname(USER_NS, "item"), {"affiliation": affiliation, "role": role})
    if jid is not None:
        item.set("jid", str(jid))
    if nick is not None:
        item.set("nick", nick)
    if actor is not None:
        SubElement(item, qname(USER_NS, "actor"), {"nick": actor})
    if reason:
        SubElement(item, qname(USER_NS, "reason")).text = reason
    return item


def user_x(children: Iterable[Element] = (), codes: Iterable[int] = ()) -> Element:
    """``<x xmlns='...muc#user'>`` with children then sorted, distinct status codes."""
    x = Element(qname(USER_NS, "x"))
    x.extend(children)
    for code in sorted(set(codes)):
        SubElement(x, qname(USER_NS, "status"), {"code": str(code)})
    return x


def occupant_presence(room: Room, occupant: Occupant, viewer: Occupant, *,
                      type_: str | None = None, codes: Iterable[int] = (),
                      children: Iterable[Element] | None = None, nick: str | None = None,
                      reason: str | None = None, actor: str | None = None,
                      affiliation: str | None = None, role: str | None = None,
                      extra: Iterable[Element] = ()) -> Stanza:  # fmt: skip
    """``occupant``'s presence as ``viewer`` gets it: the real JID only where the room's
    anonymity allows it, status 110 when ``viewer`` is the occupant itself."""
    own = viewer.jid == occupant.jid
    item = item_element(
        affiliation or room.affiliation(occupant.jid),
        role or occupant.role,
        jid=occupant.jid if room.reveals(occupant, viewer) else None,
        nick=nick,
        reason=reason,
        actor=actor,
    )
    all_codes = set(codes) | ({SELF} if own else set())
    payload = list(occupant.presence if children is None else children)
    payload.append(user_x([item, *extra], all_codes))
    return make_stanza("presence", from_=occupant.occupant_jid, to=viewer.jid, type=type_,
                       children=payload)  # fmt: skip


def room_message(room: Room, to: JID, children: Iterable[Element], *,
                 type_: str = "groupchat") -> Stanza:  # fmt: skip
    return make_stanza("message", from_=room.jid, to=to, type=type_, children=children)


def status_message(room: Room, occupant: Occupant, codes: Iterable[int]) -> Stanza:
    """A message from the room itself carrying status codes (configuration changes)."""
    return room_message(room, occupant.jid, [user_x(codes=codes)])


def error_reply(stanza: Stanza, error: StanzaError) -> Stanza:
    """The room's error answer. A presence error echoes only an empty MUC ``<x/>`` (never
    the password the client sent)."""
    if stanza.kind == "presence":
        stanza = make_stanza("presence", to=stanza.to, from_=stanza.from_, id=stanza.id,
                             children=[Element(qname(MUC_NS, "x"))])  # fmt: skip
    return stanza.error_reply(error)
