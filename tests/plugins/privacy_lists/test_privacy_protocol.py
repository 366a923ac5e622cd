"""privacy-lists protocol: list management, validation, conflicts and pushes (XEP-0016 §2.3-2.8).

Actors: romeo on two resources (``orchard`` sends, ``home`` is the other connected
resource), juliet as an outsider. Real loopback TCP+TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from casper.config import ConfigError
from casper.testing import TestClient
from casper_plugins.privacy_lists import Config

from tests.helpers import query
from tests.plugins.privacy_lists.privacy_kit import (
    NS,
    error_condition,
    iq,
    is_push,
    link,
    open_privacy_server,
    set_active,
    set_default,
    set_list,
    sync,
)

PUBLIC = (
    "<item type='jid' value='tybalt@example.com' action='deny' order='1'/>"
    "<item action='allow' order='2'/>"
)
PRIVATE = (
    "<item type='subscription' value='both' action='allow' order='10'/>"
    "<item action='deny' order='15'/>"
)


def names(reply) -> dict[str, object]:
    query_el = reply.find(f"{{{NS}}}query")
    assert query_el is not None
    active = query_el.find(f"{{{NS}}}active")
    default = query_el.find(f"{{{NS}}}default")
    return {
        "active": None if active is None else active.get("name"),
        "default": None if default is None else default.get("name"),
        "lists": sorted(e.get("name") for e in query_el.findall(f"{{{NS}}}list")),
    }


async def get_names(client):
    return names(await iq(client, "", "get"))


@asynccontextmanager
async def romeo_twice() -> AsyncIterator[tuple[TestClient, TestClient]]:
    """romeo's resources ``orchard`` and ``home``, logged in to a fresh server."""
    async with (
        open_privacy_server() as srv,
        srv.client("romeo", resource="orchard") as orchard,
        srv.client("romeo", resource="home") as home,
    ):
        yield orchard, home


# ---------------------------------------------------------------- retrieving and editing


async def test_names_of_a_fresh_account_are_empty():
    async with open_privacy_server() as srv, srv.client("romeo") as romeo:
        assert await get_names(romeo) == {"active": None, "default": None, "lists": []}


async def test_create_get_replace_and_push_to_every_resource():
    async with romeo_twice() as (orchard, home):
        await set_list(orchard, "public", PUBLIC)
        await orchard.expect(is_push("public"))
        await home.expect(is_push("public"))
        reply = await iq(orchard, "<list name='public'/>", "get")
        items = reply.findall(f"{{{NS}}}query/{{{NS}}}list/{{{NS}}}item")
        assert [
            (i.get("order"), i.get("type"), i.get("value"), i.get("action")) for i in items
        ] == [
            ("1", "jid", "tybalt@example.com", "deny"),
            ("2", None, None, "allow"),
        ]
        # a replacement is the whole list, not a delta
        await set_list(orchard, "public", "<item action='deny' order='68'><message/></item>")
        await home.expect(is_push("public"))
        reply = await iq(home, "<list name='public'/>", "get")
        items = reply.findall(f"{{{NS}}}query/{{{NS}}}list/{{{NS}}}item")
        assert len(items) == 1 and items[0].get("order") == "68"
        assert items[0].find(f"{{{NS}}}message") is not None
        await set_list(orchard, "private", PRIVATE)
        assert (await get_names(home))["lists"] == ["private", "public"]


async def test_push_is_an_iq_set_with_only_the_list_name():
    async with open_privacy_server() as srv, srv.client("romeo") as romeo:
        await set_list(romeo, "public", PUBLIC)
        push = await romeo.expect(is_push("public"))
        assert push.get("to") == str(romeo.jid) and push.get("id")
        (lst,) = push.findall(f"{{{NS}}}query/{{{NS}}}list")
        assert list(lst) == []


