"""Presence to a room: join, presence updates, nick changes, leaving and removal.

Sans-IO: each function changes the :class:`~.model.Room` and appends the stanzas to send
to an :class:`~.model.Outcome`; it raises :class:`casper.errors.StanzaError` *before*
changing anything when the presence is refused (XEP-0045 §7.2 error cases).

An occupant is identified by its real full JID, never by the nick in ``to``: the core
sends unavailable to every occupant JID a session ever sent presence to (it keeps them in
``Session.seen_by``), including nicks the room renamed or refused, and only the one that
is in the room may leave with it.

Join (XEP-0045 §7.2.3): the newcomer gets every occupant's presence, then every occupant
gets the newcomer's, then the newcomer gets its own (status 110, plus 100 when any occupant
may see its real JID, 201 when it created the room, 210 when the room changed its nick),
then the history and the subject. Leave (§7.14): everyone, the leaver included, gets
unavailable from the occupant JID — even when the leaver is invisible and sent broadcast
unavailable: the core keeps the route to a session that goes unavailable, so the room's
answer reaches the user (the RFC 3921 forum thread's MUC edge case).
"""

from __future__ import annotations

import datetime as dt
from xml.etree.ElementTree import tostring

from casper.errors import StanzaError
from casper.stanza import CLIENT_NS, Stanza, delay_element, make_stanza, qname

from .model import (
    AFFILIATION_RANK,
    MUC_NS,
    HistoryEntry,
    Occupant,
    Outcome,
    Room,
    nick_key,
    normalize_nick,
)
from .stanzas import (
    CREATED,
    KICKED,
    KICKED_ON_ERROR,
    NICK_ASSIGNED,
    NICK_CHANGED,
    NON_ANONYMOUS,
    occupant_presence,
    presence_children,
    text_element,
)

STATUS = qname(CLIENT_NS, "status")


def handle_presence(room: Room, stanza: Stanza, now: float, out: Outcome, *,
                    created: bool = False) -> None:  # fmt: skip
    """Process presence addressed to ``room`` or one of its occupant JIDs."""
    assert stanza.to is not None and stanza.from_ is not None
    occupant = room.by_real(stanza.from_)
    if stanza.type == "unavailable":
        if occupant is not None:
            leave(room, occupant, stanza, out)
        return
    if stanza.type == "error":
        if occupant is not None:
            remove(room, occupant, out, codes={KICKED, KICKED_ON_ERROR},
                   reason="your server returned an error")  # fmt: skip
        return
    if stanza.type is not None:
        return  # subscriptions and probes are not for rooms; XEP-0018 types never get here
    requested = stanza.to.resource
    nick = normalize_nick(requested or "")
    if not nick:
        raise StanzaError("jid-malformed", "join the room as room@service/nick")
    if occupant is None:
        join(room, stanza, nick, now, out, created=created)
    elif nick_key(nick) == nick_key(occupant.nick):
        occupant.presence = presence_children(stanza)
        broadcast(room, occupant, out)
    else:
        change_nick(room, occupant, stanza, nick, out)


def check_admission(room: Room, stanza: Stanza, nick: str) -> str:
    """Return the newcomer's affiliation, or raise the XEP-0045 §7.2 error."""
    assert stanza.from_ is not None
    affiliation = room.affiliation(stanza.from_)
    if room.locked and affiliation != "owner":
        raise StanzaError("item-not-found", "the room is being set up; try again later")
    if affiliation == "outcast":
        raise StanzaError("forbidden", "you are banned from this room")
    if room.config.members_only and AFFILIATION_RANK[affiliation] < AFFILIATION_RANK["member"]:
        raise StanzaError("registration-required", "this room is for members only")
    if room.config.password_protected and _password(stanza) != room.config.password:
        raise StanzaError("not-authorized", "this room needs the right password")
    if room.by_nick(nick) is not None:
        raise StanzaError("conflict", "that nick is in use in this room")
    if len(room.occupants) >= room.config.max_users and affiliation not in ("owner", "admin"):
        raise StanzaError("service-unavailable", "the room is full", type="wait")
    return affiliation


def _password(stanza: Stanza) -> str | None:
    x = stanza.find(MUC_NS, "x")
    password = None if x is None else x.find(qname(MUC_NS, "password"))
    return None if password is None else (password.text or "")


