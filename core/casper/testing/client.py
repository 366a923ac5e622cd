"""A scripted XMPP client for tests: real negotiation, then send / expect / expect nothing.

A background task owned by the client's nursery parses everything the server sends into
a channel; ``expect`` takes the next stanza, ``expect_nothing`` checks that nothing is
pending once every task is blocked.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element

import trio
import trio.testing

from casper.jid import JID
from casper.sasl import ScramClient
from casper.xml import (
    NEED_DATA,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    XMLStreamParser,
    stream_header,
)

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
STREAMS = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"


def parse_xml(text: str) -> Element:
    """Parse one ``jabber:client`` element written as a string (for expectations)."""
    parser = XMLStreamParser()
    parser.feed(
        stream_header(from_="x", id="x").replace(b"<?xml version='1.0'?>", b"") + text.encode()
    )
    parser.next_event()
    event = parser.next_event()
    assert isinstance(event, StanzaReceived), event
    return event.element


class StreamEnded(Exception):
    """The server closed the stream; ``error`` is its stream error condition, if any, and
    ``element`` the whole ``<stream:error>``."""

    def __init__(self, error: str | None, element: Element | None = None) -> None:
        super().__init__(error or "stream closed")
        self.error = error
        self.element = element


class TestClient:
    """One client connection. Create with :meth:`TestServer.client` or ``connect``."""

    __test__ = False  # not a pytest class

    def __init__(self, stream: trio.abc.Stream, domain: str) -> None:
        self.stream = stream
        self.domain = domain
        self.jid: JID | None = None
        self.features: Element | None = None
        self._parser = XMLStreamParser(max_stanza_bytes=16 * 1024 * 1024)
        self._pending: list[Element] = []

    # ------------------------------------------------------------ raw I/O

    async def send_raw(self, data: bytes | str) -> None:
        await self.stream.send_all(data.encode() if isinstance(data, str) else data)

    async def send(self, xml: str) -> None:
        """Send one stanza written as XML text."""
        await self.send_raw(xml)

    async def _next_event(self) -> object:
        while True:
            event = self._parser.next_event()
            if event is not NEED_DATA:
                return event
            data = await self.stream.receive_some(65536)
            if not data:
                self._parser.feed_eof()
                if self._parser.next_event() is NEED_DATA:
                    return StreamClosed()
                continue
            self._parser.feed(bytes(data))  # no copy: trio's streams return bytes

    async def _next_element(self) -> Element:
        event = await self._next_event()
        if isinstance(event, StreamClosed):
            raise StreamEnded(None)
        if isinstance(event, StreamOpened):
            return await self._next_element()
        assert isinstance(event, StanzaReceived)
        element = event.element
        if element.tag == f"{{{STREAMS}}}error":
            condition = next(
                (c.tag.split("}")[1] for c in element if not c.tag.endswith("}text")), None
            )
            raise StreamEnded(condition, element)
        return element

    async def recv(self, timeout: float = 5) -> Element:
        """The next element from the server (within ``timeout`` seconds)."""
        if self._pending:
            return self._pending.pop(0)
        with trio.fail_after(timeout):
            return await self._next_element()

    async def expect(self, match: Callable[[Element], bool] | str, timeout: float = 5) -> Element:
        """Return the next element matching ``match`` (a predicate or a tag like
        ``'message'``); elements skipped on the way are kept for later ``recv`` calls."""
        predicate = _as_predicate(match)
        for index, element in enumerate(self._pending):
            if predicate(element):
                return self._pending.pop(index)
        with trio.fail_after(timeout):
            while True:
                element = await self._next_element()
                if predicate(element):
                    return element
                self._pending.append(element)

    async def expect_nothing(self, match: Callable[[Element], bool] | str = lambda e: True,
                             settle: float = 0.2) -> None:  # fmt: skip
        """Fail if a matching element arrives within ``settle`` seconds."""
        predicate = _as_predicate(match)
        found = [e for e in self._pending if predicate(e)]
        with trio.move_on_after(settle):
            while not found:
                element = await self._next_element()
                self._pending.append(element)
                if predicate(element):
                    found.append(element)
        assert not found, f"unexpected: {found[0].tag} {found[0].attrib}"

    # ------------------------------------------------------------ negotiation

    async def open_stream(self) -> Element:
        await self.send_raw(
            stream_header(from_="client", id="", to=self.domain).replace(b" id=''", b"")
        )
        event = await self._next_event()
        assert isinstance(event, StreamOpened), event
        self.features = await self._next_element()
        return self.features

    async def starttls(self, context: ssl.SSLContext) -> None:
        await self.send_raw(f"<starttls xmlns='{TLS}'/>")
        reply = await self._next_element()
        assert reply.tag == f"{{{TLS}}}proceed", reply.tag
        self.stream = trio.SSLStream(self.stream, context, server_hostname=self.domain)
        await self.stream.do_handshake()
        self._restart()
        await self.open_stream()

    async def authenticate(
        self, username: str, password: str, mechanism: str = "SCRAM-SHA-256"
    ) -> None:
        if mechanism == "PLAIN":
            await self._auth_plain(username, password)
        else:
            await self._auth_scram(username, password, mechanism)
        self._restart()
        await self.open_stream()

    async def _auth_scram(self, username: str, password: str, mechanism: str) -> None:
        scram = ScramClient(mechanism, username, password)
        await self._sasl("auth", scram.first(), mechanism)
        challenge = await self._sasl_reply("challenge")
        await self._sasl("response", scram.final(challenge))
        success = await self._sasl_reply("success")
        assert scram.verify(success), "server signature did not verify"

    async def _auth_plain(self, username: str, password: str) -> None:
        await self._sasl("auth", f"\0{username}\0{password}".encode(), "PLAIN")
        await self._sasl_reply("success")

    async def _sasl(self, name: str, data: bytes, mechanism: str | None = None) -> None:
        mech = f" mechanism='{mechanism}'" if mechanism else ""
        payload = base64.b64encode(data).decode() or "="
        await self.send_raw(f"<{name} xmlns='{SASL}'{mech}>{payload}</{name}>")

    async def _sasl_reply(self, expected: str) -> bytes:
        reply = await self._next_element()
        if reply.tag != f"{{{SASL}}}{expected}":
            condition = [c.tag for c in reply]
            raise AssertionError(f"expected {expected}, got {reply.tag} {condition}")
        text = (reply.text or "").strip()
        return b"" if text in ("", "=") else base64.b64decode(text)

    async def bind(self, resource: str | None = None) -> JID:
        inner = f"<resource>{resource}</resource>" if resource else ""
        await self.send(f"<iq type='set' id='bind'><bind xmlns='{BIND}'>{inner}</bind></iq>")
        reply = await self._next_element()
        assert reply.get("type") == "result", reply.attrib
        jid_el = reply.find(f"{{{BIND}}}bind/{{{BIND}}}jid")
        assert jid_el is not None and jid_el.text
        self.jid = JID.parse(jid_el.text)
        return self.jid

    def _restart(self) -> None:
        self._parser.close()
        self._parser = XMLStreamParser(max_stanza_bytes=16 * 1024 * 1024)

    async def close(self) -> None:
        """Send ``</stream:stream>`` and wait for the server's."""
        try:
            await self.send_raw(b"</stream:stream>")
            with trio.move_on_after(5):
                while True:
                    await self._next_element()
        except (StreamEnded, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self.stream.aclose()


def _as_predicate(match: Callable[[Element], bool] | str) -> Callable[[Element], bool]:
    if callable(match):
        return match
    tag = match if match.startswith("{") else f"{{{CLIENT}}}{match}"
    return lambda element: element.tag == tag


@asynccontextmanager
async def closing(client: TestClient) -> AsyncIterator[TestClient]:
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(5):
                await client.close()
