"""BOSH (XEP-0124/0206) over real loopback sockets, with an h11 client.

Session life (create, SASL, restart, bind, poll, terminate, inactivity), the HTTP side
(CORS, preflight, health, 404/405/413/408), and bad input: each refused with a clear
status or terminal condition, and only the offending session, if any, ends.
"""

from __future__ import annotations

import json
from xml.etree.ElementTree import Element

import pytest
import trio
from casper.testing.client import StreamEnded
from casper.transports import framing
from casper.transports.bosh_session import BOSH_NS

from tests.transports.clients import BoshClient, bosh_client, http_request, parse, websocket_client
from tests.transports.conftest import HOST, Web

CREATE = ("<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}'"
          " to='localhost' wait='{wait}' hold='1' ver='1.6' xmpp:version='1.0'/>")  # fmt: skip


async def post(web: Web, data: bytes | str, headers: list[tuple[str, str]] | None = None,
               ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    raw = data.encode() if isinstance(data, str) else data
    return await http_request(HOST, web.port, "POST", "/http-bind", raw, headers)


async def health(web: Web) -> dict[str, object]:
    status, headers, content = await http_request(HOST, web.port, "GET", "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    return json.loads(content)


async def test_login_message_and_terminate(web: Web) -> None:
    async with bosh_client(
        HOST, web.port, web.domain, "romeo", resource="b", presence=True
    ) as romeo:
        assert romeo.created is not None
        attrs = romeo.created.attrib
        assert {
            "sid",
            "wait",
            "requests",
            "hold",
            "inactivity",
            "polling",
            "authid",
        } <= attrs.keys()
        assert (attrs["ver"], attrs["hold"], attrs["requests"], attrs["from"]) == (
            "1.6",
            "1",
            "2",
            "localhost",
        )
        async with bosh_client(HOST, web.port, web.domain, "juliet", resource="b") as juliet:
            await juliet.send(
                "<message to='romeo@localhost/b' type='chat'><body>hi</body></message>"
            )
            message = await romeo.expect("message")
            assert message.get("from") == "juliet@localhost/b"
            assert (await health(web))["bosh_sessions"] == 2
        with trio.fail_after(5):
            while (await health(web))["bosh_sessions"] != 1:  # juliet's terminate ended hers
                await trio.sleep(0.02)


async def test_cors_and_preflight(web: Web) -> None:
    origin = [("origin", "https://chat.example")]
    status, headers, _ = await http_request(HOST, web.port, "OPTIONS", "/http-bind", headers=origin)
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://chat.example"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "Content-Type"
    status, headers, content = await post(web, CREATE.format(rid=1, wait=1), origin)
    assert status == 200 and headers["access-control-allow-origin"] == "https://chat.example"
    assert parse(content).get("sid")


async def test_origin_not_allowed_is_403(make_web) -> None:
    async with make_web(http_allowed_origins=("https://chat.example",)) as web:
        status, headers, _ = await post(
            web, CREATE.format(rid=1, wait=1), [("origin", "https://evil.example")]
        )
        assert status == 403 and "access-control-allow-origin" not in headers
        status, _, _ = await post(web, CREATE.format(rid=1, wait=1))  # no Origin: not a browser
        assert status == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/http-bind", 200),
        ("PUT", "/http-bind", 405),
        ("GET", "/nope", 404),
        ("GET", "/health", 200),
    ],
)
async def test_http_routes(web: Web, method: str, path: str, status: int) -> None:
    assert (await http_request(HOST, web.port, method, path))[0] == status


async def test_health_counts(web: Web) -> None:
    before = await health(web)
    assert before["status"] == "ok" and before["domain"] == "localhost"
    assert (before["sessions"], before["bosh_sessions"], before["websocket_connections"]) == (
        0,
        0,
        0,
    )
    async with (
        websocket_client(web.ws_url, web.domain, "romeo"),
        bosh_client(HOST, web.port, web.domain, "juliet"),
    ):
        during = await health(web)
        assert (during["sessions"], during["bosh_sessions"], during["websocket_connections"]) == (
            2,
            1,
            1,
        )


async def test_held_request_is_answered_after_wait(web: Web) -> None:
    status, _, content = await post(web, CREATE.format(rid=10, wait=1))
    sid = parse(content).get("sid")
    with trio.fail_after(5):
        start = trio.current_time()
        status, _, content = await post(web, f"<body xmlns='{BOSH_NS}' rid='11' sid='{sid}'/>")
        assert status == 200 and len(parse(content)) == 0
        assert trio.current_time() - start >= 0.9


async def test_inactive_session_ends(make_web) -> None:
    async with make_web(bosh_inactivity=1) as web:
        status, _, content = await post(web, CREATE.format(rid=10, wait=1))
        sid = parse(content).get("sid")
        with trio.fail_after(10):
            while (await health(web))["bosh_sessions"]:
                await trio.sleep(0.1)
        status, _, content = await post(web, f"<body xmlns='{BOSH_NS}' rid='11' sid='{sid}'/>")
        reply = parse(content)
        assert (status, reply.get("type"), reply.get("condition")) == (
            200,
            "terminate",
            "item-not-found",
        )


