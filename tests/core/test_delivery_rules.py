"""Delivery rules for messages and IQs (RFC 6121 §8, RFC 6120 §10)."""

from __future__ import annotations

import pytest
from casper.testing import TestClient, TestServer, open_test_server

from tests.core.conftest import (
    CLIENT,
    DELAY,
    error_condition,
    iq_reply,
    login,
    message_with_id,
    new_id,
    presence_from,
    quiet,
    send_message,
)

ROMEO = "romeo@localhost"


async def go_available(client: TestClient, priority: int = 0) -> None:
    await client.send(f"<presence><priority>{priority}</priority></presence>")
    await client.expect(presence_from(client.jid))


async def send_iq(sender: TestClient, to: str, type_: str = "get") -> str:
    iq_id = new_id("iq")
    await sender.send(
        f"<iq to='{to}' type='{type_}' id='{iq_id}'><query xmlns='jabber:iq:version'/></iq>"
    )
    return iq_id


async def expect_error(
    client: TestClient, stanza_id: str, condition: str, type_: str = "cancel"
) -> None:
    reply = await client.expect(lambda e: e.get("id") == stanza_id)
    assert reply.get("type") == "error", reply.attrib
    assert error_condition(reply) == condition
    error = reply.find(f"{{{CLIENT}}}error")
    assert error is not None and error.get("type") == type_


# -------------------------------------------------------------------- full JIDs


@pytest.mark.parametrize("type_", ["chat", "normal", "headline"])
async def test_full_jid_message_is_delivered_both_ways_between_sessions_without_presence(
    srv: TestServer, type_: str
) -> None:
    async with srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        to_juliet = await send_message(romeo, juliet.jid, type_)
        received = await juliet.expect(message_with_id(to_juliet))
        assert received.get("from") == str(romeo.jid)
        to_romeo = await send_message(juliet, romeo.jid, type_)
        received = await romeo.expect(message_with_id(to_romeo))
        assert received.get("from") == str(juliet.jid)


async def test_full_jid_iq_is_delivered_to_a_session_without_presence_and_the_result_returns(
    srv: TestServer,
) -> None:
    async with srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        iq_id = await send_iq(juliet, str(romeo.jid))
        request = await romeo.expect(lambda e: e.get("id") == iq_id)
        assert request.get("from") == str(juliet.jid) and request.get("type") == "get"
        await romeo.send(f"<iq to='{juliet.jid}' type='result' id='{iq_id}'/>")
        reply = await juliet.expect(iq_reply(iq_id))
        assert reply.get("type") == "result" and reply.get("from") == str(romeo.jid)


@pytest.mark.parametrize("type_", ["chat", "normal"])
async def test_message_to_a_full_jid_with_no_such_resource_is_treated_as_bare(
    srv: TestServer, type_: str
) -> None:
    async with srv.client("romeo", resource="r1") as r1, srv.client("juliet") as juliet:
        await go_available(r1)
        msg_id = await send_message(juliet, f"{ROMEO}/ghost", type_)
        received = await r1.expect(message_with_id(msg_id))
        assert received.get("from") == str(juliet.jid)


async def test_iq_to_a_full_jid_with_no_such_resource_is_service_unavailable(
    srv: TestServer,
) -> None:
    async with srv.client("romeo", presence=True) as romeo, srv.client("juliet") as juliet:
        iq_id = await send_iq(juliet, f"{ROMEO}/ghost")
        await expect_error(juliet, iq_id, "service-unavailable")
        await quiet(romeo, lambda e: e.get("id") == iq_id)


async def test_groupchat_to_a_full_jid_with_no_such_resource_is_service_unavailable(
    srv: TestServer,
) -> None:
    async with srv.client("romeo", presence=True) as romeo, srv.client("juliet") as juliet:
        msg_id = await send_message(juliet, f"{ROMEO}/ghost", "groupchat")
        await expect_error(juliet, msg_id, "service-unavailable")
        await quiet(romeo, message_with_id(msg_id))


