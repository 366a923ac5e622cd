"""Bad input and limits between servers: every failure hits the one domain (or stream)
concerned, with a clear error, and federation with everyone else goes on.

Misbehaving peers are raw sockets speaking just enough XMPP (:class:`RawPeer`); the
well-behaved remote is a second Casper (``b.test``).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element

import pytest
import trio
from casper.s2s import wire
from casper.s2s.resolve import Resolver
from casper.xml import NEED_DATA, XMLStreamParser
from casper.xml.events import StanzaReceived, StreamOpened

from tests.core.conftest import error_condition, message_with_id, send_message
from tests.s2s.conftest import A, B, Federation, open_federation
from tests.s2s.scenarios import local_client

C = "{jabber:client}"
STREAMS = "{urn:ietf:params:xml:ns:xmpp-streams}"


def bounced(msg_id: str, condition: str):
    return lambda e: e.get("id") == msg_id and error_condition(e) == condition


async def assert_federation_works(fed: Federation) -> None:
    """romeo@a.test and juliet@b.test can still exchange messages."""
    async with local_client(fed.a, "romeo") as romeo, local_client(fed.b, "juliet") as juliet:
        await romeo.send("<presence/>")
        await juliet.send("<presence/>")
        msg = await send_message(romeo, juliet.jid)
        await juliet.expect(message_with_id(msg), timeout=10)
        reply = await send_message(juliet, romeo.jid)
        await romeo.expect(message_with_id(reply), timeout=10)


# ---------------------------------------------------------------- a raw s2s peer


class RawPeer:
    """An s2s connection to a Casper, spoken by hand."""

    def __init__(self, stream: trio.abc.Stream, origin: str, target: str) -> None:
        self.stream, self.origin, self.target = stream, origin, target
        self.parser = XMLStreamParser(max_stanza_bytes=1 << 24)
        self.stream_id = ""

    async def send(self, data: bytes | str) -> None:
        await self.stream.send_all(data.encode() if isinstance(data, str) else data)

    async def next(self, timeout: float = 10) -> Element | None:
        """The next element; ``None`` when the stream or connection ends."""
        with trio.fail_after(timeout):
            while True:
                event = self.parser.next_event()
                if isinstance(event, StreamOpened):
                    self.stream_id = event.attrs.get("id", "")
                    continue
                if isinstance(event, StanzaReceived):
                    return event.element
                if event is not NEED_DATA:
                    return None
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None
                if not data:
                    return None
                self.parser.feed(data)

    async def open(self) -> Element:
        """Send our header; return the features (after STARTTLS if offered)."""
        await self.send(wire.stream_header(from_=self.origin, to=self.target))
        features = await self.next()
        assert features is not None and features.tag == wire.FEATURES, features
        if features.find(wire.STARTTLS) is not None:
            await self.send(f"<starttls xmlns='{wire.TLS_NS}'/>")
            proceed = await self.next()
            assert proceed is not None and proceed.tag == wire.PROCEED
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            self.stream = trio.SSLStream(self.stream, context, server_hostname=self.target)
            await self.stream.do_handshake()
            self.parser = XMLStreamParser(max_stanza_bytes=1 << 24)
            return await self.open()
        return features

    async def dialback(self, key: str) -> Element | None:
        await self.send(wire.db_element("result", from_=self.origin, to=self.target, key=key))
        return await self.next()

    async def stream_error(self) -> str | None:
        """Read until a stream error; its condition (``None`` if the stream just ends)."""
        while (element := await self.next()) is not None:
            if element.tag == wire.STREAM_ERROR:
                return next(c.tag.split("}")[1] for c in element if not c.tag.endswith("}text"))
        return None


@asynccontextmanager
async def raw_peer(port: int, origin: str, target: str = A) -> AsyncIterator[RawPeer]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    peer = RawPeer(stream, origin, target)
    try:
        yield peer
    finally:
        await peer.stream.aclose()


@asynccontextmanager
async def peer_as_b(fed: Federation) -> AsyncIterator[RawPeer]:
    """A raw peer that authenticates to a.test as b.test, with b.test's real dialback key
    (a.test asks b.test, which confirms it): a legitimate peer that then misbehaves."""
    async with raw_peer(fed.ports[A], B) as peer:
        await peer.open()
        key = fed.b.server.s2s.dialback_key(A, B, peer.stream_id)
        result = await peer.dialback(key)
        assert result is not None and result.get("type") == "valid", result
        yield peer


# ---------------------------------------------------------------- incoming


async def test_forged_dialback_key_is_refused(fed: Federation) -> None:
    async with raw_peer(fed.ports[A], B) as peer:
        await peer.open()
        result = await peer.dialback("not-the-key")
        assert result is not None and result.get("type") == "invalid"
        assert await peer.stream_error() == "not-authorized"
    await assert_federation_works(fed)


async def test_dialback_for_an_unreachable_domain_is_refused(fed: Federation) -> None:
    """Nobody answers for nowhere.test: the key can't be verified, so it is invalid."""
    fed.a.server.s2s.resolver.routes = {**fed.a.server.s2s.resolver.routes,
                                        "nowhere.test": ("127.0.0.1", 1)}  # fmt: skip
    async with raw_peer(fed.ports[A], "nowhere.test") as peer:
        await peer.open()
        result = await peer.dialback("whatever")
        assert result is not None and result.get("type") == "invalid"


