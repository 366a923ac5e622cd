"""The presence badge, over real loopback HTTP, against a server from the casper fixtures.

The point of the plugin: an invisible user's badge is byte for byte the badge of a user
who is not logged in at all.
"""

from __future__ import annotations

import json
from typing import Any

import h11
import pytest
import trio
from casper.config import ConfigError
from casper.jid import JID
from casper.storage.base import RosterItem
from casper_presence_badge import Config, PresenceBadge, parse_target, serve_presence_badge

ROMEO = "romeo@localhost"
PATHS = (f"/status/{ROMEO}", f"/status/{ROMEO}?format=json")


@pytest.fixture
def casper_plugins() -> list[str]:
    return ["presence-badge", "xep0018"]


@pytest.fixture
def casper_plugin_settings() -> dict[str, Any]:
    return {"presence-badge": {"port": 0, "audience": "public"}}


@pytest.fixture
async def badge_port(casper_server: Any) -> int:
    badge = casper_server.server.pm.get_plugin("presence-badge.state")
    with trio.fail_after(5):
        return await badge.wait_listening()


async def fetch(port: int, path: str, *, method: str = "GET", chunk: int | None = None) -> bytes:
    """One request on a fresh loopback connection; the whole raw response."""
    request = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            if chunk is None:
                await stream.send_all(request)
            else:
                for i in range(0, len(request), chunk):
                    await stream.send_all(request[i : i + chunk])
            received = b""
            while data := await stream.receive_some(65536):
                received += data
    return received


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    conn.receive_data(b"")
    response = conn.next_event()
    assert isinstance(response, h11.Response), response
    body = b""
    while isinstance(event := conn.next_event(), h11.Data):
        body += event.data
    headers = {k.decode(): v.decode() for k, v in response.headers}
    return response.status_code, headers, body


async def statuses(port: int) -> list[bytes]:
    return [await fetch(port, path) for path in PATHS]


async def test_a_visible_user_shows_online(casper_client: Any, badge_port: int) -> None:
    await casper_client("romeo", presence=True)
    svg, js = await statuses(badge_port)
    status, headers, body = parse(js)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    assert json.loads(body) == {"jid": ROMEO, "status": "online"}
    status, headers, body = parse(svg)
    assert (status, headers["content-type"]) == (200, "image/svg+xml")
    assert b">online</text>" in body


async def test_an_invisible_user_shows_exactly_what_an_offline_user_shows(
    casper_client: Any, casper_server: Any, badge_port: int
) -> None:
    never_logged_in = await statuses(badge_port)
    assert json.loads(parse(never_logged_in[1])[2])["status"] == "offline"

    romeo = await casper_client("romeo", presence=True)
    online = await statuses(badge_port)
    await romeo.send("<presence type='invisible'/>")  # XEP-0018, from the xep0018 plugin
    await romeo.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
    await romeo.expect(lambda e: e.get("id") == "sync")
    invisible = await statuses(badge_port)
    await romeo.send("<presence type='visible'/>")
    await romeo.send("<iq type='get' id='sync2'><ping xmlns='urn:xmpp:ping'/></iq>")
    await romeo.expect(lambda e: e.get("id") == "sync2")
    visible_again = await statuses(badge_port)

    assert invisible == never_logged_in  # byte for byte: status line, headers, body
    assert online == visible_again != never_logged_in


async def test_after_logout_the_badge_is_the_never_logged_in_badge(
    casper_server: Any, badge_port: int
) -> None:
    before = await statuses(badge_port)
    async with casper_server.client("romeo", presence=True):
        assert await statuses(badge_port) != before
    with trio.fail_after(5):
        while casper_server.server.router.sessions_of(JID.parse(ROMEO)):
            await trio.sleep(0.01)
    assert await statuses(badge_port) == before


async def test_an_unknown_account_looks_like_an_offline_one(badge_port: int) -> None:
    offline_svg, offline_json = await statuses(badge_port)
    assert await fetch(badge_port, "/status/ghost@localhost") == offline_svg
    unknown_json = await fetch(badge_port, "/status/ghost@localhost?format=json")
    assert unknown_json == offline_json.replace(b"romeo", b"ghost")  # same length


