"""C2S negotiation through the real server (RFC 6120 §4-§7): STARTTLS, SASL, bind, close."""

from __future__ import annotations

import math
from xml.etree.ElementTree import Element

import pytest
import trio
import trio.testing
from casper.testing import TestServer, open_test_server
from casper.testing.client import StreamEnded

from tests.core.conftest import (
    SASL,
    TLS,
    error_condition,
    iq_reply,
    login,
    message_with_id,
    quiet,
    sasl_attempt,
    send_message,
    tls_client,
)

BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


def mechanisms(features: Element | None) -> list[str]:
    assert features is not None
    return [m.text or "" for m in features.iter(f"{{{SASL}}}mechanism")]


def failure_condition(element: Element) -> str:
    assert element.tag == f"{{{SASL}}}failure", element.tag
    return next(c.tag.split("}")[1] for c in element if not c.tag.endswith("}text"))


async def test_features_before_tls_require_starttls_and_offer_no_mechanisms(
    srv: TestServer,
) -> None:
    client = await srv.connect()
    features = await client.open_stream()
    starttls = features.find(f"{{{TLS}}}starttls")
    assert starttls is not None
    assert starttls.find(f"{{{TLS}}}required") is not None
    assert features.find(f"{{{SASL}}}mechanisms") is None
    await client.close()


async def test_features_after_tls_offer_scram_sha256_scram_sha1_and_plain(srv: TestServer) -> None:
    client = await tls_client(srv)
    assert mechanisms(client.features) == MECHANISMS
    assert client.features is not None and client.features.find(f"{{{TLS}}}starttls") is None
    await client.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_login_succeeds_with_each_offered_mechanism(srv: TestServer, mechanism: str) -> None:
    client = await tls_client(srv)
    await client.authenticate("romeo", "secret", mechanism)
    assert client.features is not None and client.features.find(f"{{{BIND}}}bind") is not None
    jid = await client.bind("orchard")
    assert str(jid) == "romeo@localhost/orchard"
    msg_id = await send_message(client, jid)
    await client.expect(message_with_id(msg_id))
    await client.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_wrong_password_fails_not_authorized_and_a_retry_on_the_same_stream_succeeds(
    srv: TestServer, mechanism: str
) -> None:
    client = await tls_client(srv)
    failure = await sasl_attempt(client, "romeo", "wrong", mechanism)
    assert failure_condition(failure) == "not-authorized"
    await client.authenticate("romeo", "secret", mechanism)
    assert str(await client.bind("r1")) == "romeo@localhost/r1"
    await client.close()


async def test_third_authentication_failure_ends_the_stream_with_policy_violation(
    srv: TestServer,
) -> None:
    client = await tls_client(srv)
    for _ in range(2):
        failure = await sasl_attempt(client, "romeo", "wrong", "SCRAM-SHA-256")
        assert failure_condition(failure) == "not-authorized"
    await client.send_raw(f"<auth xmlns='{SASL}' mechanism='PLAIN'>AHJvbWVvAHdyb25n</auth>")
    assert failure_condition(await client.recv()) == "not-authorized"
    with pytest.raises(StreamEnded) as ended:
        await client.recv()
    assert ended.value.error == "policy-violation"
    await client.stream.aclose()


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_unknown_user_fails_not_authorized(srv: TestServer, mechanism: str) -> None:
    client = await tls_client(srv)
    failure = await sasl_attempt(client, "tybalt", "secret", mechanism)
    assert failure_condition(failure) == "not-authorized"
    await client.close()


async def test_plain_without_tls_is_not_offered_and_fails_encryption_required() -> None:
    async with open_test_server(default_plugins=False, require_starttls=False) as srv:
        client = await srv.connect()
        features = await client.open_stream()
        starttls = features.find(f"{{{TLS}}}starttls")
        assert starttls is not None and starttls.find(f"{{{TLS}}}required") is None
        assert mechanisms(features) == ["SCRAM-SHA-256", "SCRAM-SHA-1"]
        failure = await sasl_attempt(client, "romeo", "secret", "PLAIN")
        assert failure_condition(failure) == "encryption-required"
        await client.close()


