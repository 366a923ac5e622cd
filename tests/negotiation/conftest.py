"""The driver for the sans-IO C2S negotiation tests (``casper.negotiation``, RFC 6120 §4-§7).

:class:`Client` plays the client (bytes in) and the caller (answers to the events), and
logs what the server did; ``summary()`` names each entry. The ``mode`` fixture runs a
conversation three ways, h11 style: every client input fed whole, byte by byte, and with
trailing data (half of the next input pipelined behind it, where that is legal). The
step builders (``header``, ``plain``, ``scram_auth`` ...) and the summary fragments
(``START``, ``PLAIN_OK``, ``closed(condition)`` ...) are shared by every module here.

Import the helpers with ``from tests.negotiation.conftest import ...``.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper import negotiation as ng
from casper.errors import StanzaError
from casper.jid import JID
from casper.sasl import ScramClient, derive_credentials
from casper.xml import StanzaReceived, StreamClosed, StreamOpened, XMLStreamParser

__all__ = [
    "ABORT",
    "ACCOUNTS",
    "AUTH_OK",
    "BIND_NS",
    "BOUND",
    "CLOSE",
    "CONFLICT",
    "DOMAIN",
    "KEEPALIVE",
    "MESSAGE",
    "NO_TLS",
    "PASSWORD",
    "PLAIN_OK",
    "PRESENCE",
    "SASL_NS",
    "SESSION_IQ",
    "START",
    "STARTTLS",
    "START_TLS",
    "STREAM_NS",
    "TLS",
    "TLS_NS",
    "Client",
    "Step",
    "auth",
    "bind_iq",
    "closed",
    "features",
    "header",
    "plain",
    "sasl",
    "scram_auth",
    "scram_final",
]

DOMAIN = "example.com"
PASSWORD = "r0m30&j"
ACCOUNTS = {"juliet": derive_credentials(PASSWORD, iterations=16)}
STREAM_NS = "http://etherx.jabber.org/streams"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"


def header(to: str | None = DOMAIN, version: str | None = "1.0", ns: str = "jabber:client", *,
           from_: str | None = None, decl: bool = True) -> bytes:  # fmt: skip
    attrs = [("to", to), ("version", version), ("from", from_)]
    text = "".join(f" {name}='{value}'" for name, value in attrs if value is not None)
    start = "<?xml version='1.0'?>" if decl else ""
    return f"{start}<stream:stream xmlns='{ns}' xmlns:stream='{STREAM_NS}'{text}>".encode()


def sasl(name: str, data: bytes | None = None, raw: str | None = None, **attrs: str) -> bytes:
    """A SASL element; ``data`` is base64-encoded (``=`` if empty), ``raw`` taken as is."""
    if raw is None and data is not None:
        raw = base64.b64encode(data).decode() or "="
    tag = f"{name} xmlns='{SASL_NS}'" + "".join(f" {k}='{v}'" for k, v in attrs.items())
    return (f"<{tag}/>" if raw is None else f"<{tag}>{raw}</{name}>").encode()


def auth(mechanism: str, data: bytes | None = None, raw: str | None = None) -> bytes:
    return sasl("auth", data, raw, mechanism=mechanism)


def plain(authcid: str = "juliet", password: str = PASSWORD, authzid: str = "") -> bytes:
    return auth("PLAIN", f"{authzid}\0{authcid}\0{password}".encode())


def bind_iq(resource: str | None = None, iq_id: str = "b1") -> bytes:
    inner = "" if resource is None else f"<resource>{resource}</resource>"
    return f"<iq type='set' id='{iq_id}'><bind xmlns='{BIND_NS}'>{inner}</bind></iq>".encode()


def scram_auth(mechanism: str = "SCRAM-SHA-256", user: str = "juliet", pw: str = PASSWORD,
               initial: bool = True) -> Callable[[Client], bytes]:  # fmt: skip
    def step(client: Client) -> bytes:
        client.scram = ScramClient(mechanism, user, pw)
        return auth(mechanism, client.scram.first() if initial else None)

    return step


def scram_final(client: Client) -> bytes:
    assert client.scram is not None
    return sasl("response", client.scram.final(client.last_data("challenge")))


STARTTLS = f"<starttls xmlns='{TLS_NS}'/>".encode()
ABORT = sasl("abort")
SESSION_IQ = b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
MESSAGE = b"<message to='romeo@example.net' id='m1'><body>hi</body></message>"
PRESENCE = b"<presence/>"
KEEPALIVE = b" \n"
CLOSE = b"</stream:stream>"
Step = bytes | Callable[["Client"], bytes]


def fresh_reader() -> XMLStreamParser:
    return XMLStreamParser(max_stanza_bytes=1 << 20, max_depth=64)


class Client:
    """Feed client bytes, answer requests; log server headers, elements, close tags, events."""

    def __init__(self, mode: str = "whole", *, auto_tls: bool = True, answer: bool = True,
                 bind_errors: tuple[StanzaError, ...] = (), **options: Any) -> None:  # fmt: skip
        settings = {"domain": DOMAIN, "tls_available": True, "tls_required": True}
        ids = map("s{}".format, itertools.count(1))
        settings.update(scram_iterations=16, stream_id=ids.__next__, **options)
        self.neg = ng.C2SNegotiation(**settings)
        self.mode, self.auto_tls, self.answer = mode, auto_tls, answer
        self.bind_errors = list(bind_errors)
        self.log: list[Any] = []
        self.auth_failures: list[ng.AuthFailed] = []
        self.closed: ng.Closed | None = None
        self.user: str | None = None
        self.scram: ScramClient | None = None
        self._reader, self._unread = fresh_reader(), b""

    def feed(self, data: bytes) -> None:
        chunks = [data[i : i + 1] for i in range(len(data))] if self.mode == "bytes" else [data]
        for chunk in chunks:
            self.neg.receive_data(chunk)
            self.drain()

    def run(self, *steps: Step) -> Client:
        """Send ``steps``; in trailing mode with half of the next static step pipelined."""
        fed_ahead = 0
        for i, step in enumerate(steps):
            data = step(self) if callable(step) else step
            following = steps[i + 1] if i + 1 < len(steps) else None
            trailing = b""
            if self.mode == "trailing" and isinstance(following, bytes) and data != STARTTLS:
                trailing = following[: max(1, len(following) // 2)]
            self.feed(data[fed_ahead:] + trailing)
            fed_ahead = len(trailing)
        if self.mode == "trailing" and self.closed is not None:
            before = list(self.log)
            self.feed(MESSAGE)  # ignored once closed
            assert self.log == before
        return self

    def eof(self) -> None:
        self.neg.receive_eof()
        self.drain()

    def drain(self) -> None:
        while (event := self.neg.next_event()) is not ng.NEED_DATA:
            if self.closed is not None:
                assert event == self.closed  # Closed repeats once the stream is over
                return
            if isinstance(event, ng.SendData):
                self._read(event.data)
                continue
            if isinstance(event, ng.AuthFailed):  # each <failure/> already shows in the log
                self.auth_failures.append(event)
                continue
            self.log.append(event)
            if isinstance(event, ng.Closed):
                self.closed = event
            elif self.answer:
                self._respond(event)

    def _respond(self, event: object) -> None:
        if isinstance(event, ng.StartTLS) and self.auto_tls:
            self.neg.tls_started()
            self._reader = fresh_reader()
        elif isinstance(event, ng.CredentialsNeeded):
            self.neg.provide_credentials(ACCOUNTS.get(event.username, {}).get(event.mechanism))
        elif isinstance(event, ng.Authenticated):
            self.user = event.username
        elif isinstance(event, ng.BindRequested) and self.bind_errors:
            self.neg.bind_failed(self.bind_errors.pop(0))
        elif isinstance(event, ng.BindRequested):
            self.neg.bind_done(JID.make(self.user, DOMAIN, event.resource or "generated"))

    def _read(self, data: bytes) -> None:
        """Parse the server's bytes one tag at a time, so that restarts can be followed."""
        self._unread += data
        while self._unread:
            size = self._unread.find(b">") + 1 or len(self._unread)
            self._reader.feed(self._unread[:size])
            self._unread = self._unread[size:]
            while (event := self._reader.next_event()) is not ng.NEED_DATA:
                if isinstance(event, StreamOpened):
                    self.log.append(("header", event.attrs))
                elif isinstance(event, StreamClosed):
                    self.log.append("close")
                else:
                    assert isinstance(event, StanzaReceived)
                    self.log.append(event.element)
                    if event.element.tag == f"{{{SASL_NS}}}success":
                        self._reader = fresh_reader()

    def summary(self) -> list[str]:
        return [describe(item) for item in self.log]

    def elements(self, name: str) -> list[Element]:
        return [e for e in self.log if isinstance(e, Element) and local(e.tag) == name]

    def events(self, kind: type) -> list[Any]:
        return [e for e in self.log if isinstance(e, kind)]

    def headers(self) -> list[dict[str, str]]:
        return [item[1] for item in self.log if isinstance(item, tuple)]

    def last_data(self, name: str) -> bytes:
        text = self.elements(name)[-1].text or ""
        return b"" if text == "=" else base64.b64decode(text)


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


