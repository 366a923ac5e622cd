"""xep0018: legacy invisible presence (XEP-0018), over real loopback TCP and real TLS.

Scripted conversations with the XEP's own cast: joe goes invisible and visible, to everyone
or to one contact; stpeter, pgmillard and rynok are his contacts (mutual subscriptions); a
``stranger`` is not; a fake MUC service at ``conference.localhost`` records what reaches it.

One actor says something, then every actor's inbox is read with ``tests.helpers.sync`` (a
round trip to the server). The sender is read first, so by then its stanza has been handled
and everything it caused is queued for the others: "heard nothing" is checked without
sleeping. What an actor hears is compared as ``(from, type, show, status)`` for presence
and ``(from, 'message/TYPE', id, body)`` for messages, so an unexpected stanza shows up
whole in the assertion message.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import pytest
from casper.stanza import Stanza
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import BaseCast, Heard, error_condition, make_contacts, nobody_else, query, sync

JOE = "joe@localhost"
JOE_R1 = "joe@localhost/r1"
STPETER_R1 = "stpeter@localhost/r1"
CONTACTS = ("stpeter", "pgmillard", "rynok")
ACCOUNTS = ("joe", *CONTACTS, "stranger")
ROOM_SERVICE = "conference.localhost"
ROOM_JOE = "room@conference.localhost/joe"
LEGACY_TYPES = ("invisible", "visible")

CLIENT = "{jabber:client}"
PRESENCE = f"{CLIENT}presence"
MESSAGE = f"{CLIENT}message"
LAST_QUERY = "<query xmlns='jabber:iq:last'/>"
LAST = "{jabber:iq:last}query"
DISCO_ITEMS_QUERY = "<query xmlns='http://jabber.org/protocol/disco#items'/>"
DISCO_ITEM = "{http://jabber.org/protocol/disco#items}item"
AN_HOUR_AGO = 3600.0
LAST_STATUS = "Gone fishing"


def joe(show: str | None = None, status: str | None = None, type_: str = "available") -> Heard:
    """What an actor hears when joe's session r1 tells them its presence."""
    return (JOE_R1, type_, show, status)


AVAILABLE = joe()
UNAVAILABLE = joe(type_="unavailable")


def heard_as(element: Element) -> Heard:
    """``(from, type, show, status)`` for presence, ``(from, kind/type, id, body)`` otherwise."""
    kind = element.tag.removeprefix(CLIENT)
    if element.tag == PRESENCE:
        show, status = element.findtext(f"{CLIENT}show"), element.findtext(f"{CLIENT}status")
        return (element.get("from"), element.get("type") or "available", show, status)
    body = element.findtext(f"{CLIENT}body")
    return (element.get("from"), f"{kind}/{element.get('type')}", element.get("id"), body)


def shape(element: Element) -> tuple[object, ...]:
    """What an observer can compare: tag, attributes but ``id``, text and children."""
    attrs = tuple(sorted((k, v) for k, v in element.attrib.items() if k != "id"))
    children = tuple(shape(child) for child in element)
    return (element.tag, attrs, (element.text or "").strip(), children)


def chat(to: str, id_: str, body: str = "ping") -> str:
    return f"<message to='{to}' type='chat' id='{id_}'><body>{body}</body></message>"


def message_ids(elements: list[Element]) -> list[str | None]:
    return [e.get("id") for e in elements if e.tag == MESSAGE]


@dataclass
class Cast(BaseCast):
    """The actors of one conversation, by name, and a transcript of all each one received."""

    transcript: dict[str, list[Element]] = field(default_factory=dict)

    async def log_in(self, name: str, *, presence: bool = False) -> TestClient:
        """Log ``name`` in (``user`` or ``user/resource``; the default resource is r1)."""
        client = await super().log_in(name, presence=presence)
        self.transcript.setdefault(name, [])
        return client

    async def log_off(self, name: str) -> dict[str, list[Heard]]:
        """Close ``name``'s stream; return what the others heard because of it.

        The server unbinds and sends unavailable before it closes its side of the stream,
        so when this returns everything the logoff caused is queued.
        """
        await self.leave(name)
        return await self.everyone_heard()

    async def heard(self, name: str) -> list[Element]:
        received = await sync(self.clients[name])
        self.transcript[name].extend(received)
        return received

    async def everyone_heard(self, *, but: str | None = None) -> dict[str, list[Heard]]:
        return {
            name: [heard_as(e) for e in await self.heard(name)]
            for name in list(self.clients)
            if name != but
        }

    async def says(self, name: str, xml: str) -> dict[str, list[Heard]]:
        """``name`` sends ``xml``; return what every *other* actor heard because of it."""
        await self.asks(name, xml)
        return await self.everyone_heard(but=name)

    async def asks(self, name: str, xml: str) -> list[Element]:
        """``name`` sends ``xml``; return what ``name`` got back (others are not read)."""
        await self.clients[name].send(xml)
        return await self.heard(name)