async def test_bind_with_requested_resource_uses_it(srv: TestServer) -> None:
    async with srv.client("romeo", resource="balcony") as romeo:
        assert str(romeo.jid) == "romeo@localhost/balcony"


async def test_bind_without_resource_gets_a_server_generated_one(srv: TestServer) -> None:
    async with srv.client("romeo") as first, srv.client("romeo") as second:
        assert first.jid is not None and second.jid is not None
        assert first.jid.bare == second.jid.bare == srv.jid("romeo")
        assert first.jid.resource and second.jid.resource
        assert first.jid.resource != second.jid.resource


async def test_bind_conflict_ends_the_old_stream_with_conflict_and_the_new_one_works(
    srv: TestServer,
) -> None:
    async with (
        srv.client("romeo", resource="r1") as old,
        srv.client("juliet") as juliet,
        srv.client("romeo", resource="r1") as new,
    ):
        with pytest.raises(StreamEnded) as ended:
            await old.recv()
        assert ended.value.error == "conflict"
        msg_id = await send_message(juliet, "romeo@localhost/r1")
        await new.expect(message_with_id(msg_id))


async def test_legacy_session_iq_is_answered_with_an_empty_result(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await romeo.send(f"<iq type='set' id='sess'><session xmlns='{SESSION}'/></iq>")
        reply = await romeo.expect(iq_reply("sess"))
        assert reply.get("type") == "result"
        assert len(reply) == 0


async def test_whitespace_keepalive_is_ignored(srv: TestServer) -> None:
    async with srv.client("romeo") as romeo:
        await romeo.send_raw(b" \n\t ")
        assert await quiet(romeo) == []
        await romeo.send_raw(b"\n")
        msg_id = await send_message(romeo, romeo.jid)
        await romeo.expect(message_with_id(msg_id))


async def test_client_stream_close_is_answered_with_the_servers_close(srv: TestServer) -> None:
    async with srv.client("juliet") as juliet:
        romeo = await login(srv, "romeo", "r1")
        await romeo.send_raw(b"</stream:stream>")
        with pytest.raises(StreamEnded) as ended:
            await romeo.recv()
        assert ended.value.error is None
        await romeo.stream.aclose()
        # the resource is gone: a chat message to it is handled as sent to the bare JID
        # of an account with no session, which without the offline plugin is an error
        msg_id = await send_message(juliet, "romeo@localhost/r1")
        reply = await juliet.expect(message_with_id(msg_id))
        assert error_condition(reply) == "service-unavailable"


async def test_server_closes_the_transport_right_after_the_close_handshake(
    srv: TestServer, autojump_clock: trio.testing.MockClock
) -> None:
    # time stands still during login (autojump would race the storage worker thread)
    autojump_clock.autojump_threshold = math.inf
    romeo = await login(srv, "romeo", "r1")
    await romeo.send_raw(b"</stream:stream>")
    with pytest.raises(StreamEnded):
        await romeo.recv()
    autojump_clock.autojump_threshold = 0
    with trio.fail_after(1):
        while await romeo.stream.receive_some(4096):
            pass


@pytest.mark.parametrize("bound", [False, True], ids=["negotiating", "bound"])
async def test_server_shutdown_ends_open_streams_with_system_shutdown(bound: bool) -> None:
    """RFC 6120 §4.9.3.20: a stopping server ends every stream with ``system-shutdown``,
    a bound session's as well as one still negotiating."""
    async with open_test_server() as srv:
        if bound:
            client = await login(srv, "romeo", "r1")
        else:
            client = await srv.connect()
            await client.open_stream()
        srv.server.shut_down()
        with trio.fail_after(5), pytest.raises(StreamEnded) as ended:
            while True:
                await client.recv()
        assert ended.value.error == "system-shutdown"
