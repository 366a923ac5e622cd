"""XMPP over WebSocket (RFC 7395) over real loopback sockets, with trio-websocket's client.

Framing (``<open/>``, ``<close/>``, one complete element per message, namespaces declared),
the handshake rules (subprotocol, origin), wss, pings, and bad input: each refused with a
clear stream error or close code while another session carries on.
"""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.lowlevel
import wsproto
import wsproto.events
from casper.transports import framing
from casper.transports.framing import FRAMING_NS
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.helpers import befriend
from tests.transports.clients import (
    SASL,
    STREAMS,
    StreamEnded,
    WebSocketClient,
    http_request,
    parse,
    websocket_client,
)
from tests.transports.conftest import HOST, Web

OPEN = f"<open xmlns='{FRAMING_NS}' to='localhost' version='1.0'/>"


async def test_login_and_message_between_two_websocket_clients(web: Web) -> None:
    async with (
        websocket_client(web.ws_url, web.domain, "romeo", resource="ws") as romeo,
        websocket_client(web.ws_url, web.domain, "juliet", resource="ws") as juliet,
    ):
        assert str(romeo.jid) == "romeo@localhost/ws"
        await romeo.send(
            "<message to='juliet@localhost/ws' type='chat' id='m1'><body>hi</body></message>"
        )
        message = await juliet.expect("message")
        assert message.get("from") == "romeo@localhost/ws"
        assert message.findtext("{jabber:client}body") == "hi"


async def test_framing_of_the_servers_messages(web: Web) -> None:
    async with open_websocket_url(web.ws_url, subprotocols=["xmpp"]) as ws:
        assert ws.subprotocol == "xmpp"
        await ws.send_message(OPEN)
        opened = parse(await ws.get_message())
        assert opened.tag == f"{{{FRAMING_NS}}}open" and len(opened) == 0
        assert (
            opened.get("from") == "localhost"
            and opened.get("version") == "1.0"
            and opened.get("id")
        )
        features = await ws.get_message()
        assert features.startswith(f"<stream:features xmlns:stream='{STREAMS}'>")
        mechanisms = [m.text for m in parse(features).iter(f"{{{SASL}}}mechanism")]
        assert mechanisms == ["SCRAM-SHA-256", "SCRAM-SHA-1"]  # no PLAIN on plain ws
        await ws.send_message(f"<close xmlns='{FRAMING_NS}'/>")
        assert await ws.get_message() == f"<close xmlns='{FRAMING_NS}'/>"
        with pytest.raises(ConnectionClosed):
            await ws.get_message()


async def test_stanzas_are_complete_documents_with_jabber_client_namespace(web: Web) -> None:
    async with websocket_client(web.ws_url, web.domain, "romeo", resource="ws") as romeo:
        await romeo.ws.send_message(
            "<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><query xmlns='urn:casper:none'/></iq>"
        )
        raw = await romeo.ws.get_message()
        assert raw.startswith("<iq xmlns='jabber:client'") and "id='p1'" in raw


async def test_wss_counts_as_secure_and_offers_plain(make_web) -> None:
    async with make_web(http_tls=True) as web:
        assert web.ws_url.startswith("wss://") and web.bosh_url.startswith("https://")
        url = web.ws_url.replace("127.0.0.1", "localhost")  # the name in the certificate
        async with open_websocket_url(url, web.srv.client_context, subprotocols=["xmpp"],
                                      connect_timeout=10) as ws:  # fmt: skip
            await ws.send_message(OPEN)
            await ws.get_message()
            mechanisms = [
                m.text for m in parse(await ws.get_message()).iter(f"{{{SASL}}}mechanism")
            ]
            assert "PLAIN" in mechanisms


async def test_proxy_tls_counts_plain_ws_as_secure(make_web) -> None:
    async with (
        make_web(http_proxy_tls=True) as web,
        websocket_client(web.ws_url, web.domain) as client,
    ):
        features = await client.open_stream()
        assert "PLAIN" in [m.text for m in features.iter(f"{{{SASL}}}mechanism")]


# ---------------------------------------------------------------- handshake rules


async def test_missing_xmpp_subprotocol_is_rejected(web: Web) -> None:
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(web.ws_url, subprotocols=["chat"]):
            pass
    assert info.value.status_code == 400
    assert b"xmpp" in (info.value.body or b"")


async def test_origin_checks(make_web) -> None:
    async with make_web(http_allowed_origins=("https://chat.example",)) as web:
        bad = [("Origin", "https://evil.example")]
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(web.ws_url, subprotocols=["xmpp"],
                                          extra_headers=[(b"origin", b"https://evil.example")]):  # fmt: skip
                pass
        assert info.value.status_code == 403
        good = [(b"origin", b"https://chat.example")]
        async with open_websocket_url(web.ws_url, subprotocols=["xmpp"], extra_headers=good) as ws:
            await ws.send_message(OPEN)
            assert parse(await ws.get_message()).tag == f"{{{FRAMING_NS}}}open"
        status, _, _ = await http_request(HOST, web.port, "GET", "/health", headers=bad)
        assert status == 403


