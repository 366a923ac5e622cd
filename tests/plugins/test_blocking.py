"""blocking: XEP-0191 over the privacy-lists store, with and without the privacy-lists plugin.

Actors: romeo keeps the blocklist (``orchard``; ``hall`` a second resource); juliet is
his contact (mutual ``both``), blocked in most tests; nurse is another contact who must
notice nothing. Every scenario runs with ``blocking`` alone and with ``privacy-lists``
too (``mode``); the two-protocol agreement needs both. Real loopback TCP+TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper.testing import TestClient, TestServer, open_test_server
from casper_plugins.blocking import blocklist, with_blocked, without_blocked
from casper_plugins.privacy_lists.model import PrivacyItem, PrivacyList

from tests.helpers import new_id, query
from tests.plugins.privacy_lists.privacy_kit import (
    CLIENT,
    error_condition,
    is_presence,
    is_push,
    link,
    set_active,
    set_default,
    set_list,
    sync,
)
from tests.plugins.privacy_lists.privacy_kit import iq as privacy_iq

NS = "urn:xmpp:blocking"
ERRORS = "urn:xmpp:blocking:errors"
PRIVACY = "jabber:iq:privacy"
DISCO_INFO = "<query xmlns='http://jabber.org/protocol/disco#info'/>"
VERSION = "<query xmlns='jabber:iq:version'/>"
ROMEO, ORCHARD, HALL = "romeo@localhost", "romeo@localhost/orchard", "romeo@localhost/hall"
JULIET, BALCONY = "juliet@localhost", "juliet@localhost/balcony"
NURSE = "nurse@localhost"

MODES = {"alone": ("blocking",), "with privacy-lists": ("privacy-lists", "blocking")}


@pytest.fixture(params=list(MODES))
def plugins(request: pytest.FixtureRequest) -> tuple[str, ...]:
    return MODES[request.param]


# ---------------------------------------------------------------- helpers


@asynccontextmanager
async def open_server(plugins: tuple[str, ...], **config: Any) -> AsyncIterator[TestServer]:
    """romeo, juliet, nurse; romeo ⇄ juliet and romeo ⇄ nurse mutual contacts."""
    async with open_test_server(plugins=plugins, accounts=("romeo", "juliet", "nurse"),
                                tcp=True, **config) as srv:  # fmt: skip
        await link(srv, "romeo", "juliet")
        await link(srv, "romeo", "nurse")
        yield srv


@asynccontextmanager
async def cast(srv: TestServer, *logins: str) -> AsyncIterator[dict[str, TestClient]]:
    """Log in ``user/resource`` for each login, all available, then drain everything."""
    async with AsyncExitStack() as stack:
        clients = {}
        for login in logins:
            user, resource = login.split("/")
            clients[resource] = await stack.enter_async_context(
                srv.client(user, resource=resource, presence=True)
            )
        for client in clients.values():
            await sync(client)
        yield clients


async def blocking(client: TestClient, payload: str, type_: str = "set") -> Element:
    """An IQ to the user's own account; return the reply (not a push)."""
    iq_id = new_id("blk")
    await client.send(f"<iq type='{type_}' id='{iq_id}'>{payload}</iq>")
    return await client.expect(
        lambda e: e.tag == f"{{{CLIENT}}}iq" and e.get("id") == iq_id and e.get("type") != "set"
    )


async def get_blocklist(client: TestClient) -> list[str]:
    reply = await blocking(client, f"<blocklist xmlns='{NS}'/>", "get")
    assert reply.get("type") == "result", error_condition(reply)
    element = reply.find(f"{{{NS}}}blocklist")
    assert element is not None
    return [item.get("jid", "") for item in element]


def items(*jids: str) -> str:
    return "".join(f"<item jid='{jid}'/>" for jid in jids)


async def block(client: TestClient, *jids: str) -> None:
    reply = await blocking(client, f"<block xmlns='{NS}'>{items(*jids)}</block>")
    assert reply.get("type") == "result", error_condition(reply)


async def unblock(client: TestClient, *jids: str) -> None:
    reply = await blocking(client, f"<unblock xmlns='{NS}'>{items(*jids)}</unblock>")
    assert reply.get("type") == "result", error_condition(reply)


