"""Messages to a room: groupchat, subject, private messages, mediated invitations.

Sans-IO, like :mod:`.occupancy`: change the room, append to the outcome, or raise the
error answer before changing anything.

- Groupchat (XEP-0045 §7.4): from an occupant with voice, reflected to every occupant (the
  sender included, same ``id``) from the sender's occupant JID, and kept in the history.
  From a non-occupant: ``not-acceptable``; from a visitor: ``forbidden``.
- Subject (§8.1): a groupchat with ``<subject/>`` and no ``<body/>``; moderators, or
  participants where the room allows it.
- Private messages (§7.5): to ``room/nick``, forwarded to that occupant's real JID from
  the sender's occupant JID, with an empty ``muc#user`` ``<x/>``.
- Invitations (§7.8.2, mediated): the room sends the invitee a message from the room with
  the inviter's *bare* JID (not the session's: an invisible inviter reveals no resource)
  and a body for clients that don't know MUC, which also lets an invitee who is offline —
  or invisible to the room, which is the same — get it from offline storage. A decline is
  passed on only to an inviter the room invited for, so a room can't be used to relay
  messages to arbitrary JIDs.
- Errors (kick on error, status 307 and 333): a message error from an occupant's real JID
  whose condition means the occupant is gone (:data:`GONE_CONDITIONS`) removes it. This is
  why blocking an occupant must *drop* its groupchat silently: an error would get the
  blocker kicked.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from casper.errors import STANZAS_NS, StanzaError
from casper.jid import JID, InvalidJID
from casper.stanza import CLIENT_NS, Stanza, make_stanza, qname

from . import occupancy
from .model import USER_NS, HistoryEntry, Occupant, Outcome, Room
from .roles import has
from .stanzas import KICKED, KICKED_ON_ERROR, text_element, user_x

BODY = qname(CLIENT_NS, "body")
SUBJECT = qname(CLIENT_NS, "subject")
MAX_PENDING_INVITES = 100
# error conditions meaning "that occupant is no longer there" (as Prosody reads XEP-0410)
GONE_CONDITIONS = frozenset({
    "gone", "internal-server-error", "item-not-found", "jid-malformed", "recipient-unavailable",
    "redirect", "remote-server-not-found", "remote-server-timeout", "service-unavailable",
})  # fmt: skip


def handle_message(room: Room, stanza: Stanza, now: float, out: Outcome) -> None:
    assert stanza.to is not None
    sender = room.by_real(stanza.from_)
    if stanza.type == "error":
        if sender is not None and error_condition(stanza) in GONE_CONDITIONS:
            occupancy.remove(room, sender, out, codes={KICKED, KICKED_ON_ERROR},
                             reason="your server returned an error")  # fmt: skip
        return
    if stanza.to.resource is not None:
        private_message(room, sender, stanza, out)
    elif stanza.type == "groupchat":
        groupchat(room, sender, stanza, now, out)
    else:
        x = stanza.find(USER_NS, "x")
        if x is not None:
            invitations(room, sender, stanza, x, out)
        # anything else sent to the room itself has no meaning here: ignored


def error_condition(stanza: Stanza) -> str | None:
    error = stanza.find(CLIENT_NS, "error")
    if error is None:
        return None
    for child in error:
        if child.tag.startswith(f"{{{STANZAS_NS}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


def _occupant(sender: Occupant | None) -> Occupant:
    if sender is None:
        raise StanzaError("not-acceptable", "you are not in the room")
    return sender


def groupchat(
    room: Room, sender: Occupant | None, stanza: Stanza, now: float, out: Outcome
) -> None:
    occupant = _occupant(sender)
    subject = stanza.element.find(SUBJECT)
    is_subject = subject is not None and stanza.element.find(BODY) is None
    if is_subject:
        may = has(occupant.role, "subject") or (
            room.config.change_subject and has(occupant.role, "speak")
        )
        if not may:
            raise StanzaError("forbidden", "you may not change the subject")
    elif not has(occupant.role, "speak"):
        raise StanzaError("forbidden", "visitors may not speak in a moderated room")
    reflected = make_stanza("message", from_=occupant.occupant_jid, type="groupchat", id=stanza.id,
                            children=list(stanza.element))  # fmt: skip
    if is_subject:
        assert subject is not None
        room.subject = subject.text or ""
        room.subject_by = occupant.nick
        out.save = True
    for viewer in room.occupants.values():
        out.send(reflected.readdressed(to=viewer.jid))
    if stanza.element.find(BODY) is not None:
        room.history.append(HistoryEntry(reflected, now, occupancy.history_size(reflected)))


def private_message(room: Room, sender: Occupant | None, stanza: Stanza, out: Outcome) -> None:
    assert stanza.to is not None and stanza.to.resource is not None
    occupant = _occupant(sender)
    if stanza.type == "groupchat":
        raise StanzaError("bad-request", "groupchat goes to the room, not to an occupant")
    target = room.by_nick(stanza.to.resource)
    if target is None:
        raise StanzaError("item-not-found", "nobody has that nick in this room")
    allowed = {
        "anyone": True,
        "participants": occupant.role in ("participant", "moderator"),
        "moderators": occupant.role == "moderator",
        "none": False,
    }[room.config.allow_pm]
    if not (allowed and has(occupant.role, "pm")):
        raise StanzaError("forbidden", "private messages are not allowed here")
    children = [c for c in stanza.element if c.tag != qname(USER_NS, "x")]
    children.append(Element(qname(USER_NS, "x")))
    out.send(make_stanza("message", from_=occupant.occupant_jid, to=target.jid, type=stanza.type,
                         id=stanza.id, children=children))  # fmt: skip


def may_invite(room: Room, occupant: Occupant) -> bool:
    """Admins and owners, moderators, and participants where the room allows it."""
    if room.affiliation(occupant.jid) in ("admin", "owner"):
        return True
    if room.config.members_only:
        return room.config.allow_invites and has(occupant.role, "invite")
    return occupant.role == "moderator" or (
        room.config.allow_invites and has(occupant.role, "invite")
    )


def invitations(
    room: Room, sender: Occupant | None, stanza: Stanza, x: Element, out: Outcome
) -> None:
    assert stanza.from_ is not None
    invites = x.findall(qname(USER_NS, "invite"))
    if invites:
        occupant = _occupant(sender)
        if not may_invite(room, occupant):
            raise StanzaError("forbidden", "you may not invite anyone to this room")
        targets = [(_jid(invite.get("to")), invite) for invite in invites]
        for invitee, invite in targets:
            _invite(room, occupant, invitee, invite.findtext(qname(USER_NS, "reason")), out)
    for decline in x.findall(qname(USER_NS, "decline")):
        inviter = room.invites.pop(stanza.from_.bare, None)
        if inviter is None:
            continue  # nothing the room sent is being declined: not passed on
        element = Element(qname(USER_NS, "decline"), {"from": str(stanza.from_.bare)})
        reason = decline.findtext(qname(USER_NS, "reason"))
        if reason:
            SubElement(element, qname(USER_NS, "reason")).text = reason
        out.send(make_stanza("message", from_=room.jid, to=inviter, children=[user_x([element])]))


def _jid(text: str | None) -> JID:
    try:
        return JID.parse(text or "")
    except InvalidJID:
        raise StanzaError("jid-malformed", "an invitation needs a valid 'to'") from None


def _invite(room: Room, inviter: Occupant, invitee: JID, reason: str | None, out: Outcome) -> None:
    element = Element(qname(USER_NS, "invite"), {"from": str(inviter.jid.bare)})
    if reason:
        SubElement(element, qname(USER_NS, "reason")).text = reason
    payload = [element]
    if room.config.password_protected:
        payload.append(text_element(USER_NS, "password", room.config.password))
    text = f"{inviter.jid.bare} invites you to the room {room.jid}" + (
        f": {reason}" if reason else ""
    )
    out.send(make_stanza("message", from_=room.jid, to=invitee,
                         children=[text_element(CLIENT_NS, "body", text), user_x(payload)]))  # fmt: skip
    if room.config.members_only and room.affiliation(invitee) == "none":
        room.set_affiliation(invitee, "member")  # XEP-0045 §7.8.2: the invitee may enter
        out.save = True
    room.invites.pop(invitee.bare, None)
    room.invites[invitee.bare] = inviter.jid
    while len(room.invites) > MAX_PENDING_INVITES:
        room.invites.pop(next(iter(room.invites)))