async def test_lists_and_default_persist_but_the_active_list_does_not():
    async with open_privacy_server() as srv:
        async with srv.client("romeo") as romeo:
            await set_list(romeo, "public", PUBLIC)
            await set_list(romeo, "private", PRIVATE)
            await set_default(romeo, "public")
            await set_active(romeo, "private")
        async with srv.client("romeo") as romeo:
            assert await get_names(romeo) == {
                "active": None,
                "default": "public",
                "lists": ["private", "public"],
            }


async def test_active_is_per_session_default_per_account():
    async with romeo_twice() as (orchard, home):
        await set_list(orchard, "public", PUBLIC)
        await set_list(orchard, "private", PRIVATE)
        await set_active(orchard, "private")
        await set_default(orchard, "public")
        assert await get_names(orchard) == {
            "active": "private",
            "default": "public",
            "lists": ["private", "public"],
        }
        assert (await get_names(home))["active"] is None
        assert (await get_names(home))["default"] == "public"
        await set_active(orchard, None)  # decline
        assert (await get_names(orchard))["active"] is None


# ---------------------------------------------------------------- errors

BAD_SETS = [
    ("", "bad-request"),  # no child
    ("<active name='a'/><default name='a'/>", "bad-request"),  # two children
    ("<list name='a'><item action='deny' order='1'/></list><list name='b'/>", "bad-request"),
    ("<list><item action='deny' order='1'/></list>", "bad-request"),  # no name
    (
        "<list name='a'><item action='deny' order='1'/><item action='allow' order='1'/></list>",
        "bad-request",
    ),
    ("<list name='a'><item action='deny' order='-5'/></list>", "bad-request"),
    ("<list name='a'><item action='deny'/></list>", "bad-request"),
    (
        "<list name='a'><item type='jid' value='a@@b' action='deny' order='1'/></list>",
        "bad-request",
    ),
    (
        "<list name='a'><item type='subscription' value='all' action='deny' order='1'/></list>",
        "bad-request",
    ),
    (
        "<list name='a'><item type='jid' value='a@b' action='maybe' order='1'/></list>",
        "bad-request",
    ),
    (
        "<list name='a'><item type='group' value='Nobody' action='deny' order='1'/></list>",
        "item-not-found",
    ),  # a group not in the roster
    ("<list name='missing'/>", "item-not-found"),  # removing an unknown list
    ("<active name='missing'/>", "item-not-found"),
    ("<default name='missing'/>", "item-not-found"),
    ("<unknown/>", "bad-request"),
]


@pytest.mark.parametrize(("payload", "condition"), BAD_SETS)
async def test_invalid_sets_are_refused_and_change_nothing(payload, condition):
    async with open_privacy_server() as srv, srv.client("romeo") as romeo:
        reply = await iq(romeo, payload)
        assert error_condition(reply) == condition
        await sync(romeo)
        assert await get_names(romeo) == {"active": None, "default": None, "lists": []}
        await romeo.expect_nothing(is_push())


async def test_group_items_need_a_group_of_the_roster():
    async with open_privacy_server() as srv:
        await link(srv, "romeo", "nurse", "both", groups=["Enemies"])
        async with srv.client("romeo") as romeo:
            await set_list(
                romeo, "g", "<item type='group' value='Enemies' action='deny' order='1'/>"
            )


async def test_get_errors():
    async with open_privacy_server() as srv, srv.client("romeo") as romeo:
        await set_list(romeo, "public", PUBLIC)
        await set_list(romeo, "private", PRIVATE)
        reply = await iq(romeo, "<list name='The Empty Set'/>", "get")
        assert error_condition(reply) == "item-not-found"
        reply = await iq(romeo, "<list name='public'/><list name='private'/>", "get")
        assert error_condition(reply) == "bad-request"