def describe(item: object) -> str:
    if isinstance(item, tuple):
        return "header"
    if isinstance(item, str):
        return item
    if isinstance(item, ng.Closed):
        return "Closed" if item.error is None else f"Closed:{item.error.condition}"
    if not isinstance(item, Element):
        return type(item).__name__
    if item.tag in (f"{{{STREAM_NS}}}error", f"{{{SASL_NS}}}failure"):
        return f"{local(item.tag)}:{local(item[0].tag)}"
    if item.tag == f"{{{TLS_NS}}}failure":
        return "tls-failure"
    if item.tag == "{jabber:client}iq":
        error = item.find("{jabber:client}error")
        return f"iq:{item.get('type')}" + ("" if error is None else f":{local(error[0].tag)}")
    return local(item.tag)


def features(element: Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        if local(child.tag) == "mechanisms":
            out["mechanisms"] = [m.text for m in child]
        elif local(child.tag) == "starttls":
            out["starttls"] = "required" if len(child) else "optional"
        else:
            out[local(child.tag)] = [local(c.tag) for c in child]
    return out


@pytest.fixture(params=["whole", "bytes", "trailing"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


START = ["header", "features"]
START_TLS = [*START, "proceed", "StartTLS", *START]
AUTH_OK = ["CredentialsNeeded", "success", "Authenticated"]
PLAIN_OK = [*AUTH_OK, *START]
BOUND = ["BindRequested", "iq:result", "Established"]
TLS = {"secure": True}
NO_TLS = {"tls_available": False, "tls_required": False}
CONFLICT = StanzaError("conflict", "resource in use")


def closed(condition: str) -> list[str]:
    return [f"error:{condition}", "close", f"Closed:{condition}"]