def is_blocking_push(name: str, jids: list[str] | None = None) -> Callable[[Element], bool]:
    """A blocklist push of ``<block/>`` or ``<unblock/>`` (with exactly ``jids``)."""

    def predicate(element: Element) -> bool:
        if element.tag != f"{{{CLIENT}}}iq" or element.get("type") != "set":
            return False
        payload = element.find(f"{{{NS}}}{name}")
        return payload is not None and (jids is None or [i.get("jid") for i in payload] == jids)

    return predicate


def blocked_error(reply: Element) -> bool:
    """``not-acceptable`` (type cancel) with XEP-0191's ``<blocked/>``."""
    error = reply.find(f"{{{CLIENT}}}error")
    return (
        error_condition(reply) == "not-acceptable"
        and error is not None
        and error.get("type") == "cancel"
        and error.find(f"{{{ERRORS}}}blocked") is not None
    )


async def say(client: TestClient, to: str, stanza_id: str, type_: str = "chat") -> None:
    """A message with a body."""
    body = "<body>x</body>"
    await client.send(f"<message to='{to}' type='{type_}' id='{stanza_id}'>{body}</message>")


def replied(stanza_id: str) -> Callable[[Element], bool]:
    return lambda e: e.get("id") == stanza_id


async def offline_count(srv: TestServer, account: str) -> int:
    return await srv.server.db(srv.server.storage.count_offline, account)


async def default_list(client: TestClient) -> tuple[str | None, list[dict[str, str]]]:
    """(default list name, its items as attribute dicts, children as 'kinds')."""
    names = await privacy_iq(client, "", "get")
    default = names.find(f"{{{PRIVACY}}}query/{{{PRIVACY}}}default")
    if default is None:
        return None, []
    name = default.get("name")
    reply = await privacy_iq(client, f"<list name='{name}'/>", "get")
    rows = []
    for item in reply.iter(f"{{{PRIVACY}}}item"):
        row = dict(item.attrib)
        if len(item):
            row["kinds"] = ",".join(child.tag.split("}")[1] for child in item)
        rows.append(row)
    return name, rows


# ---------------------------------------------------------------- the view (sans-IO)


def test_new_blocks_go_in_front_and_keep_the_other_items_in_order():
    mine = PrivacyList("mine", (PrivacyItem("allow", 5, "jid", JULIET),
                                PrivacyItem("deny", 9, kinds=frozenset({"message"}))))  # fmt: skip
    roomy = with_blocked(mine, [JULIET, NURSE, JULIET])
    assert [(i.order, i.action, i.value) for i in roomy.items] == [
        (3, "deny", JULIET), (4, "deny", NURSE), (5, "allow", JULIET), (9, "deny", None),
    ]  # fmt: skip
    snug = with_blocked(roomy, ["tybalt@example.com", NURSE, "x.example", "example.org"])
    assert [i.order for i in snug.items] == [0, 1, 2, 3, 4, 5, 9]  # just fits below 3
    tight = with_blocked(snug, ["mercutio@example.com"])
    assert [i.order for i in tight.items] == list(range(8))  # renumbered, order kept
    assert blocklist(tight) == ["mercutio@example.com", "tybalt@example.com", "x.example",
                                "example.org", JULIET, NURSE]  # fmt: skip
    assert with_blocked(tight, [NURSE]) is tight
    assert without_blocked(tight, None).items == tuple(i for i in tight.items
                                                        if i.type is None or i.action == "allow")  # fmt: skip
    assert without_blocked(mine, {NURSE}) is mine


def test_only_jid_deny_items_without_children_are_blocked_jids():
    plist = PrivacyList("mixed", (
        PrivacyItem("deny", 1, "jid", JULIET),
        PrivacyItem("deny", 2, "jid", NURSE, kinds=frozenset({"presence-out"})),
        PrivacyItem("allow", 3, "jid", "tybalt@example.com"),
        PrivacyItem("deny", 4, "group", "Montagues"),
        PrivacyItem("deny", 5, "jid", "example.com"),
    ))  # fmt: skip
    assert blocklist(plist) == [JULIET, "example.com"]
    assert blocklist(None) == []


# ---------------------------------------------------------------- discovery and protocol


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


# ---------------------------------------------------------------- presence