@asynccontextmanager
async def open_cast(
    srv: TestServer,
    *,
    available: tuple[str, ...] = CONTACTS,
    unavailable: tuple[str, ...] = (),
    joe_contacts: tuple[str, ...] = CONTACTS,
) -> AsyncIterator[Cast]:
    """joe (joe@localhost/r1, no presence yet) and the other actors; joe and each of
    ``joe_contacts`` are mutual contacts, and every inbox is empty."""
    cast = Cast(srv)
    try:
        for name in available:
            await cast.log_in(name, presence=True)
        for name in unavailable:
            await cast.log_in(name)
        await cast.log_in("joe")
        for name in joe_contacts:
            await make_contacts(srv, cast.clients["joe"], cast.clients[name])
        await cast.everyone_heard()
        yield cast
    finally:
        await cast.aclose()


def open_server(*, xep0018: bool = True) -> AbstractAsyncContextManager[TestServer]:
    """A real-socket server with the XEP's cast; the baseline plugins (offline included)."""
    plugins = ["xep0018"] if xep0018 else []
    return open_test_server(plugins=plugins, accounts=ACCOUNTS, tcp=True)


async def stored_for_joe(srv: TestServer) -> int:
    return await srv.server.db(srv.server.storage.count_offline, JOE)


async def bare_message_outcome(
    cast: Cast, id_: str
) -> tuple[list[Heard], dict[str, list[Heard]], int]:
    """stpeter sends joe@localhost a chat message: (what stpeter got back, what the others
    heard, how many messages were stored for joe)."""
    before = await stored_for_joe(cast.srv)
    back = [heard_as(e) for e in await cast.asks("stpeter", chat(JOE, id_))]
    others = await cast.everyone_heard(but="stpeter")
    return back, others, await stored_for_joe(cast.srv) - before


# ---------------------------------------------------------------- 1. the XEP's own scenario

# XEP-0018 §5: joe sends each stanza in turn; his contacts hear this and nothing else.
XEP_SCENARIO: list[tuple[str, dict[str, list[Heard]]]] = [
    # joe logs in invisible (initial presence): the server forwards nothing
    ("<presence type='invisible'/>", {}),
    # visible to rynok only: rynok gets joe's presence (available, never type 'visible')
    ("<presence to='rynok@localhost' type='visible'/>", {"rynok": [AVAILABLE]}),
    # auto-away, then a status change: rynok only
    (
        "<presence><show>xa</show><status>Away (due to idle)</status></presence>",
        {"rynok": [joe("xa", "Away (due to idle)")]},
    ),
    (
        "<presence><show>away</show><status>Meeting</status></presence>",
        {"rynok": [joe("away", "Meeting")]},
    ),
    # visible to all: the others get the last undirected presence, rynok nothing new
    (
        "<presence type='visible'/>",
        {"stpeter": [joe("away", "Meeting")], "pgmillard": [joe("away", "Meeting")]},
    ),
    # invisible to pgmillard: pgmillard sees joe go offline
    ("<presence to='pgmillard@localhost' type='invisible'/>", {"pgmillard": [UNAVAILABLE]}),
    # free to chat: everyone but pgmillard
    ("<presence><show>chat</show></presence>", {"stpeter": [joe("chat")], "rynok": [joe("chat")]}),
]


async def test_xep0018_scenario_joe_stpeter_pgmillard_rynok_stanza_by_stanza() -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        for stanza, expected in XEP_SCENARIO:
            heard = await cast.says("joe", stanza)
            assert heard == nobody_else(heard, **expected), f"after joe sent {stanza}"


