"""Rooms and invisibility: joining while invisible under every strategy, what a room
reveals, the RFC 3921 forum thread's MUC edge case, strategies never reaching rooms they
were not sent to, and blocking an occupant.

Actors: ``romeo`` is the invisible one; ``juliet`` is his contact (mutual subscription),
online, and owns the room ``capulets``; ``nurse`` sits in another room, ``montagues``;
``tybalt`` is an occupant juliet blocks.

Strategies: ``none`` (no plugin: romeo just sends no broadcast presence),
``directed-presence`` (the same, Openfire 3.5 style), ``xep0018``
(``<presence type='invisible'/>``), ``invisible-command`` (XEP-0186 ``<invisible/>``, then
presence) and ``privacy-lists`` (XEP-0126: an active list denying ``presence-out``, then
presence). In every case romeo joins by directed presence to ``room/nick``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.stanza import Stanza
from casper.storage.base import RosterItem
from casper.testing import TestClient, TestServer
from casper.verdicts import Bounce, Drop, OfflineEquivalent, Verdict

from tests.helpers import sync
from tests.plugins.muc.conftest import (
    INFO_NS,
    MESSAGE,
    MUC,
    PRESENCE,
    ROOM,
    USER_NS,
    Match,
    codes,
    create_room,
    enter,
    item,
    join,
    message_from,
    open_muc,
    presence_from,
    query,
    quiet,
    room_sync,
    say,
)

OTHER_ROOM = f"montagues@{MUC}"
ROMEO = "romeo@localhost"
STRATEGIES = ("none", "directed-presence", "xep0018", "invisible-command", "privacy-lists")
PRIVACY_NS = "jabber:iq:privacy"


def about(account: str) -> Match:
    """Anything from ``account``'s bare JID or one of its resources (not from rooms)."""
    return lambda e: (e.get("from") or "").split("/")[0] == account


@asynccontextmanager
async def open_server(strategy: str, *more: str) -> AsyncIterator[TestServer]:
    plugins = tuple(p for p in (strategy, *more) if p != "none")
    async with open_muc(plugins=plugins) as srv:
        for contact in ("juliet", "nurse"):  # romeo's contacts, both ways
            for a, b in (("romeo", contact), (contact, "romeo")):
                item_ = RosterItem(str(srv.jid(b)), subscription="both")
                await srv.server.rosters.put(srv.jid(a), item_, push=False)
        yield srv


async def privacy(client: TestClient, payload: str) -> None:
    reply = await query(client, str(client.jid.bare) if client.jid else "",
                        f"<query xmlns='{PRIVACY_NS}'>{payload}</query>", "set")  # fmt: skip
    assert reply.get("type") == "result", reply.attrib


async def go_invisible(client: TestClient, strategy: str) -> None:
    """Make ``client`` invisible to everyone the way ``strategy`` does it."""
    if strategy == "xep0018":
        await client.send("<presence type='invisible'/>")
    elif strategy == "invisible-command":
        reply = await query(client, str(client.jid.bare) if client.jid else "",
                            "<invisible xmlns='urn:xmpp:invisible:1'/>", "set")  # fmt: skip
        assert reply.get("type") == "result", reply.attrib
        await client.send("<presence/>")
    elif strategy == "privacy-lists":
        await privacy(
            client,
            "<list name='invisible'><item action='deny' order='1'><presence-out/></item></list>",
        )
        await privacy(client, "<active name='invisible'/>")
        await client.send("<presence/>")
    await sync(client)


@contextmanager
def recording(srv: TestServer) -> Iterator[list[Stanza]]:
    """Record every stanza the core hands the MUC service."""
    received: list[Stanza] = []
    handler = srv.server.components[MUC]

    def record(stanza: Stanza) -> bool:
        received.append(stanza)
        return handler(stanza)

    srv.server.components[MUC] = record
    try:
        yield received
    finally:
        srv.server.components[MUC] = handler