async def test_retransmission_gets_the_same_body(web: Web) -> None:
    async with bosh_client(HOST, web.port, web.domain) as client:
        await client.open_stream()
        rid = next(client._rids)
        request = f"<body xmlns='{BOSH_NS}' rid='{rid}' sid='{client.sid}'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='NOPE'/></body>"
        first = await post(web, request)
        again = await post(web, request)
        assert first[2] == again[2] and first[0] == 200
        assert b"invalid-mechanism" in first[2]


async def test_stream_error_comes_in_the_terminate_answer(web: Web) -> None:
    async with bosh_client(HOST, web.port, web.domain) as client:
        await client.open_stream()
        rid = next(client._rids)
        iq = "<iq xmlns='jabber:client' type='get' id='x'/>"  # before authentication
        _, _, content = await post(
            web, f"<body xmlns='{BOSH_NS}' rid='{rid}' sid='{client.sid}'>{iq}</body>"
        )
        reply = parse(content)
        assert (reply.get("type"), reply.get("condition")) == ("terminate", "remote-stream-error")
        assert reply[0].tag == "{http://etherx.jabber.org/streams}error"
        assert reply[0][0].tag == "{urn:ietf:params:xml:ns:xmpp-streams}not-authorized"


# ---------------------------------------------------------------- bad input


async def _bystander(web: Web) -> tuple[BoshClient, object]:
    """A logged-in BOSH session that must not notice anything."""
    context = bosh_client(HOST, web.port, web.domain, "benvolio", resource="by")
    return await context.__aenter__(), context


async def check_bystander_unaffected(bystander: BoshClient) -> None:
    await bystander.send("<message to='benvolio@localhost/by' id='self'><body>ok</body></message>")
    assert (await bystander.expect(lambda e: e.get("id") == "self")).get("id") == "self"


BAD_BODIES = [
    pytest.param(b"this is not xml", 400, "bad-request", id="not-xml"),
    pytest.param(
        b"<html xmlns='http://www.w3.org/1999/xhtml'/>", 400, "bad-request", id="not-body"
    ),
    pytest.param(f"<body xmlns='{BOSH_NS}' sid='x'/>".encode(), 400, "bad-request", id="no-rid"),
    pytest.param(
        f"<body xmlns='{BOSH_NS}' rid='5' sid='nosuchsid'/>".encode(),
        200,
        "item-not-found",
        id="unknown-sid",
    ),
    pytest.param(
        f"<body xmlns='{BOSH_NS}' rid='5' to='elsewhere'/>".encode(),
        200,
        "host-unknown",
        id="wrong-host",
    ),
]


@pytest.mark.parametrize(("data", "status", "condition"), BAD_BODIES)
async def test_bad_request_is_refused_and_others_carry_on(web: Web, data: bytes, status: int,
                                                          condition: str) -> None:  # fmt: skip
    async with bosh_client(HOST, web.port, web.domain, "benvolio", resource="by") as bystander:
        got, headers, content = await post(web, data)
        reply = parse(content)
        assert (got, reply.get("type"), reply.get("condition")) == (status, "terminate", condition)
        assert headers["content-type"].startswith("text/xml")
        await check_bystander_unaffected(bystander)


async def test_oversized_body_is_413(make_web) -> None:
    async with (
        make_web(bosh_max_body_size=4096) as web,
        bosh_client(HOST, web.port, web.domain, "benvolio") as bystander,
    ):
        status, _, _ = await post(web, f"<body xmlns='{BOSH_NS}' rid='1'>{'x' * 5000}</body>")
        assert status == 413
        await check_bystander_unaffected(bystander)


async def _session(web: Web, rid: int) -> str:
    status, _, content = await post(web, CREATE.format(rid=rid, wait=5))
    assert status == 200
    return parse(content).get("sid") or ""


async def _ending(web: Web, sid: str) -> bool:
    return sid not in (await http_request(HOST, web.port, "GET", "/health"))[2].decode()


@pytest.mark.parametrize(("rid", "condition"), [(1000 + 3, "item-not-found"), (900, "item-not-found")],
                         ids=["beyond-window", "stale"])  # fmt: skip
async def test_wrong_rid_ends_only_that_session(web: Web, rid: int, condition: str) -> None:
    async with bosh_client(HOST, web.port, web.domain, "benvolio", resource="by") as bystander:
        sid = await _session(web, 1000)  # the creation request is answered with its features
        status, _, content = await post(web, f"<body xmlns='{BOSH_NS}' rid='{rid}' sid='{sid}'/>")
        reply = parse(content)
        assert (status, reply.get("type"), reply.get("condition")) == (200, "terminate", condition)
        status, _, content = await post(web, f"<body xmlns='{BOSH_NS}' rid='1001' sid='{sid}'/>")
        assert parse(content).get("condition") == "item-not-found"  # the session is gone
        await check_bystander_unaffected(bystander)


