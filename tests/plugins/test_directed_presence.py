"""directed-presence: Openfire 3.5 "Casper" invisibility, scripted over real TCP and TLS.

Actors: ``romeo`` is the invisible one (he logs in without broadcast presence, or goes
unavailable later); ``juliet`` is a contact he shows himself to; ``nurse`` is another
contact he does not show himself to; ``tybalt`` is a stranger (no roster relation). The
user stories are the Openfire 3.5 blog post and its comments, and the "Openfire and
RFC3921 compliancy" forum thread (U1/U2 sequence, MUC edge case), with RFC 6121 outcomes.

Every test runs the real server on a loopback TCP socket (``tcp=True``). Absence is
checked without sleeping: ``quiet`` is a round trip to the server after the cause has
been processed (the sender got an answer, or the ending stream was closed by the
server, which happens only after the session's presence cleanup).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from xml.etree.ElementTree import Element, tostring

import pytest
from casper.config import ConfigError
from casper.jid import JID
from casper.server import Server
from casper.stanza import Stanza, make_stanza
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import befriend, error_condition, new_id, query, sync

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
NURSE = "nurse@localhost"
TYBALT = "tybalt@localhost"
ACTORS = ("romeo", "juliet", "nurse", "tybalt")

CLIENT = "jabber:client"
MESSAGE = f"{{{CLIENT}}}message"
PRESENCE = f"{{{CLIENT}}}presence"
DELAY = "{urn:xmpp:delay}delay"
ROSTER_NS = "jabber:iq:roster"
LAST_NS = "jabber:iq:last"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"

MUC_DOMAIN = "conference.localhost"
ROOM = f"capulets@{MUC_DOMAIN}"
ROMEO_IN_ROOM = f"{ROOM}/Romeo"
JULIET_IN_ROOM = f"{ROOM}/Juliet"

AN_HOUR_AGO = 3600.0
LOGOFF_STATUS = "Banished to Mantua"

Match = Callable[[Element], bool]


# ---------------------------------------------------------------- server and setup


def open_server(
    *,
    accounts: tuple[str, ...] = ACTORS,
    default_plugins: bool = True,
    settings: dict[str, object] | None = None,
) -> AbstractAsyncContextManager[TestServer]:
    """A server with the directed-presence strategy on a real loopback TCP socket."""
    return open_test_server(
        plugins=["directed-presence"],
        accounts=accounts,
        tcp=True,
        default_plugins=default_plugins,
        plugin_settings={"directed-presence": settings} if settings is not None else None,
    )


async def seed_last_logoff(srv: TestServer, account: str, seconds_ago: float) -> None:
    """Pretend ``account`` last went offline publicly ``seconds_ago``, with a status."""
    server = srv.server
    await server.db(
        server.storage.set_last_activity, account, time.time() - seconds_ago, LOGOFF_STATUS
    )


async def stored(srv: TestServer, account: str) -> int:
    """How many offline messages the offline plugin holds for ``account``."""
    return await srv.server.db(srv.server.storage.count_offline, account)


# ---------------------------------------------------------------- predicates


def presence(sender: str, type_: str | None = None) -> Match:
    """A presence from exactly ``sender`` of type ``type_`` (``None``: available)."""
    return lambda e: e.tag == PRESENCE and e.get("from") == sender and e.get("type") == type_


def about(account: str) -> Match:
    """Any stanza from ``account``'s bare JID or one of its resources."""
    return lambda e: (e.get("from") or "").split("/")[0] == account


def message_id(msg_id: str) -> Match:
    return lambda e: e.tag == MESSAGE and e.get("id") == msg_id


def is_roster_push(e: Element) -> bool:
    return (
        e.get("type") == "set" and e.find(f"{{{ROSTER_NS}}}query/{{{ROSTER_NS}}}item") is not None
    )


def pushed_jids(elements: list[Element]) -> list[str]:
    return [
        item.get("jid", "")
        for e in elements
        if is_roster_push(e)
        for item in e.iter(f"{{{ROSTER_NS}}}item")
    ]


def everything(_e: Element) -> bool:
    return True


# ---------------------------------------------------------------- conversation helpers


@asynccontextmanager
async def present(srv: TestServer, user: str, resource: str) -> AsyncIterator[TestClient]:
    """``user`` logged in with initial presence, what that login brought in read away."""
    async with srv.client(user, resource=resource, presence=True) as client:
        await sync(client)
        yield client