async def test_block_sends_unavailable_both_ways_and_unblock_current_presence(plugins):
    async with (
        open_server(plugins) as srv,
        cast(srv, "romeo/orchard", "romeo/hall", "juliet/balcony", "nurse/chamber") as c,
    ):
        await c["orchard"].send(
            "<presence><show>away</show><status>In the orchard</status></presence>"
        )
        for name in ("balcony", "chamber"):
            await c[name].expect(is_presence(ORCHARD, None))
        await block(c["orchard"], JULIET)
        for resource in (ORCHARD, HALL):
            await c["balcony"].expect(is_presence(resource, "unavailable"))
        for name in ("orchard", "hall"):
            await c[name].expect(is_presence(BALCONY, "unavailable"))
        await c["chamber"].expect_nothing(is_presence())
        # while blocked, juliet's presence changes don't reach romeo, nor romeo's her
        await c["balcony"].send("<presence><show>chat</show></presence>")
        await c["hall"].send("<presence><show>dnd</show></presence>")
        await c["chamber"].expect(is_presence(HALL, None))
        await c["orchard"].expect_nothing(is_presence(JULIET))
        await c["balcony"].expect_nothing(is_presence(ROMEO))

        await unblock(c["orchard"], JULIET)
        seen = {}
        for _ in range(2):
            presence = await c["balcony"].expect(is_presence(ROMEO, None))
            seen[presence.get("from")] = presence.findtext(f"{{{CLIENT}}}show")
        assert seen == {ORCHARD: "away", HALL: "dnd"}
        for name in ("orchard", "hall"):
            back = await c[name].expect(is_presence(BALCONY, None))
            assert back.findtext(f"{{{CLIENT}}}show") == "chat"
        await c["chamber"].expect_nothing(is_presence())


async def test_block_withdraws_directed_presence(plugins):
    async with (
        open_server(plugins) as srv,
        cast(srv, "romeo/orchard") as c,
        srv.client("nurse", resource="chamber") as stranger,  # sent no presence
    ):
        await c["orchard"].send(f"<presence to='{NURSE}/chamber'/>")
        await stranger.expect(is_presence(ORCHARD, None))
        await block(c["orchard"], NURSE)
        await stranger.expect(is_presence(ORCHARD, "unavailable"))


async def test_blocked_presence_gets_no_answer_and_a_probe_the_offline_one(plugins):
    async with open_server(plugins) as srv, cast(srv, "romeo/orchard", "juliet/balcony") as c:
        await block(c["orchard"], JULIET)
        await c["balcony"].expect(is_presence(ORCHARD, "unavailable"))
        await c["orchard"].expect(is_presence(BALCONY, "unavailable"))
        await c["balcony"].send(f"<presence to='{ROMEO}' type='subscribe'/>")
        await c["balcony"].send(f"<presence to='{ORCHARD}'/>")
        await c["balcony"].send(f"<presence to='{ORCHARD}' type='unavailable'/>")
        await c["balcony"].expect_nothing(is_presence(ROMEO))
        await c["orchard"].expect_nothing(is_presence(JULIET))
        # the core answers a local client's probe itself, with what an offline account
        # gives: unavailable from the bare JID, nothing about the sessions
        await c["balcony"].send(f"<presence to='{ROMEO}' type='probe'/>")
        answer = await c["balcony"].expect(is_presence(ROMEO))
        assert (answer.get("from"), answer.get("type")) == (ROMEO, "unavailable")
        await c["orchard"].expect_nothing(is_presence(JULIET))


# ---------------------------------------------------------------- stanzas


@pytest.mark.parametrize(
    "stanza",
    [
        "<message to='{to}' type='chat' id='{id}'><body>hi</body></message>",
        "<message to='{to}' id='{id}'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<iq to='{to}' type='get' id='{id}'><query xmlns='jabber:iq:version'/></iq>",
        "<presence to='{to}' type='subscribe' id='{id}'/>",
        "<presence to='{to}' id='{id}'/>",
    ],
    ids=["message", "chat state", "iq", "subscribe", "directed presence"],
)
@pytest.mark.parametrize("to", [JULIET, BALCONY])
async def test_outbound_to_a_blocked_jid_is_not_acceptable_blocked(plugins, stanza, to):
    async with open_server(plugins) as srv, cast(srv, "romeo/orchard", "juliet/balcony") as c:
        await block(c["orchard"], JULIET)
        await c["balcony"].expect(is_presence(ORCHARD, "unavailable"))
        stanza_id = new_id("out")
        await c["orchard"].send(stanza.format(to=to, id=stanza_id))
        reply = await c["orchard"].expect(replied(stanza_id))
        assert reply.get("type") == "error" and blocked_error(reply)
        await c["balcony"].expect_nothing()