async def test_full_jid_is_matched_after_preparation(srv: TestServer) -> None:
    async with srv.client("romeo", resource="Balcony") as romeo, srv.client("juliet") as juliet:
        msg_id = await send_message(juliet, "ROMEO@LocalHost/Balcony")
        await romeo.expect(message_with_id(msg_id))


# -------------------------------------------------------------------- bare JIDs


async def test_bare_jid_message_goes_to_every_highest_priority_available_resource(
    srv: TestServer,
) -> None:
    async with (
        srv.client("romeo", resource="a") as top_a,
        srv.client("romeo", resource="b") as top_b,
        srv.client("romeo", resource="low") as low,
        srv.client("romeo", resource="silent") as silent,
        srv.client("juliet") as juliet,
    ):
        await go_available(top_a, 5)
        await go_available(top_b, 5)
        await go_available(low, 1)
        msg_id = await send_message(juliet, ROMEO)
        for client in (top_a, top_b):
            received = await client.expect(message_with_id(msg_id))
            assert received.get("from") == str(juliet.jid)
        await quiet(low, message_with_id(msg_id))
        await quiet(silent, message_with_id(msg_id))


@pytest.mark.parametrize("connected", [False, True], ids=["offline", "connected-without-presence"])
async def test_bare_jid_message_without_available_resource_is_service_unavailable_without_storage(
    srv: TestServer, connected: bool
) -> None:
    async with srv.client("juliet") as juliet:
        if connected:
            async with srv.client("romeo") as romeo:
                msg_id = await send_message(juliet, ROMEO)
                await expect_error(juliet, msg_id, "service-unavailable")
                await quiet(romeo, message_with_id(msg_id))
        else:
            msg_id = await send_message(juliet, ROMEO)
            await expect_error(juliet, msg_id, "service-unavailable")


@pytest.mark.parametrize("connected", [False, True], ids=["offline", "connected-without-presence"])
async def test_bare_jid_message_without_available_resource_is_stored_and_delivered_at_initial_presence(
    connected: bool,
) -> None:
    server = open_test_server(default_plugins=False, plugins=["offline"])
    async with server as srv, srv.client("juliet") as juliet:
        romeo = await login(srv, "romeo") if connected else None
        msg_id = await send_message(juliet, ROMEO)
        await quiet(juliet, lambda e: e.get("type") == "error")
        if romeo is None:
            romeo = await login(srv, "romeo")
        await quiet(romeo, message_with_id(msg_id))  # not at bind, nor while unavailable
        await romeo.send("<presence/>")
        stored = await romeo.expect(message_with_id(msg_id))
        assert stored.get("from") == str(juliet.jid)
        assert stored.find(f"{{{DELAY}}}delay") is not None
        await romeo.close()


async def test_message_without_to_goes_to_the_senders_own_bare_jid(srv: TestServer) -> None:
    async with srv.client("romeo", resource="r1") as r1, srv.client("romeo", resource="r2") as r2:
        await go_available(r1)
        await go_available(r2)
        await r1.send("<message id='self' type='chat'><body>note to self</body></message>")
        for client in (r1, r2):
            received = await client.expect(message_with_id("self"))
            assert received.get("from") == str(r1.jid)


async def test_iq_to_another_accounts_bare_jid_is_answered_by_the_server_on_its_behalf(
    srv: TestServer,
) -> None:
    async with srv.client("romeo", presence=True) as romeo, srv.client("juliet") as juliet:
        iq_id = await send_iq(juliet, ROMEO)
        reply = await juliet.expect(iq_reply(iq_id))
        assert error_condition(reply) == "service-unavailable"
        assert reply.get("from") == ROMEO
        await quiet(romeo, lambda e: e.get("id") == iq_id)


async def test_groupchat_to_a_bare_jid_is_service_unavailable(srv: TestServer) -> None:
    async with srv.client("romeo", presence=True) as romeo, srv.client("juliet") as juliet:
        msg_id = await send_message(juliet, ROMEO, "groupchat")
        await expect_error(juliet, msg_id, "service-unavailable")
        await quiet(romeo, message_with_id(msg_id))


# -------------------------------------------------------------------- unknown targets


