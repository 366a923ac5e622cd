"""blocking: the blocklist is a view of the default privacy list, and both protocols agree.

The view itself (sans-IO): new blocks go in front and keep the other items in order;
only JID deny items without children are blocked JIDs. With privacy-lists enabled, in
either order: one engine; a block is a default-list edit pushed as such, privacy edits
of the default list show in the blocklist and are pushed to its requesters; an existing
default list keeps its items and name; an active list takes precedence for its session.
"""

from __future__ import annotations

import pytest
from casper.testing import TestClient
from casper_plugins.blocking import blocklist, with_blocked, without_blocked
from casper_plugins.privacy_lists.model import PrivacyItem, PrivacyList

from tests.plugins.blocking.conftest import (
    HALL,
    JULIET,
    MODES,
    NURSE,
    ORCHARD,
    PRIVACY,
    ROMEO,
    block,
    cast,
    get_blocklist,
    is_blocking_push,
    open_server,
    replied,
    say,
    unblock,
)
from tests.plugins.privacy_lists.privacy_kit import (
    error_condition,
    is_push,
    set_active,
    set_default,
    set_list,
)
from tests.plugins.privacy_lists.privacy_kit import iq as privacy_iq


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