async def test_inbound_from_a_blocked_jid_looks_offline(plugins):
    async with open_server(plugins) as srv, cast(srv, "romeo/orchard", "juliet/balcony") as c:
        orchard, balcony = c["orchard"], c["balcony"]
        await block(orchard, JULIET)
        await balcony.expect(is_presence(ORCHARD, "unavailable"))
        await orchard.expect(is_presence(BALCONY, "unavailable"))
        for to in (ROMEO, ORCHARD):
            for kind in ("chat", "normal"):
                stanza_id = new_id("in")
                await say(balcony, to, stanza_id, kind)
                reply = await balcony.expect(replied(stanza_id))
                assert error_condition(reply) == "service-unavailable"
            for query_payload in (VERSION, "<query xmlns='jabber:iq:last'/>"):
                reply = await query(balcony, to, query_payload)
                assert error_condition(reply) == "service-unavailable"
        for type_ in ("groupchat", "headline"):
            await say(balcony, ORCHARD, "gc", type_)
        await balcony.send(f"<iq to='{ORCHARD}' type='result' id='stray'/>")
        await balcony.expect_nothing(lambda e: e.get("id") in ("gc", "stray"))
        await orchard.expect_nothing(lambda e: (e.get("from") or "").startswith(JULIET))
        assert await offline_count(srv, ROMEO) == 0


async def test_block_holds_while_offline_and_across_sessions(plugins):
    async with open_server(plugins) as srv:
        async with srv.client("romeo", resource="orchard") as romeo:
            await block(romeo, JULIET)
        async with srv.client("juliet", resource="balcony", presence=True) as juliet:
            for sender_id in ("m1", "m2"):
                await say(juliet, ROMEO, sender_id)
                assert (
                    error_condition(await juliet.expect(replied(sender_id)))
                    == "service-unavailable"
                )
            assert error_condition(await query(juliet, ROMEO, VERSION)) == "service-unavailable"
        async with srv.client("nurse", resource="chamber") as nurse:
            await say(nurse, ROMEO, "n1")
            await sync(nurse)
        assert await offline_count(srv, ROMEO) == 1  # the nurse's, never juliet's
        async with srv.client("romeo", resource="hall") as romeo:
            assert await get_blocklist(romeo) == [JULIET]


async def test_full_jid_block_stops_only_that_resource(plugins):
    async with (
        open_server(plugins) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony", "juliet/tomb") as c,
    ):
        await block(c["orchard"], BALCONY)
        for name, ok in (("balcony", False), ("tomb", True)):
            stanza_id = new_id(name)
            await say(c[name], ORCHARD, stanza_id)
            if ok:
                await c["orchard"].expect(replied(stanza_id))
            else:
                assert (
                    error_condition(await c[name].expect(replied(stanza_id)))
                    == "service-unavailable"
                )
        stanza_id = new_id("out")
        await say(c["orchard"], BALCONY, stanza_id, "normal")
        assert blocked_error(await c["orchard"].expect(replied(stanza_id)))


# ---------------------------------------------------------------- both protocols agree

BOTH = MODES["with privacy-lists"]


@pytest.mark.parametrize(
    "order", [BOTH, tuple(reversed(BOTH))], ids=["privacy first", "blocking first"]
)
async def test_one_engine_whichever_plugin_configures_first(order):
    async with open_server(order) as srv:
        engine = srv.server.pm.get_plugin("privacy-lists.state")
        blocker = srv.server.pm.get_plugin("blocking.state")
        assert blocker._store is engine.store  # one store is the point
        async with srv.client("romeo") as romeo:
            await block(romeo, JULIET)
            assert await default_list(romeo) == (
                "blocklist",
                [{"action": "deny", "order": "0", "type": "jid", "value": JULIET}],
            )