async def quiet(client: TestClient, match: Match = everything) -> list[Element]:
    """Assert that nothing matching ``match`` was queued for ``client`` so far; return
    the elements read on the way that did not match."""
    received = await sync(client)
    unexpected = [e for e in received if match(e)]
    assert not unexpected, [(e.tag, e.attrib) for e in unexpected]
    return received


async def say(sender: TestClient, to: str, body: str = "hello") -> str:
    """Send a chat message with a fresh id to ``to``; return the id."""
    msg_id = new_id("m")
    await sender.send(f"<message to='{to}' id='{msg_id}' type='chat'><body>{body}</body></message>")
    return msg_id


async def say_without_error(sender: TestClient, to: str) -> str:
    """``say``, then check the sender got no error back (delivered or stored silently)."""
    msg_id = await say(sender, to)
    await quiet(sender, message_id(msg_id))
    return msg_id


async def request_roster(client: TestClient) -> None:
    """A roster get: from now on the session is an interested resource (RFC 6121)."""
    assert client.jid is not None
    reply = await query(client, str(client.jid.bare), f"<query xmlns='{ROSTER_NS}'/>")
    assert reply.get("type") == "result", reply.attrib


async def rename(client: TestClient, contact: str, name: str) -> None:
    """A roster set from ``client`` (pushed to every interested resource)."""
    assert client.jid is not None
    payload = f"<query xmlns='{ROSTER_NS}'><item jid='{contact}' name='{name}'/></query>"
    reply = await query(client, str(client.jid.bare), payload, "set")
    assert reply.get("type") == "result", reply.attrib


def serialized(elements: list[Element]) -> list[bytes]:
    return [tostring(e) for e in elements]


def messages(elements: list[Element]) -> list[Element]:
    return [e for e in elements if e.tag == MESSAGE]


# ---------------------------------------------------------------- a tiny MUC service


class FakeRoom:
    """The room ``capulets@conference.localhost`` as a component handler.

    Available presence to ``room/nick`` joins: the newcomer gets every other occupant,
    then every occupant (the newcomer included: the reflection) gets the newcomer.
    Unavailable leaves: every occupant, the leaver included, gets it from the occupant
    JID. Everything it receives is kept in ``received``.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.occupants: dict[JID, JID] = {}  # occupant JID (room/nick) -> real full JID
        self.received: list[Stanza] = []

    def __call__(self, stanza: Stanza) -> bool:
        to, real = stanza.to, stanza.from_
        if stanza.kind != "presence" or to is None or to.resource is None or real is None:
            return False
        self.received.append(stanza)
        if stanza.type is None:
            for occupant, occupant_real in self.occupants.items():
                if occupant != to:
                    self._send(occupant, real)
            self.occupants[to] = real
            for occupant_real in self.occupants.values():
                self._send(to, occupant_real)
            return True
        if stanza.type == "unavailable" and to in self.occupants:
            for occupant_real in self.occupants.values():
                self._send(to, occupant_real, "unavailable")
            del self.occupants[to]
            return True
        return False

    def _send(self, from_: JID, to: JID, type_: str | None = None) -> None:
        self.server.presence.deliver_presence(
            make_stanza("presence", from_=from_, to=to, type=type_)
        )

    def presences(self) -> list[tuple[str, str, str | None]]:
        return [(str(s.from_), str(s.to), s.type) for s in self.received]


@contextmanager
def room_service(srv: TestServer) -> Iterator[FakeRoom]:
    """Serve ``conference.localhost`` with a :class:`FakeRoom` for one test."""
    room = FakeRoom(srv.server)
    srv.server.components[MUC_DOMAIN] = room
    try:
        yield room
    finally:
        del srv.server.components[MUC_DOMAIN]


# ---------------------------------------------------------------- offline-equivalent observations


@asynccontextmanager
async def romeo_state(srv: TestServer, state: str) -> AsyncIterator[None]:
    """romeo ``offline`` (no session), ``invisible`` (bound, requested his roster, no
    presence) or ``available`` (initial presence). Observe in that order: an available
    session's logoff is a public one and changes what offline looks like later."""
    if state == "offline":
        yield
        return
    async with srv.client("romeo", resource="orchard", presence=state == "available") as romeo:
        await request_roster(romeo)
        yield