@pytest.mark.parametrize(("proxy_tls", "second_refused"), [(False, True), (True, False)])
async def test_websockets_count_against_the_address_limit_unless_behind_a_proxy(
    make_web, proxy_tls: bool, second_refused: bool
) -> None:
    async with (
        make_web(max_connections_per_ip=1, http_proxy_tls=proxy_tls) as web,
        open_websocket_url(web.ws_url, subprotocols=["xmpp"]),
    ):
        if second_refused:
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(web.ws_url, subprotocols=["xmpp"]):
                    pass
            assert info.value.status_code == 429
        else:  # every request comes from the proxy's address
            async with open_websocket_url(web.ws_url, subprotocols=["xmpp"]) as ws:
                await ws.send_message(OPEN)
                assert parse(await ws.get_message()).tag == f"{{{FRAMING_NS}}}open"
    async with make_web(max_connections_per_ip=1) as web:  # a closed one frees its place
        for _ in range(2):
            async with open_websocket_url(web.ws_url, subprotocols=["xmpp"]) as ws:
                await ws.send_message(OPEN)
                assert parse(await ws.get_message()).tag == f"{{{FRAMING_NS}}}open"
            with trio.fail_after(10):
                while json.loads((await http_request(HOST, web.port, "GET", "/health"))[2])[
                    "websocket_connections"
                ]:
                    await trio.sleep(0.05)


async def test_plain_get_on_the_websocket_path_asks_for_an_upgrade(web: Web) -> None:
    status, headers, _ = await http_request(HOST, web.port, "GET", "/xmpp-websocket")
    assert status == 426 and headers["upgrade"] == "websocket"


async def test_client_ping_is_answered(web: Web) -> None:
    async with websocket_client(web.ws_url, web.domain, "romeo") as romeo:
        with trio.fail_after(5):
            await romeo.ws.ping(b"are you there")


async def test_peer_that_stops_answering_pings_is_dropped(make_web) -> None:
    async with make_web(http_ws_ping_interval=0.2) as web:
        stream = await trio.open_tcp_stream(HOST, web.port)
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await stream.send_all(
            client.send(
                wsproto.events.Request(
                    host="localhost", target="/xmpp-websocket", subprotocols=["xmpp"]
                )
            )
        )
        client.receive_data(await stream.receive_some(65536))
        assert isinstance(next(client.events()), wsproto.events.AcceptConnection)
        await stream.send_all(client.send(wsproto.events.TextMessage(OPEN)))
        with trio.fail_after(5):  # we read but never answer the pings: the server gives up
            while await stream.receive_some(65536):
                pass
        await stream.aclose()


# ---------------------------------------------------------------- bad input


BAD_FRAMES = [
    pytest.param("hello there", "not-well-formed", id="not-xml"),
    pytest.param("<message xmlns='jabber:client'>", "not-well-formed", id="partial-element"),
    pytest.param(
        "<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>",
        "not-well-formed",
        id="two-elements",
    ),
    pytest.param(
        "<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", "not-well-formed", id="dtd"
    ),  # inside a stream
    pytest.param("<!-- hi --><presence xmlns='jabber:client'/>", "restricted-xml", id="comment"),
    pytest.param(b"<presence xmlns='jabber:client'/>", "unsupported-encoding", id="binary"),
    pytest.param(
        "<message xmlns='jabber:client'><body>" + "x" * 300_000 + "</body></message>",
        "policy-violation",
        id="oversized",
    ),
]


def nested_message(levels: int) -> str:
    """A message to romeo/ok with ``levels`` elements nested in it."""
    inner = "<x xmlns='urn:example:x'>" * levels + "</x>" * levels
    return f"<message xmlns='jabber:client' to='romeo@localhost/ok' id='deep'>{inner}</message>"


async def test_nesting_is_limited_as_on_tcp(web: Web) -> None:
    """max_depth (32) counts the stream as depth 1 on TCP; the WebSocket frame's stanza is
    at the same depth, so the same stanza passes or fails on both."""
    async with websocket_client(web.ws_url, web.domain, "romeo", resource="ok") as romeo:
        await romeo.ws.send_message(nested_message(30))  # deepest element at depth 32
        assert (await romeo.expect("message")).get("id") == "deep"
        await romeo.ws.send_message(nested_message(31))
        with pytest.raises(StreamEnded) as info:
            await romeo.recv()
        assert info.value.error == "policy-violation"
    async with web.srv.client("juliet") as juliet:  # TCP draws the line at the same place
        await juliet.send(nested_message(31).replace("romeo@localhost/ok", "juliet@localhost"))
        with pytest.raises(StreamEnded) as info:
            await juliet.recv()
        assert info.value.error == "policy-violation"


