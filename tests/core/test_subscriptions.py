"""Presence subscriptions (RFC 6121 §3): the handshake, requests and approvals while offline,
pre-approval, cancelling in either direction, and roster removal.

romeo and juliet request their rosters, so every state change shows as a roster push;
each test checks the exact pushes and then that no other push came.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from casper.testing import TestClient, TestServer

from tests.core.conftest import (
    ROSTER,
    any_presence_from,
    contacts_online,
    error_condition,
    iq_reply,
    login,
    new_id,
    presence_from,
    quiet,
    roster_items,
    roster_push,
    sync,
)

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"


async def get_roster(client: TestClient) -> dict[str, Element]:
    iq_id = new_id("roster")
    await client.send(f"<iq type='get' id='{iq_id}'><query xmlns='{ROSTER}'/></iq>")
    return roster_items(await client.expect(iq_reply(iq_id)))


async def expect_push(
    client: TestClient, contact: str, subscription: str, ask: bool = False, approved: bool = False
) -> None:
    """The next roster push about ``contact`` shows exactly this state."""
    item = roster_items(await client.expect(roster_push(contact)))[contact]
    expected = (
        {"jid": contact, "subscription": subscription}
        | ({"ask": "subscribe"} if ask else {})
        | ({"approved": "true"} if approved else {})
    )
    assert item.attrib == expected


async def send_presence(client: TestClient, to: str, type_: str) -> None:
    await client.send(f"<presence to='{to}' type='{type_}'/>")


async def test_subscription_handshake_both_ways_pushes_every_state(srv: TestServer) -> None:
    async with (
        srv.client("romeo", presence=True) as romeo,
        srv.client("juliet", presence=True) as juliet,
    ):
        await get_roster(romeo)
        await get_roster(juliet)

        await send_presence(romeo, JULIET, "subscribe")
        await expect_push(romeo, JULIET, "none", ask=True)
        request = await juliet.expect(presence_from(ROMEO, "subscribe"))
        assert request.get("to") in (JULIET, str(juliet.jid))
        await quiet(juliet, roster_push())  # a request alone creates no item for juliet

        await send_presence(juliet, ROMEO, "subscribed")
        await expect_push(juliet, ROMEO, "from")
        await expect_push(romeo, JULIET, "to")
        await romeo.expect(presence_from(JULIET, "subscribed"))
        await romeo.expect(presence_from(juliet.jid))  # her current presence follows
        await quiet(juliet, any_presence_from(ROMEO))  # juliet is not subscribed to romeo yet

        await send_presence(juliet, ROMEO, "subscribe")
        await expect_push(juliet, ROMEO, "from", ask=True)
        await romeo.expect(presence_from(JULIET, "subscribe"))
        await send_presence(romeo, JULIET, "subscribed")
        await expect_push(romeo, JULIET, "both")
        await expect_push(juliet, ROMEO, "both")
        await juliet.expect(presence_from(ROMEO, "subscribed"))
        await juliet.expect(presence_from(romeo.jid))

        await quiet(romeo, roster_push())
        await quiet(juliet, roster_push())
        assert (await get_roster(romeo))[JULIET].get("subscription") == "both"
        assert (await get_roster(juliet))[ROMEO].get("subscription") == "both"


async def test_presence_reaches_the_new_subscriber_only_after_the_subscribed(
    srv: TestServer,
) -> None:
    async with (
        srv.client("romeo", presence=True) as romeo,
        srv.client("juliet", presence=True) as juliet,
    ):
        await send_presence(romeo, JULIET, "subscribe")
        await juliet.expect(presence_from(ROMEO, "subscribe"))
        await send_presence(juliet, ROMEO, "subscribed")
        first = await romeo.expect(any_presence_from(JULIET))
        assert first.get("type") == "subscribed", first.attrib
        await romeo.expect(presence_from(juliet.jid))
        await quiet(romeo, presence_from(juliet.jid))  # and only once


@pytest.mark.parametrize("connected", [False, True], ids=["offline", "connected-without-presence"])
async def test_subscription_request_to_an_unavailable_contact_is_delivered_at_initial_presence(
    srv: TestServer, connected: bool
) -> None:
    async with srv.client("romeo", presence=True) as romeo:
        await get_roster(romeo)
        if connected:
            juliet = await login(srv, "juliet")
        await send_presence(romeo, JULIET, "subscribe")
        await expect_push(romeo, JULIET, "none", ask=True)
        if not connected:
            juliet = await login(srv, "juliet")
        assert await get_roster(juliet) == {}
        await quiet(juliet, any_presence_from(ROMEO))  # not at bind, nor while unavailable
        await juliet.send("<presence/>")
        await juliet.expect(presence_from(ROMEO, "subscribe"))
        await juliet.close()


async def test_subscription_request_cancelled_before_the_contact_logs_in_is_not_delivered(
    srv: TestServer,
) -> None:
    async with srv.client("romeo", presence=True) as romeo:
        await get_roster(romeo)
        await send_presence(romeo, JULIET, "subscribe")
        await expect_push(romeo, JULIET, "none", ask=True)
        await send_presence(romeo, JULIET, "unsubscribe")
        await expect_push(romeo, JULIET, "none")
        async with srv.client("juliet", presence=True) as juliet:
            await quiet(juliet, any_presence_from(ROMEO))


async def test_approval_while_the_requester_is_offline_takes_effect_at_their_next_login(
    srv: TestServer,
) -> None:
    async with srv.client("juliet", presence=True) as juliet:
        async with srv.client("romeo", presence=True) as romeo:
            await send_presence(romeo, JULIET, "subscribe")
            await juliet.expect(presence_from(ROMEO, "subscribe"))
        await get_roster(juliet)
        await send_presence(juliet, ROMEO, "subscribed")
        await expect_push(juliet, ROMEO, "from")
        async with srv.client("romeo") as romeo:
            item = (await get_roster(romeo))[JULIET]
            assert item.attrib == {"jid": JULIET, "subscription": "to"}
            await romeo.send("<presence/>")
            await romeo.expect(presence_from(juliet.jid))


async def test_pre_approval_makes_a_later_request_auto_approved(srv: TestServer) -> None:
    async with (
        srv.client("romeo", presence=True) as romeo,
        srv.client("juliet", presence=True) as juliet,
    ):
        await get_roster(romeo)
        await get_roster(juliet)
        await send_presence(juliet, ROMEO, "subscribed")  # nothing pending: a pre-approval
        await expect_push(juliet, ROMEO, "none", approved=True)  # RFC 6121 §3.4
        await quiet(romeo, any_presence_from(JULIET))

        await send_presence(romeo, JULIET, "subscribe")
        await expect_push(romeo, JULIET, "none", ask=True)
        await expect_push(juliet, ROMEO, "from")
        await expect_push(romeo, JULIET, "to")
        await romeo.expect(presence_from(JULIET, "subscribed"))
        await romeo.expect(presence_from(juliet.jid))
        await quiet(juliet, any_presence_from(ROMEO))  # no request to answer
        await quiet(romeo, roster_push())
        await quiet(juliet, roster_push())


async def test_pre_approval_is_advertised_as_a_stream_feature(srv: TestServer) -> None:
    client = await srv.connect()
    await client.open_stream()
    await client.starttls(srv.client_context)
    await client.authenticate("romeo", "secret")
    features = client.features
    assert features is not None
    assert features.find("{urn:xmpp:features:pre-approval}sub") is not None
    await client.close()


async def test_unsubscribed_denies_a_pending_request(srv: TestServer) -> None:
    async with (
        srv.client("romeo", presence=True) as romeo,
        srv.client("juliet", presence=True) as juliet,
    ):
        await get_roster(romeo)
        await send_presence(romeo, JULIET, "subscribe")
        await expect_push(romeo, JULIET, "none", ask=True)
        await juliet.expect(presence_from(ROMEO, "subscribe"))
        await send_presence(juliet, ROMEO, "unsubscribed")
        await expect_push(romeo, JULIET, "none")
        await romeo.expect(presence_from(JULIET, "unsubscribed"))
        await quiet(romeo, presence_from(juliet.jid))


async def test_unsubscribe_cancels_the_users_subscription_and_the_contact_goes_unavailable(
    srv: TestServer,
) -> None:
    async with contacts_online(srv) as (romeo, juliet):
        await romeo.expect(presence_from(juliet.jid))
        await get_roster(romeo)
        await get_roster(juliet)
        await send_presence(romeo, JULIET, "unsubscribe")
        await expect_push(romeo, JULIET, "from")
        await expect_push(juliet, ROMEO, "to")
        await juliet.expect(presence_from(ROMEO, "unsubscribe"))
        await romeo.expect(presence_from(juliet.jid, "unavailable"))
        # romeo is no longer told about juliet; juliet still sees romeo
        await juliet.send("<presence><show>away</show></presence>")
        await juliet.expect(presence_from(juliet.jid))  # her own reflection
        await quiet(romeo, presence_from(juliet.jid))
        await romeo.send("<presence><show>dnd</show></presence>")
        await juliet.expect(presence_from(romeo.jid))


async def test_unsubscribed_cancels_the_contacts_subscription_and_the_user_goes_unavailable(
    srv: TestServer,
) -> None:
    async with contacts_online(srv) as (romeo, juliet):
        await romeo.expect(presence_from(juliet.jid))
        await get_roster(romeo)
        await get_roster(juliet)
        await send_presence(juliet, ROMEO, "unsubscribed")
        await expect_push(juliet, ROMEO, "to")
        await expect_push(romeo, JULIET, "from")
        await romeo.expect(presence_from(JULIET, "unsubscribed"))
        await romeo.expect(presence_from(juliet.jid, "unavailable"))
        await juliet.send("<presence><show>away</show></presence>")
        await juliet.expect(presence_from(juliet.jid))
        await quiet(romeo, presence_from(juliet.jid))


async def test_roster_remove_cancels_the_subscription_in_both_directions(srv: TestServer) -> None:
    async with contacts_online(srv) as (romeo, juliet):
        await romeo.expect(presence_from(juliet.jid))
        await juliet.expect(presence_from(romeo.jid))
        await get_roster(romeo)
        await get_roster(juliet)
        iq_id = new_id("remove")
        await romeo.send(
            f"<iq type='set' id='{iq_id}'><query xmlns='{ROSTER}'>"
            f"<item jid='{JULIET}' subscription='remove'/></query></iq>"
        )
        assert (await romeo.expect(iq_reply(iq_id))).get("type") == "result"
        await expect_push(romeo, JULIET, "remove")
        await juliet.expect(presence_from(ROMEO, "unsubscribe"))
        await juliet.expect(presence_from(ROMEO, "unsubscribed"))
        await juliet.expect(presence_from(romeo.jid, "unavailable"))
        await romeo.expect(presence_from(juliet.jid, "unavailable"))
        assert (await get_roster(juliet))[ROMEO].get("subscription") == "none"
        assert await get_roster(romeo) == {}
        await romeo.send("<presence><show>away</show></presence>")
        await romeo.expect(presence_from(romeo.jid))
        await quiet(juliet, any_presence_from(ROMEO))


@pytest.mark.parametrize("type_", ["subscribe", "subscribed", "unsubscribe", "unsubscribed"])
async def test_subscription_stanza_reaches_the_contact_from_the_users_bare_jid(
    srv: TestServer, type_: str
) -> None:
    async with contacts_online(srv) as (romeo, juliet):
        if type_ == "subscribed":  # give romeo a request to approve
            await send_presence(juliet, ROMEO, "unsubscribe")
            await romeo.expect(presence_from(JULIET, "unsubscribe"))
            await send_presence(juliet, ROMEO, "subscribe")
            await romeo.expect(presence_from(JULIET, "subscribe"))
        if type_ == "subscribe":  # a request from a subscriber would be answered by the server
            await send_presence(romeo, JULIET, "unsubscribe")
            await juliet.expect(presence_from(ROMEO, "unsubscribe"))
        await send_presence(romeo, JULIET, type_)
        stanza = await juliet.expect(presence_from(ROMEO, type_))
        assert stanza.get("to") in (JULIET, str(juliet.jid))


async def test_subscribe_from_an_existing_subscriber_is_answered_without_asking_the_contact(
    srv: TestServer,
) -> None:
    # RFC 6121 §3.1.3: the contact's server auto-replies 'subscribed'; the user's server
    # has no pending request to match it with and ignores it (§3.1.6), so nothing changes
    async with contacts_online(srv) as (romeo, juliet):
        await juliet.expect(presence_from(romeo.jid))
        await get_roster(romeo)
        await send_presence(romeo, JULIET, "subscribe")
        await quiet(juliet, presence_from(ROMEO, "subscribe"))
        await quiet(romeo, roster_push())
        assert (await get_roster(romeo))[JULIET].attrib == {"jid": JULIET, "subscription": "both"}


async def test_subscribe_to_a_nonexistent_account_is_answered_unsubscribed(srv: TestServer) -> None:
    async with srv.client("romeo", presence=True) as romeo:
        await get_roster(romeo)
        await send_presence(romeo, "tybalt@localhost", "subscribe")
        await expect_push(romeo, "tybalt@localhost", "none", ask=True)
        await expect_push(romeo, "tybalt@localhost", "none")
        await romeo.expect(presence_from("tybalt@localhost", "unsubscribed"))


async def test_subscribe_to_a_remote_domain_is_remote_server_not_found(srv: TestServer) -> None:
    async with srv.client("romeo", presence=True) as romeo:
        await romeo.send("<presence to='friar@mantua.example' type='subscribe' id='far'/>")
        received = await sync(romeo)
        from_friar = [e for e in received if any_presence_from("friar@mantua.example")(e)]
        forged = [e for e in from_friar if e.get("type") != "error"]
        assert not forged, [e.attrib for e in forged]
        replies = [e for e in received if e.get("id") == "far"]
        assert replies and error_condition(replies[0]) == "remote-server-not-found"
