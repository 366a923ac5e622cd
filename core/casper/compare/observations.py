"""The observation channels: what an observer does, and what it saw, in one world.

Leak channels return a *signature*: the normalised stanzas the observer received because
of the observation (answers with the stimulus's id, stanzas from the user, presence from
the user over a stretch of the scenario). The runner compares the subject world's
signature with the control world's: equal is *hidden*, different *leaks*.

Usability channels return ``ok``: the user, while hiding, still gets what it wanted.

Every stimulus is deterministic (same ids and bodies in both worlds), so the only
differences left are the server's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from casper.xml import escape_attr, escape_text

from .actor import CHATSTATES, RECEIPTS, Actor, Event, bare, q
from .catalogue import Check
from .provision import status_codes

if TYPE_CHECKING:
    from .world import World


@dataclass
class Observed:
    """What one check saw in one world."""

    status: str = "done"  # done | not-supported | error
    signature: tuple[str, ...] = ()  # leak checks: normalised stanzas the observer got
    ok: bool | None = None  # usability checks
    detail: str = ""
    seqs: list[int] = field(default_factory=list)  # the events that make the observation
    token: str | None = None  # message checks: the body text, to follow its fate


def body_message(to: str, msg_id: str, body: str, extra: str = "") -> str:
    return (
        f"<message type='chat' to='{escape_attr(to)}' id='{escape_attr(msg_id)}'>"
        f"<body>{escape_text(body)}</body>{extra}</message>"
    )


IQ_PAYLOADS = {
    "iq-version": "<query xmlns='jabber:iq:version'/>",
    "iq-time": "<time xmlns='urn:xmpp:time'/>",
    "iq-ping": "<ping xmlns='urn:xmpp:ping'/>",
    "iq-disco-info": "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    "last-activity": "<query xmlns='jabber:iq:last'/>",
    "disco-items": "<query xmlns='http://jabber.org/protocol/disco#items'/>",
}


def _is_presence(e: Event) -> bool:
    return e.direction == "in" and e.element.tag == q("presence")


def _answers(events: list[Event], stimulus_id: str) -> list[Event]:
    return [e for e in events if e.direction == "in" and e.element.get("id") == stimulus_id]


def _signed(
    world: World, events: list[Event], check: Check, sent: Event | None = None, **kwargs: object
) -> Observed:
    for event in events:
        event.claimed = check.id
    seqs = ([sent.seq] if sent is not None else []) + [e.seq for e in events]
    signature = tuple(world.norm.stanza(e.element) for e in events) or ("(nothing)",)
    return Observed(signature=signature, seqs=seqs, **kwargs)  # type: ignore[arg-type]


async def _stimulus(
    world: World, observer: Actor, xml: str, check: Check
) -> tuple[Event, list[Event]]:
    """Send ``xml``, let everything settle; return the sent event and what came after."""
    sent = await observer.send(xml)
    sent.claimed = check.id
    start = next(i for i in range(len(observer.log) - 1, -1, -1) if observer.log[i] is sent)
    await world.settle()
    return sent, [e for e in observer.log[start + 1 :] if e.direction == "in" and not e.sync]


def _replies(world: World, events: list[Event], sent: Event) -> list[Event]:
    """Answers carrying the stimulus's id, and anything the user sent meanwhile."""
    sid = sent.element.get("id")
    return [
        e
        for e in events
        if e.claimed is None
        and (
            e.element.get("id") == sid
            or (world.is_from_user(e.element) and e.element.tag != q("presence"))
        )
    ]


# ---------------------------------------------------------------- leak channels


async def passive_presence(world: World, check: Check) -> Observed:
    """Presence from the user this observer got since it last looked (setup excluded)."""
    observer = world.observer(check.observer)
    key = (observer.name, "presence")
    start = world.cursors.get(key, 0)
    world.cursors[key] = len(observer.log)
    events = [
        e
        for e in observer.log[start:]
        if _is_presence(e) and e.claimed is None and world.is_from_user(e.element)
    ]
    return _signed(world, events, check)