STATES = ("offline", "invisible", "available")


async def juliet_view_of_romeo(srv: TestServer) -> list[Element]:
    """What juliet learns of romeo's presence: her login probe, then an explicit probe."""
    async with srv.client("juliet", resource="balcony", presence=True) as juliet:
        login = [e for e in await sync(juliet) if about(ROMEO)(e)]
        await juliet.send(f"<presence type='probe' to='{ROMEO}'/>")
        probed = [e for e in await sync(juliet) if about(ROMEO)(e)]
    return login + probed


async def test_session_without_presence_sends_contacts_and_strangers_nothing() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            present(srv, "tybalt", "street") as tybalt,
        ):
            async with srv.client("romeo", resource="orchard") as romeo:
                await request_roster(romeo)
                for observer in (juliet, nurse, tybalt):
                    await quiet(observer, about(ROMEO))
            for observer in (juliet, nurse, tybalt):  # nor at logoff
                await quiet(observer, about(ROMEO))


@pytest.mark.parametrize("last_logoff", [None, AN_HOUR_AGO], ids=["never-online", "last-seen-1h"])
async def test_probe_of_session_without_presence_gets_the_offline_answer(
    last_logoff: float | None,
) -> None:
    """juliet logging in (and probing) while romeo is connected without presence gets
    exactly what she gets while he is offline: unavailable, with the same delay stamp."""
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        if last_logoff is not None:
            await seed_last_logoff(srv, ROMEO, last_logoff)
        views = {}
        for state in STATES:
            async with romeo_state(srv, state):
                views[state] = await juliet_view_of_romeo(srv)
    offline = views["offline"]
    assert [(e.get("from"), e.get("type")) for e in offline] == [(ROMEO, "unavailable")] * 2
    assert all((e.find(DELAY) is not None) == (last_logoff is not None) for e in offline)
    assert serialized(views["invisible"]) == serialized(offline)
    # control: the same observation does tell an available session from an offline one
    assert [(e.get("from"), e.get("type")) for e in views["available"]] == [
        (f"{ROMEO}/orchard", None)
    ] * 2


def last_activity_shape(reply: Element) -> tuple[str | None, str | None, str | None]:
    query_el = reply.find(f"{{{LAST_NS}}}query")
    text = query_el.text if query_el is not None and reply.get("type") == "result" else None
    return reply.get("type"), error_condition(reply), text


def seconds(reply: Element) -> int | None:
    query_el = reply.find(f"{{{LAST_NS}}}query")
    if reply.get("type") != "result" or query_el is None:
        return None
    return int(query_el.get("seconds", "-1"))


@pytest.mark.parametrize("last_logoff", [None, AN_HOUR_AGO], ids=["never-online", "last-seen-1h"])
@pytest.mark.parametrize("asker", ["juliet", "tybalt"])
async def test_last_activity_of_session_without_presence_is_the_offline_answer(
    asker: str, last_logoff: float | None
) -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        if last_logoff is not None:
            await seed_last_logoff(srv, ROMEO, last_logoff)
        answers = {}
        async with srv.client(asker, resource="r", presence=True) as observer:
            for state in STATES:
                async with romeo_state(srv, state):
                    answers[state] = await query(observer, ROMEO, f"<query xmlns='{LAST_NS}'/>")
    offline, invisible = answers["offline"], answers["invisible"]
    assert last_activity_shape(invisible) == last_activity_shape(offline)
    if asker == "tybalt":  # no presence subscription: forbidden whatever romeo does
        assert error_condition(offline) == "forbidden"
        assert error_condition(answers["available"]) == "forbidden"
    elif last_logoff is None:
        assert error_condition(offline) == "service-unavailable"
        assert seconds(answers["available"]) == 0  # control
    else:
        offline_seconds, invisible_seconds = seconds(offline), seconds(invisible)
        assert offline_seconds is not None and invisible_seconds is not None
        assert offline_seconds >= AN_HOUR_AGO - 60
        assert abs(invisible_seconds - offline_seconds) <= 5
        assert last_activity_shape(offline) == ("result", None, LOGOFF_STATUS)
        assert seconds(answers["available"]) == 0  # control