async def test_invisible_initial_presence_still_brings_joe_his_contacts_presence() -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        received = await cast.asks("joe", "<presence type='invisible'/>")
    seen = {heard_as(e)[:2] for e in received}
    assert {(f"{name}@localhost/r1", "available") for name in CONTACTS} <= seen


# ---------------------------------------------------------------- 2. each behaviour alone


async def test_going_invisible_sends_unavailable_to_every_contact_who_saw_joe() -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        heard = await cast.says("joe", "<presence><status>here</status></presence>")
        assert heard == nobody_else(heard, **{c: [joe(status="here")] for c in CONTACTS})
        heard = await cast.says("joe", "<presence type='invisible'/>")
        assert heard == nobody_else(heard, **{c: [UNAVAILABLE] for c in CONTACTS})


async def test_invisible_joe_chats_by_full_jid_in_both_directions() -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        await cast.says("joe", "<presence><status>here</status></presence>")
        heard = await cast.says("joe", "<presence type='invisible'/>")
        assert heard == nobody_else(heard, **{c: [UNAVAILABLE] for c in CONTACTS})
        heard = await cast.says("joe", chat(STPETER_R1, "to-stpeter"))
        assert heard == nobody_else(heard, stpeter=[(JOE_R1, "message/chat", "to-stpeter", "ping")])
        heard = await cast.says("stpeter", chat(JOE_R1, "to-joe"))
        assert heard == nobody_else(heard, joe=[(STPETER_R1, "message/chat", "to-joe", "ping")])


async def test_bare_jid_message_to_invisible_joe_gets_exactly_the_offline_answer() -> None:
    async with (
        open_server() as srv,
        open_cast(srv, available=("stpeter",), joe_contacts=("stpeter",)) as cast,
    ):
        await cast.log_off("joe")
        offline = await bare_message_outcome(cast, "while-offline")
        await cast.log_in("joe")
        received = await cast.asks("joe", "<presence type='invisible'/>")
        assert (STPETER_R1, "available") in {heard_as(e)[:2] for e in received}  # joe is online
        invisible = await bare_message_outcome(cast, "while-invisible")
    # no error back to stpeter, nothing handed to joe, the message stored: both times
    assert offline == ([], {}, 1)
    assert invisible == ([], {"joe": []}, 1)


async def test_message_stored_while_offline_is_delivered_on_invisible_initial_presence() -> None:
    async with (
        open_server() as srv,
        open_cast(srv, available=("stpeter",), joe_contacts=("stpeter",)) as cast,
    ):
        await cast.log_off("joe")
        await cast.says("stpeter", chat(JOE, "while-offline"))
        await cast.log_in("joe")
        received = await cast.asks("joe", "<presence type='invisible'/>")
        heard = await cast.everyone_heard(but="joe")
        assert message_ids(received) == ["while-offline"]
        assert heard == {"stpeter": []}  # delivering it told stpeter nothing
        assert await stored_for_joe(srv) == 0


async def test_message_stored_while_invisible_is_delivered_when_joe_becomes_visible() -> None:
    async with (
        open_server() as srv,
        open_cast(srv, available=("stpeter",), joe_contacts=("stpeter",)) as cast,
    ):
        await cast.asks("joe", "<presence type='invisible'/>")
        await cast.says("stpeter", chat(JOE, "while-invisible"))
        assert await stored_for_joe(srv) == 1
        received = await cast.asks("joe", "<presence type='visible'/>")
        assert message_ids(received) == ["while-invisible"]
        assert await stored_for_joe(srv) == 0


async def test_message_stored_while_invisible_is_kept_for_joes_next_login() -> None:
    async with (
        open_server() as srv,
        open_cast(srv, available=("stpeter",), joe_contacts=("stpeter",)) as cast,
    ):
        received = await cast.asks("joe", "<presence type='invisible'/>")
        assert (STPETER_R1, "available") in {heard_as(e)[:2] for e in received}  # joe is online
        await cast.says("stpeter", chat(JOE, "while-invisible"))
        await cast.log_off("joe")
        await cast.log_in("joe")
        received = await cast.asks("joe", "<presence/>")
        assert message_ids(received) == ["while-invisible"]


