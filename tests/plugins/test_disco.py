"""disco: XEP-0030 info and items for the server and for accounts' bare JIDs."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from casper.hookspecs import hookimpl
from casper.testing import open_test_server

from tests.helpers import error_condition, make_contacts, query

INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
INFO_QUERY = f"<query xmlns='{INFO}'/>"
ITEMS_QUERY = f"<query xmlns='{ITEMS}'/>"
BASELINE_FEATURES = {
    INFO,
    ITEMS,
    "jabber:iq:version",
    "urn:xmpp:time",
    "urn:xmpp:ping",
    "jabber:iq:last",
    "msgoffline",
}


def features(reply: Element) -> set[str]:
    assert reply.get("type") == "result", reply.attrib
    return {f.get("var", "") for f in reply.iter(f"{{{INFO}}}feature")}


def identities(reply: Element) -> list[dict[str, str]]:
    return [dict(i.attrib) for i in reply.iter(f"{{{INFO}}}identity")]


def item_jids(reply: Element) -> list[str]:
    assert reply.get("type") == "result", reply.attrib
    return [i.get("jid", "") for i in reply.iter(f"{{{ITEMS}}}item")]


async def test_server_info_names_casper_and_lists_enabled_plugin_features():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost", INFO_QUERY)
        assert identities(reply) == [{"category": "server", "type": "im", "name": "Casper"}]
        assert BASELINE_FEATURES <= features(reply)


async def test_server_info_omits_features_of_disabled_plugins():
    async with (
        open_test_server(disabled_plugins=("version", "offline")) as srv,
        srv.client("romeo") as romeo,
    ):
        found = features(await query(romeo, "localhost", INFO_QUERY))
    assert "jabber:iq:version" not in found
    assert "msgoffline" not in found
    assert {INFO, ITEMS, "urn:xmpp:ping"} <= found


class ExtraFeature:
    @hookimpl
    def casper_disco_features(self, target):
        return ["urn:example:server-only"] if target == "server" else ["urn:example:account"]


async def test_server_info_includes_features_contributed_by_any_plugin():
    async with (
        open_test_server(extra_plugins=[(ExtraFeature(), "t")]) as srv,
        srv.client("romeo") as romeo,
    ):
        server_features = features(await query(romeo, "localhost", INFO_QUERY))
        account_features = features(await query(romeo, "juliet@localhost", INFO_QUERY))
    assert "urn:example:server-only" in server_features
    assert "urn:example:account" not in server_features
    assert "urn:example:account" in account_features


async def test_server_info_unknown_node_is_item_not_found():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost", f"<query xmlns='{INFO}' node='nope'/>")
        assert error_condition(reply) == "item-not-found"
        reply = await query(romeo, "localhost", f"<query xmlns='{ITEMS}' node='nope'/>")
        assert error_condition(reply) == "item-not-found"


async def test_server_items_are_empty():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        assert item_jids(await query(romeo, "localhost", ITEMS_QUERY)) == []


async def test_account_info_is_registered_account_whether_online_or_not():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        offline = await query(romeo, "juliet@localhost", INFO_QUERY)
        async with srv.client("juliet", presence=True):
            online = await query(romeo, "juliet@localhost", INFO_QUERY)
    assert (
        identities(offline) == identities(online) == [{"category": "account", "type": "registered"}]
    )
    assert features(offline) == features(online)
    assert {INFO, ITEMS, "jabber:iq:last"} <= features(online)
    assert "urn:xmpp:ping" not in features(online)  # accounts don't answer others' pings


async def test_account_items_list_only_resources_visible_to_the_contact():
    async with (
        open_test_server() as srv,
        srv.client("juliet", presence=True) as juliet,
        srv.client("romeo", resource="balcony", presence=True) as romeo,
    ):
        await make_contacts(srv, romeo, juliet)
        async with srv.client("romeo", resource="lurking"):  # bound, no presence
            seen_by_juliet = item_jids(await query(juliet, "romeo@localhost", ITEMS_QUERY))
            seen_by_romeo = item_jids(await query(romeo, "romeo@localhost", ITEMS_QUERY))
    assert seen_by_juliet == ["romeo@localhost/balcony"]
    assert seen_by_romeo == ["romeo@localhost/balcony", "romeo@localhost/lurking"]


async def test_account_items_are_empty_for_a_non_contact():
    async with (
        open_test_server(accounts=("romeo", "juliet", "tybalt")) as srv,
        srv.client("romeo", presence=True),
        srv.client("tybalt") as tybalt,
    ):
        assert item_jids(await query(tybalt, "romeo@localhost", ITEMS_QUERY)) == []


async def test_account_items_include_a_resource_that_sent_directed_presence():
    async with (
        open_test_server(accounts=("romeo", "juliet", "tybalt")) as srv,
        srv.client("romeo", resource="r") as romeo,
        srv.client("tybalt", presence=True) as tybalt,
    ):
        await romeo.send("<presence to='tybalt@localhost'/>")
        await tybalt.expect(lambda e: e.get("from") == "romeo@localhost/r")
        assert item_jids(await query(tybalt, "romeo@localhost", ITEMS_QUERY)) == [
            "romeo@localhost/r"
        ]


class HideRomeo:
    """A one-test invisibility strategy: romeo's sessions are hidden from everyone."""

    @hookimpl
    def casper_hidden_from(self, session, observer):
        return session.account.local == "romeo"


async def test_account_items_of_hidden_account_equal_those_of_offline_account():
    async with (
        open_test_server(extra_plugins=[(HideRomeo(), "t")]) as srv,
        srv.client("juliet", presence=True) as juliet,
    ):
        async with srv.client("romeo") as romeo:
            await make_contacts(srv, romeo, juliet)
        offline = await query(juliet, "romeo@localhost", ITEMS_QUERY)
        async with srv.client("romeo", presence=True):
            hidden = await query(juliet, "romeo@localhost", ITEMS_QUERY)
    assert item_jids(hidden) == item_jids(offline) == []
    assert [(c.tag, c.attrib) for c in hidden] == [(c.tag, c.attrib) for c in offline]