@pytest.mark.parametrize("asker", ["juliet", "tybalt"])
async def test_disco_items_of_session_without_presence_are_the_offline_answer(asker: str) -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        answers = {}
        async with srv.client(asker, resource="r", presence=True) as observer:
            for state in STATES:
                async with romeo_state(srv, state):
                    reply = await query(observer, ROMEO, f"<query xmlns='{DISCO_ITEMS}'/>")
                    answers[state] = (
                        reply.get("type"),
                        [i.get("jid") for i in reply.iter(f"{{{DISCO_ITEMS}}}item")],
                    )
    assert answers["invisible"] == answers["offline"] == ("result", [])
    expected_control = [f"{ROMEO}/orchard"] if asker == "juliet" else []
    assert answers["available"] == ("result", expected_control)


# ---------------------------------------------------------------- directed presence


async def test_directed_presence_shows_the_session_to_its_recipient_only() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            present(srv, "tybalt", "street") as tybalt,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'><status>only for you</status></presence>")
            await sync(romeo)
            shown = await juliet.expect(presence(f"{ROMEO}/orchard"))
            assert shown.findtext(f"{{{CLIENT}}}status") == "only for you"
            await quiet(juliet, about(ROMEO))  # once
            await quiet(nurse, about(ROMEO))
            await quiet(tybalt, about(ROMEO))


async def test_bare_jid_message_from_directed_recipient_reaches_the_invisible_session() -> None:
    """Openfire 3.5's reading: a session can chat with whom it showed itself to."""
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            msg_id = await say_without_error(juliet, ROMEO)
            got = await romeo.expect(message_id(msg_id))
            assert got.get("from") == f"{JULIET}/balcony" and got.find(DELAY) is None
            reply_id = await say_without_error(romeo, JULIET)
            await juliet.expect(message_id(reply_id))
        assert await stored(srv, ROMEO) == 0


async def test_bare_jid_message_from_contact_not_shown_is_stored_until_broadcast_presence() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            from_juliet = await say_without_error(juliet, ROMEO)
            from_nurse = await say_without_error(nurse, ROMEO)
            await romeo.expect(message_id(from_juliet))
            await quiet(romeo, message_id(from_nurse))
            assert await stored(srv, ROMEO) == 1
            await romeo.send("<presence/>")
            delivered = messages(await sync(romeo))
            assert [m.get("id") for m in delivered] == [from_nurse]  # juliet's: not again
            assert delivered[0].find(DELAY) is not None
        assert await stored(srv, ROMEO) == 0


async def test_bare_jid_message_from_contact_not_shown_bounces_like_offline_unstored() -> None:
    async with open_server(default_plugins=False) as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with present(srv, "nurse", "chamber") as nurse:
            offline_id = await say(nurse, ROMEO)
            offline = await nurse.expect(message_id(offline_id))
            async with (
                present(srv, "juliet", "balcony") as juliet,
                srv.client("romeo", resource="orchard") as romeo,
            ):
                await romeo.send(f"<presence to='{JULIET}'/>")
                await juliet.expect(presence(f"{ROMEO}/orchard"))
                hidden_id = await say(nurse, ROMEO)
                hidden = await nurse.expect(message_id(hidden_id))
                await quiet(romeo, message_id(hidden_id))
                admitted_id = await say_without_error(juliet, ROMEO)  # control
                await romeo.expect(message_id(admitted_id))
    assert error_condition(offline) == error_condition(hidden) == "service-unavailable"
    assert hidden.get("from") == offline.get("from") == ROMEO


async def test_directed_presence_to_full_jid_admits_only_that_resource() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as balcony,
            present(srv, "juliet", "garden") as garden,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await sync(balcony)
            await romeo.send(f"<presence to='{JULIET}/balcony'/>")
            await balcony.expect(presence(f"{ROMEO}/orchard"))
            await quiet(garden, about(ROMEO))
            from_balcony = await say_without_error(balcony, ROMEO)
            from_garden = await say_without_error(garden, ROMEO)
            await romeo.expect(message_id(from_balcony))
            await quiet(romeo, message_id(from_garden))
            assert await stored(srv, ROMEO) == 1  # the garden's took the offline path


