"""A lean Trio XMPP client for load generation, usable against any RFC 6120 server.

One :class:`BenchClient` is one TCP connection: :func:`login` runs STARTTLS, SCRAM-SHA-256 or
SCRAM-SHA-1 (:class:`casper.sasl.ScramClient`) and resource binding, then the caller sends
stanzas as bytes and reads parsed elements with :meth:`BenchClient.receive`. Nothing is
buffered or matched on the client's behalf: a load generator wants the cheapest path, and the
workloads know which stanzas they expect.

Error handling: a stream error or an unexpected negotiation answer raises :class:`XMPPFailure`
naming the step and the condition; a broken transport raises trio's own errors. Timeouts are
the caller's business (wrap calls in ``trio.fail_after``).

Resource handling: :meth:`BenchClient.aclose` always closes the transport; pass
``graceful=True`` to send ``</stream:stream>`` and wait (bounded) for the server's.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from xml.etree.ElementTree import Element

import trio

from casper.bench.stream_reader import StreamReader, StreamReadError
from casper.sasl import ScramClient
from casper.sasl.scram_client import ScramKeyCache
from casper.tls_stream import client_tls_stream
from casper.xml import (
    NEED_DATA,
    STREAM_CLOSE,
    STREAM_NS,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    escape_attr,
    serialize,
)

TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION_NS = "urn:ietf:params:xml:ns:xmpp-session"
CLIENT_NS = "jabber:client"
SCRAM_PREFERENCE = ("SCRAM-SHA-256", "SCRAM-SHA-1")
RECEIVE_SIZE = 65536
CLOSE_WAIT = 2.0

_FEATURES = f"{{{STREAM_NS}}}features"
_STREAM_ERROR = f"{{{STREAM_NS}}}error"


class XMPPFailure(Exception):
    """The server refused a step or ended the stream.

    :param step: what the client was doing (``starttls``, ``auth``, ``bind``, ``receive``).
    :param condition: the stream, SASL or stanza error condition, or a short description.
    """

    def __init__(self, step: str, condition: str) -> None:
        super().__init__(f"{step}: {condition}")
        self.step = step
        self.condition = condition


def client_ssl_context(cafile: Path | None = None, *, insecure: bool = False) -> ssl.SSLContext:
    """Return the context used for STARTTLS by every bench connection.

    :param cafile: a PEM file of trusted certificates (a CA, or the server's self-signed
        certificate itself); the system store if ``None``.
    :param insecure: skip certificate and host name verification (self-signed test servers).
    """
    context = ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _condition(element: Element) -> str:
    """The first child's local name that is not ``<text/>`` (error conditions)."""
    for child in element:
        local = child.tag.rpartition("}")[2]
        if local != "text":
            return local
    return element.tag.rpartition("}")[2]


def _stream_open(domain: str) -> bytes:
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{CLIENT_NS}' xmlns:stream='{STREAM_NS}'"
        f" to='{escape_attr(domain)}' version='1.0'>"
    ).encode()