@pytest.mark.parametrize(
    "sender, condition",
    [("romeo@a.test/r", "invalid-from"), ("eve@c.test/r", "invalid-from")],
    ids=["local-jid", "other-domain"],
)
async def test_authenticated_peer_cannot_spoof(
    fed: Federation, sender: str, condition: str
) -> None:
    async with local_client(fed.a, "juliet") as victim:
        async with peer_as_b(fed) as peer:
            await peer.send(
                f"<message from='{sender}' to='juliet@a.test' id='spoof'><body>hi</body></message>"
            )
            assert await peer.stream_error() == condition
        await victim.expect_nothing(lambda e: e.get("id") == "spoof", settle=0.3)
    await assert_federation_works(fed)


async def test_stanzas_from_the_authenticated_domain_are_routed(fed: Federation) -> None:
    async with local_client(fed.a, "juliet", presence=True) as juliet, peer_as_b(fed) as peer:
        await peer.send(
            "<message from='mallory@b.test/x' to='juliet@a.test/r' id='ok1'><body>hi</body></message>"
        )
        got = await juliet.expect(message_with_id("ok1"))
        assert got.get("from") == "mallory@b.test/x"


async def test_oversized_stanza_closes_only_that_stream() -> None:
    async with open_federation(a={"max_stanza_size": 4096}) as fed:
        async with peer_as_b(fed) as peer:
            await peer.send(
                f"<message from='x@b.test' to='juliet@a.test'><body>{'x' * 8192}</body></message>"
            )
            assert await peer.stream_error() == "policy-violation"
        await assert_federation_works(fed)


async def test_unknown_target_domain_is_host_unknown(fed: Federation) -> None:
    async with raw_peer(fed.ports[A], B, target="elsewhere.test") as peer:
        await peer.send(wire.stream_header(from_=B, to="elsewhere.test"))
        assert await peer.stream_error() == "host-unknown"


# ---------------------------------------------------------------- outgoing


async def test_unreachable_domain_bounces_remote_server_not_found() -> None:
    async with open_federation() as fed:
        s2s = fed.a.server.s2s
        s2s.resolver.routes = {**s2s.resolver.routes, "nowhere.test": ("127.0.0.1", 1)}
        async with local_client(fed.a, "romeo") as romeo:
            msg = await send_message(romeo, "someone@nowhere.test")
            error = await romeo.expect(message_with_id(msg), timeout=10)
            assert error_condition(error) == "remote-server-not-found"
            assert error.get("from") == "someone@nowhere.test"
        await assert_federation_works(fed)


async def test_domain_without_dns_bounces_remote_server_not_found() -> None:
    """No static route, no SRV record, no address: the resolver's fallback fails too."""
    from tests.federation.fakedns import fake_dns

    with fake_dns() as dns_server:
        async with open_federation() as fed:
            s2s = fed.a.server.s2s
            s2s.resolver = Resolver(
                s2s.resolver.routes, nameservers=[("127.0.0.1", dns_server.port)]
            )
            async with local_client(fed.a, "romeo") as romeo:
                msg = await send_message(romeo, "someone@no-such-domain.invalid")
                error = await romeo.expect(message_with_id(msg), timeout=15)
                assert error_condition(error) == "remote-server-not-found"
        assert ("_xmpp-server._tcp.no-such-domain.invalid", 33) in dns_server.queries


