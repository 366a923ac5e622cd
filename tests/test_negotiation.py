"""C2S negotiation (RFC 6120 §4-§7): the happy paths and every rule of ``casper.negotiation``.

A small driver plays the client (bytes in) and the caller (answers to the events). Each
conversation runs three ways, h11 style: every client input fed whole, byte by byte, and with
trailing data (half of the next input pipelined behind it, where that is legal).
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper import negotiation as ng
from casper.errors import LocalProtocolError, StanzaError, StreamError
from casper.jid import JID
from casper.sasl import Failure, ScramClient, derive_credentials
from casper.xml import StanzaReceived, StreamClosed, StreamOpened, XMLStreamParser, serialize

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


# (id, options, client steps, the whole summary of what the server did)
CONVERSATIONS: list[tuple[str, dict[str, Any], list[Step], list[str]]] = [
    # happy paths
    ("starttls-scram-sha-256", {}, [header(from_="juliet@example.com"), STARTTLS, KEEPALIVE,
        header(), scram_auth(), scram_final, header(), bind_iq("balcony"), SESSION_IQ, KEEPALIVE,
        MESSAGE, PRESENCE, CLOSE],
        [*START_TLS, "CredentialsNeeded", "challenge", "success", "Authenticated", *START, *BOUND,
         "iq:result", "StanzaIn", "StanzaIn", "close", "Closed"]),
    ("direct-tls-plain", TLS, [header(), plain(), header(), bind_iq(), MESSAGE, CLOSE],
        [*START, *PLAIN_OK, *BOUND, "StanzaIn", "close", "Closed"]),
    ("scram-sha-1-without-tls", NO_TLS, [header(), scram_auth("SCRAM-SHA-1"), scram_final,
        header(), bind_iq()], [*START, "CredentialsNeeded", "challenge", "success",
        "Authenticated", *START, *BOUND]),
    ("scram-without-initial-response", TLS, [header(), scram_auth(initial=False),
        lambda c: sasl("response", c.scram.first()), scram_final],
        [*START, "challenge", "CredentialsNeeded", "challenge", "success", "Authenticated"]),
    ("plain-authzid", TLS, [header(), plain(authzid="Juliet@Example.com")], [*START, *AUTH_OK]),
    ("abort-then-retry", TLS, [header(), scram_auth(), ABORT, plain()],
        [*START, "CredentialsNeeded", "challenge", "failure:aborted", *AUTH_OK]),
    ("invalid-resource-then-valid", TLS, [header(), plain(), header(), bind_iq("tab&#9;"),
        bind_iq("x" * 1024), bind_iq("ok")],
        [*START, *PLAIN_OK, "iq:error:bad-request", "iq:error:bad-request", *BOUND]),
    ("bind-failed-then-retry", {**TLS, "bind_errors": (CONFLICT,)}, [header(), plain(), header(),
        bind_iq("a"), bind_iq("b", "b2")], [*START, *PLAIN_OK, "BindRequested",
        "iq:error:conflict", *BOUND]),
    ("session-and-bind-after-binding", TLS, [header(), plain(), header(), bind_iq(), SESSION_IQ,
        bind_iq(iq_id="b2")], [*START, *PLAIN_OK, *BOUND, "iq:result", "StanzaIn"]),
    # rule 1
    ("wrong-host", {}, [header(to="example.net")], ["header", *closed("host-unknown")]),
    ("no-host", {}, [header(to=None)], ["header", *closed("host-unknown")]),
    ("old-version", {}, [header(version="0.9")], ["header", *closed("unsupported-version")]),
    ("no-version", {}, [header(version=None)], ["header", *closed("unsupported-version")]),
    ("bad-version", {}, [header(version="1")], ["header", *closed("unsupported-version")]),
    ("wrong-namespace", {}, [header(ns="jabber:server")], ["header", *closed("invalid-namespace")]),
    ("host-prepared-newer-version", {}, [header(to="Example.COM.", version="1.1")], START),
    ("doctype", {}, [b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" + header(decl=False)],
        ["header", *closed("restricted-xml")]),
    ("wrong-root", {}, [b"<stream:stream xmlns:stream='urn:x'>"],
        ["header", *closed("invalid-namespace")]),
    ("unbound-prefix", {}, [b"<stream:stream xmlns='jabber:client'>"],
        ["header", *closed("not-well-formed")]),
    ("comment", {}, [header(), b"<!-- hi -->"], [*START, *closed("restricted-xml")]),
    ("malformed", {}, [header(), b"<message><</message>"], [*START, *closed("not-well-formed")]),
    ("oversized", {"max_stanza_bytes": 200}, [header(), b"<message>" + b"x" * 200 + b"</message>"],
        [*START, *closed("policy-violation")]),
    # rule 3
    ("starttls-already-tls", TLS, [header(), STARTTLS], [*START, "tls-failure", "close", "Closed"]),
    ("starttls-no-tls", NO_TLS, [header(), STARTTLS], [*START, "tls-failure", "close", "Closed"]),
    ("starttls-twice", {}, [header(), STARTTLS, header(), STARTTLS],
        [*START_TLS, "tls-failure", "close", "Closed"]),
    # rule 4
    ("plain-without-tls", NO_TLS, [header(), plain()], [*START, "failure:encryption-required"]),
    ("plain-before-tls", {}, [header(), plain()], [*START, "failure:encryption-required"]),
    ("scram-before-tls", {}, [header(), auth("SCRAM-SHA-256", b"n,,n=juliet,r=abc")],
        [*START, "failure:encryption-required"]),
    ("unknown-mechanism", TLS, [header(), auth("DIGEST-MD5", b"x")],
        [*START, "failure:invalid-mechanism"]),
    ("plus-mechanism", TLS, [header(), auth("SCRAM-SHA-256-PLUS", b"x")],
        [*START, "failure:invalid-mechanism"]),
    ("no-mechanism", TLS, [header(), sasl("auth")], [*START, "failure:invalid-mechanism"]),
    ("plain-not-allowed", {**TLS, "allow_plain": False}, [header(), plain()],
        [*START, "failure:invalid-mechanism"]),
    ("bad-base64", TLS, [header(), auth("PLAIN", raw="!!not base64!!")],
        [*START, "failure:incorrect-encoding"]),
    ("truncated-base64", TLS, [header(), auth("SCRAM-SHA-1", raw="bm9")],
        [*START, "failure:incorrect-encoding"]),
    ("bad-base64-response", TLS, [header(), scram_auth(), sasl("response", raw="%%%")],
        [*START, "CredentialsNeeded", "challenge", "failure:incorrect-encoding"]),
    ("plain-malformed", TLS, [header(), auth("PLAIN", b"juliet")],
        [*START, "failure:malformed-request"]),
    ("scram-empty", TLS, [header(), auth("SCRAM-SHA-256", raw="=")],
        [*START, "failure:malformed-request"]),
    ("plain-other-authzid", TLS, [header(), plain(authzid="romeo@example.com")],
        [*START, "failure:invalid-authzid"]),
    ("plain-authzid-other-domain", TLS, [header(), plain(authzid="juliet@example.net")],
        [*START, "failure:invalid-authzid"]),
    ("plain-bad-localpart", TLS, [header(), plain(authcid="bad user")],
        [*START, "failure:not-authorized"]),
    ("plain-wrong-password", TLS, [header(), plain(password="wrong")],
        [*START, "CredentialsNeeded", "failure:not-authorized"]),
    ("plain-unknown-user", TLS, [header(), plain(authcid="romeo")],
        [*START, "CredentialsNeeded", "failure:not-authorized"]),
    ("scram-wrong-password", TLS, [header(), scram_auth(pw="wrong"), scram_final],
        [*START, "CredentialsNeeded", "challenge", "failure:not-authorized"]),
    ("scram-unknown-user", TLS, [header(), scram_auth(user="romeo"), scram_final],
        [*START, "CredentialsNeeded", "challenge", "failure:not-authorized"]),
    ("scram-invalid-user", TLS, [header(), scram_auth(user="bad user"), scram_final],
        [*START, "challenge", "failure:not-authorized"]),
    ("too-many-failures", TLS, [header(), plain(password="a"), plain(password="b"),
        plain(password="c")], [*START, *["CredentialsNeeded", "failure:not-authorized"] * 3,
        *closed("policy-violation")]),
    ("one-failure-allowed", {**TLS, "max_auth_failures": 1}, [header(), auth("X-OAUTH2", b"t")],
        [*START, "failure:invalid-mechanism", *closed("policy-violation")]),
    # rule 5
    *[(f"before-auth-{i}", TLS, [header(), data], [*START, *closed("not-authorized")])
      for i, data in enumerate([MESSAGE, PRESENCE, bind_iq(), SESSION_IQ, sasl("response", b"x"),
                                b"<foo xmlns='urn:x'/>", ABORT])],
    ("during-sasl", TLS, [header(), scram_auth(), MESSAGE],
        [*START, "CredentialsNeeded", "challenge", *closed("not-authorized")]),
    *[(f"before-bind-{i}", TLS, [header(), plain(), header(), data],
       [*START, *PLAIN_OK, *closed("not-authorized")])
      for i, data in enumerate([b"<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
                                SESSION_IQ, MESSAGE, plain(), bind_iq().replace(b" id='b1'", b"")])
    ],
    # rule 7
    *[(f"client-closes-{n}", {}, [header(), STARTTLS, header(), plain(), header(), bind_iq()][:n]
       + [CLOSE], [*before, "close", "Closed"]) for n, before in ((1, START), (3, START_TLS),
       (5, [*START_TLS, *PLAIN_OK]), (6, [*START_TLS, *PLAIN_OK, *BOUND]))],
]  # fmt: skip


@pytest.mark.parametrize(("options", "steps", "expected"), [c[1:] for c in CONVERSATIONS],
                         ids=[c[0] for c in CONVERSATIONS])  # fmt: skip
def test_conversation(mode: str, options: dict[str, Any], steps: list[Step], expected: list[str]):
    assert Client(mode, **options).run(*steps).summary() == expected


@pytest.mark.parametrize("resource", ["balcony", "cafe\u0301", None])
def test_happy_path_details(mode: str, resource: str | None) -> None:
    client = Client(mode)
    client.neg.set_extra_features([Element("{urn:xmpp:sm:3}sm")])
    client.run(header(from_="juliet@example.com"), STARTTLS, header(), scram_auth(), scram_final,
               header(), bind_iq(resource), SESSION_IQ, MESSAGE, PRESENCE)  # fmt: skip
    assert [h["id"] for h in client.headers()] == ["s1", "s2", "s3"]
    assert client.headers()[0]["to"] == "juliet@example.com"
    assert all(h["from"] == DOMAIN and h["version"] == "1.0" for h in client.headers())
    assert [features(f) for f in client.elements("features")] == [
        {"starttls": "required"},
        {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]},
        {"bind": [], "session": ["optional"], "sm": []},  # extra features come last
    ]
    assert client.events(ng.CredentialsNeeded) == [ng.CredentialsNeeded("juliet", "SCRAM-SHA-256")]
    assert client.scram is not None and client.scram.verify(client.last_data("success"))
    assert client.events(ng.Authenticated) == [ng.Authenticated("juliet")]
    prepared = None if resource is None else resource.replace("e\u0301", "\u00e9")
    assert client.events(ng.BindRequested) == [ng.BindRequested(prepared, "b1")]
    full = JID.make("juliet", DOMAIN, prepared or "generated")
    assert client.events(ng.Established) == [ng.Established(full)]
    bind_result, session_result = client.elements("iq")
    assert bind_result.get("id") == "b1"
    assert bind_result.findtext(f"{{{BIND_NS}}}bind/{{{BIND_NS}}}jid") == str(full)
    assert session_result.attrib == {"type": "result", "id": "s1"} and len(session_result) == 0
    assert [serialize(e.element) for e in client.events(ng.StanzaIn)] == [MESSAGE, PRESENCE]


def test_plain_details(mode: str) -> None:
    client = Client(mode, secure=True, bind_errors=(CONFLICT,)).run(
        header(), plain(), header(), bind_iq("a"), bind_iq("b", "b2")
    )
    # PLAIN passwords are checked against the SCRAM-SHA-256 credentials
    assert client.events(ng.CredentialsNeeded) == [ng.CredentialsNeeded("juliet", "SCRAM-SHA-256")]
    success = client.elements("success")[0]
    assert success.text is None and len(success) == 0
    error_iq = client.elements("iq")[0]
    assert error_iq.get("id") == "b1"
    error = error_iq.find("{jabber:client}error")
    assert error is not None and error.get("type") == "cancel"
    assert error.findtext("{urn:ietf:params:xml:ns:xmpp-stanzas}text") == "resource in use"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"starttls": "required"}),
        ({"tls_required": False}, {"starttls": "optional", "mechanisms": ["SCRAM-SHA-256",
         "SCRAM-SHA-1"]}),
        (NO_TLS, {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"]}),
        (TLS, {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]}),
        ({**TLS, "allow_plain": False}, {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"]}),
    ],
)  # fmt: skip
def test_pre_auth_features(options: dict[str, Any], expected: dict[str, Any]) -> None:
    client = Client(**options).run(header())
    assert features(client.elements("features")[0]) == expected


@pytest.mark.parametrize("split", ["whole", "bytes"])
@pytest.mark.parametrize("decl", [True, False])
def test_pipelined_restart_after_sasl(split: str, decl: bool) -> None:
    """XEP-0305 style: everything up to the first stanzas in one write."""
    client = Client(split, secure=True)
    client.feed(header() + plain() + header(decl=decl) + bind_iq("r") + SESSION_IQ + MESSAGE)
    assert client.summary() == [*START, *PLAIN_OK, *BOUND, "iq:result", "StanzaIn"]


def test_caller_may_answer_later() -> None:
    client = Client(secure=True, answer=False)
    client.feed(header() + plain() + header())
    assert client.neg.state is ng.State.SASL_CREDENTIALS
    assert client.neg.next_event() is ng.NEED_DATA
    client.neg.provide_credentials(ACCOUNTS["juliet"]["SCRAM-SHA-256"])
    client.drain()
    assert client.summary()[-4:] == ["success", "Authenticated", "header", "features"]
    client.feed(bind_iq())
    assert client.neg.state is ng.State.BIND_PENDING
    client.neg.bind_done(JID.make("juliet", DOMAIN, "x"))
    client.drain()
    assert client.neg.state is ng.State.ESTABLISHED


@pytest.mark.parametrize("injected", [plain(), b"<au", b"<iq type='get' id='x'/>"])
def test_starttls_with_pipelined_plaintext_is_refused(injected: bytes) -> None:
    client = Client(auto_tls=False)
    client.feed(header() + STARTTLS + injected)
    assert client.summary() == [*START, *closed("policy-violation")]


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_plaintext_after_proceed_is_refused(split: str) -> None:
    client = Client(split, auto_tls=False)
    client.feed(header() + STARTTLS + KEEPALIVE)  # whitespace is harmless
    assert client.neg.state is ng.State.TLS_PENDING
    client.feed(plain())
    assert client.summary() == [*START, "proceed", "StartTLS", *closed("policy-violation")]
    client.neg.tls_started()  # too late: ignored once closed


def test_eof_closes_without_data(mode: str) -> None:
    client = Client(mode, secure=True).run(header(), plain(), header(), bind_iq(), MESSAGE)
    before = len(client.log)
    client.eof()
    assert client.log[before:] == [ng.Closed(None)]


def test_eof_after_buffered_stanza_or_while_waiting_for_the_caller() -> None:
    client = Client(secure=True).run(header(), plain(), header(), bind_iq())
    client.neg.receive_data(MESSAGE + b"<pres")
    client.eof()
    assert client.summary()[-2:] == ["StanzaIn", "Closed"]  # complete stanzas come first
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.eof()
    assert client.summary() == [*START, "CredentialsNeeded", "Closed"]
    client.neg.provide_credentials(None)  # ignored once closed
    client.drain()


@pytest.mark.parametrize(("steps", "headers"), [(0, 1), (1, 1), (3, 2), (5, 2)])
def test_caller_closes_with_error(steps: int, headers: int) -> None:
    client = Client(secure=True).run(*[header(), plain(), header(), bind_iq(), MESSAGE][:steps])
    error = StreamError("system-shutdown", "bye")
    client.neg.close(error)
    client.drain()
    assert client.summary()[-3:] == closed("system-shutdown")
    assert client.closed == ng.Closed(error)
    assert client.summary().count("header") == headers


def test_caller_closes_without_error_or_while_waiting() -> None:
    client = Client()
    client.neg.close()
    client.drain()
    assert client.summary() == ["header", "close", "Closed"]
    client.neg.close(StreamError("reset"))  # a second close is ignored
    client.drain()
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.neg.close(StreamError("connection-timeout"))
    client.drain()
    assert client.summary() == [*START, "CredentialsNeeded", *closed("connection-timeout")]


def test_input_after_closed_is_ignored() -> None:
    client = Client().run(header(to="example.net"))
    client.neg.receive_data(header() + STARTTLS)
    assert client.neg.next_event() == client.closed
    client.neg.receive_eof()
    client.neg.receive_data(b"more")
    assert client.neg.next_event() == client.closed


def test_too_much_data_while_waiting_for_the_caller() -> None:
    client = Client(secure=True, answer=False, max_stanza_bytes=100)
    client.feed(header() + plain())
    client.feed(MESSAGE * 2)
    assert client.summary()[-3:] == closed("policy-violation")


def test_illegal_caller_inputs_name_state_and_input() -> None:
    neg = Client().neg
    with pytest.raises(LocalProtocolError, match="'credentials'.*'header'"):
        neg.provide_credentials(None)
    neg.receive_data(header())
    neg.next_event()
    with pytest.raises(LocalProtocolError, match="'tls-started'.*'features'"):
        neg.tls_started()
    with pytest.raises(LocalProtocolError, match="'bind-done'.*'features'"):
        neg.bind_done(JID.make("juliet", DOMAIN, "r"))
    with pytest.raises(LocalProtocolError, match="'bind-failed'.*'features'"):
        neg.bind_failed(StanzaError("conflict"))
    neg.receive_eof()
    with pytest.raises(LocalProtocolError):
        neg.receive_data(b" ")


def test_every_sasl_failure_comes_with_an_auth_failed_event() -> None:
    client = Client(secure=True).run(
        header(), plain(password="wrong"), plain(authcid="nobody"), scram_auth(pw="wrong"),
    )
    client.run(scram_final)
    assert [(e.username, e.condition) for e in client.auth_failures] == [
        ("juliet", "not-authorized"), ("nobody", "not-authorized"), ("juliet", "not-authorized"),
    ]  # fmt: skip
    assert client.summary()[-2:] == closed("policy-violation")[-2:]
    client = Client(secure=True).run(header(), auth("X-UNKNOWN", b"x"))
    assert [(e.username, e.condition) for e in client.auth_failures] == [
        (None, "invalid-mechanism")
    ]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_refused_credentials_fail_without_a_check_and_the_stream_goes_on(mechanism: str) -> None:
    client = Client(secure=True, answer=False)
    first = plain() if mechanism == "PLAIN" else scram_auth()(client)
    client.feed(header() + first)
    assert client.summary()[-1] == "CredentialsNeeded"
    client.neg.refuse_credentials(Failure("temporary-auth-failure", "slow down"))
    client.drain()
    assert client.summary()[-1] == "failure:temporary-auth-failure"
    assert client.elements("failure")[-1].findtext(f"{{{SASL_NS}}}text") == "slow down"
    assert [e.condition for e in client.auth_failures] == ["temporary-auth-failure"]
    assert client.neg.state is ng.State.FEATURES  # the client may try again
    with pytest.raises(LocalProtocolError):
        client.neg.refuse_credentials(None)  # type: ignore[arg-type]


def test_bind_done_needs_the_accounts_full_jid() -> None:
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.neg.provide_credentials(ACCOUNTS["juliet"]["SCRAM-SHA-256"])
    client.feed(header() + bind_iq())
    for wrong in (JID.make("juliet", DOMAIN), JID.make("romeo", DOMAIN, "r")):
        with pytest.raises(LocalProtocolError):
            client.neg.bind_done(wrong)
    assert client.neg.state is ng.State.BIND_PENDING


def test_constructor_defaults_and_checks() -> None:
    with pytest.raises(ValueError):
        ng.C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=True)
    ids = set()
    for _ in range(3):  # default stream ids are fresh and unpredictable
        neg = ng.C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=False)
        neg.receive_data(header())
        event = neg.next_event()
        assert isinstance(event, ng.SendData)
        ids.update(re.findall(rb" id='([^']+)'", event.data))
    assert len(ids) == 3 and all(len(i) >= 16 for i in ids)


def test_transition_table_is_well_formed() -> None:
    for (state, _input), handler in ng.TRANSITIONS.items():
        assert callable(getattr(ng.C2SNegotiation, handler)), handler
        assert state is not ng.State.CLOSED or handler == "_ignore"
    for state in ng.State:  # the server can always close, the client can always go away
        assert (state, ng.Input.CLOSE) in ng.TRANSITIONS and (state, ng.Input.EOF) in ng.TRANSITIONS
    elements = [i for i in ng.Input if i.name not in ("STREAM_HEADER", "EOF")]
    elements = elements[: elements.index(ng.Input.STREAM_END) + 1]  # all the client can send
    reading = [ng.State.FEATURES, ng.State.SASL_INITIAL, ng.State.SASL_CHALLENGE, ng.State.BIND]
    for state in [*reading, ng.State.ESTABLISHED]:  # every client element has an answer
        assert all((state, element) in ng.TRANSITIONS for element in elements)


def test_module_is_sans_io() -> None:
    spec = importlib.util.find_spec("casper.negotiation")
    assert spec is not None and spec.origin is not None
    imported: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "asyncio", "socket", "ssl"}