@pytest.mark.parametrize(("frame", "condition"), BAD_FRAMES)
async def test_bad_frame_is_a_stream_error_and_other_sessions_carry_on(web: Web, frame: str | bytes,
                                                                       condition: str) -> None:  # fmt: skip
    async with websocket_client(web.ws_url, web.domain, "romeo", resource="ok") as romeo:
        async with websocket_client(web.ws_url, web.domain, "juliet", resource="bad") as juliet:
            await juliet.ws.send_message(frame)
            with pytest.raises(StreamEnded) as info:
                await juliet.recv()
            assert info.value.error == condition
            assert await juliet.ws.get_message() == f"<close xmlns='{FRAMING_NS}'/>"
        await romeo.send(
            "<message to='romeo@localhost/ok' id='self'><body>still here</body></message>"
        )
        assert (await romeo.expect("message")).get("id") == "self"


async def test_bad_frame_before_open_gets_open_then_error(web: Web) -> None:
    async with open_websocket_url(web.ws_url, subprotocols=["xmpp"]) as ws:
        await ws.send_message("not xml at all")
        assert parse(await ws.get_message()).tag == f"{{{FRAMING_NS}}}open"
        assert "not-well-formed" in await ws.get_message()
        assert await ws.get_message() == f"<close xmlns='{FRAMING_NS}'/>"


async def test_frame_beyond_the_hard_cap_closes_with_1009(web: Web) -> None:
    async with open_websocket_url(
        web.ws_url, subprotocols=["xmpp"], max_message_size=1 << 22
    ) as ws:
        await ws.send_message(OPEN)
        await ws.get_message()
        await ws.get_message()
        await ws.send_message("<a>" + "x" * (2 * 262144 + 8192) + "</a>")
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await ws.get_message()
        assert info.value.reason.code == 1009


async def test_slow_reader_is_closed_and_others_carry_on(make_web) -> None:
    async with (
        make_web(outbox_size=16) as web,
        websocket_client(web.ws_url, web.domain, "romeo", resource="fast") as romeo,
        open_websocket_url(web.ws_url, subprotocols=["xmpp"], message_queue_size=1) as slow,
    ):
        juliet = WebSocketClient(slow, web.domain)
        await juliet.login("juliet", "secret", "slow")
        big = "x" * 60_000
        with trio.fail_after(20):
            for index in range(400):  # far more than socket buffers and the outbox hold
                await romeo.send(
                    f"<message to='juliet@localhost/slow' id='b{index}'><body>{big}</body></message>"
                )
                if not web.srv.server.router.session_for(juliet.jid):
                    break
                await trio.lowlevel.checkpoint()
        assert web.srv.server.router.session_for(juliet.jid) is None  # closed: too slow
        await romeo.send("<message to='romeo@localhost/fast' id='self'><body>ok</body></message>")
        assert (await romeo.expect(lambda e: e.get("id") == "self")).get("id") == "self"


@pytest.mark.parametrize("farewell", ["tcp-abort", "websocket-close"])
async def test_close_while_stanzas_are_written_ends_a_resumable_session_at_once(
    make_web, farewell: str
) -> None:
    """XEP-0198 §5: ``<close/>`` ends even a resumable session, also when the client drops
    the socket right after it and the server's writes to it fail first; what was not
    written waits offline rather than in a session nobody will resume."""
    async with make_web(plugins=["offline"], sm_resume_timeout=300) as web:
        await befriend(web.srv, "romeo", "juliet")
        async with (
            websocket_client(web.ws_url, web.domain, "juliet", presence=True) as juliet,
            websocket_client(web.ws_url, web.domain, "romeo", presence=True) as romeo,
        ):
            await romeo.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            await romeo.expect("{urn:xmpp:sm:3}enabled")
            for i in range(20):
                await juliet.send(
                    f"<message to='{romeo.jid}' type='chat'><body>{i}</body></message>"
                )
            await romeo.send("<presence type='unavailable'/>")
            await romeo.send_raw(f"<close xmlns='{FRAMING_NS}'/>")
            await (romeo.ws._stream.aclose() if farewell == "tcp-abort" else romeo.ws.aclose())
            server = web.srv.server
            with trio.move_on_after(3):  # the resumption window is 300 s
                while server.router.session_for(romeo.jid) or server.resumable.detached:
                    await trio.sleep(0.02)
            assert server.resumable.detached == 0
            assert server.router.session_for(romeo.jid) is None


async def test_output_too_large_to_frame_ends_only_that_connection(
    web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The WebSocket twin of the BOSH case: the server's own element over the framing bound
    breaks that connection's transport, as a failed write would (no crash logged); the
    listener and other clients carry on."""
    async with websocket_client(web.ws_url, web.domain, "benvolio", resource="by") as bystander:
        monkeypatch.setattr(framing, "OUTBOUND_LIMIT", 4096)  # connections opened from now on
        async with websocket_client(web.ws_url, web.domain, "romeo", resource="big") as romeo:
            body = "x" * 5000
            await romeo.send(
                f"<message to='romeo@localhost/big' id='echo'><body>{body}</body></message>"
            )
            with pytest.raises(StreamEnded), trio.fail_after(10):
                await romeo.expect(lambda e: e.get("id") == "echo")
        await bystander.send(
            "<message to='benvolio@localhost/by' id='self'><body>ok</body></message>"
        )
        assert (await bystander.expect(lambda e: e.get("id") == "self")).get("id") == "self"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