async def test_too_many_open_requests_is_policy_violation(web: Web) -> None:
    async with bosh_client(HOST, web.port, web.domain, "benvolio", resource="by") as bystander:
        sid = await _session(web, 1000)
        replies: dict[int, Element] = {}

        async def hold(rid: int) -> None:
            replies[rid] = parse(
                (await post(web, f"<body xmlns='{BOSH_NS}' rid='{rid}' sid='{sid}'/>"))[2]
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold, 1001)  # held
            await trio.sleep(0.2)
            nursery.start_soon(hold, 1003)  # early: 1002 missing; that is two open
            await trio.sleep(0.2)
            nursery.start_soon(hold, 1002)  # a third open request: over the limit
        assert replies[1002].get("condition") == "policy-violation"
        assert all(replies[rid].get("type") == "terminate" for rid in (1001, 1003))
        await check_bystander_unaffected(bystander)


async def test_slow_headers_get_408_and_others_carry_on(make_web) -> None:
    async with (
        make_web(http_request_timeout=0.5) as web,
        bosh_client(HOST, web.port, web.domain, "benvolio", resource="by") as bystander,
    ):
        stream = await trio.open_tcp_stream(HOST, web.port)
        await stream.send_all(b"POST /http-bind HTTP/1.1\r\nhost: x\r\n")  # and nothing more
        with trio.fail_after(5):
            answer = b""
            while chunk := await stream.receive_some(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")
        await stream.aclose()
        await check_bystander_unaffected(bystander)


async def test_client_that_never_collects_is_closed_as_too_slow(make_web) -> None:
    async with (
        make_web(outbox_size=16) as web,
        websocket_client(web.ws_url, web.domain, "romeo", resource="ws") as romeo,
    ):
        lazy = BoshClient(HOST, web.port, web.domain, wait=30)
        await lazy.login("juliet", "secret", "lazy")  # logged in, and then never polls
        assert lazy.jid is not None
        with trio.fail_after(10):
            for index in range(200):
                await romeo.send(
                    f"<message to='juliet@localhost/lazy' id='m{index}'><body>hi</body></message>"
                )
                if web.srv.server.router.session_for(lazy.jid) is None:
                    break
                await trio.sleep(0.001)
        assert web.srv.server.router.session_for(lazy.jid) is None
        assert 16 <= index < 100  # outbox plus what the BOSH session queues
        await romeo.send("<message to='romeo@localhost/ws' id='self'><body>ok</body></message>")
        assert (await romeo.expect(lambda e: e.get("id") == "self")).get("id") == "self"


async def test_output_too_large_to_frame_ends_only_that_session(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An element of the server's own output over the framing bound breaks that session's
    transport, as a failed write would; the HTTP service and other sessions carry on."""
    async with bosh_client(HOST, web.port, web.domain, "benvolio", resource="by") as bystander:
        monkeypatch.setattr(framing, "OUTBOUND_LIMIT", 4096)  # sessions opened from now on
        async with bosh_client(HOST, web.port, web.domain, "romeo", resource="big") as romeo:
            body = "x" * 5000
            await romeo.send(
                f"<message to='romeo@localhost/big' id='echo'><body>{body}</body></message>"
            )
            with pytest.raises(StreamEnded), trio.fail_after(10):
                await romeo.expect(lambda e: e.get("id") == "echo")
        await check_bystander_unaffected(bystander)
        with trio.fail_after(5):
            while (await health(web))["bosh_sessions"] != 1:
                await trio.sleep(0.02)


async def test_sessions_count_against_the_address_limit_and_free_it_when_they_end(
    make_web,
) -> None:
    """An unauthenticated session costs memory like a TCP connection: it counts the same."""
    async with make_web(max_connections_per_ip=2) as web:
        sids = []
        for rid in (10, 20):
            status, _, content = await post(web, CREATE.format(rid=rid, wait=1))
            assert status == 200 and parse(content).get("sid")
            sids.append((rid, parse(content).get("sid")))
        status, _, content = await post(web, CREATE.format(rid=30, wait=1))
        refused = parse(content)
        assert (status, refused.get("type"), refused.get("condition")) == (
            200,
            "terminate",
            "policy-violation",
        )
        rid, sid = sids[0]
        await post(web, f"<body xmlns='{BOSH_NS}' rid='{rid + 1}' sid='{sid}' type='terminate'/>")
        with trio.fail_after(10):
            while (await health(web))["bosh_sessions"] > 1:
                await trio.sleep(0.05)
        status, _, content = await post(web, CREATE.format(rid=40, wait=1))
        assert status == 200 and parse(content).get("sid")