async def test_directed_visible_while_visible_to_all_sends_nothing_new() -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        heard = await cast.says("joe", "<presence/>")
        assert heard == nobody_else(heard, **{c: [AVAILABLE] for c in CONTACTS})
        back = await cast.asks("joe", "<presence to='stpeter@localhost' type='visible'/>")
        assert back == []  # no error: the plugin took it
        heard = await cast.everyone_heard(but="joe")
        assert heard == nobody_else(heard)
        heard = await cast.says("joe", "<presence><show>dnd</show></presence>")
        assert heard == nobody_else(heard, **{c: [joe("dnd")] for c in CONTACTS})


async def test_directed_invisible_then_visible_shows_the_contact_the_current_presence() -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        await cast.says("joe", "<presence><show>dnd</show></presence>")
        heard = await cast.says("joe", "<presence to='stpeter@localhost' type='invisible'/>")
        assert heard == nobody_else(heard, stpeter=[UNAVAILABLE])
        heard = await cast.says("joe", "<presence><show>away</show></presence>")
        assert heard == nobody_else(heard, pgmillard=[joe("away")], rynok=[joe("away")])
        heard = await cast.says("joe", "<presence to='stpeter@localhost' type='visible'/>")
        assert heard == nobody_else(heard, stpeter=[joe("away")])


async def test_stranger_sent_directed_visible_gets_presence_then_unavailable_on_logoff() -> None:
    async with open_server() as srv, open_cast(srv, available=(*CONTACTS, "stranger")) as cast:
        heard = await cast.says("joe", "<presence type='invisible'/>")
        assert heard == nobody_else(heard)
        heard = await cast.says("joe", "<presence to='stranger@localhost' type='visible'/>")
        assert heard == nobody_else(heard, stranger=[AVAILABLE])
        heard = await cast.log_off("joe")
        assert heard == nobody_else(heard, stranger=[UNAVAILABLE])


@pytest.mark.parametrize(
    ("first_presence", "expected"),
    [
        ("<presence to='rynok@localhost' type='visible'/>", {"rynok": [AVAILABLE]}),
        ("<presence to='stpeter@localhost' type='invisible'/>", {}),
    ],
    ids=["visible-to-rynok", "invisible-to-stpeter"],
)
async def test_directed_legacy_presence_before_initial_presence_shows_joe_to_nobody_else(
    first_presence: str, expected: dict[str, list[Heard]]
) -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        heard = await cast.says("joe", first_presence)
        assert heard == nobody_else(heard, **expected)


# Updates a client sends on its own while the user is invisible (XEP-0018 §6).
UNATTENDED_UPDATES = {
    "auto-away": "<presence><show>away</show><status>Auto away</status></presence>",
    "auto-xa": "<presence><show>xa</show></presence>",
    "status-change": "<presence><status>On the phone</status></presence>",
    "priority-change": "<presence><priority>10</priority></presence>",
    "back-from-away": "<presence/>",
}


@pytest.mark.parametrize("update", UNATTENDED_UPDATES.values(), ids=UNATTENDED_UPDATES.keys())
async def test_presence_update_while_invisible_reaches_only_whom_joe_is_visible_to(
    update: str,
) -> None:
    async with open_server() as srv, open_cast(srv) as cast:
        await cast.says("joe", "<presence type='invisible'/>")
        await cast.says("joe", "<presence to='rynok@localhost' type='visible'/>")
        heard = await cast.says("joe", update)
        assert [h[:2] for h in heard.pop("rynok")] == [(JOE_R1, "available")]  # control
        assert heard == nobody_else(heard)


# ---------------------------------------------------------------- 3. nothing legacy leaves


async def test_directed_invisible_to_a_room_reaches_it_as_unavailable_not_invisible() -> None:
    room: list[Element] = []

    def room_service(stanza: Stanza) -> bool:
        room.append(stanza.element)
        return True

    async with open_server() as srv, open_cast(srv) as cast:
        srv.server.components[ROOM_SERVICE] = room_service
        await cast.says("joe", "<presence><show>chat</show></presence>")
        await cast.says("joe", f"<presence to='{ROOM_JOE}'/>")
        await cast.says("joe", f"<presence to='{ROOM_JOE}' type='invisible'/>")
        await cast.says("joe", f"<presence to='{ROOM_JOE}' type='visible'/>")
        await cast.log_off("joe")
    assert [(e.get("to"), *heard_as(e)) for e in room] == [
        (ROOM_JOE, *AVAILABLE),  # the directed presence joe sent to join
        (ROOM_JOE, *UNAVAILABLE),  # invisible to the room: it sees joe leave
        (ROOM_JOE, *joe("chat")),  # visible again: joe's current presence
        (ROOM_JOE, *UNAVAILABLE),  # logoff
    ]


