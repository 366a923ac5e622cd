"""Roster management (RFC 6121 §2): get, set, remove, pushes to interested resources."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from casper.roster import MAX_GROUP_CHARS, MAX_GROUPS
from casper.testing import TestClient, TestServer

from tests.core.conftest import (
    ROSTER,
    error_condition,
    iq_reply,
    new_id,
    quiet,
    roster_items,
    roster_push,
)

JULIET = "juliet@localhost"


async def roster_iq(
    client: TestClient, type_: str = "get", items: str = "", to: str | None = None
) -> Element:
    """Send a roster get or set and return the reply."""
    iq_id = new_id("roster")
    address = f" to='{to}'" if to else ""
    await client.send(
        f"<iq type='{type_}' id='{iq_id}'{address}><query xmlns='{ROSTER}'>{items}</query></iq>"
    )
    return await client.expect(iq_reply(iq_id))


async def roster_set(client: TestClient, items: str) -> Element:
    return await roster_iq(client, "set", items)


def groups(item: Element) -> list[str]:
    return [g.text or "" for g in item.findall(f"{{{ROSTER}}}group")]


async def test_roster_get_of_a_new_account_is_empty(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        reply = await roster_iq(romeo)
        assert reply.get("type") == "result"
        assert reply.find(f"{{{ROSTER}}}query") is not None
        assert roster_items(reply) == {}


async def test_roster_set_adds_an_item_with_name_and_groups_and_pushes_it(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await roster_iq(romeo)
        item = f"<item jid='{JULIET}' name='Juliet'><group>Capulets</group><group>Verona</group></item>"
        assert (await roster_set(romeo, item)).get("type") == "result"
        push = await romeo.expect(roster_push(JULIET))
        pushed = roster_items(push)[JULIET]
        assert pushed.attrib == {"jid": JULIET, "name": "Juliet", "subscription": "none"}
        assert groups(pushed) == ["Capulets", "Verona"]
        got = roster_items(await roster_iq(romeo))
        assert list(got) == [JULIET]
        assert got[JULIET].get("name") == "Juliet"
        assert sorted(groups(got[JULIET])) == ["Capulets", "Verona"]


async def test_roster_set_updates_name_and_groups_of_an_existing_item(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await roster_iq(romeo)
        await roster_set(
            romeo, f"<item jid='{JULIET}' name='Juliet'><group>Capulets</group></item>"
        )
        await romeo.expect(roster_push(JULIET))
        reply = await roster_set(
            romeo, f"<item jid='{JULIET}' name='My love'><group>Beloved</group></item>"
        )
        assert reply.get("type") == "result"
        pushed = roster_items(await romeo.expect(roster_push(JULIET)))[JULIET]
        assert pushed.get("name") == "My love" and groups(pushed) == ["Beloved"]
        got = roster_items(await roster_iq(romeo))[JULIET]
        assert got.get("name") == "My love" and groups(got) == ["Beloved"]
        assert got.get("subscription") == "none"


async def test_roster_set_ignores_subscription_and_ask_from_the_client(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await roster_iq(romeo)
        reply = await roster_set(
            romeo, f"<item jid='{JULIET}' subscription='both' ask='subscribe'/>"
        )
        assert reply.get("type") == "result"
        pushed = roster_items(await romeo.expect(roster_push(JULIET)))[JULIET]
        assert pushed.attrib == {"jid": JULIET, "subscription": "none"}


async def test_roster_set_with_a_duplicate_group_is_bad_request(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await roster_iq(romeo)
        item = f"<item jid='{JULIET}'><group>Verona</group><group>Verona</group></item>"
        assert error_condition(await roster_set(romeo, item)) == "bad-request"
        await quiet(romeo, roster_push())
        assert roster_items(await roster_iq(romeo)) == {}


@pytest.mark.parametrize(
    ("count", "size"), [(MAX_GROUPS + 1, 1), (MAX_GROUP_CHARS // 1000 + 1, 1000)]
)
async def test_roster_set_with_too_many_or_too_long_groups_is_not_acceptable(
    srv: TestServer, count: int, size: int
) -> None:
    """Groups are capped per item, so that one account's roster stays a few megabytes."""
    async with srv.client("romeo") as romeo:
        await roster_iq(romeo)
        group_tags = "".join(f"<group>{i:0{size}d}</group>" for i in range(count))
        reply = await roster_set(romeo, f"<item jid='{JULIET}'>{group_tags}</item>")
        assert error_condition(reply) == "not-acceptable"
        await quiet(romeo, roster_push())
        assert roster_items(await roster_iq(romeo)) == {}
        at_limit = "".join(f"<group>{i}</group>" for i in range(MAX_GROUPS))
        reply = await roster_set(romeo, f"<item jid='{JULIET}'>{at_limit}</item>")
        assert reply.get("type") == "result"


async def test_roster_set_with_two_items_is_bad_request(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await roster_iq(romeo)
        items = f"<item jid='{JULIET}'/><item jid='benvolio@localhost'/>"
        assert error_condition(await roster_set(romeo, items)) == "bad-request"
        await quiet(romeo, roster_push())
        assert roster_items(await roster_iq(romeo)) == {}


async def test_roster_remove_pushes_subscription_remove_and_drops_the_item(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await roster_iq(romeo)
        await roster_set(romeo, f"<item jid='{JULIET}' name='Juliet'/>")
        await romeo.expect(roster_push(JULIET))
        reply = await roster_set(romeo, f"<item jid='{JULIET}' subscription='remove'/>")
        assert reply.get("type") == "result"
        pushed = roster_items(await romeo.expect(roster_push(JULIET)))[JULIET]
        assert pushed.get("subscription") == "remove"
        assert roster_items(await roster_iq(romeo)) == {}


async def test_roster_remove_of_an_unknown_item_is_item_not_found(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        reply = await roster_set(romeo, f"<item jid='{JULIET}' subscription='remove'/>")
        assert error_condition(reply) == "item-not-found"


async def test_roster_push_reaches_every_resource_that_requested_the_roster_and_no_other(
    srv: TestServer,
) -> None:
    async with (
        srv.client("romeo", resource="setter") as setter,
        srv.client("romeo", resource="reader") as reader,
        srv.client("romeo", resource="silent") as silent,
    ):
        await roster_iq(setter)
        await roster_iq(reader)
        await roster_set(setter, f"<item jid='{JULIET}' name='Juliet'/>")
        for client in (setter, reader):
            push = await client.expect(roster_push(JULIET))
            assert push.get("to") == str(client.jid)
            assert roster_items(push)[JULIET].get("name") == "Juliet"
        await quiet(silent, roster_push())


@pytest.mark.parametrize("type_", ["get", "set"])
async def test_roster_iq_addressed_to_another_account_is_forbidden(
    srv: TestServer, type_: str
) -> None:
    async with srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await roster_iq(juliet)
        items = "<item jid='tybalt@localhost'/>" if type_ == "set" else ""
        reply = await roster_iq(romeo, type_, items, to=JULIET)
        assert error_condition(reply) == "forbidden"
        assert reply.get("from") == JULIET
        await quiet(juliet, roster_push())
        assert roster_items(await roster_iq(juliet)) == {}


async def test_roster_get_addressed_to_the_own_bare_jid_is_answered(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        reply = await roster_iq(romeo, to="romeo@localhost")
        assert reply.get("type") == "result"
        assert roster_items(reply) == {}
