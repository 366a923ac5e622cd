"""Group chat (XEP-0045) on two workers: a room lives on the worker its JID says, its
occupants' sessions on theirs, and every client connects through the worker that is not
its home. Rooms: ``capulets`` lives on worker 1, ``montagues`` and ``verona`` on worker 0;
romeo and tybalt live on worker 0, juliet on worker 1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from casper.cluster.homes import home_of
from casper.jid import JID
from casper.testing import TestClient, TestServer, open_test_cluster

from tests.helpers import query
from tests.plugins.muc.conftest import (
    ITEMS_NS,
    MUC,
    admin,
    codes,
    create_room,
    enter,
    message_from,
    presence_from,
    say,
)

CAPULETS, MONTAGUES, VERONA = f"capulets@{MUC}", f"montagues@{MUC}", f"verona@{MUC}"
USERS = ("romeo", "juliet", "tybalt")


def test_the_rooms_and_users_are_where_the_docstring_says() -> None:
    homes = {jid: home_of(JID.parse(jid), 2) for jid in (CAPULETS, MONTAGUES, VERONA)}
    assert homes == {CAPULETS: 1, MONTAGUES: 0, VERONA: 0}
    assert [home_of(JID.make(u, "localhost"), 2) for u in USERS] == [0, 1, 0]


@asynccontextmanager
async def cast(tmp_path: Path) -> AsyncIterator[tuple[list[TestServer], dict[str, TestClient]]]:
    async with open_test_cluster(tmp_path, accounts=USERS, plugins=("muc",)) as workers, \
            AsyncExitStack() as logins:  # fmt: skip
        clients = {}
        for user in USERS:
            via = workers[1 - home_of(JID.make(user, "localhost"), 2)]
            clients[user] = await logins.enter_async_context(via.client(user, presence=True))
        yield workers, clients


@pytest.mark.parametrize("room", [CAPULETS, MONTAGUES])
async def test_occupants_on_both_workers_see_each_other_and_chat(room: str, tmp_path: Path):
    async with cast(tmp_path) as (_, users):
        romeo, juliet = users["romeo"], users["juliet"]
        await create_room(romeo, room, "Romeo")
        _, juliet_saw = await enter(juliet, room, "Juliet")
        assert any(presence_from(f"{room}/Romeo")(e) for e in juliet_saw)
        await romeo.expect(presence_from(f"{room}/Juliet"))
        said = await say(juliet, room, "wherefore")
        for client in (romeo, juliet):
            got = await client.expect(lambda e: e.get("id") == said)
            assert got.get("from") == f"{room}/Juliet"
            assert got.findtext("{jabber:client}body") == "wherefore"
        await juliet.send(f"<presence to='{room}/Juliet' type='unavailable'/>")
        await romeo.expect(presence_from(f"{room}/Juliet", "unavailable"))


async def test_a_kicked_occupant_forgets_the_room_on_its_own_worker(tmp_path: Path):
    async with cast(tmp_path) as (workers, users):
        romeo, juliet = users["romeo"], users["juliet"]
        await create_room(romeo, MONTAGUES, "Romeo")  # on worker 0; juliet lives on 1
        await enter(juliet, MONTAGUES, "Juliet")
        await romeo.expect(presence_from(f"{MONTAGUES}/Juliet"))
        session = workers[1].server.router.session_for(juliet.jid)
        assert session is not None
        assert any(j.bare == JID.parse(MONTAGUES) for j in session.seen_by)
        answer = await admin(romeo, MONTAGUES, "<item nick='Juliet' role='none'/>")
        assert answer.get("type") == "result"
        kicked = await juliet.expect(presence_from(f"{MONTAGUES}/Juliet", "unavailable"))
        assert 307 in codes(kicked)
        await romeo.expect(presence_from(f"{MONTAGUES}/Juliet", "unavailable"))
        await query(juliet, "localhost", "<ping xmlns='urn:xmpp:ping'/>")  # the forget came first
        bookkeeping = session.seen_by | session.directed_to
        assert not any(j.bare == JID.parse(MONTAGUES) for j in bookkeeping)


async def test_an_occupant_whose_connection_drops_leaves_a_room_on_the_other_worker(
    tmp_path: Path,
):
    async with cast(tmp_path) as (_, users):
        romeo, juliet = users["romeo"], users["juliet"]
        await create_room(romeo, MONTAGUES, "Romeo")
        await enter(juliet, MONTAGUES, "Juliet")
        await romeo.expect(presence_from(f"{MONTAGUES}/Juliet"))
        await juliet.stream.aclose()  # no unavailable, no </stream:stream>
        await romeo.expect(presence_from(f"{MONTAGUES}/Juliet", "unavailable"))


async def test_the_room_list_shows_stored_rooms_of_every_worker(tmp_path: Path):
    async with cast(tmp_path) as (_, users):
        romeo, juliet = users["romeo"], users["juliet"]
        await create_room(romeo, VERONA, "Romeo", persistent=True, public=True, name="Verona")
        reply = await query(juliet, MUC, f"<query xmlns='{ITEMS_NS}'/>")  # asked of worker 1
        items = [(i.get("jid"), i.get("name")) for i in reply.iter(f"{{{ITEMS_NS}}}item")]
        assert items == [(VERONA, "Verona")]
        said = await say(romeo, VERONA, "fair")
        echo = await romeo.expect(lambda e: e.get("id") == said)
        assert message_from(f"{VERONA}/Romeo")(echo)