async def test_no_invisible_or_visible_presence_ever_leaves_the_server() -> None:
    room: list[Element] = []

    def room_service(stanza: Stanza) -> bool:
        room.append(stanza.element)
        return True

    everyone = (*CONTACTS, "stranger", "joe/r2")
    async with open_server() as srv, open_cast(srv, available=everyone) as cast:
        srv.server.components[ROOM_SERVICE] = room_service
        for stanza, _ in XEP_SCENARIO:
            await cast.says("joe", stanza)
        for to in (ROOM_JOE, "stranger@localhost", "joe@localhost/r2", JOE, "rynok@localhost/r1"):
            await cast.says("joe", f"<presence to='{to}'/>")
            await cast.says("joe", f"<presence to='{to}' type='invisible'/>")
            await cast.says(
                "joe", f"<presence to='{to}' type='visible'><status>x</status></presence>"
            )
        await cast.says("joe", "<presence type='invisible'><show>away</show></presence>")
        await cast.says("joe", "<presence type='visible'/>")
        await cast.log_off("joe")
        transcript = cast.transcript
    received = [e for name in transcript for e in transcript[name]] + room
    assert legacy_typed(received) == []
    # not vacuous: the others and the room did hear joe, often
    about_joe = [e for e in received if e.tag == PRESENCE and e.get("from") == JOE_R1]
    assert len(about_joe) > 20 and len(room) >= 3


def legacy_typed(elements: list[Element]) -> list[Heard]:
    return [heard_as(e) for e in elements if e.tag == PRESENCE and e.get("type") in LEGACY_TYPES]


# ---------------------------------------------------------------- 4. without the plugin


@pytest.mark.parametrize("legacy_type", LEGACY_TYPES)
async def test_without_plugin_legacy_presence_is_bad_request_and_joe_stays_unavailable(
    legacy_type: str,
) -> None:
    async with (
        open_server(xep0018=False) as srv,
        open_cast(srv, available=("stpeter",), joe_contacts=("stpeter",)) as cast,
    ):
        back = await cast.asks("joe", f"<presence type='{legacy_type}' id='legacy'/>")
        assert [(e.tag, e.get("id"), error_condition(e)) for e in back] == [
            (PRESENCE, "legacy", "bad-request")
        ]
        assert await cast.everyone_heard(but="joe") == {"stpeter": []}
        # joe did not become available: a bare-JID message takes the offline path
        assert await bare_message_outcome(cast, "after-legacy") == ([], {"joe": []}, 1)
        # and his first available presence is still his initial presence
        received = await cast.asks("joe", "<presence/>")
        assert message_ids(received) == ["after-legacy"]
        assert await cast.everyone_heard(but="joe") == {"stpeter": [AVAILABLE]}


# ---------------------------------------------------------------- 5. with the core decision


async def seed_last_logoff(srv: TestServer) -> None:
    """joe last logged off publicly an hour ago, saying LAST_STATUS."""
    stamp = time.time() - AN_HOUR_AGO
    await srv.server.db(srv.server.storage.set_last_activity, JOE, stamp, LAST_STATUS)


def open_stpeter_and_rynok(srv: TestServer) -> AbstractAsyncContextManager[Cast]:
    """rynok online; stpeter connected but not yet available (he logs in later)."""
    return open_cast(
        srv, available=("rynok",), unavailable=("stpeter",), joe_contacts=("stpeter", "rynok")
    )


async def hide_joe_from_stpeter_only(cast: Cast) -> None:
    """joe, invisible to stpeter from the start, comes online: stpeter was never entitled
    to see him (had joe been visible to stpeter first, stpeter would see a logoff at the
    moment he hid, like any logoff — see the XEP-0186 tests)."""
    heard = await cast.says("joe", "<presence to='stpeter@localhost' type='invisible'/>")
    assert heard == nobody_else(heard)
    heard = await cast.says("joe", "<presence/>")
    assert heard == nobody_else(heard, rynok=[AVAILABLE])