async def test_srv_records_are_followed() -> None:
    """DNS SRV (no static route) leads to b.test's s2s port."""
    from tests.federation.fakedns import fake_dns

    with fake_dns() as dns_server:
        async with open_federation() as fed:
            dns_server.srv["_xmpp-server._tcp.b.test"] = [(0, 0, fed.ports[B], "localhost")]
            s2s = fed.a.server.s2s
            s2s.resolver = Resolver({}, nameservers=[("127.0.0.1", dns_server.port)])
            await assert_federation_works(fed)
        assert ("_xmpp-server._tcp.b.test", 33) in dns_server.queries


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says anything."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:

        async def hold(stream: trio.abc.Stream) -> None:
            async with stream:
                await trio.sleep_forever()

        nursery.start_soon(trio.serve_listeners, hold, listeners)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def test_silent_server_bounces_remote_server_timeout() -> None:
    async with silent_server() as port, open_federation(a={"s2s_negotiation_timeout": 0.5}) as fed:
        s2s = fed.a.server.s2s
        s2s.resolver.routes = {**s2s.resolver.routes, "silent.test": ("127.0.0.1", port)}
        async with local_client(fed.a, "romeo") as romeo:
            msg = await send_message(romeo, "someone@silent.test")
            error = await romeo.expect(message_with_id(msg), timeout=10)
            assert error_condition(error) == "remote-server-timeout"
        await assert_federation_works(fed)


async def test_queue_limit_bounces_the_excess() -> None:
    async with (
        silent_server() as port,
        open_federation(a={"s2s_queue_size": 2, "s2s_negotiation_timeout": 5}) as fed,
    ):
        s2s = fed.a.server.s2s
        s2s.resolver.routes = {**s2s.resolver.routes, "silent.test": ("127.0.0.1", port)}
        async with local_client(fed.a, "romeo") as romeo:
            ids = [await send_message(romeo, "someone@silent.test") for _ in range(5)]
            for msg in ids[2:]:
                error = await romeo.expect(message_with_id(msg), timeout=5)
                assert error_condition(error) == "remote-server-timeout"
            await assert_federation_works(fed)


async def test_peer_that_stops_reading_is_dropped() -> None:
    """slow.test authenticates, then never reads: once the socket buffers are full the
    write times out, the route fails and what was queued bounces; b.test is unaffected."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    stalled = trio.Event()

    async def lazy_server(stream: trio.abc.Stream) -> None:
        peer = RawPeer(stream, "slow.test", A)
        element = await peer.next()  # header, then db:result
        assert element is not None and element.tag == wire.DB_RESULT, element
        await peer.send(wire.db_element("result", from_="slow.test", to=A, type="valid"))
        stalled.set()
        await trio.sleep_forever()

    async def serve_once(stream: trio.abc.Stream) -> None:
        await peer_header(stream)
        await lazy_server(stream)

    async def peer_header(stream: trio.abc.Stream) -> None:
        await stream.send_all(wire.stream_header(from_="slow.test", to=A, id="s1")
                              + wire.features(wire.dialback_feature()))  # fmt: skip

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve_once, listeners)
        options = {"s2s_require_encryption": False, "s2s_send_timeout": 0.5}
        async with open_federation(a=options) as fed:
            s2s = fed.a.server.s2s
            port = listeners[0].socket.getsockname()[1]
            s2s.resolver.routes = {**s2s.resolver.routes, "slow.test": ("127.0.0.1", port)}
            async with local_client(fed.a, "romeo") as romeo:
                big = "x" * 60000
                ids = []
                for i in range(300):
                    ids.append(f"big{i}")
                    await romeo.send(
                        f"<message to='someone@slow.test' id='big{i}'><body>{big}</body></message>"
                    )
                error = await romeo.expect(lambda e: error_condition(e) is not None, timeout=15)
                assert error_condition(error) == "remote-server-timeout"
                assert stalled.is_set()
            await assert_federation_works(fed)
        nursery.cancel_scope.cancel()


async def test_idle_streams_close_and_reconnect() -> None:
    async with open_federation(s2s_idle_timeout=0.3) as fed:
        await assert_federation_works(fed)
        await trio.sleep(1.0)
        stats = fed.a.server.s2s.statistics()
        assert stats["outgoing"] == [] and stats["incoming"] == [], stats
        await assert_federation_works(fed)