async def test_a_user_with_presence_only_to_one_contact_shows_offline(
    casper_client: Any, badge_port: int
) -> None:
    """Directed presence shows the session to its recipient, not to the web."""
    offline = await statuses(badge_port)
    romeo = await casper_client("romeo")
    await romeo.send("<presence to='juliet@localhost'/>")
    await romeo.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
    await romeo.expect(lambda e: e.get("id") == "sync")
    assert await statuses(badge_port) == offline


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/status/", 404),
        ("GET", "/status/localhost", 404),  # a domain, not an account
        ("GET", "/status/romeo@localhost/orchard", 404),  # full JIDs are not asked about
        ("GET", "/status/romeo@example.org", 404),  # not this server's domain
        ("GET", "/status/romeo@localhost?format=png", 404),
        ("POST", "/status/romeo@localhost", 405),
    ],
)
async def test_requests_that_are_not_a_status_get_an_error(
    badge_port: int, method: str, path: str, status: int
) -> None:
    assert parse(await fetch(badge_port, path, method=method))[0] == status


async def test_head_gets_the_headers_without_the_body(badge_port: int) -> None:
    raw = await fetch(badge_port, PATHS[0], method="HEAD")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == b""
    assert b"content-length: " in head.lower()


async def test_a_request_sent_byte_by_byte_gets_the_same_answer(badge_port: int) -> None:
    assert await fetch(badge_port, PATHS[1], chunk=1) == await fetch(badge_port, PATHS[1])


async def test_a_malformed_request_gets_400(badge_port: int) -> None:
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", badge_port)
        async with stream:
            await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
            raw = b""
            while data := await stream.receive_some(65536):
                raw += data
    assert raw.startswith(b"HTTP/1.1 400 ")


async def test_two_requests_on_one_keep_alive_connection(badge_port: int) -> None:
    conn = h11.Connection(h11.CLIENT)
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream("127.0.0.1", badge_port)
        async with stream:
            bodies = []
            for path in PATHS:
                await stream.send_all(
                    conn.send(h11.Request(method="GET", target=path, headers=[("Host", "x")]))
                    + conn.send(h11.EndOfMessage())
                )
                body = b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                bodies.append(body)
                conn.start_next_cycle()
    assert bodies[0].startswith(b"<svg") and json.loads(bodies[1])["status"] == "offline"


async def test_a_stalled_client_is_disconnected(casper_server: Any) -> None:
    """``serve_presence_badge`` supports ``nursery.start``; a client that sends half a
    request is cut off after ``request_timeout``."""
    config = Config.from_mapping({"port": 0, "request_timeout": 0.2})
    badge = PresenceBadge(casper_server.server, config)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_presence_badge, badge)
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /status/romeo@localhost HTTP/1.1\r\n")
                assert await stream.receive_some(100) == b""
        nursery.cancel_scope.cancel()


class TestSubscribersAudience:
    """The default audience: only what presence would tell the observer JID."""

    @pytest.fixture
    def casper_plugin_settings(self) -> dict[str, Any]:
        return {"presence-badge": {"port": 0, "observer": "nurse@localhost"}}

    async def test_online_only_for_accounts_that_share_presence_with_the_observer(
        self, casper_client: Any, casper_server: Any, badge_port: int
    ) -> None:
        never = await statuses(badge_port)
        romeo = await casper_client("romeo", presence=True)
        assert await statuses(badge_port) == never  # nurse is no contact of romeo's

        share = RosterItem(jid="nurse@localhost", subscription="from")
        await casper_server.server.rosters.put(JID.parse(ROMEO), share, push=False)
        assert json.loads(parse(await fetch(badge_port, PATHS[1]))[2])["status"] == "online"

        await romeo.send("<presence type='invisible'/>")
        await romeo.send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        await romeo.expect(lambda e: e.get("id") == "sync")
        assert await statuses(badge_port) == never


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"audience": "everyone"}, "audience"),
        ({"observer": "not a jid@@"}, "observer"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=f"plugin.presence-badge.{message}"):
        Config.from_mapping(settings)


def test_default_settings_listen_on_loopback_as_a_stranger() -> None:
    config = Config.from_mapping({})
    assert (config.host, config.audience, str(config.observer)) == (
        "127.0.0.1",
        "subscribers",
        "stranger@invalid",
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/status/romeo@localhost", ("romeo@localhost", "svg")),
        ("/status/Romeo@LocalHost?format=json", ("romeo@localhost", "json")),
        ("/status/romeo%40localhost", ("romeo@localhost", "svg")),
        ("/status/romeo@localhost?format=json&format=svg", None),
        ("/statusromeo@localhost", None),
    ],
)
def test_parse_target(target: str, expected: tuple[str, str] | None) -> None:
    parsed = parse_target(target)
    assert (None if parsed is None else (str(parsed[0]), parsed[1])) == expected