def join(room: Room, stanza: Stanza, nick: str, now: float, out: Outcome, *,
         created: bool = False) -> Occupant:  # fmt: skip
    assert stanza.from_ is not None and stanza.to is not None
    affiliation = check_admission(room, stanza, nick)
    newcomer = Occupant(nick, stanza.from_, room.jid, room.default_role(affiliation),
                        room.config.whois, presence_children(stanza))  # fmt: skip
    others = list(room.occupants.values())
    for other in others:
        out.send(occupant_presence(room, other, newcomer))
    room.add(newcomer)
    for other in others:
        out.send(occupant_presence(room, newcomer, other))
    codes = set()
    if room.exposure(newcomer) == "anyone":
        codes.add(NON_ANONYMOUS)
    if created:
        codes.add(CREATED)
    if nick != stanza.to.resource:
        codes.add(NICK_ASSIGNED)
    out.send(occupant_presence(room, newcomer, newcomer, codes=codes))
    for entry in select_history(room, stanza, now):
        delay = delay_element(entry.stamp, room.jid)
        out.send(entry.stanza.readdressed(to=newcomer.jid).with_child(delay))
    subject_from = room.jid.with_resource(room.subject_by) if room.subject_by else room.jid
    subject = text_element(CLIENT_NS, "subject", room.subject)
    out.send(make_stanza("message", from_=subject_from, to=newcomer.jid, type="groupchat",
                         children=[subject]))  # fmt: skip
    return newcomer


def select_history(room: Room, stanza: Stanza, now: float) -> list[HistoryEntry]:
    """The history a newcomer gets: ``<history maxstanzas maxchars seconds since/>``
    (XEP-0045 §7.2.15) within the room's own limit."""
    entries = list(room.history)
    x = stanza.find(MUC_NS, "x")
    request = None if x is None else x.find(qname(MUC_NS, "history"))
    if request is not None:
        maxstanzas = _non_negative(request.get("maxstanzas"))
        if maxstanzas is not None:
            entries = entries[len(entries) - maxstanzas :] if maxstanzas else []
        seconds = _non_negative(request.get("seconds"))
        if seconds is not None:
            entries = [e for e in entries if e.stamp >= now - seconds]
        since = _timestamp(request.get("since"))
        if since is not None:
            entries = [e for e in entries if e.stamp >= since]
        maxchars = _non_negative(request.get("maxchars"))
        if maxchars is not None:
            kept: list[HistoryEntry] = []
            total = 0
            for entry in reversed(entries):
                total += entry.size
                if total > maxchars:
                    break
                kept.append(entry)
            entries = kept[::-1]
    return entries


def history_size(stanza: Stanza) -> int:
    return len(tostring(stanza.element, encoding="unicode"))


def _non_negative(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text)


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def broadcast(room: Room, occupant: Occupant, out: Outcome, *, codes: set[int] | None = None,
              reason: str | None = None, actor: str | None = None) -> None:  # fmt: skip
    """Send ``occupant``'s current presence (role, affiliation) to everyone in the room."""
    for viewer in room.occupants.values():
        out.send(occupant_presence(room, occupant, viewer, codes=codes or (), reason=reason,
                                   actor=actor))  # fmt: skip


def change_nick(room: Room, occupant: Occupant, stanza: Stanza, nick: str, out: Outcome) -> None:
    """XEP-0045 §7.6: unavailable with status 303 and the new nick, then available."""
    assert stanza.to is not None
    holder = room.by_nick(nick)
    if holder is not None and holder is not occupant:
        raise StanzaError("conflict", "that nick is in use in this room")
    for viewer in room.occupants.values():
        out.send(occupant_presence(room, occupant, viewer, type_="unavailable", children=(),
                                   codes={NICK_CHANGED}, nick=nick))  # fmt: skip
    room.rename(occupant, nick)
    occupant.presence = presence_children(stanza)
    assigned = {NICK_ASSIGNED} if nick != stanza.to.resource else set()
    for viewer in room.occupants.values():
        codes = assigned if viewer is occupant else set()
        out.send(occupant_presence(room, occupant, viewer, codes=codes))


def leave(room: Room, occupant: Occupant, stanza: Stanza | None, out: Outcome) -> None:
    """The occupant leaves; everyone, the occupant included (status 110), is told."""
    status = [] if stanza is None else [c for c in stanza.element if c.tag == STATUS]
    for viewer in list(room.occupants.values()):
        out.send(occupant_presence(room, occupant, viewer, type_="unavailable", children=status,
                                   role="none"))  # fmt: skip
    room.remove(occupant)


def remove(room: Room, occupant: Occupant, out: Outcome, *, codes: set[int],
           reason: str | None = None, actor: str | None = None,
           affiliation: str | None = None) -> None:  # fmt: skip
    """Take ``occupant`` out of the room (kick, ban, lost membership, error): everyone,
    the occupant included, gets unavailable with the status codes, and the occupant's
    real JID goes to ``out.removed`` (its session is then told to forget the room)."""
    for viewer in list(room.occupants.values()):
        out.send(occupant_presence(room, occupant, viewer, type_="unavailable", children=(),
                                   codes=codes, reason=reason, actor=actor, role="none",
                                   affiliation=affiliation))  # fmt: skip
    room.remove(occupant)
    out.removed.append(occupant.jid)