async def test_directed_presence_to_bare_jid_admits_every_resource() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as balcony,
            present(srv, "juliet", "garden") as garden,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'/>")
            for juliet in (balcony, garden):
                await juliet.expect(presence(f"{ROMEO}/orchard"))
                msg_id = await say_without_error(juliet, ROMEO)
                await romeo.expect(message_id(msg_id))
        assert await stored(srv, ROMEO) == 0


async def test_directed_presence_matches_the_normalised_jid() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send("<presence to='JULIET@LocalHost/balcony'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            msg_id = await say_without_error(juliet, ROMEO)
            await romeo.expect(message_id(msg_id))


@pytest.mark.parametrize(
    ("shown_to", "sender"),
    [("juliet", "juliet2"), ("juliet", "xjuliet"), ("juliet2", "juliet"), ("xjuliet", "juliet")],
)
async def test_jid_merely_containing_the_recipients_name_is_not_admitted(
    shown_to: str, sender: str
) -> None:
    """Admission compares whole JIDs, never substrings (either way round)."""
    async with (
        open_server(accounts=(*ACTORS, "juliet2", "xjuliet")) as srv,
        present(srv, shown_to, "r") as recipient,
        present(srv, sender, "r") as lookalike,
        srv.client("romeo", resource="orchard") as romeo,
    ):
        await romeo.send(f"<presence to='{shown_to}@localhost'/>")
        await recipient.expect(presence(f"{ROMEO}/orchard"))
        await quiet(lookalike, about(ROMEO))
        msg_id = await say_without_error(lookalike, ROMEO)
        await quiet(romeo, message_id(msg_id))
        assert await stored(srv, ROMEO) == 1
        control = await say_without_error(recipient, ROMEO)
        await romeo.expect(message_id(control))


async def test_directed_unavailable_withdraws_the_admission() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with present(srv, "juliet", "balcony") as juliet:
            async with srv.client("romeo", resource="orchard") as romeo:
                await romeo.send(f"<presence to='{JULIET}'/>")
                await juliet.expect(presence(f"{ROMEO}/orchard"))
                await romeo.send(f"<presence to='{JULIET}' type='unavailable'/>")
                await juliet.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                msg_id = await say_without_error(juliet, ROMEO)
                await quiet(romeo, message_id(msg_id))
                assert await stored(srv, ROMEO) == 1
            await quiet(juliet, about(ROMEO))  # nothing more at logoff


# ---------------------------------------------------------------- full-JID messages


@pytest.mark.parametrize("peer", ["juliet", "tybalt"], ids=["contact", "stranger"])
async def test_forum_sequence_full_jid_messages_flow_and_bare_ones_wait_for_presence(
    peer: str,
) -> None:
    """The forum thread's U1/U2 sequence with RFC 6121 outcomes: full-JID messages are
    delivered both ways between sessions that never sent presence; bare-JID messages to
    a never-available account go offline and arrive with its first available presence."""
    u2_account = f"{peer}@localhost"
    async with open_server() as srv:
        if peer == "juliet":
            await befriend(srv, "romeo", "juliet")
        # U1 and U2 connect and authenticate but send no initial presence
        async with (
            srv.client("romeo", resource="orchard") as u1,
            srv.client(peer, resource="home") as u2,
        ):
            u1_full, u2_full = f"{ROMEO}/orchard", f"{u2_account}/home"
            # U1 -> U2: the full-JID message is delivered, the bare-JID one stored
            full_1 = await say_without_error(u1, u2_full)
            bare_1 = await say_without_error(u1, u2_account)
            await u2.expect(message_id(full_1))
            await quiet(u2, message_id(bare_1))
            # U2 -> U1: the same
            full_2 = await say_without_error(u2, u1_full)
            bare_2 = await say_without_error(u2, ROMEO)
            await u1.expect(message_id(full_2))
            await quiet(u1, message_id(bare_2))
            assert (await stored(srv, ROMEO), await stored(srv, u2_account)) == (1, 1)
            # U1 sends initial presence: only now the bare-JID message from U2 arrives
            await u1.send("<presence/>")
            arrived = messages(await sync(u1))
            assert [m.get("id") for m in arrived] == [bare_2]
            assert arrived[0].find(DELAY) is not None
            # U1 -> U2 again: full delivered, bare stored; U2 -> U1: both delivered live
            full_3 = await say_without_error(u1, u2_full)
            bare_3 = await say_without_error(u1, u2_account)
            await u2.expect(message_id(full_3))
            await quiet(u2, message_id(bare_3))
            full_4 = await say_without_error(u2, u1_full)
            bare_4 = await say_without_error(u2, ROMEO)
            live = [await u1.expect(message_id(i)) for i in (full_4, bare_4)]
            assert all(m.find(DELAY) is None for m in live)
            # U2 sends initial presence: it gets U1's two bare-JID messages, in order
            await u2.send("<presence/>")
            arrived = messages(await sync(u2))
            assert [m.get("id") for m in arrived] == [bare_1, bare_3]
            assert all(m.find(DELAY) is not None for m in arrived)
            assert (await stored(srv, ROMEO), await stored(srv, u2_account)) == (0, 0)
            # U1 and U2 now communicate without trouble, bare or full
            for sender, receiver, to in ((u1, u2, u2_account), (u2, u1, ROMEO)):
                msg_id = await say_without_error(sender, to)
                assert (await receiver.expect(message_id(msg_id))).find(DELAY) is None


# ---------------------------------------------------------------- unavailable keeps the session


async def test_unavailable_presence_keeps_the_stream_and_its_routes() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            srv.client("romeo", resource="orchard", presence=True) as romeo,
        ):
            for contact in (juliet, nurse):
                await contact.expect(presence(f"{ROMEO}/orchard"))
            # romeo goes invisible on the same stream
            await romeo.send("<presence type='unavailable'><status>away</status></presence>")
            for contact in (juliet, nurse):
                gone = await contact.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                assert gone.findtext(f"{{{CLIENT}}}status") == "away"
            await sync(romeo)  # the stream is still open and answering
            # full-JID messages still reach him; bare-JID ones take the offline path
            full_id = await say_without_error(juliet, f"{ROMEO}/orchard")
            await romeo.expect(message_id(full_id))
            bare_id = await say_without_error(nurse, ROMEO)
            await quiet(romeo, message_id(bare_id))
            assert await stored(srv, ROMEO) == 1
            # directed presence again: juliet only
            await romeo.send(f"<presence to='{JULIET}'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            await quiet(nurse, about(ROMEO))
            admitted = await say_without_error(juliet, ROMEO)
            await romeo.expect(message_id(admitted))
            # and publicly available again, still on the same stream
            await romeo.send("<presence><show>chat</show></presence>")
            for contact in (juliet, nurse):
                back = await contact.expect(presence(f"{ROMEO}/orchard"))
                assert back.findtext(f"{{{CLIENT}}}show") == "chat"
            live = await say_without_error(nurse, ROMEO)
            await romeo.expect(message_id(live))


async def test_message_stored_while_gone_invisible_arrives_when_available_again() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "nurse")
        async with (
            present(srv, "nurse", "chamber") as nurse,
            srv.client("romeo", resource="orchard", presence=True) as romeo,
        ):
            await romeo.send("<presence type='unavailable'/>")
            await nurse.expect(presence(f"{ROMEO}/orchard", "unavailable"))
            msg_id = await say_without_error(nurse, ROMEO)
            await quiet(romeo, message_id(msg_id))
            assert await stored(srv, ROMEO) == 1
            await romeo.send("<presence/>")
            arrived = messages(await sync(romeo))
            assert [m.get("id") for m in arrived] == [msg_id]
            assert await stored(srv, ROMEO) == 0