# ---------------------------------------------------------------- joining while invisible


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_joining_while_invisible_works_and_contacts_learn_nothing(strategy: str) -> None:
    async with (
        open_server(strategy) as srv,
        srv.client("juliet", resource="balcony", presence=True) as juliet,
    ):
        await create_room(juliet, ROOM, "Juliet")
        async with srv.client("romeo", resource="orchard") as romeo:
            await go_invisible(romeo, strategy)
            await quiet(juliet, about(ROMEO))
            own = await join(romeo, ROOM, "Romeo")
            assert codes(own) == {110}  # semi-anonymous: no 100
            seen = await juliet.expect(presence_from(f"{ROOM}/Romeo"))
            assert item(seen).get("jid") == str(romeo.jid)  # juliet is the room's moderator
            await say(romeo, ROOM, "Soft!")
            await juliet.expect(message_from(f"{ROOM}/Romeo"))
            await say(juliet, ROOM, "Ay me")
            await romeo.expect(message_from(f"{ROOM}/Juliet"))
            await quiet(juliet, about(ROMEO))  # romeo@localhost itself stays offline
            await romeo.send(f"<presence to='{ROOM}/Romeo' type='unavailable'/>")
            left = await romeo.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
            assert codes(left) == {110}
            await juliet.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
            await quiet(juliet, about(ROMEO))


@pytest.mark.parametrize("whois", ["anyone", "moderators"])
async def test_a_non_anonymous_room_reveals_the_invisible_joiner_and_says_so(whois: str) -> None:
    async with (
        open_server("directed-presence") as srv,
        srv.client("juliet", presence=True) as juliet,
        srv.client("nurse") as nurse,
    ):
        await create_room(juliet, ROOM, "Juliet", whois=whois)
        await enter(nurse, ROOM, "Nurse")
        async with srv.client("romeo", resource="orchard") as romeo:
            info = await query(romeo, ROOM, f"<query xmlns='{INFO_NS}'/>")  # before joining
            features = {f.get("var") for f in info.iter(f"{{{INFO_NS}}}feature")}
            anonymity = {"anyone": "muc_nonanonymous", "moderators": "muc_semianonymous"}[whois]
            assert anonymity in features
            own = await join(romeo, ROOM, "Romeo")
            assert (100 in codes(own)) == (whois == "anyone")
            at_nurse = await nurse.expect(presence_from(f"{ROOM}/Romeo"))
            assert (item(at_nurse).get("jid") == str(romeo.jid)) == (whois == "anyone")
            await quiet(juliet, about(ROMEO))  # the room, not the roster, shows him


# ---------------------------------------------------------------- the forum thread's edge case


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("before", ["invisible", "available"])
async def test_broadcast_unavailable_leaves_the_room_and_the_reflection_reaches_the_user(
    strategy: str, before: str
) -> None:
    """U1 sends presence unavailable: the room's unavailable for U1's own occupant (110)
    must reach U1 — the core keeps the route (the Openfire bug does not happen here)."""
    async with (
        open_server(strategy) as srv,
        srv.client("juliet", resource="balcony", presence=True) as juliet,
    ):
        await create_room(juliet, ROOM, "Juliet")
        async with srv.client("romeo", resource="orchard") as romeo:
            if before == "available":
                await romeo.send("<presence/>")
                await juliet.expect(presence_from(f"{ROMEO}/orchard"))
            else:
                await go_invisible(romeo, strategy)
            await join(romeo, ROOM, "Romeo")
            await juliet.expect(presence_from(f"{ROOM}/Romeo"))
            await romeo.send("<presence type='unavailable'/>")
            reflection = await romeo.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
            assert codes(reflection) == {110}
            assert item(reflection).get("role") == "none"
            await juliet.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
            if before == "available":
                await juliet.expect(presence_from(f"{ROMEO}/orchard", "unavailable"))
            await quiet(juliet, about(ROMEO))
            await room_sync(romeo)  # still connected, and can join again
            assert (await join(romeo, ROOM, "Romeo")).get("type") is None


# ---------------------------------------------------------------- nothing reaches other rooms


