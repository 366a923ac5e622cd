"""Scripted XMPP clients over the web transports, shaped like :class:`casper.testing.TestClient`.

- :class:`WebSocketClient`: RFC 7395 over trio-websocket's client.
- :class:`BoshClient`: XEP-0124/0206 over an h11 client, one HTTP connection per request,
  with a background poller that keeps one request held (like real BOSH clients).
- :func:`http_request`: one raw h11 request/response, for the bad-input tests.

Both subclass ``TestClient``, so ``expect``/``recv``/``expect_nothing`` and the shared helpers
(``tests.helpers.sync``) work the same whichever transport a test actor uses.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element

import h11
import trio
from casper.sasl import ScramClient
from casper.testing import TestClient
from casper.testing.client import StreamEnded
from casper.transports.framing import FRAMING_NS, parse_element
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
STREAMS = "http://etherx.jabber.org/streams"
BOSH = "http://jabber.org/protocol/httpbind"
XBOSH = "urn:xmpp:xbosh"
PARSE_LIMIT = 16 * 1024 * 1024


def parse(data: bytes | str) -> Element:
    raw = data.encode() if isinstance(data, str) else data
    return parse_element(raw, max_bytes=PARSE_LIMIT, max_depth=64)


def qualify(xml: str) -> str:
    """Declare ``jabber:client`` on a stanza written without it (RFC 7395 §3.3.3)."""
    if re.match(r"<(message|presence|iq)\b", xml) and "xmlns=" not in xml.split(">")[0]:
        return re.sub(r"^<(\w+)", r"<\1 xmlns='jabber:client'", xml)
    return xml


def stream_error_condition(element: Element) -> str | None:
    return next((c.tag.split("}")[1] for c in element if not c.tag.endswith("}text")), None)


class _WebClient(TestClient):
    """Shared SASL/bind logic; subclasses move elements."""

    def __init__(self, domain: str) -> None:
        super().__init__(None, domain)  # type: ignore[arg-type]

    async def login(self, user: str, password: str, resource: str | None = None) -> None:
        features = await self.open_stream()
        mechanisms = [m.text for m in features.iter(f"{{{SASL}}}mechanism")]
        assert "SCRAM-SHA-256" in mechanisms, mechanisms
        scram = ScramClient("SCRAM-SHA-256", user, password)
        first = base64.b64encode(scram.first()).decode()
        await self.send(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>")
        challenge = await self.expect(f"{{{SASL}}}challenge")
        final = base64.b64encode(scram.final(base64.b64decode(challenge.text or ""))).decode()
        await self.send(f"<response xmlns='{SASL}'>{final}</response>")
        success = await self.expect(lambda e: e.tag in (f"{{{SASL}}}success", f"{{{SASL}}}failure"))
        assert success.tag == f"{{{SASL}}}success", [c.tag for c in success]
        assert scram.verify(base64.b64decode(success.text or "")), "bad server signature"
        await self.restart()
        await self.bind(resource)

    async def bind(self, resource: str | None = None):  # type: ignore[override]
        inner = f"<resource>{resource}</resource>" if resource else ""
        await self.send(
            f"<iq type='set' id='bind' xmlns='jabber:client'><bind xmlns='{BIND}'>{inner}</bind></iq>"
        )
        reply = await self.expect("iq")
        assert reply.get("type") == "result", reply.attrib
        from casper.jid import JID

        self.jid = JID.parse(reply.findtext(f"{{{BIND}}}bind/{{{BIND}}}jid") or "")
        return self.jid

    async def restart(self) -> None:
        raise NotImplementedError


class WebSocketClient(_WebClient):
    """An RFC 7395 client: every message one complete element."""

    def __init__(self, ws: WebSocketConnection, domain: str) -> None:
        super().__init__(domain)
        self.ws = ws
        self.opened: Element | None = None

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send_message(data.decode() if isinstance(data, bytes) else data)

    async def send(self, xml: str) -> None:
        xml = qualify(xml)
        await self.send_raw(xml)

    async def _next_element(self) -> Element:
        while True:
            try:
                message = await self.ws.get_message()
            except ConnectionClosed:
                raise StreamEnded(None) from None
            element = parse(message)
            if element.tag == f"{{{FRAMING_NS}}}open":
                self.opened = element
                continue
            if element.tag == f"{{{FRAMING_NS}}}close":
                raise StreamEnded(None)
            if element.tag == f"{{{STREAMS}}}error":
                raise StreamEnded(stream_error_condition(element))
            return element

    async def open_stream(self) -> Element:
        await self.send_raw(f"<open xmlns='{FRAMING_NS}' to='{self.domain}' version='1.0'/>")
        self.features = await self.expect(f"{{{STREAMS}}}features")
        return self.features

    async def restart(self) -> None:
        await self.open_stream()

    async def close(self) -> None:
        try:
            await self.send_raw(f"<close xmlns='{FRAMING_NS}'/>")
            with trio.move_on_after(5):
                while True:
                    await self._next_element()
        except (StreamEnded, ConnectionClosed):
            pass
        await self.ws.aclose()


@asynccontextmanager
async def websocket_client(url: str, domain: str, user: str | None = None,
                           password: str = "secret", *, resource: str | None = None,
                           presence: bool = False) -> AsyncIterator[WebSocketClient]:  # fmt: skip
    """A WebSocket client, logged in if ``user`` is given, closed on exit."""
    async with open_websocket_url(url, subprotocols=["xmpp"], message_queue_size=64) as ws:
        assert ws.subprotocol == "xmpp"
        client = WebSocketClient(ws, domain)
        try:
            if user is not None:
                await client.login(user, password, resource)
                if presence:
                    await client.send("<presence/>")
                    await client.expect(
                        lambda e: e.tag.endswith("presence") and e.get("from") == str(client.jid)
                    )
            yield client
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await client.close()


async def http_request(host: str, port: int, method: str, target: str, body: bytes = b"",
                       headers: list[tuple[str, str]] | None = None,
                       timeout: float = 15) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """One HTTP/1.1 request on a fresh connection: ``(status, headers, body)``."""
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            conn = h11.Connection(h11.CLIENT)
            all_headers = [("host", f"{host}:{port}"), ("content-length", str(len(body))),
                           ("connection", "close"), *(headers or [])]  # fmt: skip
            await stream.send_all(
                conn.send(h11.Request(method=method, target=target, headers=all_headers))
            )
            await stream.send_all(conn.send(h11.Data(data=body)) if body else b"")
            await stream.send_all(conn.send(h11.EndOfMessage()))
            response: h11.Response | None = None
            content = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    content += event.data
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            assert response is not None
            found = {k.decode(): v.decode() for k, v in response.headers}
            return response.status_code, found, bytes(content)


class BoshClient(_WebClient):
    """An XEP-0206 client with ``hold=1``: a background poller keeps one request open."""

    def __init__(self, host: str, port: int, domain: str, *, wait: int = 10) -> None:
        super().__init__(domain)
        self.host, self.port, self.wait = host, port, wait
        self.sid: str | None = None
        self.created: Element | None = None
        self._rids = itertools.count(secrets.randbelow(2**40) + 1)
        self._inbox: deque[Element] = deque()
        self._arrived = trio.Event()
        self._ended: str | None | bool = False
        self._poller: trio.CancelScope | None = None

    async def post(self, payload: str = "", **attrs: str) -> Element:
        """Send one body (with the next rid) and return the response body."""
        rid = next(self._rids)
        fields = {"rid": str(rid), **({"sid": self.sid} if self.sid else {}), **attrs}
        text = " ".join(f"{k}='{v}'" for k, v in fields.items())
        body = f"<body xmlns='{BOSH}' xmlns:xmpp='{XBOSH}' {text}>{payload}</body>".encode()
        status, _, content = await http_request(self.host, self.port, "POST", "/http-bind", body)
        assert status == 200, (status, content)
        response = parse(content)
        for child in response:
            self._inbox.append(child)
        if response.get("type") == "terminate":
            self._ended = response.get("condition")
        self._arrived.set()
        self._arrived = trio.Event()
        return response

    async def send_raw(self, data: bytes | str) -> None:
        await self.post(data.decode() if isinstance(data, bytes) else data)

    async def send(self, xml: str) -> None:
        xml = qualify(xml)
        await self.send_raw(xml)

    async def _next_element(self) -> Element:
        while not self._inbox:
            if self._ended is not False:
                raise StreamEnded(self._ended or None)
            await self._arrived.wait()
        element = self._inbox.popleft()
        if element.tag == f"{{{STREAMS}}}error":
            raise StreamEnded(stream_error_condition(element))
        return element

    async def open_stream(self) -> Element:
        self.created = await self.post(
            to=self.domain, wait=str(self.wait), hold="1", ver="1.6",
            **{"xmpp:version": "1.0", "xml:lang": "en"},
        )  # fmt: skip
        self.sid = self.created.get("sid")
        assert self.sid, self.created.attrib
        self.features = await self.expect(f"{{{STREAMS}}}features")
        return self.features

    async def restart(self) -> None:
        await self.post(**{"xmpp:restart": "true", "to": self.domain})
        self.features = await self.expect(f"{{{STREAMS}}}features")

    async def _poll(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as self._poller:
            task_status.started()
            while self._ended is False:
                await self.post()

    async def close(self) -> None:
        """Terminate the session; the poller's open request gets the terminate answer too."""
        if self._ended is False and self.sid:
            with trio.move_on_after(5):
                await self.post(type="terminate")
        if self._poller is not None:
            self._poller.cancel()


@asynccontextmanager
async def bosh_client(host: str, port: int, domain: str, user: str | None = None,
                      password: str = "secret", *, resource: str | None = None,
                      presence: bool = False, wait: int = 10) -> AsyncIterator[BoshClient]:  # fmt: skip
    """A BOSH client, logged in (and polling) if ``user`` is given, terminated on exit."""
    client = BoshClient(host, port, domain, wait=wait)
    async with trio.open_nursery() as nursery:
        try:
            if user is not None:
                await client.login(user, password, resource)
                await nursery.start(client._poll)
                if presence:
                    await client.send("<presence/>")
                    await client.expect(
                        lambda e: e.tag.endswith("presence") and e.get("from") == str(client.jid)
                    )
            yield client
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await client.close()
            nursery.cancel_scope.cancel()