# ---------------------------------------------------------------- group chat while invisible


async def test_joining_a_room_while_invisible_works_and_reveals_nothing_to_contacts() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        with room_service(srv) as room:
            async with (
                present(srv, "juliet", "balcony") as juliet,
                present(srv, "nurse", "chamber") as nurse,
                srv.client("romeo", resource="orchard") as romeo,
            ):
                await juliet.send(f"<presence to='{JULIET_IN_ROOM}'/>")
                await juliet.expect(presence(JULIET_IN_ROOM))
                await romeo.send(f"<presence to='{ROMEO_IN_ROOM}'/>")
                await romeo.expect(presence(JULIET_IN_ROOM))  # the occupant list
                await romeo.expect(presence(ROMEO_IN_ROOM))  # the room's reflection
                await juliet.expect(presence(ROMEO_IN_ROOM))  # as an occupant, in the room
                await quiet(juliet, about(ROMEO))  # but romeo@localhost stays offline
                await quiet(nurse, about(ROMEO))
                assert room.occupants[JID.parse(ROMEO_IN_ROOM)] == JID.parse(f"{ROMEO}/orchard")
                assert (f"{ROMEO}/orchard", ROMEO_IN_ROOM, None) in room.presences()


@pytest.mark.parametrize("before", ["invisible", "available"])
async def test_broadcast_unavailable_leaves_the_room_and_its_reflection_still_arrives(
    before: str,
) -> None:
    """The forum's MUC edge case: unavailable must not destroy the route, so the room's
    unavailable for romeo's own occupant reaches him."""
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        with room_service(srv) as room:
            async with (
                present(srv, "juliet", "balcony") as juliet,
                srv.client("romeo", resource="orchard", presence=before == "available") as romeo,
            ):
                await juliet.send(f"<presence to='{JULIET_IN_ROOM}'/>")
                await juliet.expect(presence(JULIET_IN_ROOM))
                if before == "available":
                    await juliet.expect(presence(f"{ROMEO}/orchard"))
                await romeo.send(f"<presence to='{ROMEO_IN_ROOM}'/>")
                await romeo.expect(presence(ROMEO_IN_ROOM))
                await juliet.expect(presence(ROMEO_IN_ROOM))
                await quiet(juliet, about(ROMEO))
                await romeo.send("<presence type='unavailable'/>")
                await romeo.expect(presence(ROMEO_IN_ROOM, "unavailable"))  # the reflection
                await juliet.expect(presence(ROMEO_IN_ROOM, "unavailable"))
                if before == "available":
                    await juliet.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                await quiet(juliet, about(ROMEO))
                assert room.presences()[-1] == (f"{ROMEO}/orchard", ROMEO_IN_ROOM, "unavailable")
                assert JID.parse(ROMEO_IN_ROOM) not in room.occupants
                await sync(romeo)  # still connected