class BenchClient:
    """One client connection. Create it with :func:`login` (or :meth:`open` + :meth:`negotiate`).

    :param stream: a connected byte stream (TCP before STARTTLS).
    :param domain: the XMPP domain (``to`` of the stream header, TLS server name).
    """

    def __init__(self, stream: trio.abc.Stream, domain: str) -> None:
        self.stream = stream
        self.domain = domain
        self.jid: str | None = None
        self.features: Element | None = None
        self._reader = StreamReader()
        self._closed = False  # the server's stream ended
        self._eof = False  # the transport ended

    # ------------------------------------------------------------------ I/O

    async def send(self, data: bytes) -> None:
        """Send raw stream bytes (one or more stanzas)."""
        await self.stream.send_all(data)

    async def send_element(self, element: Element) -> None:
        """Serialize ``element`` (Clark notation, ``jabber:client`` default) and send it."""
        await self.stream.send_all(serialize(element))

    async def receive(self) -> Element:
        """Return the next top-level element the server sends.

        :raises XMPPFailure: on a stream error (condition) or the end of the stream (``closed``).
        """
        reader = self._reader
        while True:
            event = reader.next_event()
            if event is NEED_DATA:
                if self._eof:
                    raise XMPPFailure("receive", "closed")
                await self._read()
            elif type(event) is StanzaReceived:
                element = event.element
                if element.tag == _STREAM_ERROR:
                    raise XMPPFailure("receive", _condition(element))
                return element
            elif isinstance(event, StreamClosed):
                self._closed = True
                raise XMPPFailure("receive", "closed")
            # StreamOpened only appears during negotiation, handled by _restart

    async def _read(self) -> None:
        """Read once from the transport and feed the reader."""
        data = await self.stream.receive_some(RECEIVE_SIZE)
        try:
            if data:
                self._reader.feed(bytes(data))  # no copy: trio returns bytes
            else:
                self._eof = True
                self._reader.feed_eof()  # queues StreamClosed if the stream was open
        except StreamReadError as exc:
            raise XMPPFailure("receive", str(exc)) from exc

    # ------------------------------------------------------------------ negotiation

    async def _restart(self) -> Element:
        """Open a new stream and return the server's ``<stream:features/>``."""
        self._reader = StreamReader()
        await self.stream.send_all(_stream_open(self.domain))
        while True:
            event = self._reader.next_event()
            if isinstance(event, StreamOpened):
                break
            if event is not NEED_DATA:
                raise XMPPFailure("stream", f"expected a stream header, got {event!r}")
            if self._eof:
                raise XMPPFailure("stream", "closed before the stream header")
            await self._read()
        features = await self.receive()
        if features.tag != _FEATURES:
            raise XMPPFailure("stream", f"expected features, got {features.tag}")
        self.features = features
        return features

    async def negotiate(
        self,
        username: str,
        password: str,
        *,
        ssl_context: ssl.SSLContext | None,
        resource: str | None = None,
        mechanism: str | None = None,
        key_cache: ScramKeyCache | None = None,
    ) -> str:
        """Run STARTTLS (unless ``ssl_context`` is None), SCRAM and bind; return the full JID.

        :param mechanism: force ``SCRAM-SHA-256`` or ``SCRAM-SHA-1``; the best offered if None.
        :param key_cache: SCRAM keys kept between logins (:class:`ScramClient`).
        :raises XMPPFailure: if a step is refused or a needed feature is not offered.
        """
        features = await self._restart()
        if ssl_context is not None:
            if features.find(f"{{{TLS_NS}}}starttls") is None:
                raise XMPPFailure("starttls", "not offered by the server")
            await self.send(f"<starttls xmlns='{TLS_NS}'/>".encode())
            reply = await self.receive()
            if reply.tag != f"{{{TLS_NS}}}proceed":
                raise XMPPFailure("starttls", reply.tag.rpartition("}")[2])
            self.stream = tls = client_tls_stream(self.stream, ssl_context, self.domain)
            await tls.do_handshake()
            features = await self._restart()
        await self._authenticate(features, username, password, mechanism, key_cache)
        features = await self._restart()
        return await self._bind(features, resource)

    def _choose_mechanism(self, features: Element, forced: str | None) -> str:
        offered = {
            (m.text or "").strip()
            for m in features.iterfind(f"{{{SASL_NS}}}mechanisms/{{{SASL_NS}}}mechanism")
        }
        wanted = (forced,) if forced else SCRAM_PREFERENCE
        for name in wanted:
            if name in offered:
                return name
        raise XMPPFailure("auth", f"none of {', '.join(wanted)} offered: {sorted(offered)}")

    async def _authenticate(
        self,
        features: Element,
        username: str,
        password: str,
        forced: str | None,
        key_cache: ScramKeyCache | None,
    ) -> None:
        mechanism = self._choose_mechanism(features, forced)
        scram = ScramClient(mechanism, username, password, key_cache=key_cache)
        first = base64.b64encode(scram.first()).decode()
        await self.send(f"<auth xmlns='{SASL_NS}' mechanism='{mechanism}'>{first}</auth>".encode())
        challenge = await self._sasl_reply("challenge")
        final = base64.b64encode(scram.final(challenge)).decode()
        await self.send(f"<response xmlns='{SASL_NS}'>{final}</response>".encode())
        reply = await self.receive()
        if reply.tag == f"{{{SASL_NS}}}challenge":  # RFC 6120 §6.3.10: v= in a challenge
            verifier = _sasl_data(reply)
            await self.send(f"<response xmlns='{SASL_NS}'/>".encode())
            reply = await self.receive()
            if reply.tag != f"{{{SASL_NS}}}success":
                raise XMPPFailure("auth", _condition(reply))
        elif reply.tag == f"{{{SASL_NS}}}success":
            verifier = _sasl_data(reply)
        else:
            raise XMPPFailure("auth", _condition(reply))
        if not scram.verify(verifier):
            raise XMPPFailure("auth", "the server's SCRAM signature does not verify")

    async def _sasl_reply(self, expected: str) -> bytes:
        reply = await self.receive()
        if reply.tag != f"{{{SASL_NS}}}{expected}":
            raise XMPPFailure("auth", _condition(reply))
        return _sasl_data(reply)

    async def _bind(self, features: Element, resource: str | None) -> str:
        if features.find(f"{{{BIND_NS}}}bind") is None:
            raise XMPPFailure("bind", "not offered by the server")
        inner = f"<resource>{escape_attr(resource)}</resource>" if resource else ""
        await self.send(
            f"<iq type='set' id='b1'><bind xmlns='{BIND_NS}'>{inner}</bind></iq>".encode()
        )
        reply = await self._iq_result("b1", "bind")
        jid = reply.findtext(f"{{{BIND_NS}}}bind/{{{BIND_NS}}}jid")
        if not jid:
            raise XMPPFailure("bind", "no JID in the result")
        self.jid = jid.strip()
        session = features.find(f"{{{SESSION_NS}}}session")
        if session is not None and session.find(f"{{{SESSION_NS}}}optional") is None:
            await self.send(f"<iq type='set' id='s1'><session xmlns='{SESSION_NS}'/></iq>".encode())
            await self._iq_result("s1", "session")
        return self.jid

    async def _iq_result(self, iq_id: str, step: str) -> Element:
        """Wait for the answer to iq ``iq_id``, skipping anything else the server sends."""
        while True:
            reply = await self.receive()
            if reply.tag == f"{{{CLIENT_NS}}}iq" and reply.get("id") == iq_id:
                if reply.get("type") != "result":
                    error = reply.find(f"{{{CLIENT_NS}}}error")
                    raise XMPPFailure(step, _condition(error) if error is not None else "error")
                return reply

    # ------------------------------------------------------------------ ending

    async def aclose(self, *, graceful: bool = True) -> None:
        """Close the connection; with ``graceful``, exchange ``</stream:stream>`` first.

        Never raises for a peer that is already gone; waits at most ``CLOSE_WAIT`` seconds.
        """
        try:
            if graceful and not self._closed and not self._eof:
                with trio.move_on_after(CLOSE_WAIT):
                    await self.stream.send_all(STREAM_CLOSE)
                    while True:
                        await self.receive()
        except (XMPPFailure, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError):
            pass
        finally:
            with trio.move_on_after(CLOSE_WAIT) as scope:
                scope.shield = True
                try:
                    await self.stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
                    pass


def _sasl_data(element: Element) -> bytes:
    text = (element.text or "").strip()
    return b"" if text in ("", "=") else base64.b64decode(text)


async def login(
    host: str,
    port: int,
    domain: str,
    username: str,
    password: str,
    *,
    ssl_context: ssl.SSLContext | None,
    resource: str | None = None,
    mechanism: str | None = None,
    key_cache: ScramKeyCache | None = None,
) -> BenchClient:
    """Connect to ``host:port`` and log in as ``username@domain``; return the bound client.

    The transport is closed if any step fails.
    """
    stream = await trio.open_tcp_stream(host, port)
    client = BenchClient(stream, domain)
    try:
        await client.negotiate(username, password, ssl_context=ssl_context, resource=resource,
                               mechanism=mechanism, key_cache=key_cache)  # fmt: skip
    except BaseException:
        await client.aclose(graceful=False)
        raise
    return client