async def test_a_block_is_a_privacy_list_item_and_pushed_as_a_list_edit():
    async with (
        open_server(BOTH) as srv,
        srv.client("romeo", resource="orchard") as orchard,
        srv.client("romeo", resource="hall") as hall,
    ):
        await block(orchard, JULIET)
        for client in (orchard, hall):  # XEP-0016 pushes go to every connected resource
            await client.expect(is_push("blocklist"))
        name, rows = await default_list(hall)
        assert name == "blocklist"
        assert rows == [{"action": "deny", "order": "0", "type": "jid", "value": JULIET}]
        await unblock(orchard)
        for client in (orchard, hall):
            await client.expect(is_push("blocklist"))
        assert await default_list(hall) == ("blocklist", [])


async def test_privacy_edits_of_the_default_list_show_in_the_blocklist_and_are_pushed():
    async with open_server(BOTH) as srv, srv.client("romeo", resource="orchard") as romeo:
        assert await get_blocklist(romeo) == []
        await set_list(romeo, "mine", f"<item type='jid' value='{NURSE}' action='deny' order='1'/>")
        await romeo.expect_nothing(is_blocking_push("block"))  # not the default yet
        await set_default(romeo, "mine")
        await romeo.expect(is_blocking_push("block", [NURSE]))
        await set_list(romeo, "mine", (
            f"<item type='jid' value='{JULIET}' action='deny' order='1'/>"
            f"<item type='jid' value='tybalt@example.com' action='deny' order='2'><presence-out/></item>"
            "<item type='subscription' value='none' action='deny' order='3'/>"
        ))  # fmt: skip
        await romeo.expect(is_blocking_push("block", [JULIET]))
        await romeo.expect(is_blocking_push("unblock", [NURSE]))
        assert await get_blocklist(romeo) == [JULIET]  # only jid items denying everything
        await set_list(
            romeo, "other", f"<item type='jid' value='{NURSE}' action='deny' order='1'/>"
        )
        await set_default(romeo, "other")  # another default: its blocked JIDs are the blocklist
        await romeo.expect(is_blocking_push("block", [NURSE]))
        await romeo.expect(is_blocking_push("unblock", [JULIET]))
        await set_default(romeo, None)
        await romeo.expect(is_blocking_push("unblock", [NURSE]))
        assert await get_blocklist(romeo) == []


async def test_privacy_edits_by_another_resource_are_pushed_to_blocklist_requesters():
    async with (
        open_server(BOTH) as srv,
        srv.client("romeo", resource="orchard") as orchard,
        srv.client("romeo", resource="hall") as hall,
    ):
        assert await get_blocklist(orchard) == []
        await set_list(hall, "mine", f"<item type='jid' value='{NURSE}' action='deny' order='1'/>")
        await set_default(hall, "mine")
        await orchard.expect(is_blocking_push("block", [NURSE]))
        await set_list(hall, "mine", f"<item type='jid' value='{JULIET}' action='deny' order='1'/>")
        await orchard.expect(is_blocking_push("block", [JULIET]))
        await orchard.expect(is_blocking_push("unblock", [NURSE]))
        assert await get_blocklist(orchard) == [JULIET]
        await hall.expect_nothing(is_blocking_push("block"))  # hall never asked
        await hall.expect_nothing(is_blocking_push("unblock"))


async def test_block_goes_in_front_of_an_existing_default_list_and_keeps_its_items():
    async with open_server(BOTH) as srv, cast(srv, "romeo/orchard", "juliet/balcony") as c:
        orchard, balcony = c["orchard"], c["balcony"]
        await set_list(orchard, "mine", (
            f"<item type='jid' value='{JULIET}' action='allow' order='0'/>"
            "<item type='subscription' value='none' action='deny' order='7'><message/></item>"
        ))  # fmt: skip
        await set_default(orchard, "mine")
        await block(orchard, JULIET)
        assert await default_list(orchard) == ("mine", [
            {"action": "deny", "order": "0", "type": "jid", "value": JULIET},
            {"action": "allow", "order": "1", "type": "jid", "value": JULIET},
            {"action": "deny", "order": "2", "type": "subscription", "value": "none",
             "kinds": "message"},
        ])  # fmt: skip
        await say(balcony, ROMEO, "b1")
        assert error_condition(await balcony.expect(replied("b1"))) == "service-unavailable"
        await unblock(orchard)
        name, rows = await default_list(orchard)
        assert name == "mine" and [r["action"] for r in rows] == ["allow", "deny"]
        await say(balcony, ROMEO, "b2")
        await orchard.expect(replied("b2"))


