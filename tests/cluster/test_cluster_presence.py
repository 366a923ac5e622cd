"""Presence between accounts on different workers behaves as on one server: approvals,
presences nobody was there to see, and login probes answered to the new resource only.
Each case runs on a single server and on two workers, with the same expectations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from casper.jid import JID
from casper.storage.base import RosterItem
from casper.testing import TestServer, open_test_cluster, open_test_server
from casper.testing.harness import settle

from tests.cluster.test_cluster_routing import ALICE, BOB, DOMAIN

Where = Callable[[str], TestServer]  # the server a user connects to
PLUGINS = ("privacy-lists",)


def presence_of(user: str, type_: str | None = None):
    return lambda e: (
        e.tag.endswith("}presence")
        and e.get("from", "").split("/")[0] == f"{user}@{DOMAIN}"
        and e.get("type") == type_
    )


@asynccontextmanager
async def servers(layout: str, tmp_path: Path) -> AsyncIterator[tuple[Where, list[TestServer]]]:
    if layout == "one server":
        async with open_test_server(accounts=[ALICE, BOB], plugins=PLUGINS) as srv:
            yield (lambda user: srv), [srv]
    else:  # each user connects to their own home: stanzas between them cross
        async with open_test_cluster(tmp_path, accounts=[ALICE, BOB], plugins=PLUGINS) as (w0, w1):
            homes = {ALICE: w0, BOB: w1}
            yield homes.__getitem__, [w0, w1]


async def quiet_for(client, match, all_servers: list[TestServer]) -> None:
    if len(all_servers) > 1:
        await settle(all_servers)
    await client.expect_nothing(match, settle=0.3)


async def mutual_contacts(srv: TestServer) -> None:
    """ALICE and BOB subscribed to each other, in storage (before either logs in)."""
    for user, contact in ((ALICE, BOB), (BOB, ALICE)):
        item = RosterItem(f"{contact}@{DOMAIN}", subscription="both")
        await srv.server.rosters.put(JID.make(user, DOMAIN), item, push=False)


LAYOUTS = pytest.mark.parametrize("layout", ["one server", "two workers"])


@LAYOUTS
async def test_an_approval_shows_the_online_contact_available_not_offline(layout, tmp_path):
    async with (
        servers(layout, tmp_path) as (where, everyone),
        where(ALICE).client(ALICE, resource="a", presence=True) as alice,
        where(BOB).client(BOB, resource="b", presence=True) as bob,
    ):
        await bob.send(f"<presence to='{ALICE}@{DOMAIN}' type='subscribe'/>")
        await alice.expect(lambda e: e.get("type") == "subscribe")
        await alice.send(f"<presence to='{BOB}@{DOMAIN}' type='subscribed'/>")
        await bob.expect(presence_of(ALICE))
        await quiet_for(bob, presence_of(ALICE, "unavailable"), everyone)


@LAYOUTS
async def test_nobody_gets_unavailable_for_a_presence_they_never_got(layout, tmp_path):
    async with (
        servers(layout, tmp_path) as (where, everyone),
        where(ALICE).client(ALICE, resource="a", presence=True) as alice,
    ):
        await alice.send(f"<presence to='{BOB}@{DOMAIN}/r1'/>")  # bob is offline
        await alice.send(f"<iq type='get' id='s' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        await alice.expect(lambda e: e.get("id") == "s")
        if len(everyone) > 1:
            await settle(everyone)
        async with where(BOB).client(BOB, resource="r1", presence=True) as bob:
            await alice.send("<presence type='unavailable'/>")
            await quiet_for(bob, presence_of(ALICE, "unavailable"), everyone)


@LAYOUTS
async def test_login_probes_are_answered_to_the_new_resource_only(layout, tmp_path):
    async with servers(layout, tmp_path) as (where, everyone):
        await mutual_contacts(everyone[0])
        async with where(BOB).client(BOB, resource="b", presence=True), \
                where(ALICE).client(ALICE, resource="a1", presence=True) as a1:  # fmt: skip
            await a1.expect(presence_of(BOB))
            if len(everyone) > 1:
                await settle(everyone)
            async with where(ALICE).client(ALICE, resource="a2", presence=True) as a2:
                await a2.expect(presence_of(BOB))
                await quiet_for(a1, presence_of(BOB), everyone)


PRIVACY = "jabber:iq:privacy"
BLOCK_PRESENCE_IN = (
    f"<iq type='set' id='l1'><query xmlns='{PRIVACY}'><list name='quiet'>"
    f"<item type='jid' value='{BOB}@{DOMAIN}' action='deny' order='1'><presence-in/></item>"
    "<item action='allow' order='2'/></list></query></iq>"
)


@LAYOUTS
async def test_a_privacy_list_hides_and_shows_a_contact_on_another_worker(layout, tmp_path):
    """Blocking inbound presence from an online contact sends its unavailable at once;
    lifting the block sends its current presence (asked of the contact's home)."""
    async with servers(layout, tmp_path) as (where, everyone):
        await mutual_contacts(everyone[0])
        async with (
            where(BOB).client(BOB, resource="b", presence=True) as bob,
            where(ALICE).client(ALICE, resource="a", presence=True) as alice,
        ):
            await bob.send("<presence><show>dnd</show></presence>")
            await alice.expect(lambda e: presence_of(BOB)(e) and e.findtext(SHOW) == "dnd")
            await alice.send(BLOCK_PRESENCE_IN)
            await alice.expect(lambda e: e.get("id") == "l1")
            await alice.send(f"<iq type='set' id='a1'><query xmlns='{PRIVACY}'>"
                             "<active name='quiet'/></query></iq>")  # fmt: skip
            await alice.expect(presence_of(BOB, "unavailable"))
            await alice.send(f"<iq type='set' id='a2'><query xmlns='{PRIVACY}'>"
                             "<active/></query></iq>")  # fmt: skip
            # (the dnd presence seen before was taken: this one is sent again)
            back = await alice.expect(lambda e: presence_of(BOB)(e) and e.findtext(SHOW) == "dnd")
            assert back.get("from") == str(bob.jid)


SHOW = "{jabber:client}show"