async def toggle(client: TestClient, strategy: str) -> None:
    """Everything the strategy lets a client do to its visibility and status."""
    steps = {
        "none": ["<presence/>", "<presence><show>away</show></presence>",
                 "<presence type='unavailable'/>", "<presence><show>dnd</show></presence>"],
        "directed-presence": ["<presence/>", "<presence><show>away</show></presence>",
                              "<presence type='unavailable'/>", "<presence/>"],
        "xep0018": ["<presence type='invisible'/>", "<presence><show>away</show></presence>",
                    "<presence type='visible'/>", "<presence to='juliet@localhost' type='invisible'/>",
                    "<presence type='invisible'/>", "<presence to='juliet@localhost' type='visible'/>"],
    }  # fmt: skip
    if strategy == "invisible-command":
        await go_invisible(client, strategy)
        await client.send("<presence><show>away</show></presence>")
        await query(
            client,
            str(client.jid.bare) if client.jid else "",
            "<visible xmlns='urn:xmpp:invisible:1'/>",
            "set",
        )
        await client.send("<presence/>")
    elif strategy == "privacy-lists":
        await go_invisible(client, strategy)
        await client.send("<presence><show>away</show></presence>")
        await privacy(client, "<active/>")
        await client.send("<presence/>")
    else:
        for stanza in steps[strategy]:
            await client.send(stanza)
    await sync(client)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_strategy_never_reaches_rooms_the_user_did_not_join(strategy: str) -> None:
    async with (
        open_server(strategy) as srv,
        srv.client("juliet", presence=True) as juliet,
        srv.client("nurse", presence=True) as nurse,
    ):
        await create_room(juliet, ROOM, "Juliet")
        await create_room(nurse, OTHER_ROOM, "Nurse")
        with recording(srv) as reached:
            async with srv.client("romeo", resource="orchard") as romeo:
                await join(romeo, ROOM, "Romeo")
                await toggle(romeo, strategy)
                await room_sync(romeo)
            await room_sync(nurse)
        from_romeo = [
            s for s in reached if s.from_ is not None and s.from_.bare == JID.parse(ROMEO)
        ]
        assert from_romeo, "romeo's join reached the room"
        assert {s.to.bare for s in from_romeo if s.to is not None} <= {
            JID.parse(ROOM),
            JID.parse(MUC),
        }
        await quiet(nurse, lambda e: (e.get("from") or "").startswith(f"{OTHER_ROOM}/Romeo"))
        legacy = [s for s in reached if s.kind == "presence" and s.type in ("invisible", "visible")]
        assert legacy == []


async def test_xep0018_types_never_reach_a_room_and_directed_invisible_leaves_it() -> None:
    async with open_server("xep0018") as srv, srv.client("juliet", presence=True) as juliet:
        await create_room(juliet, ROOM, "Juliet")
        with recording(srv) as reached:
            async with srv.client("romeo", resource="orchard", presence=True) as romeo:
                await join(romeo, ROOM, "Romeo")
                await romeo.send(f"<presence to='{ROOM}/Romeo' type='invisible'/>")
                left = await romeo.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
                assert codes(left) == {110}
                await juliet.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
                await romeo.send(f"<presence to='{ROOM}/Romeo' type='visible'/>")
                back = await romeo.expect(presence_from(f"{ROOM}/Romeo"))
                assert 110 in codes(back)
                await romeo.send("<presence type='invisible'/>")
                await romeo.send("<presence type='visible'/>")
                await room_sync(romeo)
        presence = [(str(s.to), s.type) for s in reached if s.kind == "presence"]
        assert presence[:3] == [(f"{ROOM}/Romeo", None), (f"{ROOM}/Romeo", "unavailable"),
                                (f"{ROOM}/Romeo", None)]  # fmt: skip
        assert {t for _, t in presence} == {None, "unavailable"}
        assert not [s for s in reached if s.type in ("invisible", "visible")]


async def test_xep0018_joined_while_invisible_stays_in_the_room_when_showing_oneself_to_a_contact() -> (
    None
):
    """Showing oneself to a contact re-asks the visibility decision for everyone who saw
    the session; the room was sent directed presence, so it is never hidden from (core)."""
    async with open_server("xep0018") as srv, srv.client("juliet", presence=True) as juliet:
        await create_room(juliet, ROOM, "Juliet")
        async with srv.client("romeo", resource="orchard") as romeo:
            await go_invisible(romeo, "xep0018")
            await join(romeo, ROOM, "Romeo")
            await juliet.expect(presence_from(f"{ROOM}/Romeo"))
            await romeo.send("<presence to='nurse@localhost' type='visible'/>")
            await sync(romeo)
            await quiet(juliet, presence_from(f"{ROOM}/Romeo", "unavailable"))


async def test_an_invitation_to_an_invisible_user_is_kept_like_for_an_offline_one() -> None:
    async with (
        open_server("directed-presence") as srv,
        srv.client("juliet", presence=True) as juliet,
    ):
        await create_room(juliet, ROOM, "Juliet")
        async with srv.client("romeo", resource="orchard") as romeo:  # no presence: invisible
            await juliet.send(
                f"<message to='{ROOM}'><x xmlns='{USER_NS}'><invite to='{ROMEO}'/></x></message>"
            )
            await room_sync(juliet)
            await quiet(romeo, lambda e: e.tag == MESSAGE)
            await quiet(juliet, lambda e: e.get("type") == "error")
            assert await srv.server.db(srv.server.storage.count_offline, ROMEO) == 1
            await romeo.send("<presence/>")  # becoming available delivers it
            invitation = await romeo.expect(MESSAGE)
            assert invitation.get("from") == ROOM