async def room_occupancy(world: World, check: Check) -> Observed:
    """What the room told its occupant about the user's nickname since it last looked."""
    observer = world.observer(check.observer)
    key = (observer.name, "room")
    start = world.cursors.get(key, 0)
    world.cursors[key] = len(observer.log)
    nick = f"{world.room}/user"
    events = [
        e
        for e in observer.log[start:]
        if _is_presence(e) and (e.element.get("from") or "").lower() == nick
    ]
    return _signed(world, events, check)


async def fresh_login_probe(world: World, check: Check) -> Observed:
    """The observer logs in a new resource: the server probes the user for it."""
    prober = await world.connect(check.observer, f"probe{world.next_probe()}")
    await prober.send("<presence/>")
    await world.settle()
    events = [e for e in prober.log if _is_presence(e) and world.is_from_user(e.element)]
    observed = _signed(world, events, check)
    await prober.logout()
    await world.settle()
    return observed


async def _presence_to_user(
    world: World, check: Check, stanza_id: str, type_: str = ""
) -> Observed:
    """The observer sends the user a presence (of ``type_``, if given); the signature is the
    unclaimed answer to it and any presence from the user that followed."""
    observer = world.observer(check.observer)
    type_attr = f" type='{type_}'" if type_ else ""
    xml = f"<presence{type_attr} to='{world.jids['user']}' id='{escape_attr(stanza_id)}'/>"
    sent, after = await _stimulus(world, observer, xml, check)
    events = [
        e
        for e in after
        if e.claimed is None
        and (
            e.element.get("id") == stanza_id or (_is_presence(e) and world.is_from_user(e.element))
        )
    ]
    return _signed(world, events, check, sent)


async def client_probe(world: World, check: Check) -> Observed:
    return await _presence_to_user(world, check, f"cp-{check.id}", "probe")


async def directed(world: World, check: Check) -> Observed:
    observed = await _presence_to_user(world, check, f"dp-{check.id}")
    observer = world.observer(check.observer)
    await observer.send(f"<presence type='unavailable' to='{world.jids['user']}'/>")
    await world.settle()
    return observed


async def iq_query(world: World, check: Check) -> Observed:
    """An IQ get to the bare JID (last activity, disco#items) or the full JID (the rest)."""
    observer = world.observer(check.observer)
    if check.channel in ("last-activity", "disco-items"):
        to = world.jids["user"]
        if check.channel == "last-activity":
            await world.quiet_since_change()
    else:
        to = world.full_jid(check.resource)
    iq_id = f"iq-{check.id}"
    xml = f"<iq type='get' id='{escape_attr(iq_id)}' to='{to}'>{IQ_PAYLOADS[check.channel]}</iq>"
    sent, after = await _stimulus(world, observer, xml, check)
    events = _replies(world, after, sent)
    observed = _signed(world, events, check, sent)
    if not events:
        observed.signature = ("(no reply)",)
    return observed


async def message(world: World, check: Check) -> Observed:
    """A chat message (to the bare or full JID), maybe asking for a receipt or with a chat
    state; the signature is what came back, the detail says where the message went."""
    observer = world.observer(check.observer)
    full = check.channel != "message-bare"
    to = world.full_jid(check.resource) if full else world.jids["user"]
    extra = {
        "receipts": f"<request xmlns='{RECEIPTS}'/>",
        "chat-states": f"<active xmlns='{CHATSTATES}'/>",
    }.get(check.channel, "")
    token = f"casper-compare {check.id}"
    sent, after = await _stimulus(
        world, observer, body_message(to, f"m-{check.id}", token, extra), check
    )
    observed = _signed(world, _replies(world, after, sent), check, sent)
    observed.token = token
    return observed


# ---------------------------------------------------------------- usability channels


def _last_presence_by_resource(world: World, observer: Actor) -> dict[str, Element]:
    latest: dict[str, Element] = {}
    for event in observer.log:
        if _is_presence(event) and world.is_from_user(event.element) and event.claimed is None:
            latest[event.element.get("from") or ""] = event.element
    return latest


