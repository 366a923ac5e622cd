"""Presence (RFC 6121 §4): initial presence, broadcast, probes, directed presence,
unavailable on logoff to exactly those who saw the session, priority."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from casper.testing import TestClient, TestServer, open_test_server

from tests.core.conftest import (
    CLIENT,
    DELAY,
    any_presence_from,
    contacts_online,
    error_condition,
    make_contacts,
    message_with_id,
    presence_from,
    quiet,
    send_message,
    set_subscription,
    sync,
)

ACCOUNTS = ("romeo", "juliet", "benvolio", "mercutio")


@pytest.fixture
async def srv() -> AsyncIterator[TestServer]:
    async with open_test_server(default_plugins=False, accounts=ACCOUNTS) as server:
        yield server


async def go_available(client: TestClient, payload: str = "") -> None:
    """Send broadcast presence and wait for its reflection."""
    await client.send(f"<presence>{payload}</presence>")
    await client.expect(presence_from(client.jid))


def text(element: object, name: str) -> str | None:
    return element.findtext(f"{{{CLIENT}}}{name}")  # type: ignore[attr-defined]


async def test_initial_presence_is_reflected_to_itself_and_to_other_available_resources(
    srv: TestServer,
) -> None:
    async with (
        srv.client("romeo", presence=True, resource="r1") as r1,
        srv.client("romeo", resource="r2") as r2,
        srv.client("romeo", resource="idle") as idle,
    ):
        await r2.send("<presence><status>at the orchard</status></presence>")
        own = await r2.expect(presence_from(r2.jid))
        assert text(own, "status") == "at the orchard"
        seen = await r1.expect(presence_from(r2.jid))
        assert text(seen, "status") == "at the orchard"
        await r2.expect(presence_from(r1.jid))  # and the new resource learns of r1
        await quiet(idle, any_presence_from("romeo@localhost"))


async def test_broadcast_presence_reaches_contacts_with_from_or_both_subscription_only(
    srv: TestServer,
) -> None:
    await set_subscription(srv, "romeo", "juliet", "both")
    await set_subscription(srv, "romeo", "benvolio", "from")  # benvolio is subscribed to romeo
    await set_subscription(srv, "romeo", "mercutio", "to")  # mercutio is not
    async with (
        srv.client("juliet", presence=True) as juliet,
        srv.client("benvolio", presence=True) as benvolio,
        srv.client("mercutio", presence=True) as mercutio,
    ):
        for client in (juliet, benvolio, mercutio):
            await sync(client)
        async with srv.client("romeo", presence=True) as romeo:
            await juliet.expect(presence_from(romeo.jid))
            await benvolio.expect(presence_from(romeo.jid))
            await quiet(mercutio, any_presence_from("romeo@localhost"))


async def test_login_probe_gets_presence_of_available_contacts_and_the_offline_answer_of_others(
    srv: TestServer,
) -> None:
    for contact in ("juliet", "benvolio", "mercutio"):
        await set_subscription(srv, "romeo", contact, "to")
    async with srv.client("benvolio", presence=True) as benvolio:
        await benvolio.send("<presence type='unavailable'><status>to Mantua</status></presence>")
        await benvolio.expect(presence_from(benvolio.jid, "unavailable"))
    async with srv.client("juliet", presence=True) as juliet:
        await go_available(juliet, "<show>chat</show>")
        async with srv.client("romeo", presence=True) as romeo:
            online = await romeo.expect(presence_from(juliet.jid))
            assert text(online, "show") == "chat"
            gone = await romeo.expect(presence_from("benvolio@localhost", "unavailable"))
            delay = gone.find(f"{{{DELAY}}}delay")
            assert delay is not None and delay.get("from") == "benvolio@localhost"
            assert delay.get("stamp")
            assert text(gone, "status") == "to Mantua"
            never = await romeo.expect(presence_from("mercutio@localhost", "unavailable"))
            assert never.find(f"{{{DELAY}}}delay") is None


async def test_login_probe_gets_the_presence_of_every_available_resource_of_a_contact(
    srv: TestServer,
) -> None:
    await make_contacts(srv, "romeo", "juliet")
    async with (
        srv.client("juliet", presence=True, resource="balcony") as balcony,
        srv.client("juliet", presence=True, resource="chamber") as chamber,
        srv.client("juliet", resource="idle"),
        srv.client("romeo", presence=True) as romeo,
    ):
        await romeo.expect(presence_from(balcony.jid))
        await romeo.expect(presence_from(chamber.jid))
        await quiet(romeo, any_presence_from("juliet@localhost"))


async def test_probe_of_the_own_bare_jid_is_answered_as_if_subscribed(srv: TestServer) -> None:
    """An account is implicitly subscribed to itself (RFC 6121 §4.3.2): its probe gets the
    presence of its available resources, or the offline answer, never ``unsubscribed``."""
    async with srv.client("romeo", presence=True, resource="r1") as r1:
        await r1.send("<presence type='probe' to='romeo@localhost'/>")
        answer = await r1.expect(presence_from(r1.jid))
        assert answer.get("type") is None
        async with srv.client("romeo", resource="r2") as r2:  # not available: not shown
            await r1.send("<presence type='unavailable'/>")
            await r2.send("<presence type='probe' to='romeo@localhost'/>")
            offline = await r2.expect(any_presence_from("romeo@localhost"))
            assert (offline.get("from"), offline.get("type")) == ("romeo@localhost", "unavailable")
            await quiet(r2, any_presence_from("romeo@localhost"))


async def test_presence_change_is_broadcast_to_contacts(srv: TestServer) -> None:
    async with contacts_online(srv) as (romeo, juliet):
        await romeo.expect(presence_from(juliet.jid))
        await juliet.send("<presence><show>away</show><status>asleep</status></presence>")
        change = await romeo.expect(
            lambda e: presence_from(juliet.jid)(e) and text(e, "show") == "away"
        )
        assert text(change, "status") == "asleep"


@pytest.mark.parametrize("full", [False, True], ids=["to-bare", "to-full"])
async def test_directed_presence_reaches_a_non_contact_which_gets_unavailable_at_logoff(
    srv: TestServer, full: bool
) -> None:
    async with srv.client("benvolio", presence=True) as benvolio:
        target = benvolio.jid if full else benvolio.jid.bare
        async with srv.client("romeo", presence=True) as romeo:
            await romeo.send(f"<presence to='{target}'><status>psst</status></presence>")
            directed = await benvolio.expect(presence_from(romeo.jid))
            assert text(directed, "status") == "psst"
        await benvolio.expect(presence_from(romeo.jid, "unavailable"))


async def test_directed_presence_from_an_unavailable_session_is_retracted_at_logoff(
    srv: TestServer,
) -> None:
    async with srv.client("benvolio", presence=True) as benvolio:
        async with srv.client("romeo") as romeo:
            await romeo.send(f"<presence to='{benvolio.jid}'/>")
            await benvolio.expect(presence_from(romeo.jid))
        await benvolio.expect(presence_from(romeo.jid, "unavailable"))


@pytest.mark.parametrize("history", ["never-available", "unavailable-before-contact-came"])
async def test_contact_who_never_saw_the_session_gets_no_unavailable_at_logoff(
    srv: TestServer, history: str
) -> None:
    await make_contacts(srv, "romeo", "juliet")
    async with srv.client("romeo") as romeo:
        if history == "unavailable-before-contact-came":
            await go_available(romeo)
            await romeo.send("<presence type='unavailable'/>")
            await romeo.expect(presence_from(romeo.jid, "unavailable"))
        async with srv.client("juliet", presence=True) as juliet:
            # her probe is answered with the offline answer: that is all she knows
            await juliet.expect(presence_from("romeo@localhost", "unavailable"))
            await sync(juliet)
            await romeo.close()
            await quiet(juliet, any_presence_from("romeo@localhost"))


async def test_unavailable_while_connected_tells_contacts_and_keeps_the_stream_usable(
    srv: TestServer,
) -> None:
    async with contacts_online(srv) as (romeo, juliet):
        await juliet.expect(presence_from(romeo.jid))
        await romeo.send("<presence type='unavailable'><status>brb</status></presence>")
        await romeo.expect(presence_from(romeo.jid, "unavailable"))
        gone = await juliet.expect(presence_from(romeo.jid, "unavailable"))
        assert text(gone, "status") == "brb"
        msg_id = await send_message(juliet, romeo.jid)
        await romeo.expect(message_with_id(msg_id))
        msg_id = await send_message(romeo, juliet.jid)
        await juliet.expect(message_with_id(msg_id))
        await go_available(romeo)
        await juliet.expect(presence_from(romeo.jid))


async def test_negative_priority_resource_gets_no_bare_jid_messages(srv: TestServer) -> None:
    async with (
        srv.client("romeo", resource="shy") as shy,
        srv.client("romeo", presence=True, resource="main") as main,
        srv.client("juliet") as juliet,
    ):
        await go_available(shy, "<priority>-1</priority>")
        msg_id = await send_message(juliet, "romeo@localhost")
        await main.expect(message_with_id(msg_id))
        await quiet(shy, message_with_id(msg_id))
        full_id = await send_message(juliet, shy.jid)  # a full JID still reaches it
        await shy.expect(message_with_id(full_id))


async def test_bare_jid_message_with_only_negative_priority_resources_takes_the_offline_path(
    srv: TestServer,
) -> None:
    async with srv.client("romeo", resource="shy") as shy, srv.client("juliet") as juliet:
        await go_available(shy, "<priority>-5</priority>")
        msg_id = await send_message(juliet, "romeo@localhost")
        reply = await juliet.expect(message_with_id(msg_id))
        assert error_condition(reply) == "service-unavailable"
        await quiet(shy, message_with_id(msg_id))


async def test_presence_with_a_non_integer_priority_is_bad_request(srv: TestServer) -> None:
    await make_contacts(srv, "romeo", "juliet")
    async with srv.client("juliet", presence=True) as juliet, srv.client("romeo") as romeo:
        await juliet.expect(presence_from("romeo@localhost", "unavailable"))  # her login probe
        await romeo.send("<presence id='p1'><priority>high</priority></presence>")
        reply = await romeo.expect(lambda e: e.get("id") == "p1")
        assert error_condition(reply) == "bad-request"
        await quiet(juliet, any_presence_from("romeo@localhost"))


async def test_logoff_sends_unavailable_to_contacts_who_saw_the_session(srv: TestServer) -> None:
    await make_contacts(srv, "romeo", "juliet")
    async with srv.client("juliet", presence=True) as juliet:
        async with srv.client("romeo", presence=True) as romeo:
            await juliet.expect(presence_from(romeo.jid))
        await juliet.expect(presence_from(romeo.jid, "unavailable"))


async def test_directed_presence_recipient_gets_no_later_broadcast_presence(
    srv: TestServer,
) -> None:
    async with (
        srv.client("benvolio", presence=True) as benvolio,
        srv.client("romeo", presence=True) as romeo,
    ):
        await romeo.send(f"<presence to='{benvolio.jid.bare}'/>")
        await benvolio.expect(presence_from(romeo.jid))
        await go_available(romeo, "<show>away</show>")
        await quiet(benvolio, any_presence_from("romeo@localhost"))
        await romeo.send("<presence type='unavailable'/>")  # ends what the directed presence began
        await romeo.expect(presence_from(romeo.jid, "unavailable"))
        await benvolio.expect(presence_from(romeo.jid, "unavailable"))
        await go_available(romeo)
        await quiet(benvolio, any_presence_from("romeo@localhost"))


async def test_replacing_a_session_leaves_contacts_seeing_the_new_one_available(
    srv: TestServer,
) -> None:
    await make_contacts(srv, "romeo", "juliet")
    async with (
        srv.client("juliet", presence=True) as juliet,
        srv.client("romeo", presence=True, resource="r1") as old,
    ):
        await juliet.expect(presence_from(old.jid))
        async with srv.client("romeo", presence=True, resource="r1") as new:
            await quiet(new, presence_from(new.jid, "unavailable"))
            seen = [e for e in await sync(juliet) if any_presence_from(new.jid)(e)]
            assert seen and seen[-1].get("type") is None, [e.attrib for e in seen]