# ---------------------------------------------------------------- blocking an occupant


class BlockTybalt:
    """A stand-in privacy filter: ``verdict`` for messages from ``room/Tybalt`` to juliet."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict

    @hookimpl
    def casper_filter_incoming(self, stanza: Stanza, recipient: JID) -> Verdict | None:
        if (
            stanza.kind == "message"
            and str(stanza.from_) == f"{ROOM}/Tybalt"
            and recipient.local == "juliet"
        ):
            return self.verdict
        return None


async def blocked_groupchat_scenario(
    srv: TestServer, block: str | None
) -> tuple[list[Stanza], bool]:
    """Juliet (owner), romeo and tybalt in the room; juliet blocks tybalt (``block``: a
    privacy list, or a stand-in filter when None); tybalt speaks. Return what the room got
    from juliet and whether juliet is still in the room."""
    async with (
        srv.client("juliet", presence=True) as juliet,
        srv.client("romeo") as romeo,
        srv.client("tybalt") as tybalt,
    ):
        await create_room(juliet, ROOM, "Juliet")
        await enter(romeo, ROOM, "Romeo")
        await enter(tybalt, ROOM, "Tybalt")
        if block is not None:
            await privacy(juliet, f"<list name='{block}'><item type='jid' value='{ROOM}/Tybalt' "
                          "action='deny' order='1'><message/></item></list>")  # fmt: skip
            await privacy(juliet, f"<active name='{block}'/>")
        await room_sync(juliet)
        with recording(srv) as reached:
            await say(tybalt, ROOM, "Thou art a villain")
            await romeo.expect(message_from(f"{ROOM}/Tybalt"))  # the others get it
            await room_sync(tybalt)
            await quiet(juliet, message_from(f"{ROOM}/Tybalt"))  # the blocker does not
            await room_sync(romeo)
        service = srv.server.pm.get_plugin("muc.service")
        room = service.rooms[JID.parse(ROOM)]
        from_juliet = [s for s in reached if s.from_ is not None and s.from_.local == "juliet"
                       and s.kind != "iq"]  # fmt: skip
        return from_juliet, room.by_nick("Juliet") is not None


async def test_groupchat_from_a_blocked_occupant_dropped_silently_by_a_drop_verdict() -> None:
    async with open_muc(extra_plugins=[(BlockTybalt(Drop("blocked")), "block-tybalt")]) as srv:
        from_juliet, still_there = await blocked_groupchat_scenario(srv, None)
    assert from_juliet == []  # no error went back to the room
    assert still_there


@pytest.mark.parametrize(
    "verdict",
    [OfflineEquivalent("blocked"), Bounce("service-unavailable")],
    ids=["offline-equivalent", "bounce"],
)
async def test_an_error_for_a_blocked_groupchat_gets_the_blocker_removed(verdict: Verdict) -> None:
    """What the core does with other verdicts: OfflineEquivalent for a groupchat to a full
    JID takes the offline path, which bounces ``service-unavailable`` (groupchat is never
    stored); the error reaches the room from the blocker's JID and the room removes the
    blocker (307, 333) — which is why a privacy filter must Drop groupchat."""
    async with open_muc(extra_plugins=[(BlockTybalt(verdict), "block-tybalt")]) as srv:
        from_juliet, still_there = await blocked_groupchat_scenario(srv, None)
    assert [(s.kind, s.type) for s in from_juliet] == [("message", "error")]
    assert not still_there


async def test_privacy_list_blocking_an_occupant_drops_its_groupchat_silently() -> None:
    """The real privacy-lists plugin: a list denying messages from ``room/Tybalt`` drops
    his groupchat for juliet without an error, so the room keeps her."""
    async with open_server("privacy-lists") as srv:
        from_juliet, still_there = await blocked_groupchat_scenario(srv, "no-tybalt")
    assert from_juliet == []
    assert still_there


async def test_presence_of_others_still_reaches_an_invisible_occupant_without_broadcast() -> None:
    async with open_server("none") as srv, srv.client("juliet", presence=True) as juliet:
        await create_room(juliet, ROOM, "Juliet")
        async with srv.client("romeo", resource="orchard") as romeo:
            await join(romeo, ROOM, "Romeo")
            async with srv.client("nurse") as nurse:
                await enter(nurse, ROOM, "Nurse")
                arrived = await romeo.expect(presence_from(f"{ROOM}/Nurse"))
                assert arrived.tag == PRESENCE
            left = await romeo.expect(presence_from(f"{ROOM}/Nurse", "unavailable"))
            assert codes(left) == set()
