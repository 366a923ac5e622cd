"""blocking: the XEP-0191 protocol: discovery, the blocklist IQs and their pushes.

What is advertised with and without privacy-lists; get, block and unblock (prepared JIDs,
in order, no duplicates, unblock all); malformed commands refused without a change; only
the account itself manages its blocklist; the privacy-lists item limit applies; pushes go
only to the resources that requested the blocklist.
"""

from __future__ import annotations

import pytest

from tests.helpers import query
from tests.plugins.blocking.conftest import (
    DISCO_INFO,
    JULIET,
    NS,
    NURSE,
    PRIVACY,
    ROMEO,
    block,
    blocking,
    get_blocklist,
    is_blocking_push,
    items,
    open_server,
    unblock,
)
from tests.plugins.privacy_lists.privacy_kit import error_condition
from tests.plugins.privacy_lists.privacy_kit import iq as privacy_iq


async def test_server_advertises_blocking_and_privacy_only_when_enabled(plugins):
    async with open_server(plugins) as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost", DISCO_INFO)
        features = {
            f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")
        }
        assert NS in features
        assert (PRIVACY in features) == ("privacy-lists" in plugins)
        answer = await privacy_iq(romeo, "", "get")
        if "privacy-lists" in plugins:
            assert answer.get("type") == "result"
        else:  # blocking alone enforces, but offers no jabber:iq:privacy protocol
            assert error_condition(answer) == "service-unavailable"


async def test_blocklist_is_empty_then_lists_prepared_jids_in_order(plugins):
    async with open_server(plugins) as srv, srv.client("romeo") as romeo:
        assert await get_blocklist(romeo) == []
        await block(romeo, "Juliet@LocalHost", "example.com", "nurse@localhost/Chamber")
        await block(romeo, JULIET)  # already blocked: no duplicate
        assert await get_blocklist(romeo) == [JULIET, "example.com", "nurse@localhost/Chamber"]
        await unblock(romeo, "example.com", "tybalt@example.com")  # one was never blocked
        assert await get_blocklist(romeo) == [JULIET, "nurse@localhost/Chamber"]
        await unblock(romeo)  # unblock all
        assert await get_blocklist(romeo) == []


@pytest.mark.parametrize(
    ("payload", "condition"),
    [
        (f"<block xmlns='{NS}'/>", "bad-request"),
        (f"<block xmlns='{NS}'><item/></block>", "jid-malformed"),
        (f"<block xmlns='{NS}'><item jid='a@@b'/></block>", "jid-malformed"),
        (
            f"<block xmlns='{NS}'><item jid='{JULIET}'/><item jid='@localhost'/></block>",
            "jid-malformed",
        ),
        (f"<block xmlns='{NS}'><jid>{JULIET}</jid></block>", "bad-request"),
        (f"<unblock xmlns='{NS}'><item jid='x@'/></unblock>", "jid-malformed"),
    ],
    ids=["empty block", "no jid", "bad jid", "one bad of two", "not an item", "bad unblock"],
)
async def test_malformed_commands_are_refused_and_change_nothing(plugins, payload, condition):
    async with open_server(plugins) as srv, srv.client("romeo") as romeo:
        await block(romeo, NURSE)
        assert error_condition(await blocking(romeo, payload)) == condition
        assert await get_blocklist(romeo) == [NURSE]


async def test_only_the_account_itself_manages_its_blocklist(plugins):
    async with open_server(plugins) as srv, srv.client("juliet") as juliet:
        for payload, type_ in ((f"<blocklist xmlns='{NS}'/>", "get"),
                               (f"<block xmlns='{NS}'>{items(JULIET)}</block>", "set"),
                               (f"<unblock xmlns='{NS}'/>", "set")):  # fmt: skip
            reply = await query(juliet, ROMEO, payload, type_)
            assert error_condition(reply) == "forbidden"


async def test_blocks_limited_like_any_privacy_list(plugins):
    settings = {"privacy-lists": {"max_items": 2}}
    async with open_server(plugins, plugin_settings=settings) as srv, srv.client("romeo") as romeo:
        await block(romeo, JULIET, NURSE)
        reply = await blocking(romeo, f"<block xmlns='{NS}'>{items('tybalt@example.com')}</block>")
        assert error_condition(reply) == "not-allowed"
        assert await get_blocklist(romeo) == [JULIET, NURSE]


# ---------------------------------------------------------------- pushes


async def test_pushes_go_only_to_resources_that_requested_the_blocklist(plugins):
    async with (
        open_server(plugins) as srv,
        srv.client("romeo", resource="orchard") as orchard,
        srv.client("romeo", resource="hall") as hall,
        srv.client("romeo", resource="cellar") as cellar,
    ):
        assert await get_blocklist(orchard) == []
        assert await get_blocklist(hall) == []
        await block(orchard, JULIET, NURSE)
        for client in (orchard, hall):
            push = await client.expect(is_blocking_push("block", [JULIET, NURSE]))
            assert push.get("to") == str(client.jid)
        await unblock(hall, NURSE)
        for client in (orchard, hall):
            await client.expect(is_blocking_push("unblock", [NURSE]))
        await unblock(orchard)
        for client in (orchard, hall):
            await client.expect(is_blocking_push("unblock", []))
        # (with privacy-lists, cellar does get XEP-0016 list pushes: every resource does)
        await cellar.expect_nothing(lambda e: any(c.tag.startswith(f"{{{NS}}}") for c in e))
        for client in (orchard, hall):
            await client.expect_nothing(is_blocking_push("block"))
            await client.expect_nothing(is_blocking_push("unblock"))