async def test_only_the_account_itself_manages_its_lists():
    async with (
        open_privacy_server() as srv,
        srv.client("romeo") as romeo,
        srv.client("juliet") as juliet,
    ):
        await set_list(romeo, "public", PUBLIC)
        for type_, payload in (("get", ""), ("get", "<list name='public'/>"),
                               ("set", "<list name='public'/>")):  # fmt: skip
            reply = await query(juliet, "romeo@localhost", f"<query xmlns='{NS}'>{payload}</query>",
                                type_)  # fmt: skip
            assert error_condition(reply) == "forbidden"
        assert (await get_names(romeo))["lists"] == ["public"]


async def test_limits():
    settings = {"max_lists": 2, "max_items": 2}
    async with open_privacy_server(settings=settings) as srv, srv.client("romeo") as romeo:
        await set_list(romeo, "a", "<item action='deny' order='1'/>")
        await set_list(romeo, "b", "<item action='deny' order='1'/>")
        reply = await iq(romeo, "<list name='c'><item action='deny' order='1'/></list>")
        assert error_condition(reply) == "not-allowed"
        await set_list(
            romeo, "a", "<item action='deny' order='1'/><item action='allow' order='2'/>"
        )
        items = "".join(f"<item action='deny' order='{n}'/>" for n in range(3))
        assert error_condition(await iq(romeo, f"<list name='a'>{items}</list>")) == "not-allowed"


# ---------------------------------------------------------------- removal and conflicts


async def test_remove_pushes_and_forgets():
    async with romeo_twice() as (orchard, home):
        await set_list(orchard, "private", PRIVATE)
        await home.expect(is_push("private"))
        reply = await iq(orchard, "<list name='private'/>")
        assert reply.get("type") == "result"
        await home.expect(is_push("private"))
        await orchard.expect(is_push("private"))
        assert error_condition(await iq(home, "<list name='private'/>", "get")) == "item-not-found"


async def test_removing_a_list_active_on_another_resource_is_a_conflict():
    async with romeo_twice() as (orchard, home):
        await set_list(orchard, "private", PRIVATE)
        await set_active(home, "private")
        await sync(orchard)
        assert error_condition(await iq(orchard, "<list name='private'/>")) == "conflict"
        await orchard.expect_nothing(is_push())
        assert (await get_names(home)) == {
            "active": "private",
            "default": None,
            "lists": ["private"],
        }
        await set_active(home, None)
        assert (await iq(orchard, "<list name='private'/>")).get("type") == "result"


async def test_removing_ones_own_active_list_is_no_conflict():
    async with open_privacy_server() as srv, srv.client("romeo") as romeo:
        await set_list(romeo, "private", PRIVATE)
        await set_active(romeo, "private")
        assert (await iq(romeo, "<list name='private'/>")).get("type") == "result"
        assert await get_names(romeo) == {"active": None, "default": None, "lists": []}


async def test_removing_the_default_list_in_use_elsewhere_is_a_conflict():
    async with romeo_twice() as (orchard, home):
        await set_list(orchard, "public", PUBLIC)
        await set_default(orchard, "public")
        # home has no active list: the default applies to it
        assert error_condition(await iq(orchard, "<list name='public'/>")) == "conflict"
        await set_list(home, "private", PRIVATE)
        await set_active(home, "private")  # now the default applies to nobody else
        assert (await iq(orchard, "<list name='public'/>")).get("type") == "result"
        assert (await get_names(home))["default"] is None


async def test_changing_or_declining_the_default_in_use_elsewhere_is_a_conflict():
    async with romeo_twice() as (orchard, home):
        await set_list(orchard, "public", PUBLIC)
        await set_list(orchard, "private", PRIVATE)
        await set_default(orchard, "public")
        assert error_condition(await iq(orchard, "<default name='private'/>")) == "conflict"
        assert error_condition(await iq(orchard, "<default/>")) == "conflict"
        assert (await get_names(orchard))["default"] == "public"
        await set_default(orchard, "public")  # not a change: no conflict
        await set_active(home, "private")
        await set_default(orchard, "private")
        await set_default(orchard, None)
        assert (await get_names(home))["default"] is None