async def test_message_to_a_nonexistent_account_is_service_unavailable(srv: TestServer) -> None:
    async with srv.client("juliet") as juliet:
        msg_id = await send_message(juliet, "tybalt@localhost")
        await expect_error(juliet, msg_id, "service-unavailable")


async def test_iq_to_a_nonexistent_account_is_service_unavailable(srv: TestServer) -> None:
    async with srv.client("juliet") as juliet:
        iq_id = await send_iq(juliet, "tybalt@localhost")
        await expect_error(juliet, iq_id, "service-unavailable")


@pytest.mark.parametrize("kind", ["message", "iq"])
async def test_stanza_to_a_remote_domain_is_remote_server_not_found(
    srv: TestServer, kind: str
) -> None:
    async with srv.client("juliet") as juliet:
        if kind == "message":
            stanza_id = await send_message(juliet, "friar@mantua.example")
        else:
            stanza_id = await send_iq(juliet, "friar@mantua.example")
        await expect_error(juliet, stanza_id, "remote-server-not-found")


async def test_iq_to_the_server_with_an_unknown_namespace_is_service_unavailable(
    srv: TestServer,
) -> None:
    async with srv.client("juliet") as juliet:
        await juliet.send(
            "<iq to='localhost' type='get' id='unknown'><query xmlns='urn:example:nothing'/></iq>"
        )
        reply = await juliet.expect(iq_reply("unknown"))
        assert error_condition(reply) == "service-unavailable"
        assert reply.get("from") == "localhost"


async def test_error_for_an_iq_without_to_comes_from_the_accounts_bare_jid(
    srv: TestServer,
) -> None:
    """The server answered on the account's behalf (RFC 6120 §8.1.2.1): no ``from`` on the
    result, and the account's bare JID, not the domain, on an error."""
    async with srv.client("juliet") as juliet:
        await juliet.send("<iq type='get' id='nons'><query xmlns='urn:example:nothing'/></iq>")
        reply = await juliet.expect(iq_reply("nons"))
        assert error_condition(reply) == "service-unavailable"
        assert reply.get("from") == "juliet@localhost"


# -------------------------------------------------------------------- errors about errors


@pytest.mark.parametrize(
    "stanza",
    [
        "<message type='error' id='{id}' to='tybalt@localhost'><body/></message>",
        "<message type='error' id='{id}' to='friar@mantua.example'><body/></message>",
        "<message type='error' id='{id}' to='romeo@localhost'><body/></message>",
        "<iq type='error' id='{id}' to='romeo@localhost/ghost'/>",
        "<iq type='error' id='{id}' to='tybalt@localhost'/>",
        "<iq type='error' id='{id}' to='friar@mantua.example'/>",
        "<iq type='result' id='{id}' to='romeo@localhost/ghost'/>",
        "<iq type='result' id='{id}' to='tybalt@localhost'/>",
        "<iq type='result' id='{id}' to='tybalt@localhost/x'/>",
        "<iq type='result' id='{id}' to='localhost/x'/>",
        "<iq type='result' id='{id}' to='friar@mantua.example'/>",
        "<iq type='error' id='{id}' to='localhost'/>",
        "<presence type='error' id='{id}' to='tybalt@localhost'/>",
    ],
    ids=[
        "message-to-nonexistent-account",
        "message-to-remote-domain",
        "message-to-unavailable-account",
        "iq-to-missing-resource",
        "iq-to-nonexistent-account",
        "iq-to-remote-domain",
        "iq-result-to-missing-resource",
        "iq-result-to-nonexistent-account",
        "iq-result-to-nonexistent-full-jid",
        "iq-result-to-server-resource",
        "iq-result-to-remote-domain",
        "iq-to-server",
        "presence-to-nonexistent-account",
    ],
)
async def test_errors_and_iq_results_are_never_answered_with_errors(
    srv: TestServer, stanza: str
) -> None:
    """RFC 6120 §8.3.1 (errors) and §8.2.3 (an IQ result is not answered either)."""
    async with srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        stanza_id = new_id("err")
        await juliet.send(stanza.format(id=stanza_id))
        await quiet(juliet, lambda e: e.get("id") == stanza_id)
        await quiet(romeo, lambda e: e.get("id") == stanza_id)