# ---------------------------------------------------------------- unavailable to exactly who saw


@pytest.mark.parametrize("shown_to", ["juliet", "tybalt"], ids=["contact", "stranger"])
async def test_logoff_sends_unavailable_only_to_whom_the_session_was_shown(shown_to: str) -> None:
    """No "offline to offline": nurse, a contact who logged in after romeo and never saw
    him, gets nothing at his logoff; nor does whichever of juliet and tybalt was not
    shown. The room he joined is told."""
    async with open_server() as srv, AsyncExitStack() as observers:
        await befriend(srv, "romeo", "juliet", "nurse")
        with room_service(srv) as room:
            juliet = await observers.enter_async_context(present(srv, "juliet", "balcony"))
            tybalt = await observers.enter_async_context(present(srv, "tybalt", "street"))
            shown = {"juliet": juliet, "tybalt": tybalt}[shown_to]
            async with srv.client("romeo", resource="orchard") as romeo:
                await romeo.send(f"<presence to='{shown_to}@localhost'/>")
                await romeo.send(f"<presence to='{ROMEO_IN_ROOM}'/>")
                await romeo.expect(presence(ROMEO_IN_ROOM))
                await shown.expect(presence(f"{ROMEO}/orchard"))
                nurse = await observers.enter_async_context(
                    srv.client("nurse", resource="chamber", presence=True)
                )
                offline_answer = [e for e in await sync(nurse) if about(ROMEO)(e)]
                assert [(e.get("from"), e.get("type")) for e in offline_answer] == [
                    (ROMEO, "unavailable")
                ]
            # romeo has logged off: the server closed his stream after the presence cleanup
            await shown.expect(presence(f"{ROMEO}/orchard", "unavailable"))
            for observer in (juliet, tybalt, nurse):
                await quiet(observer, about(ROMEO))
            assert room.presences()[-1] == (f"{ROMEO}/orchard", ROMEO_IN_ROOM, "unavailable")