async def test_default_is_free_to_change_with_one_resource():
    async with open_privacy_server() as srv, srv.client("romeo") as romeo:
        await set_list(romeo, "public", PUBLIC)
        await set_list(romeo, "private", PRIVATE)
        await set_default(romeo, "public")
        await set_default(romeo, "private")
        await set_default(romeo, None)
        assert (await get_names(romeo))["default"] is None


async def test_removing_the_default_list_declines_the_default():
    async with open_privacy_server() as srv:
        async with srv.client("romeo") as romeo:
            await set_list(romeo, "public", PUBLIC)
            await set_default(romeo, "public")
            assert (await iq(romeo, "<list name='public'/>")).get("type") == "result"
            assert await get_names(romeo) == {"active": None, "default": None, "lists": []}
        assert (
            srv.server.pm.get_plugin("privacy-lists.state").store.default(srv.jid("romeo")) is None
        )


# ---------------------------------------------------------------- discovery and config


async def test_server_advertises_the_feature():
    async with open_privacy_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost",
                            "<query xmlns='http://jabber.org/protocol/disco#info'/>")  # fmt: skip
        features = {
            f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")
        }
        assert NS in features


@pytest.mark.parametrize(
    "settings",
    [
        {"blocked_message_reply": "ignore"},
        {"block_chat_states": "yes"},
        {"max_lists": 0},
        {"max_items": True},
        {"max_items": 10**6},
        {"colour": "blue"},
    ],
)
def test_bad_config_is_refused(settings):
    with pytest.raises(ConfigError):
        Config.from_mapping(settings)


def test_config_defaults():
    config = Config.from_mapping({})
    assert config.blocked_message_reply == "bounce" and config.block_chat_states
    assert Config.from_mapping({"blocked_message_reply": "drop"}).blocked_message_reply == "drop"


# ---------------------------------------------------------------- the administrator's policy

INVISIBLE = "<item action='deny' order='1'><presence-out/></item>"
BLOCK = "<item type='jid' value='tybalt@example.com' action='deny' order='1'/>"


async def test_policy_refuses_lists_that_would_hide_where_invisibility_is_off():
    async with open_privacy_server(invisibility=False) as srv, srv.client("romeo") as romeo:
        await set_list(romeo, "invisible", INVISIBLE)  # storing it is harmless
        await set_list(romeo, "block", BLOCK)
        assert error_condition(await iq(romeo, "<active name='invisible'/>")) == "not-allowed"
        assert error_condition(await iq(romeo, "<default name='invisible'/>")) == "not-allowed"
        await set_active(romeo, "block")  # blocking (an item without children) is not hiding
        await set_default(romeo, "block")
        # turning a list in force into an invisibility list is refused too
        reply = await iq(romeo, f"<list name='block'>{INVISIBLE}</list>")
        assert error_condition(reply) == "not-allowed"
        assert await get_names(romeo) == {
            "active": "block",
            "default": "block",
            "lists": ["block", "invisible"],
        }


async def test_policy_never_hidden_from_wins_over_the_list():
    async with open_privacy_server(never_hidden_from=("juliet@localhost",)) as srv:
        await link(srv, "romeo", "juliet", "both")
        await link(srv, "romeo", "nurse", "both")
        async with (
            srv.client("juliet", presence=True) as juliet,
            srv.client("nurse", presence=True) as nurse,
            srv.client("romeo", presence=True) as romeo,
        ):
            await sync(juliet)
            await sync(nurse)
            await set_list(romeo, "invisible", INVISIBLE)
            await set_active(romeo, "invisible")
            seen_by_nurse = await sync(nurse)
            seen_by_juliet = await sync(juliet)
            assert any(e.get("type") == "unavailable" for e in seen_by_nurse)
            assert not any(e.tag.endswith("presence") for e in seen_by_juliet)
