"""privacy-lists enforcement: what a list denies, and how a denial looks to the other side.

Actors: romeo (``orchard``) keeps the lists; juliet (``balcony``) is his contact (mutual
``both`` subscription, in romeo's roster group ``Capulets``); nurse is a stranger. Every
denial must look like offline to whoever is denied. Real loopback TCP+TLS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from casper.testing import TestClient
from casper_plugins.privacy_lists.store import NAME, PrivacyStore

from tests.helpers import query
from tests.plugins.privacy_lists.privacy_kit import (
    CLIENT,
    error_condition,
    is_presence,
    link,
    open_privacy_server,
    set_active,
    set_default,
    set_list,
    sync,
)

ROMEO = "romeo@localhost"
ORCHARD = "romeo@localhost/orchard"
JULIET = "juliet@localhost"
BALCONY = "juliet@localhost/balcony"
VERSION = "<query xmlns='jabber:iq:version'/>"
LAST = "<query xmlns='jabber:iq:last'/>"
ITEMS = "<query xmlns='http://jabber.org/protocol/disco#items'/>"


def with_id(stanza_id: str, type_: str | None = "any"):
    def predicate(element) -> bool:
        return element.get("id") == stanza_id and (type_ == "any" or element.get("type") == type_)

    return predicate


def found(elements, predicate) -> bool:
    return any(predicate(e) for e in elements)


async def stored(srv, user: str) -> int:
    return await srv.server.db(srv.server.storage.count_offline, f"{user}@localhost")


async def lovers(srv):
    """Seed romeo ⇄ juliet (both; juliet in romeo's group Capulets)."""
    await link(srv, "romeo", "juliet", "both", groups=["Capulets"])


@asynccontextmanager
async def lovers_online(**server_options) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """romeo (``orchard``) and juliet (``balcony``), seeded as :func:`lovers`, each logged
    in with initial presence on ``open_privacy_server(**server_options)``."""
    async with open_privacy_server(**server_options) as srv:
        await lovers(srv)
        async with (
            srv.client("romeo", resource="orchard", presence=True) as romeo,
            srv.client("juliet", resource="balcony", presence=True) as juliet,
        ):
            yield romeo, juliet


# ---------------------------------------------------------------- the six-way deny matrix

MATCH = {
    "jid": f"type='jid' value='{JULIET}'",
    "group": "type='group' value='Capulets'",
    "subscription": "type='subscription' value='both'",
}
KINDS = {
    "message": "<message/>",
    "iq": "<iq/>",
    "presence-in": "<presence-in/>",
    "presence-out": "<presence-out/>",
    "all": "",
    "none": None,  # the item matches juliet but allows: nothing is denied
}
BLOCKED = {
    "message": {"message"},
    "iq": {"iq"},
    "presence-in": {"presence-in"},
    "presence-out": {"presence-out"},
    "all": {"message", "iq", "presence-in", "presence-out", "outbound"},
    "none": set(),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("item_type", MATCH)
async def test_deny_matrix(item_type, kind):
    blocked = BLOCKED[kind]
    children = KINDS[kind]
    action = "allow" if children is None else "deny"
    item = f"<item {MATCH[item_type]} action='{action}' order='1'>{children or ''}</item>"
    async with lovers_online() as (romeo, juliet):
        await sync(romeo)
        await sync(juliet)
        await set_list(romeo, "l", item)
        await set_active(romeo, "l")
        # applied at once: presence-out denied → juliet sees romeo go offline;
        # presence-in denied → romeo sees juliet go offline
        assert found(await sync(juliet), is_presence(ORCHARD, "unavailable")) == (
            "presence-out" in blocked
        )
        assert found(await sync(romeo), is_presence(BALCONY, "unavailable")) == (
            "presence-in" in blocked
        )

        # message from juliet: denied means offline-equivalent (no error, not delivered)
        await juliet.send(f"<message to='{ORCHARD}' type='chat' id='m1'><body>hi</body></message>")
        assert not found(await sync(juliet), with_id("m1"))
        assert found(await sync(romeo), with_id("m1")) == ("message" not in blocked)

        # IQ from juliet to the full JID: denied means service-unavailable, as offline
        await juliet.send(f"<iq type='get' id='v1' to='{ORCHARD}'>{VERSION}</iq>")
        answers = await sync(juliet)
        reached = found(await sync(romeo), with_id("v1", "get"))
        assert reached == ("iq" not in blocked)
        if "iq" in blocked:
            (error,) = [e for e in answers if with_id("v1", "error")(e)]
            assert error_condition(error) == "service-unavailable"

        # presence-in: juliet's update
        await juliet.send("<presence><show>away</show></presence>")
        await sync(juliet)
        assert found(await sync(romeo), is_presence(BALCONY, None)) == (
            "presence-in" not in blocked
        )

        # presence-out: romeo's update
        await romeo.send("<presence><show>dnd</show></presence>")
        await sync(romeo)
        assert found(await sync(juliet), is_presence(ORCHARD, None)) == (
            "presence-out" not in blocked
        )

        # outbound: only an item without children stops what romeo sends
        await romeo.send(f"<message to='{JULIET}' type='chat' id='m2'><body>hey</body></message>")
        answers = await sync(romeo)
        assert found(await sync(juliet), with_id("m2")) == ("outbound" not in blocked)
        if "outbound" in blocked:
            (error,) = [e for e in answers if with_id("m2", "error")(e)]
            assert error_condition(error) == "not-acceptable"


# ---------------------------------------------------------------- inbound at the account level


@pytest.mark.parametrize(("reply", "bounced"), [("bounce", True), ("drop", False)])
async def test_default_list_blocks_messages_to_an_offline_account_never_storing_them(
    reply, bounced
):
    async with open_privacy_server(settings={"blocked_message_reply": reply}) as srv:
        async with srv.client("romeo") as romeo:
            await set_list(
                romeo,
                "block",
                f"<item type='jid' value='{JULIET}' action='deny' order='1'><message/></item>",
            )
            await set_default(romeo, "block")
        async with srv.client("juliet") as juliet, srv.client("nurse") as nurse:
            await juliet.send(
                f"<message to='{ROMEO}' type='chat' id='m1'><body>hi</body></message>"
            )
            answers = await sync(juliet)
            assert found(answers, with_id("m1", "error")) == bounced
            if bounced:
                assert error_condition(answers[0]) == "service-unavailable"
            assert await stored(srv, "romeo") == 0
            # a sender the list doesn't deny still gets the offline store
            await nurse.send(f"<message to='{ROMEO}' type='chat' id='m2'><body>hi</body></message>")
            assert await sync(nurse) == []
            assert await stored(srv, "romeo") == 1


async def test_default_list_blocks_messages_to_an_online_account_never_storing_them():
    async with open_privacy_server() as srv:
        async with (
            srv.client("romeo", resource="orchard", presence=True) as romeo,
            srv.client("juliet") as juliet,
        ):
            await set_list(
                romeo, "block", f"<item type='jid' value='{JULIET}' action='deny' order='1'/>"
            )
            await set_default(romeo, "block")
            for to in (ROMEO, ORCHARD):
                await juliet.send(
                    f"<message to='{to}' type='chat' id='m-{to}'><body>hi</body></message>"
                )
                (error,) = await sync(juliet)
                assert error_condition(error) == "service-unavailable"
            assert not found(await sync(romeo), lambda e: e.tag == f"{{{CLIENT}}}message")
        assert await stored(srv, "romeo") == 0


async def test_active_list_denial_is_the_offline_answer_not_a_bounce():
    """An active list affects only its session: a denied message is handled as if that
    session were offline (here: the offline store), exactly what offline romeo gives."""
    async with open_privacy_server() as srv:
        async with srv.client("juliet") as juliet:
            await juliet.send(
                f"<message to='{ROMEO}' type='chat' id='m0'><body>hi</body></message>"
            )
            offline_answer = await sync(juliet)
            async with srv.client("romeo", resource="orchard", presence=True) as romeo:
                await romeo.expect(with_id("m0"))
                await set_list(
                    romeo,
                    "l",
                    f"<item type='jid' value='{JULIET}' action='deny' order='1'><message/></item>",
                )
                await set_active(romeo, "l")
                await juliet.send(
                    f"<message to='{ORCHARD}' type='chat' id='m1'><body>hi</body></message>"
                )
                assert await sync(juliet) == offline_answer == []
                assert not found(await sync(romeo), with_id("m1"))
        assert await stored(srv, "romeo") == 1


async def test_subscription_none_covers_strangers():
    async with open_privacy_server() as srv:
        await lovers(srv)
        async with (
            srv.client("romeo", resource="orchard", presence=True) as romeo,
            srv.client("juliet") as juliet,
            srv.client("nurse") as nurse,
        ):
            await set_list(
                romeo,
                "l",
                "<item type='subscription' value='none' action='deny' order='1'><message/></item>",
            )
            await set_active(romeo, "l")
            await nurse.send(f"<message to='{ORCHARD}' id='n1'><body>hi</body></message>")
            await juliet.send(f"<message to='{ORCHARD}' id='j1'><body>hi</body></message>")
            await sync(nurse)
            await sync(juliet)
            got = await sync(romeo)
            assert found(got, with_id("j1")) and not found(got, with_id("n1"))


# ---------------------------------------------------------------- never blocked


async def test_own_resources_and_the_server_are_never_blocked():
    async with (
        open_privacy_server() as srv,
        srv.client("romeo", resource="orchard", presence=True) as orchard,
        srv.client("romeo", resource="home", presence=True) as home,
    ):
        await set_list(orchard, "wall", "<item action='deny' order='1'/>")
        await set_active(orchard, "wall")
        await home.send("<message to='romeo@localhost/orchard' id='own'><body>me</body></message>")
        await sync(home)
        assert found(await sync(orchard), with_id("own"))
        await orchard.send("<message to='romeo@localhost/home' id='back'><body>me</body></message>")
        await sync(orchard)
        assert found(await sync(home), with_id("back"))
        reply = await query(
            orchard, "localhost", "<query xmlns='http://jabber.org/protocol/disco#info'/>"
        )
        assert reply.get("type") == "result"
        roster = await query(orchard, ROMEO, "<query xmlns='jabber:iq:roster'/>")
        assert roster.get("type") == "result"


# ---------------------------------------------------------------- live inputs


async def test_roster_group_change_takes_effect_at_once():
    async with open_privacy_server() as srv:
        await link(srv, "romeo", "juliet", "both", groups=["Friends"])
        await link(srv, "romeo", "nurse", "none", groups=["Capulets"])  # the group exists
        async with (
            srv.client("romeo", resource="orchard", presence=True) as romeo,
            srv.client("juliet", resource="balcony", presence=True) as juliet,
        ):
            await set_list(
                romeo,
                "l",
                "<item type='group' value='Capulets' action='deny' order='1'><presence-out/></item>",
            )
            await set_active(romeo, "l")
            await sync(romeo)
            assert not found(await sync(juliet), is_presence(ORCHARD, "unavailable"))
            await query(romeo, ROMEO, f"<query xmlns='jabber:iq:roster'><item jid='{JULIET}'>"
                                      "<group>Capulets</group></item></query>", "set")  # fmt: skip
            assert found(await sync(juliet), is_presence(ORCHARD, "unavailable"))
            # and back
            await query(romeo, ROMEO, f"<query xmlns='jabber:iq:roster'><item jid='{JULIET}'>"
                                      "<group>Friends</group></item></query>", "set")  # fmt: skip
            assert found(await sync(juliet), is_presence(ORCHARD, None))


async def test_editing_the_active_list_takes_effect_at_once():
    async with lovers_online() as (romeo, juliet):
        await sync(juliet)
        await set_list(romeo, "l", "<item action='allow' order='1'/>")
        await set_active(romeo, "l")
        assert not found(await sync(juliet), is_presence(ORCHARD))
        await set_list(romeo, "l", "<item action='deny' order='1'><presence-out/></item>")
        assert found(await sync(juliet), is_presence(ORCHARD, "unavailable"))
        await set_list(romeo, "l", "<item action='allow' order='1'/>")
        assert found(await sync(juliet), is_presence(ORCHARD, None))


async def test_unavailable_goes_only_to_who_saw_the_session():
    """A newly denied contact who never saw romeo gets nothing (no ghost unavailable)."""
    async with open_privacy_server() as srv:
        await lovers(srv)
        async with srv.client("juliet", resource="balcony", presence=True) as juliet:
            async with srv.client("romeo", resource="orchard") as romeo:  # no presence yet
                await set_list(romeo, "inv", "<item action='deny' order='1'><presence-out/></item>")
                await set_active(romeo, "inv")
                await romeo.send("<presence/>")
                await sync(romeo)
                await set_list(
                    romeo,
                    "inv",
                    f"<item type='jid' value='{JULIET}' action='deny' order='1'><presence-out/></item>",
                )
                await sync(romeo)
            assert not found(await sync(juliet), is_presence(ORCHARD))


# ---------------------------------------------------------------- chat states, events, receipts

NOTIFICATIONS = {
    "chat state": "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
    "message event": "<x xmlns='jabber:x:event'><composing/><id>m0</id></x>",
    "receipt": "<received xmlns='urn:xmpp:receipts' id='m0'/>",
    "marker": "<displayed xmlns='urn:xmpp:chat-markers:0' id='m0'/>",
}


@pytest.mark.parametrize("payload", NOTIFICATIONS.values(), ids=NOTIFICATIONS)
async def test_notifications_are_withheld_from_whom_the_session_is_hidden(payload):
    async with lovers_online() as (romeo, juliet):
        await set_list(romeo, "inv", "<item action='deny' order='1'><presence-out/></item>")
        await set_active(romeo, "inv")
        await sync(juliet)
        await romeo.send(f"<message to='{BALCONY}' type='chat' id='n1'>{payload}</message>")
        await romeo.send(
            f"<message to='{BALCONY}' type='chat' id='b1'><body>hi</body>{payload}</message>"
        )
        assert not found(await sync(romeo), lambda e: e.get("type") == "error")  # silently
        got = await sync(juliet)
        assert not found(got, with_id("n1"))
        assert found(got, with_id("b1"))  # a body is deliberate chat: delivered whole
        # visible again: notifications flow
        await set_active(romeo, None)
        await romeo.send(f"<message to='{BALCONY}' type='chat' id='n2'>{payload}</message>")
        await sync(romeo)
        assert found(await sync(juliet), with_id("n2"))


async def test_notifications_flow_when_configured_to():
    async with lovers_online(settings={"block_chat_states": False}) as (romeo, juliet):
        await set_list(romeo, "inv", "<item action='deny' order='1'><presence-out/></item>")
        await set_active(romeo, "inv")
        await romeo.send(f"<message to='{BALCONY}' id='n1'>{NOTIFICATIONS['chat state']}</message>")
        await sync(romeo)
        assert found(await sync(juliet), with_id("n1"))


# ---------------------------------------------------------------- IQ probes look offline

IQ_DENY = f"<item type='jid' value='{JULIET}' action='deny' order='1'><iq/></item>"
INVISIBLE = "<item action='deny' order='1'><presence-out/></item>"


def answer(reply) -> tuple:
    """What a prober learns from a reply: type, error condition, payload (minus seconds)."""
    payload = [(c.tag, sorted(c.attrib.items()), [g.attrib for g in c]) for c in reply
               if not c.tag.endswith("}error")]  # fmt: skip
    return reply.get("type"), error_condition(reply), payload


async def test_version_probe_to_the_full_jid_is_indistinguishable_from_offline():
    async with open_privacy_server() as srv:
        await lovers(srv)
        async with srv.client("juliet") as juliet:
            offline = await query(juliet, ORCHARD, VERSION)
            async with srv.client("romeo", resource="orchard", presence=True) as romeo:
                await set_list(romeo, "l", IQ_DENY)
                await set_active(romeo, "l")
                hidden = await query(juliet, ORCHARD, VERSION)
                assert not found(await sync(romeo), with_id(hidden.get("id")))
    assert answer(hidden) == answer(offline)
    assert error_condition(hidden) == "service-unavailable"


async def test_bare_jid_probes_with_an_invisible_active_list_answer_as_offline():
    """XEP-0126's invisible list: last activity and disco#items on the bare JID answer
    what they answer while romeo is offline (the core's one visibility decision)."""
    async with open_privacy_server() as srv:
        await lovers(srv)
        async with srv.client("juliet") as juliet:
            async with srv.client("romeo", presence=True) as romeo:
                await romeo.send("<presence type='unavailable'><status>gone</status></presence>")
                await sync(romeo)
            offline = [await query(juliet, ROMEO, LAST), await query(juliet, ROMEO, ITEMS)]
            async with srv.client("romeo", resource="orchard") as romeo:
                await set_list(romeo, "invisible", INVISIBLE)
                await set_active(romeo, "invisible")
                await romeo.send("<presence/>")
                await sync(romeo)
                hidden = [await query(juliet, ROMEO, LAST), await query(juliet, ROMEO, ITEMS)]
                await set_active(romeo, None)
                visible = [await query(juliet, ROMEO, LAST), await query(juliet, ROMEO, ITEMS)]
    assert [answer(r) for r in hidden] == [answer(r) for r in offline]
    assert hidden[0].find("{jabber:iq:last}query").text == "gone"
    assert int(hidden[0].find("{jabber:iq:last}query").get("seconds")) < 60
    assert [answer(r) for r in visible] != [answer(r) for r in offline]  # control


async def test_bare_jid_probes_blocked_by_the_default_list_answer_the_same_online_and_offline():
    async with open_privacy_server() as srv:
        await lovers(srv)
        async with srv.client("juliet") as juliet:
            async with srv.client("romeo", resource="orchard", presence=True) as romeo:
                await set_list(romeo, "l", IQ_DENY)
                await set_default(romeo, "l")
                online = [await query(juliet, ROMEO, q) for q in (LAST, ITEMS, VERSION)]
                online.append(await query(juliet, ORCHARD, VERSION))
                got = await sync(romeo)
                assert not found(
                    got, lambda e: e.tag == f"{{{CLIENT}}}iq" and e.get("type") == "get"
                )
            offline = [await query(juliet, ROMEO, q) for q in (LAST, ITEMS, VERSION)]
            offline.append(await query(juliet, ORCHARD, VERSION))
    assert [answer(r) for r in online] == [answer(r) for r in offline]
    assert {error_condition(r) for r in online} == {"service-unavailable"}


# ---------------------------------------------------------------- offline rosters


async def test_offline_default_list_reads_the_roster():
    """A default list with a subscription item decides for an offline account, with the
    roster as it was at logoff; a contact's change while offline counts from the next
    stanza on (the snapshot is refreshed after use)."""
    async with open_privacy_server() as srv:
        await lovers(srv)
        async with srv.client("romeo") as romeo:
            await set_list(romeo, "friends-only",
                           "<item type='subscription' value='none' action='deny' order='1'><message/></item>")  # fmt: skip
            await set_default(romeo, "friends-only")
        async with srv.client("juliet") as juliet, srv.client("nurse") as nurse:
            await nurse.send(f"<message to='{ROMEO}' id='n1'><body>hi</body></message>")
            (error,) = await sync(nurse)
            assert error_condition(error) == "service-unavailable"
            await juliet.send(f"<message to='{ROMEO}' id='j1'><body>hi</body></message>")
            assert await sync(juliet) == []
            assert await stored(srv, "romeo") == 1
            # juliet cancels both directions while romeo is offline: she is "none" now
            await juliet.send(f"<presence to='{ROMEO}' type='unsubscribe'/>")
            await juliet.send(f"<presence to='{ROMEO}' type='unsubscribed'/>")
            await sync(juliet)
            await juliet.send(f"<message to='{ROMEO}' id='j2'><body>hi</body></message>")
            await sync(juliet)  # decided on the snapshot, which may still say "both"
            store = srv.server.pm.get_plugin("privacy-lists.state").store
            with trio.fail_after(5):
                while store.roster(srv.jid("romeo"))[JULIET].subscription != "none":
                    await trio.sleep(0.01)
            await juliet.send(f"<message to='{ROMEO}' id='j3'><body>hi</body></message>")
            (error,) = await sync(juliet)
            assert error_condition(error) == "service-unavailable"
            assert await stored(srv, "romeo") in (1, 2)


async def test_default_lists_and_their_rosters_are_loaded_at_startup():
    async with open_privacy_server() as srv:
        await lovers(srv)
        async with srv.client("romeo") as romeo:
            await set_list(
                romeo, "friends", "<item type='jid' value='x@y' action='deny' order='1'/>"
            )
            await set_default(romeo, "friends")
            edited = (
                "<item type='subscription' value='none' action='deny' order='5'><message/></item>"
            )
            await set_list(romeo, "friends", edited)  # editing the default list
        live = srv.server.pm.get_plugin("privacy-lists.state").store
        restarted = PrivacyStore(srv.server)  # what a restarted server reads, before listening
        restarted.load_defaults()
        romeo_jid = srv.jid("romeo")
        assert restarted.default(romeo_jid) == live.default(romeo_jid)
        assert restarted.default(romeo_jid).items[0].order == 5
        assert restarted.roster(romeo_jid)[JULIET].subscription == "both"
        assert restarted.default(srv.jid("juliet")) is None
        # an unreadable stored list fails closed: it denies everything
        storage = srv.server.storage
        await srv.server.db(storage.plugin_put, NAME, "romeo@localhost", "list:friends", "{oops")
        restarted.load_defaults()
        plist = restarted.default(romeo_jid)
        assert [(i.action, i.type, i.kinds) for i in plist.items] == [("deny", None, frozenset())]