@pytest.mark.parametrize("tybalt_shown", [False, True], ids=["tybalt-never-shown", "tybalt-shown"])
async def test_going_invisible_sends_unavailable_only_to_whom_the_session_was_shown(
    tybalt_shown: bool,
) -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            present(srv, "tybalt", "street") as tybalt,
        ):
            async with srv.client("romeo", resource="orchard", presence=True) as romeo:
                for contact in (juliet, nurse):
                    await contact.expect(presence(f"{ROMEO}/orchard"))
                if tybalt_shown:
                    await romeo.send(f"<presence to='{TYBALT}'/>")
                    await tybalt.expect(presence(f"{ROMEO}/orchard"))
                await quiet(tybalt, about(ROMEO))
                await romeo.send("<presence type='unavailable'/>")
                saw = [juliet, nurse, tybalt] if tybalt_shown else [juliet, nurse]
                for observer in saw:
                    await observer.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                for observer in (juliet, nurse, tybalt):
                    await quiet(observer, about(ROMEO))
            for observer in (juliet, nurse, tybalt):  # logoff while invisible: nothing more
                await quiet(observer, about(ROMEO))


# ---------------------------------------------------------------- roster pushes


@pytest.mark.parametrize("settings", [None, {}, {"roster_pushes": "requested"}],
                         ids=["no-table", "empty-table", "requested"])  # fmt: skip
async def test_invisible_session_that_requested_the_roster_gets_pushes_by_default(
    settings: dict[str, object] | None,
) -> None:
    async with (
        open_server(settings=settings) as srv,
        srv.client("romeo", resource="orchard") as invisible,
        srv.client("romeo", resource="study", presence=True) as available,
    ):
        for romeo in (invisible, available):
            await request_roster(romeo)
        await sync(invisible)
        await rename(available, NURSE, "Angelica")
        assert pushed_jids(await sync(invisible)) == [NURSE]
        assert pushed_jids(await sync(available)) == [NURSE]


async def test_roster_pushes_available_waits_until_the_session_is_available() -> None:
    async with (
        open_server(settings={"roster_pushes": "available"}) as srv,
        srv.client("romeo", resource="orchard") as invisible,
        srv.client("romeo", resource="study", presence=True) as available,
    ):
        for romeo in (invisible, available):
            await request_roster(romeo)
        await sync(invisible)
        await rename(available, NURSE, "Angelica")
        assert pushed_jids(await sync(invisible)) == []
        assert pushed_jids(await sync(available)) == [NURSE]  # control
        await invisible.send("<presence/>")
        await sync(invisible)
        await rename(available, TYBALT, "Prince of Cats")
        assert pushed_jids(await sync(invisible)) == [TYBALT]  # no replay of the first
        await invisible.send("<presence type='unavailable'/>")
        await sync(invisible)
        await rename(available, JULIET, "Juliet")
        assert pushed_jids(await sync(invisible)) == []
        assert pushed_jids(await sync(available)) == [TYBALT, JULIET]


@pytest.mark.parametrize("mode", ["requested", "available"])
async def test_session_that_never_requested_the_roster_gets_no_pushes(mode: str) -> None:
    async with (
        open_server(settings={"roster_pushes": mode}) as srv,
        srv.client("romeo", resource="orchard") as invisible,
        srv.client("romeo", resource="hall", presence=True) as visible,
        srv.client("romeo", resource="study", presence=True) as editor,
    ):
        await request_roster(editor)
        for romeo in (invisible, visible):
            await sync(romeo)
        await rename(editor, NURSE, "Angelica")
        assert pushed_jids(await sync(editor)) == [NURSE]  # control
        for romeo in (invisible, visible):
            assert pushed_jids(await sync(romeo)) == []


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "settings",
    [
        {"roster_push": "available"},  # misspelt key
        {"roster_pushes": "requested", "invisible": True},  # unknown key beside a good one
        {"roster_pushes": "always"},
        {"roster_pushes": "Available"},
        {"roster_pushes": ""},
        {"roster_pushes": True},
        {"roster_pushes": 1},
        {"roster_pushes": ["available"]},
    ],
)
async def test_bad_settings_are_a_config_error_at_startup(settings: dict[str, object]) -> None:
    with pytest.RaisesGroup(
        pytest.RaisesExc(ConfigError, match=r"plugin\.directed-presence"), flatten_subgroups=True
    ):
        async with open_server(settings=settings):
            pass  # pragma: no cover


@pytest.mark.parametrize("mode", ["requested", "available"])
async def test_good_settings_start_the_server_with_that_mode(mode: str) -> None:
    async with open_server(settings={"roster_pushes": mode}) as srv:
        state = srv.server.pm.get_plugin("directed-presence.state")
        assert state.config.roster_pushes == mode