async def sees_user(world: World, check: Check) -> Observed:
    observer = world.observer(check.observer)
    shown = [
        p for p in _last_presence_by_resource(world, observer).values() if p.get("type") is None
    ]
    if check.channel == "sees-away":
        ok = any(p.findtext(q("show")) == "away" for p in shown)
        detail = "sees the user away" if ok else "does not see the user away"
    else:
        ok = bool(shown)
        detail = "sees the user online" if ok else "sees the user offline"
    return Observed(ok=ok, detail=f"{check.observer} {detail}")


async def sees_contacts(world: World, check: Check) -> Observed:
    sessions = world.user_actors()
    if not sessions:
        return Observed(ok=False, detail="the user is not connected")
    friend = world.jids["friend"]
    for session in sessions:
        latest: dict[str, str | None] = {}
        for event in session.log:
            if _is_presence(event) and bare(event.element.get("from")).lower() == friend:
                latest[event.element.get("from") or ""] = event.element.get("type")
        if any(kind is None for kind in latest.values()):
            return Observed(ok=True, detail=f"friend's presence reached {session.name}")
    return Observed(ok=False, detail="no presence from contacts reached the user")


async def in_room(world: World, check: Check) -> Observed:
    nick = f"{world.room}/user"
    for session in world.user_actors():
        own = [
            e.element
            for e in session.log
            if _is_presence(e) and (e.element.get("from") or "").lower() == nick
        ]
        if own and own[-1].get("type") is None and 110 in status_codes(own[-1]):
            return Observed(ok=True, detail=f"{session.name} is in the room")
        if own and own[-1].get("type") == "error":
            return Observed(ok=False, detail="the room refused the user")
    return Observed(ok=False, detail="the user is not in the room")


async def receives_messages(world: World, check: Check) -> Observed:
    observer = world.observer(check.observer)
    token = f"casper-compare {check.id}"
    sent, after = await _stimulus(
        world, observer, body_message(world.jids["user"], f"m-{check.id}", token), check
    )
    live = any(e.element.findtext(q("body")) == token for s in world.user_actors() for e in s.log)
    observed = _signed(world, _replies(world, after, sent), check, sent, ok=live)
    observed.token = token
    return observed


async def chat(world: World, check: Check) -> Observed:
    """The observer writes to the user's bare JID, the user writes back."""
    observed = await receives_messages(world, check)
    me = world.user_session(check.resource) or next(iter(world.user_actors()), None)
    observer = world.observer(check.observer)
    if me is None:
        observed.ok = False
        return observed
    answer = f"casper-compare {check.id} answer"
    await me.send(body_message(world.jids[check.observer], f"a-{check.id}", answer))
    await world.settle()
    back = any(e.element.findtext(q("body")) == answer for e in observer.log if e.direction == "in")
    observed.ok = bool(observed.ok and back)
    if not back:
        observed.detail = "the user's answer did not arrive"
    return observed


CHANNEL_RUNNERS: dict[str, Callable[[World, Check], Awaitable[Observed]]] = {
    "presence": passive_presence,
    "logoff": passive_presence,
    "probe": fresh_login_probe,
    "client-probe": client_probe,
    "directed": directed,
    "last-activity": iq_query,
    "disco-items": iq_query,
    "message-bare": message,
    "message-full": message,
    "iq-version": iq_query,
    "iq-time": iq_query,
    "iq-ping": iq_query,
    "iq-disco-info": iq_query,
    "chat-states": message,
    "receipts": message,
    "room-occupancy": room_occupancy,
    "sees-contacts": sees_contacts,
    "in-room": in_room,
    "sees-user": sees_user,
    "sees-away": sees_user,
    "receives-messages": receives_messages,
    "chat": chat,
}


async def run_check(world: World, check: Check) -> Observed:
    """Run one check in ``world``."""
    return await CHANNEL_RUNNERS[check.channel](world, check)
