"""Admin and owner IQs: roles, affiliations and their lists (``muc#admin``), configuration
and destruction (``muc#owner``). XEP-0045 §8, §9, §10.

Sans-IO. Each handler returns the result payload (or ``None`` for an empty result) and
appends the presence changes to the outcome. A set with several items is all or nothing:
every item is checked first (:mod:`.roles`), then applied in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element, SubElement

from casper.errors import StanzaError
from casper.jid import JID, InvalidJID
from casper.stanza import Stanza, qname

from . import occupancy
from .forms import DATA_NS, config_form, parse_submission
from .model import ADMIN_NS, OWNER_NS, USER_NS, Occupant, Outcome, Room, RoomConfig
from .roles import check_affiliation_change, check_list, check_owners_left, check_role_change
from .stanzas import (
    AFFILIATION_REMOVED,
    BANNED,
    CONFIG_CHANGED,
    KICKED,
    MEMBERS_ONLY_REMOVED,
    SELF,
    WHOIS_STATUS,
    occupant_presence,
    status_message,
)


@dataclass(frozen=True)
class RoleChange:
    target: Occupant
    role: str
    reason: str | None


@dataclass(frozen=True)
class AffiliationChange:
    jid: JID  # bare
    affiliation: str
    reason: str | None


# ------------------------------------------------------------------ muc#admin


def handle_admin(room: Room, stanza: Stanza, out: Outcome) -> Element | None:
    """An IQ with ``<query xmlns='...muc#admin'>``: read a list, or change roles and
    affiliations."""
    assert stanza.from_ is not None and stanza.payload is not None
    actor = room.by_real(stanza.from_)
    actor_role = actor.role if actor is not None else "none"
    actor_affiliation = room.affiliation(stanza.from_)
    items = stanza.payload.findall(qname(ADMIN_NS, "item"))
    if not items:
        raise StanzaError("bad-request", "an admin query needs an item")
    if stanza.type == "get":
        return _list(room, actor, actor_role, actor_affiliation, items[0])
    changes = [_plan(room, actor_role, actor_affiliation, item) for item in items]
    simulated = dict(room.affiliations)
    for change in changes:
        if isinstance(change, AffiliationChange):
            simulated[change.jid] = change.affiliation
    check_owners_left(sum(1 for a in simulated.values() if a == "owner"))
    actor_nick = actor.nick if actor is not None else None
    for change in changes:
        if isinstance(change, RoleChange):
            _apply_role(room, change, actor_nick, out)
        else:
            _apply_affiliation(room, change, actor_nick, out)
    return None


def _plan(
    room: Room, actor_role: str, actor_affiliation: str, item: Element
) -> RoleChange | AffiliationChange:
    role, affiliation, nick = item.get("role"), item.get("affiliation"), item.get("nick")
    reason = item.findtext(qname(ADMIN_NS, "reason"))
    if affiliation is not None:
        if item.get("jid"):
            jid = _bare(item.get("jid", ""))
        elif nick is not None and (target := room.by_nick(nick)) is not None:
            jid = target.jid.bare
        else:
            raise StanzaError("bad-request", "an affiliation change names a jid or a present nick")
        check_affiliation_change(actor_affiliation, room.affiliation(jid), affiliation)
        return AffiliationChange(jid, affiliation, reason)
    if role is not None:
        target = room.by_nick(nick) if nick is not None else None
        if target is None:
            raise StanzaError(
                "item-not-found" if nick else "bad-request", "no occupant has that nick"
            )
        check_role_change(
            actor_role, actor_affiliation, target.role, room.affiliation(target.jid), role
        )
        return RoleChange(target, role, reason)
    raise StanzaError("bad-request", "an item changes a role or an affiliation")


def _bare(text: str) -> JID:
    try:
        return JID.parse(text).bare
    except InvalidJID:
        raise StanzaError("jid-malformed", f"not a JID: {text!r}") from None


def _apply_role(room: Room, change: RoleChange, actor: str | None, out: Outcome) -> None:
    target = change.target
    if room.by_real(target.jid) is not target:
        return  # already removed by an earlier item
    if change.role == "none":
        occupancy.remove(room, target, out, codes={KICKED}, reason=change.reason, actor=actor)
        return
    promoted = change.role == "moderator" and target.role != "moderator"
    target.role = change.role
    occupancy.broadcast(room, target, out, reason=change.reason, actor=actor)
    if promoted:
        _show_room_to_new_moderator(room, target, out)


def _apply_affiliation(
    room: Room, change: AffiliationChange, actor: str | None, out: Outcome
) -> None:
    room.set_affiliation(change.jid, change.affiliation)
    out.save = True
    for occupant in room.of_account(change.jid):
        if change.affiliation == "outcast":
            occupancy.remove(room, occupant, out, codes={BANNED}, reason=change.reason,
                             actor=actor, affiliation="outcast")  # fmt: skip
        elif change.affiliation == "none" and room.config.members_only:
            occupancy.remove(room, occupant, out, codes={AFFILIATION_REMOVED},
                             reason=change.reason, actor=actor)  # fmt: skip
        else:
            promoted = occupant.role != "moderator"
            occupant.role = room.default_role(change.affiliation)
            occupancy.broadcast(room, occupant, out, reason=change.reason, actor=actor)
            if promoted and occupant.role == "moderator":
                _show_room_to_new_moderator(room, occupant, out)


def _show_room_to_new_moderator(room: Room, moderator: Occupant, out: Outcome) -> None:
    """A new moderator of a semi-anonymous room gets the real JIDs it may now see."""
    for other in room.occupants.values():
        if other is not moderator and room.reveals(other, moderator):
            out.send(occupant_presence(room, other, moderator))


def _list(room: Room, actor: Occupant | None, actor_role: str, actor_affiliation: str,
          item: Element) -> Element:  # fmt: skip
    affiliation, role = item.get("affiliation"), item.get("role")
    check_list(actor_role, actor_affiliation, affiliation=affiliation, role=role)
    query = Element(qname(ADMIN_NS, "query"))
    if affiliation is not None:
        for jid in room.with_affiliation(affiliation):
            SubElement(
                query, qname(ADMIN_NS, "item"), {"affiliation": affiliation, "jid": str(jid)}
            )
        return query
    for occupant in room.occupants.values():
        if occupant.role == role:
            attrs = {"affiliation": room.affiliation(occupant.jid), "role": occupant.role,
                     "nick": occupant.nick}  # fmt: skip
            if room.reveals(occupant, actor):
                attrs["jid"] = str(occupant.jid)
            SubElement(query, qname(ADMIN_NS, "item"), attrs)
    return query


# ------------------------------------------------------------------ muc#owner


def handle_owner(room: Room, stanza: Stanza, out: Outcome, max_users: int) -> Element | None:
    """An IQ with ``<query xmlns='...muc#owner'>``: the configuration form, a submitted or
    cancelled form, or ``<destroy/>``. Owners only."""
    assert stanza.from_ is not None and stanza.payload is not None
    if room.affiliation(stanza.from_) != "owner":
        raise StanzaError("forbidden", "only owners configure or destroy the room")
    query = stanza.payload
    if stanza.type == "get":
        answer = Element(qname(OWNER_NS, "query"))
        answer.append(config_form(room))
        return answer
    destroy = query.find(qname(OWNER_NS, "destroy"))
    if destroy is not None:
        destroy_room(room, destroy.get("jid"), destroy.findtext(qname(OWNER_NS, "reason")), out)
        return None
    form = query.find(qname(DATA_NS, "x"))
    if form is None:
        raise StanzaError("bad-request", "send a data form or <destroy/>")
    if form.get("type") == "cancel":
        if room.locked:  # XEP-0045 §10.1.3: cancelling the initial configuration
            destroy_room(room, None, None, out)
        return None
    if form.get("type") != "submit":
        raise StanzaError("bad-request", "the form must be submitted or cancelled")
    apply_config(room, parse_submission(form, room.config, max_users), stanza.from_, out)
    return None


def apply_config(room: Room, new: RoomConfig, owner: JID, out: Outcome) -> None:
    """Adopt a new configuration and tell the occupants what kind of change it was
    (status 104; 172/173/174 when the anonymity changed, which is privacy-relevant).

    The owner who made the change takes its anonymity for its own occupants (it chose
    it); everyone else keeps the one they joined under until they rejoin.
    """
    old, was_locked = room.config, room.locked
    room.config, room.locked = new, False
    out.save = True
    for occupant in room.of_account(owner):
        occupant.exposure = new.whois
    if was_locked or new == old:
        return
    if new.members_only and not old.members_only:
        for occupant in list(room.occupants.values()):
            if room.affiliation(occupant.jid) == "none":
                occupancy.remove(room, occupant, out, codes={MEMBERS_ONLY_REMOVED})
    codes = set()
    if new.whois != old.whois:
        codes.add(WHOIS_STATUS[new.whois])
    if _without_whois(new) != _without_whois(old):
        codes.add(CONFIG_CHANGED)
    for occupant in room.occupants.values():
        out.send(status_message(room, occupant, codes))


def _without_whois(config: RoomConfig) -> RoomConfig:
    return RoomConfig(**{**config.__dict__, "whois": "moderators"})


def destroy_room(room: Room, alternate: str | None, reason: str | None, out: Outcome) -> None:
    """XEP-0045 §10.9: each occupant gets its own unavailable with ``<destroy/>``."""
    destroy = Element(qname(USER_NS, "destroy"))
    if alternate:
        destroy.set("jid", alternate)
    if reason:
        SubElement(destroy, qname(USER_NS, "reason")).text = reason
    for occupant in room.occupants.values():
        out.send(occupant_presence(room, occupant, occupant, type_="unavailable", children=(),
                                   codes={SELF}, affiliation="none", role="none",
                                   extra=[destroy]))  # fmt: skip
        out.removed.append(occupant.jid)
    room.occupants.clear()
    out.destroyed = True