async def stpeter_probes_joe(cast: Cast) -> list[Element]:
    """stpeter sends initial presence (probing his contacts), then goes unavailable again;
    return what he learnt about joe."""
    received = await cast.asks("stpeter", "<presence/>")
    await cast.asks("stpeter", "<presence type='unavailable'/>")
    await cast.everyone_heard()
    return [e for e in received if (e.get("from") or "").split("/")[0] == JOE]


async def last_activity(cast: Cast, name: str) -> tuple[int, str | None, float]:
    """The last activity ``name`` gets for joe: (seconds, status, when it was asked)."""
    reply = await query(cast.clients[name], JOE, LAST_QUERY)
    payload = reply.find(LAST)
    assert payload is not None, (reply.attrib, error_condition(reply))
    return int(payload.get("seconds", "")), payload.text, time.time()


def logoff_time(answer: tuple[int, str | None, float]) -> float:
    """When the answer says joe logged off (posix time)."""
    seconds, _, asked_at = answer
    return asked_at - seconds


async def disco_items(cast: Cast, name: str) -> list[str | None]:
    reply = await query(cast.clients[name], JOE, DISCO_ITEMS_QUERY)
    assert reply.get("type") == "result", error_condition(reply)
    return [item.get("jid") for item in reply.iter(DISCO_ITEM)]


async def test_probe_while_invisible_to_stpeter_gets_the_answer_for_offline_joe() -> None:
    async with open_server() as srv:
        await seed_last_logoff(srv)
        async with open_stpeter_and_rynok(srv) as cast:
            await cast.log_off("joe")
            offline = await stpeter_probes_joe(cast)
            await cast.log_in("joe")
            await hide_joe_from_stpeter_only(cast)
            hidden = await stpeter_probes_joe(cast)
    assert [heard_as(e) for e in offline] == [(JOE, "unavailable", None, LAST_STATUS)]
    assert [shape(e) for e in hidden] == [shape(e) for e in offline]  # delay stamp included


async def test_last_activity_while_invisible_to_stpeter_is_what_it_was_before_login() -> None:
    async with open_server() as srv:
        await seed_last_logoff(srv)
        async with open_stpeter_and_rynok(srv) as cast:
            await cast.log_off("joe")
            before = await last_activity(cast, "stpeter")
            await cast.log_in("joe")
            await hide_joe_from_stpeter_only(cast)
            while_hidden = await last_activity(cast, "stpeter")
            rynok_while_online = await last_activity(cast, "rynok")
            await cast.log_off("joe")
            after_logoff = await last_activity(cast, "stpeter")
            rynok_after_logoff = await last_activity(cast, "rynok")
    seeded = time.time() - AN_HOUR_AGO
    assert logoff_time(before) == pytest.approx(seeded, abs=30) and before[1] == LAST_STATUS
    for seen in (while_hidden, after_logoff):  # never '0': the logoff stpeter last saw
        assert seen[0] > 0 and seen[1] == LAST_STATUS
        assert logoff_time(seen) == pytest.approx(logoff_time(before), abs=2)
    assert rynok_while_online[:2] == (0, None)  # control: rynok sees joe online
    assert logoff_time(rynok_after_logoff) == pytest.approx(time.time(), abs=30)
    assert rynok_after_logoff[1] is None  # and saw this logoff, not the old one


async def test_disco_items_while_invisible_to_stpeter_are_empty_like_offline() -> None:
    async with open_server() as srv, open_stpeter_and_rynok(srv) as cast:
        await cast.log_off("joe")
        offline = await disco_items(cast, "stpeter")
        await cast.log_in("joe")
        await hide_joe_from_stpeter_only(cast)
        hidden = await disco_items(cast, "stpeter")
        rynok = await disco_items(cast, "rynok")
    assert offline == hidden == []
    assert rynok == [JOE_R1]  # control


async def test_logoff_while_invisible_to_stpeter_sends_him_no_unavailable() -> None:
    async with open_server() as srv, open_stpeter_and_rynok(srv) as cast:
        await hide_joe_from_stpeter_only(cast)
        await cast.says("stpeter", "<presence/>")  # stpeter logs in while joe hides from him
        heard = await cast.log_off("joe")
        assert heard == nobody_else(heard, rynok=[UNAVAILABLE])