async def test_a_new_default_list_avoids_an_existing_name():
    async with open_server(BOTH) as srv, srv.client("romeo") as romeo:
        await set_list(romeo, "blocklist", "<item action='allow' order='1'/>")
        await block(romeo, JULIET)
        name, _ = await default_list(romeo)
        assert name == "blocklist-2"


async def test_an_active_privacy_list_takes_precedence_for_its_session():
    """XEP-0191 §5 item 5: a session that activates another list is not bound by the
    default list, so by the blocklist."""
    async with (
        open_server(BOTH) as srv,
        cast(srv, "romeo/orchard", "romeo/hall", "juliet/balcony") as c,
    ):
        await block(c["orchard"], JULIET)
        await set_list(c["hall"], "open", "<item action='allow' order='1'/>")
        await set_active(c["hall"], "open")
        await say(c["balcony"], HALL, "h1")
        await c["hall"].expect(replied("h1"))
        await say(c["balcony"], ORCHARD, "o1")
        # orchard is governed by the blocklist, so it looks offline to juliet: her message
        # takes the offline path, to the account's other resources, and hall takes it
        await c["hall"].expect(replied("o1"))
        await c["orchard"].expect_nothing(replied("o1"))


# ---------------------------------------------------------------- the administrator's policy

MANAGERS = {"never_hidden_from": ("managers",), "account_groups": {"managers": (JULIET,)}}


async def test_blocking_is_not_refused_by_the_policy_but_never_hidden_from_still_sees(plugins):
    """Blocking is communication blocking, never refused; hiding presence from a blocked
    ``never_hidden_from`` observer is the core's decision, which the policy overrides."""
    async with (
        open_server(plugins, **MANAGERS) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony") as c,
    ):
        await block(c["orchard"], JULIET)
        await c["balcony"].expect_nothing(is_presence(ORCHARD, "unavailable"))
        await say(c["balcony"], ROMEO, "p1")
        assert error_condition(await c["balcony"].expect(replied("p1"))) == "service-unavailable"
        await say(c["orchard"], JULIET, "p2", "normal")
        assert blocked_error(await c["orchard"].expect(replied("p2")))


async def test_blocking_works_where_invisibility_is_disabled(plugins):
    async with (
        open_server(plugins, invisibility=False) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony") as c,
    ):
        await block(c["orchard"], JULIET)
        assert await get_blocklist(c["orchard"]) == [JULIET]
        await say(c["balcony"], ROMEO, "d1")
        assert error_condition(await c["balcony"].expect(replied("d1"))) == "service-unavailable"
        await say(c["orchard"], JULIET, "d2", "normal")
        assert blocked_error(await c["orchard"].expect(replied("d2")))


async def test_a_block_hides_presence_even_where_invisibility_is_disabled(plugins):
    async with (
        open_server(plugins, invisibility=False) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony") as c,
        srv.client("nurse", resource="chamber") as stranger,  # sent no presence
    ):
        await c["orchard"].send(f"<presence to='{NURSE}/chamber'/>")
        await stranger.expect(is_presence(ORCHARD, None))
        await block(c["orchard"], JULIET, NURSE)
        await c["balcony"].expect(is_presence(ORCHARD, "unavailable"))
        await stranger.expect(is_presence(ORCHARD, "unavailable"))  # directed, withdrawn
        await c["orchard"].send("<presence><show>away</show></presence>")
        await c["balcony"].expect_nothing(is_presence(ROMEO))
        reply = await query(c["balcony"], ROMEO, "<query xmlns='jabber:iq:last'/>")
        assert error_condition(reply) == "service-unavailable"
        await unblock(c["orchard"], JULIET)
        back = await c["balcony"].expect(is_presence(ORCHARD, None))
        assert back.findtext(f"{{{CLIENT}}}show") == "away"
