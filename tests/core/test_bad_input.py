"""Bad input from one client (RFC 6120 §4.9, §8.3, §11): the right error for it, and the
server goes on serving everyone else.

Each test keeps two other sessions connected through the bad input (juliet, who would be
its target, and the nurse) and ends by having the nurse send juliet a message.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from casper.testing import TestClient, TestServer, open_test_server
from casper.testing.client import StreamEnded

from tests.core.conftest import (
    CLIENT,
    ROSTER,
    TLS,
    any_presence_from,
    error_condition,
    is_error,
    login,
    make_contacts,
    message_with_id,
    new_id,
    quiet,
    roster_push,
    send_message,
    sync,
    tls_client,
)

ACCOUNTS = ("romeo", "juliet", "nurse")
MAX_STANZA = 4096
MAX_DEPTH = 8
Check = Callable[[], Awaitable[None]]


@pytest.fixture
async def srv() -> AsyncIterator[TestServer]:
    async with open_test_server(default_plugins=False, accounts=ACCOUNTS,
                                max_stanza_size=MAX_STANZA, max_depth=MAX_DEPTH) as server:  # fmt: skip
        yield server


@asynccontextmanager
async def bystanders(srv: TestServer) -> AsyncIterator[tuple[TestClient, Check]]:
    """juliet (available) and the nurse, connected; ``check()`` has the nurse message juliet."""
    async with (
        srv.client("juliet", presence=True, resource="balcony") as juliet,
        srv.client("nurse") as nurse,
    ):

        async def check() -> None:
            msg_id = await send_message(nurse, juliet.jid)
            await juliet.expect(message_with_id(msg_id))

        yield juliet, check


async def stream_error_for(client: TestClient, data: bytes | str) -> str | None:
    """Send ``data`` and return the stream error condition the server ends the stream with."""
    await client.send_raw(data)
    with pytest.raises(StreamEnded) as ended:
        while True:
            await client.recv()
    await client.stream.aclose()
    return ended.value.error


# -------------------------------------------------------------------- stream errors


async def test_malformed_xml_ends_the_stream_with_not_well_formed(srv: TestServer) -> None:
    async with bystanders(srv) as (juliet, check):
        romeo = await login(srv, "romeo")
        bad = f"<message to='{juliet.jid}'><body>hi</message>"
        assert await stream_error_for(romeo, bad) == "not-well-formed"
        await check()


BILLION_LAUGHS = (
    "<?xml version='1.0'?>"
    "<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
    "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>]>"
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " to='localhost' version='1.0'>"
)


async def test_doctype_with_entity_declarations_ends_the_stream_with_restricted_xml(
    srv: TestServer,
) -> None:
    async with bystanders(srv) as (_juliet, check):
        client = await srv.connect()
        assert await stream_error_for(client, BILLION_LAUGHS) == "restricted-xml"
        await check()


async def test_undeclared_entity_reference_ends_the_stream_with_restricted_xml(
    srv: TestServer,
) -> None:
    async with bystanders(srv) as (juliet, check):
        romeo = await login(srv, "romeo")
        bad = f"<message to='{juliet.jid}'><body>&lol2;</body></message>"
        assert await stream_error_for(romeo, bad) == "restricted-xml"
        await quiet(juliet)
        await check()


@pytest.mark.parametrize(
    "bad",
    [
        "<!-- a comment between stanzas -->",
        "<message to='juliet@localhost/balcony'><!-- inside --><body>hi</body></message>",
        "<?php echo 1; ?>",
        "<message to='juliet@localhost/balcony'><?target data?><body>hi</body></message>",
    ],
    ids=["comment", "comment-in-stanza", "processing-instruction", "pi-in-stanza"],
)
async def test_comments_and_processing_instructions_end_the_stream_with_restricted_xml(
    srv: TestServer, bad: str
) -> None:
    async with bystanders(srv) as (juliet, check):
        romeo = await login(srv, "romeo")
        assert await stream_error_for(romeo, bad) == "restricted-xml"
        await quiet(juliet)
        await check()


async def test_oversized_stanza_ends_the_stream_with_policy_violation(srv: TestServer) -> None:
    async with bystanders(srv) as (juliet, check):
        romeo = await login(srv, "romeo")
        body = "x" * (MAX_STANZA + 1)
        bad = f"<message to='{juliet.jid}' type='chat'><body>{body}</body></message>"
        assert await stream_error_for(romeo, bad) == "policy-violation"
        await quiet(juliet)
        await check()


async def test_nesting_deeper_than_max_depth_ends_the_stream_with_policy_violation(
    srv: TestServer,
) -> None:
    async with bystanders(srv) as (juliet, check):
        romeo = await login(srv, "romeo")
        # the stream is depth 1 and the message depth 2: this goes MAX_DEPTH + 1 deep
        nested = "<x xmlns='urn:example:deep'>" * (MAX_DEPTH - 1) + "</x>" * (MAX_DEPTH - 1)
        bad = f"<message to='{juliet.jid}' type='chat'>{nested}</message>"
        assert await stream_error_for(romeo, bad) == "policy-violation"
        await quiet(juliet)
        await check()


async def test_nesting_at_max_depth_is_accepted(srv: TestServer) -> None:
    async with bystanders(srv) as (juliet, _check), srv.client("romeo") as romeo:
        nested = "<x xmlns='urn:example:deep'>" * (MAX_DEPTH - 2) + "</x>" * (MAX_DEPTH - 2)
        await romeo.send(f"<message to='{juliet.jid}' id='deep' type='chat'>{nested}</message>")
        await juliet.expect(message_with_id("deep"))


@pytest.mark.parametrize(
    "spoofed", ["juliet@localhost", "juliet@localhost/balcony", "romeo@localhost/other"]
)
async def test_spoofed_from_ends_the_stream_with_invalid_from_and_reaches_no_one(
    srv: TestServer, spoofed: str
) -> None:
    async with bystanders(srv) as (juliet, check):
        romeo = await login(srv, "romeo", "r1")
        bad = f"<message from='{spoofed}' to='{juliet.jid}' type='chat'><body>it is I</body></message>"
        assert await stream_error_for(romeo, bad) == "invalid-from"
        await quiet(juliet)
        await check()


async def test_from_with_the_sessions_own_full_or_bare_jid_is_accepted(srv: TestServer) -> None:
    async with bystanders(srv) as (juliet, _check), srv.client("romeo", resource="r1") as romeo:
        for own in ("romeo@localhost/r1", "romeo@localhost"):
            msg_id = new_id("m")
            await romeo.send(
                f"<message from='{own}' to='{juliet.jid}' id='{msg_id}'><body/></message>"
            )
            message = await juliet.expect(message_with_id(msg_id))
            assert message.get("from") == "romeo@localhost/r1"


@pytest.mark.parametrize("tls", [False, True], ids=["before-tls", "after-tls"])
async def test_message_before_authentication_ends_the_stream_with_not_authorized(
    srv: TestServer, tls: bool
) -> None:
    async with bystanders(srv) as (juliet, check):
        if tls:
            client = await tls_client(srv)
        else:
            client = await srv.connect()
            await client.open_stream()
        bad = f"<message to='{juliet.jid}' type='chat'><body>anonymous</body></message>"
        assert await stream_error_for(client, bad) == "not-authorized"
        await quiet(juliet)
        await check()


async def test_iq_before_bind_ends_the_stream_with_not_authorized(srv: TestServer) -> None:
    async with bystanders(srv) as (_juliet, check):
        client = await tls_client(srv)
        await client.authenticate("romeo", "secret")
        bad = "<iq type='get' id='early'><query xmlns='jabber:iq:roster'/></iq>"
        assert await stream_error_for(client, bad) == "not-authorized"
        await check()


async def test_unknown_top_level_element_ends_the_stream_with_unsupported_stanza_type(
    srv: TestServer,
) -> None:
    async with bystanders(srv) as (_juliet, check):
        romeo = await login(srv, "romeo")
        assert (
            await stream_error_for(romeo, "<gift xmlns='jabber:client'/>")
            == "unsupported-stanza-type"
        )
        await check()


async def test_plaintext_injected_after_starttls_ends_the_stream_with_policy_violation(
    srv: TestServer,
) -> None:
    async with bystanders(srv) as (juliet, check):
        client = await srv.connect()
        await client.open_stream()
        injected = (
            f"<starttls xmlns='{TLS}'/><message to='{juliet.jid}'><body>injected</body></message>"
        )
        await client.send_raw(injected)
        with pytest.raises(StreamEnded) as ended:
            reply = await client.recv()
            raise AssertionError(f"expected no <proceed/>, got {reply.tag}")
        assert ended.value.error == "policy-violation"
        await client.stream.aclose()
        await quiet(juliet)
        await check()


async def test_negotiation_timeout_ends_the_stream_with_connection_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Time stands still while sessions log in: autojump would also fire while the server
    # waits for its storage thread. It runs only while the slow client is the one waiting.
    autojump_clock.autojump_threshold = math.inf
    server = open_test_server(default_plugins=False, accounts=ACCOUNTS, negotiation_timeout=10)
    async with server as srv, bystanders(srv) as (_juliet, check):
        slow = await srv.connect()
        await slow.open_stream()
        start = trio.current_time()
        autojump_clock.autojump_threshold = 0
        with pytest.raises(StreamEnded) as ended:
            await slow.recv(timeout=60)
        autojump_clock.autojump_threshold = math.inf
        assert ended.value.error == "connection-timeout"
        assert trio.current_time() - start == pytest.approx(10, abs=0.1)
        await slow.stream.aclose()
        await check()


# -------------------------------------------------------------------- stanza errors


async def test_unknown_presence_type_gets_bad_request_and_reaches_no_contact(
    srv: TestServer,
) -> None:
    await make_contacts(srv, "romeo", "juliet")
    async with bystanders(srv) as (juliet, check), srv.client("romeo", presence=True) as romeo:
        await sync(juliet)  # romeo's initial presence
        await romeo.send("<presence type='invisible'/>")
        error = await romeo.expect(is_error("presence", "bad-request"))
        assert error.get("to") == str(romeo.jid)
        await quiet(juliet, any_presence_from(romeo.jid.bare))
        msg_id = await send_message(juliet, romeo.jid)
        await romeo.expect(message_with_id(msg_id))
        await check()


@pytest.mark.parametrize(
    "kind, stanza",
    [
        ("message", "<message to='@localhost' id='{id}' type='chat'><body>hi</body></message>"),
        ("presence", "<presence to='juliet@local host' id='{id}'/>"),
        (
            "iq",
            "<iq to='juliet@localhost/' id='{id}' type='get'><query xmlns='jabber:iq:version'/></iq>",
        ),
    ],
)
async def test_malformed_to_gets_jid_malformed_and_the_stream_goes_on(
    srv: TestServer, kind: str, stanza: str
) -> None:
    async with bystanders(srv) as (_juliet, check), srv.client("romeo") as romeo:
        stanza_id = new_id()
        await romeo.send(stanza.format(id=stanza_id))
        error = await romeo.expect(is_error(kind, "jid-malformed"))
        assert error.get("id") == stanza_id
        msg_id = await send_message(romeo, romeo.jid)
        await romeo.expect(message_with_id(msg_id))
        await check()


@pytest.mark.parametrize(
    "payload",
    ["", "<query xmlns='jabber:iq:roster'/><query xmlns='jabber:iq:roster'/>"],
    ids=["no-child", "two-children"],
)
async def test_iq_get_without_exactly_one_child_gets_bad_request(
    srv: TestServer, payload: str
) -> None:
    async with bystanders(srv) as (_juliet, check), srv.client("romeo") as romeo:
        await romeo.send(f"<iq type='get' id='empty'>{payload}</iq>")
        reply = await romeo.expect(lambda e: e.get("id") == "empty")
        assert error_condition(reply) == "bad-request"
        await check()


@pytest.mark.parametrize("to", ["", " to='romeo@localhost'"], ids=["no-to", "own-bare-jid"])
@pytest.mark.parametrize("type_", ["subscribe", "subscribed", "unsubscribe", "unsubscribed"])
async def test_subscription_presence_without_another_entitys_to_gets_bad_request(
    srv: TestServer, type_: str, to: str
) -> None:
    async with bystanders(srv) as (_juliet, check), srv.client("romeo", presence=True) as romeo:
        await romeo.send(f"<iq type='get' id='roster'><query xmlns='{ROSTER}'/></iq>")
        await romeo.expect(lambda e: e.get("id") == "roster")
        await romeo.send(f"<presence type='{type_}' id='noto'{to}/>")
        reply = await romeo.expect(lambda e: e.get("id") == "noto")
        assert reply.tag == f"{{{CLIENT}}}presence"
        assert error_condition(reply) == "bad-request"
        await quiet(romeo, roster_push())  # the roster is untouched
        msg_id = await send_message(romeo, romeo.jid)
        await romeo.expect(message_with_id(msg_id))
        await check()
