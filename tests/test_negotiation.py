"""C2S negotiation (RFC 6120 §4-§7): happy paths and every rule of ``casper.negotiation``.

A small driver plays both the client (bytes in) and the caller (answers to the events). Every
conversation runs three ways (h11 style): each client input fed whole, byte by byte, and with
trailing data, i.e. the first half of the next input pipelined behind it where that is legal.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from casper.errors import LocalProtocolError, StanzaError, StreamError
from casper.jid import JID
from casper.negotiation import (
    NEED_DATA,
    TRANSITIONS,
    Authenticated,
    BindRequested,
    C2SNegotiation,
    Closed,
    CredentialsNeeded,
    Established,
    Input,
    SendData,
    StanzaIn,
    StartTLS,
    State,
)
from casper.sasl import ScramClient, derive_credentials
from casper.xml import XMLStreamParser, StanzaReceived, StreamClosed, StreamOpened, serialize

DOMAIN = "example.com"
PASSWORD = "r0m30&j"
ITERATIONS = 16
ACCOUNTS = {"juliet": derive_credentials(PASSWORD, iterations=ITERATIONS)}

STREAM_NS = "http://etherx.jabber.org/streams"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION_NS = "urn:ietf:params:xml:ns:xmpp-session"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"

# -- what the client sends -----------------------------------------------------------------------


def header(
    to: str | None = DOMAIN,
    version: str | None = "1.0",
    ns: str = "jabber:client",
    from_: str | None = None,
) -> bytes:
    attrs = "".join(
        f" {name}='{value}'"
        for name, value in (("to", to), ("version", version), ("from", from_))
        if value is not None
    )
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{ns}' xmlns:stream='{STREAM_NS}'{attrs}>"
    ).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode() or "="


def auth(mechanism: str, data: bytes | None = None, *, raw: str | None = None) -> bytes:
    text = raw if raw is not None else ("" if data is None else b64(data))
    return f"<auth xmlns='{SASL_NS}' mechanism='{mechanism}'>{text}</auth>".encode()


def response(data: bytes | None = None, *, raw: str | None = None) -> bytes:
    text = raw if raw is not None else ("" if data is None else b64(data))
    return f"<response xmlns='{SASL_NS}'>{text}</response>".encode()


def plain(authcid: str = "juliet", password: str = PASSWORD, authzid: str = "") -> bytes:
    return auth("PLAIN", f"{authzid}\0{authcid}\0{password}".encode())


def bind_iq(resource: str | None = None, iq_id: str = "b1") -> bytes:
    inner = "" if resource is None else f"<resource>{resource}</resource>"
    return f"<iq type='set' id='{iq_id}'><bind xmlns='{BIND_NS}'>{inner}</bind></iq>".encode()


STARTTLS = f"<starttls xmlns='{TLS_NS}'/>".encode()
ABORT = f"<abort xmlns='{SASL_NS}'/>".encode()
SESSION_IQ = f"<iq type='set' id='s1'><session xmlns='{SESSION_NS}'/></iq>".encode()
MESSAGE = b"<message to='romeo@example.net' id='m1'><body>hi</body></message>"
PRESENCE = b"<presence/>"
KEEPALIVE = b" \n"
CLOSE = b"</stream:stream>"


def scram_auth(mechanism: str = "SCRAM-SHA-256", user: str = "juliet", pw: str = PASSWORD):
    def step(client: Client) -> bytes:
        client.scram = ScramClient(mechanism, user, pw)
        return auth(mechanism, client.scram.first())

    return step


def scram_response(client: Client) -> bytes:
    assert client.scram is not None
    return response(client.scram.final(client.last_data("challenge")))


Step = bytes | Callable[["Client"], bytes]


# -- the driver --------------------------------------------------------------------------------


class Client:
    """Feed client bytes to a C2SNegotiation, answer its requests and log what comes out.

    The log holds, in order, ``("header", attrs)`` for each server stream header, the
    elements the server sent, ``"close"`` for ``</stream:stream>``, and the other events.
    """

    def __init__(
        self,
        mode: str = "whole",
        *,
        auto_tls: bool = True,
        answer: bool = True,
        bind_errors: tuple[StanzaError, ...] = (),
        **options: object,
    ) -> None:
        settings: dict[str, object] = {
            "domain": DOMAIN,
            "tls_available": True,
            "tls_required": True,
            "scram_iterations": ITERATIONS,
            "stream_id": map("s{}".format, itertools.count(1)).__next__,
        }
        settings.update(options)
        self.neg = C2SNegotiation(**settings)  # type: ignore[arg-type]
        self.mode = mode
        self.auto_tls = auto_tls
        self.answer = answer
        self.bind_errors = list(bind_errors)
        self.log: list[object] = []
        self.closed: Closed | None = None
        self.user: str | None = None
        self.scram: ScramClient | None = None
        self._reader = XMLStreamParser(max_stanza_bytes=1 << 20, max_depth=64)
        self._unread = b""

    # feeding

    def feed(self, data: bytes) -> None:
        if self.mode == "bytes":
            for i in range(len(data)):
                self.neg.receive_data(data[i : i + 1])
                self.drain()
        else:
            self.neg.receive_data(data)
            self.drain()

    def run(self, *steps: Step) -> None:
        """Send ``steps`` in order; in trailing mode pipeline half of the next static step."""
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
            self.feed(MESSAGE)  # after Closed, input is ignored
            assert self.log == before

    def eof(self) -> None:
        self.neg.receive_eof()
        self.drain()

    def drain(self) -> None:
        while True:
            event = self.neg.next_event()
            if self.closed is not None:
                assert event == self.closed  # Closed repeats once the stream is over
                return
            if event is NEED_DATA:
                return
            if isinstance(event, SendData):
                self._read(event.data)
                continue
            self.log.append(event)
            if isinstance(event, Closed):
                self.closed = event
            elif self.answer:
                self._respond(event)

    def _respond(self, event: object) -> None:
        if isinstance(event, StartTLS) and self.auto_tls:
            self.neg.tls_started()
            self._reader = XMLStreamParser(max_stanza_bytes=1 << 20, max_depth=64)
        elif isinstance(event, CredentialsNeeded):
            self.neg.provide_credentials(ACCOUNTS.get(event.username, {}).get(event.mechanism))
        elif isinstance(event, Authenticated):
            self.user = event.username
        elif isinstance(event, BindRequested):
            if self.bind_errors:
                self.neg.bind_failed(self.bind_errors.pop(0))
            else:
                self.neg.bind_done(JID.make(self.user, DOMAIN, event.resource or "generated"))

    def _read(self, data: bytes) -> None:
        """Parse the server's bytes, one tag at a time so stream restarts can be followed."""
        self._unread += data
        while self._unread:
            size = self._unread.find(b">") + 1 or len(self._unread)
            chunk, self._unread = self._unread[:size], self._unread[size:]
            self._reader.feed(chunk)
            while (event := self._reader.next_event()) is not NEED_DATA:
                if isinstance(event, StreamOpened):
                    self.log.append(("header", event.attrs))
                elif isinstance(event, StreamClosed):
                    self.log.append("close")
                else:
                    assert isinstance(event, StanzaReceived)
                    self.log.append(event.element)
                    if event.element.tag == f"{{{SASL_NS}}}success":
                        self._reader = XMLStreamParser(max_stanza_bytes=1 << 20, max_depth=64)

    # reading the log

    def summary(self) -> list[str]:
        return [_describe(item) for item in self.log]

    def elements(self, name: str) -> list[Element]:
        return [e for e in self.log if isinstance(e, Element) and _local(e.tag) == name]

    def events(self, kind: type) -> list:
        return [e for e in self.log if isinstance(e, kind)]

    def headers(self) -> list[dict[str, str]]:
        return [item[1] for item in self.log if isinstance(item, tuple)]

    def last_data(self, name: str) -> bytes:
        text = self.elements(name)[-1].text or ""
        return b"" if text == "=" else base64.b64decode(text)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _describe(item: object) -> str:
    if isinstance(item, tuple):
        return "header"
    if isinstance(item, str):
        return item
    if isinstance(item, Closed):
        return "Closed" if item.error is None else f"Closed:{item.error.condition}"
    if not isinstance(item, Element):
        return type(item).__name__
    name = _local(item.tag)
    if item.tag == f"{{{STREAM_NS}}}error":
        return f"error:{_local(item[0].tag)}"
    if item.tag == f"{{{SASL_NS}}}failure":
        return f"failure:{_local(item[0].tag)}"
    if item.tag == f"{{{TLS_NS}}}failure":
        return "tls-failure"
    if name == "iq":
        error = item.find("{jabber:client}error")
        detail = "" if error is None else f":{_local(error[0].tag)}"
        return f"iq:{item.get('type')}{detail}"
    return name


def features(element: Element) -> dict[str, object]:
    """Summarize a <stream:features> element."""
    out: dict[str, object] = {}
    for child in element:
        if child.tag == f"{{{SASL_NS}}}mechanisms":
            out["mechanisms"] = [m.text for m in child]
        elif child.tag == f"{{{TLS_NS}}}starttls":
            out["starttls"] = "required" if len(child) else "optional"
        else:
            out[_local(child.tag)] = [_local(c.tag) for c in child]
    return out


@pytest.fixture(params=["whole", "bytes", "trailing"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


PRE_AUTH_TLS = ["header", "features", "proceed", "StartTLS", "header", "features"]
BIND_AND_SO_ON = ["header", "features", "BindRequested", "iq:result", "Established"]


# -- happy paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["balcony", None])
def test_starttls_scram_sha256_bind_session_stanzas(mode: str, resource: str | None) -> None:
    client = Client(mode)
    client.run(
        header(from_="juliet@example.com"),
        STARTTLS,
        KEEPALIVE,
        header(),
        scram_auth(),
        scram_response,
        header(),
        bind_iq(resource),
        SESSION_IQ,
        KEEPALIVE,
        MESSAGE,
        PRESENCE,
        CLOSE,
    )
    assert client.summary() == [
        *PRE_AUTH_TLS,
        "CredentialsNeeded",
        "challenge",
        "success",
        "Authenticated",
        *BIND_AND_SO_ON,
        "iq:result",
        "StanzaIn",
        "StanzaIn",
        "close",
        "Closed",
    ]
    assert [h["id"] for h in client.headers()] == ["s1", "s2", "s3"]
    assert client.headers()[0]["to"] == "juliet@example.com"
    assert all(h["from"] == DOMAIN and h["version"] == "1.0" for h in client.headers())
    first, after_tls, after_auth = client.elements("features")
    assert features(first) == {"starttls": "required"}
    assert features(after_tls) == {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]}
    assert features(after_auth) == {"bind": [], "session": ["optional"]}
    assert client.events(CredentialsNeeded) == [CredentialsNeeded("juliet", "SCRAM-SHA-256")]
    assert client.scram is not None and client.scram.verify(client.last_data("success"))
    assert client.events(Authenticated) == [Authenticated("juliet")]
    assert client.events(BindRequested) == [BindRequested(resource, "b1")]
    full = JID.make("juliet", DOMAIN, resource or "generated")
    assert client.events(Established) == [Established(full)]
    bind_result, session_result = client.elements("iq")
    assert bind_result.get("id") == "b1"
    assert bind_result.findtext(f"{{{BIND_NS}}}bind/{{{BIND_NS}}}jid") == str(full)
    assert session_result.attrib == {"type": "result", "id": "s1"} and len(session_result) == 0
    passed = [e.element for e in client.events(StanzaIn)]
    assert [serialize(e) for e in passed] == [MESSAGE, PRESENCE]


def test_direct_tls_with_plain(mode: str) -> None:
    client = Client(mode, secure=True, tls_available=False)
    client.run(header(), plain(), header(), bind_iq("orchard"), MESSAGE, CLOSE)
    assert client.summary() == [
        "header",
        "features",
        "CredentialsNeeded",
        "success",
        "Authenticated",
        *BIND_AND_SO_ON,
        "StanzaIn",
        "close",
        "Closed",
    ]
    assert features(client.elements("features")[0]) == {
        "mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    }
    # PLAIN passwords are checked against the SCRAM-SHA-256 credentials
    assert client.events(CredentialsNeeded) == [CredentialsNeeded("juliet", "SCRAM-SHA-256")]
    success = client.elements("success")[0]
    assert success.text is None and len(success) == 0


def test_scram_sha1_without_tls(mode: str) -> None:
    client = Client(mode, tls_available=False, tls_required=False)
    client.run(
        header(), scram_auth("SCRAM-SHA-1"), scram_response, header(), bind_iq(), MESSAGE, CLOSE
    )
    assert client.summary() == [
        "header",
        "features",
        "CredentialsNeeded",
        "challenge",
        "success",
        "Authenticated",
        *BIND_AND_SO_ON,
        "StanzaIn",
        "close",
        "Closed",
    ]
    assert features(client.elements("features")[0]) == {
        "mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    }
    assert client.events(CredentialsNeeded) == [CredentialsNeeded("juliet", "SCRAM-SHA-1")]
    assert client.scram is not None and client.scram.verify(client.last_data("success"))


def test_optional_tls_offers_starttls_and_scram(mode: str) -> None:
    client = Client(mode, tls_required=False)
    client.run(header())
    assert features(client.elements("features")[0]) == {
        "starttls": "optional",
        "mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"],
    }


def test_allow_plain_false_hides_plain(mode: str) -> None:
    client = Client(mode, secure=True, allow_plain=False)
    client.run(header(), plain())
    assert features(client.elements("features")[0]) == {
        "mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    }
    assert client.summary()[-1] == "failure:invalid-mechanism"


def test_extra_features_follow_bind_and_session(mode: str) -> None:
    client = Client(mode, secure=True)
    client.neg.set_extra_features([Element("{urn:xmpp:sm:3}sm")])
    client.run(header(), plain(), header())
    assert features(client.elements("features")[-1]) == {
        "bind": [],
        "session": ["optional"],
        "sm": [],
    }


def test_scram_without_initial_response_gets_empty_challenge(mode: str) -> None:
    client = Client(mode, secure=True)

    def first(c: Client) -> bytes:
        c.scram = ScramClient("SCRAM-SHA-256", "juliet", PASSWORD)
        return response(c.scram.first())

    client.run(header(), auth("SCRAM-SHA-256"), first, scram_response, header())
    assert client.summary() == [
        "header",
        "features",
        "challenge",
        "CredentialsNeeded",
        "challenge",
        "success",
        "Authenticated",
        "header",
        "features",
    ]
    assert client.elements("challenge")[0].text is None


def test_plain_with_matching_authzid(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), plain(authzid="Juliet@Example.com"))
    assert client.summary()[-2:] == ["success", "Authenticated"]


@pytest.mark.parametrize("split", ["whole", "bytes"])
@pytest.mark.parametrize("declaration", [True, False])
def test_pipelined_restart_after_sasl(split: str, declaration: bool) -> None:
    """XEP-0305 style: everything up to the first stanzas in one write."""
    restart = header() if declaration else header().split(b"?>", 1)[1]
    client = Client(split, secure=True)
    client.feed(header() + plain() + restart + bind_iq("r") + SESSION_IQ + MESSAGE + CLOSE)
    assert client.summary() == [
        "header",
        "features",
        "CredentialsNeeded",
        "success",
        "Authenticated",
        *BIND_AND_SO_ON,
        "iq:result",
        "StanzaIn",
        "close",
        "Closed",
    ]


def test_caller_may_answer_later() -> None:
    """Until the caller answers, next_event() says NEED_DATA and input stays buffered."""
    client = Client(secure=True, answer=False)
    client.feed(header() + plain() + header())
    assert client.neg.state is State.SASL_CREDENTIALS
    assert client.neg.next_event() is NEED_DATA
    client.neg.provide_credentials(ACCOUNTS["juliet"]["SCRAM-SHA-256"])
    client.user = "juliet"
    client.drain()
    assert client.summary()[-4:] == ["success", "Authenticated", "header", "features"]
    client.feed(bind_iq())
    assert client.neg.state is State.BIND_PENDING
    client.neg.bind_done(JID.make("juliet", DOMAIN, "x"))
    client.drain()
    assert client.neg.state is State.ESTABLISHED


# -- rule 1: stream header -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (header(to="example.net"), "host-unknown"),
        (header(to=None), "host-unknown"),
        (header(version="0.9"), "unsupported-version"),
        (header(version=None), "unsupported-version"),
        (header(version="one"), "unsupported-version"),
        (header(ns="jabber:server"), "invalid-namespace"),
    ],
)
def test_bad_stream_header(mode: str, data: bytes, condition: str) -> None:
    client = Client(mode)
    client.run(data)
    assert client.summary() == ["header", f"error:{condition}", "close", f"Closed:{condition}"]
    assert client.headers()[0]["from"] == DOMAIN


def test_header_to_is_compared_prepared_and_version_may_be_newer(mode: str) -> None:
    client = Client(mode)
    client.run(header(to="Example.COM.", version="1.1"))
    assert client.summary() == ["header", "features"]


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" + header().split(b"?>", 1)[1],
        b"<stream:stream xmlns:stream='urn:wrong'>",
        b"<stream:stream xmlns='jabber:client'>",
    ],
    ids=["doctype", "wrong-root", "unbound-prefix"],
)
def test_parser_error_before_header_sends_header_first(mode: str, data: bytes) -> None:
    client = Client(mode)
    client.run(data)
    summary = client.summary()
    assert summary[0] == "header" and summary[2:3] == ["close"]
    assert summary[1].startswith("error:") and summary[3] == "Closed:" + summary[1][6:]


@pytest.mark.parametrize(
    ("data", "condition"),
    [(b"<!-- hi -->", "restricted-xml"), (b"<message><</message>", "not-well-formed")],
)
def test_parser_error_on_open_stream(mode: str, data: bytes, condition: str) -> None:
    client = Client(mode)
    client.run(header(), data)
    assert client.summary() == ["header", "features", f"error:{condition}", "close"] + [
        f"Closed:{condition}"
    ]


def test_oversized_stanza_is_policy_violation(mode: str) -> None:
    client = Client(mode, max_stanza_bytes=64)
    client.run(header(), b"<message>" + b"x" * 100 + b"</message>")
    assert client.summary()[-3:] == ["error:policy-violation", "close", "Closed:policy-violation"]


# -- rule 3: STARTTLS ----------------------------------------------------------------------------


@pytest.mark.parametrize("injected", [plain(), b"<au", b"<iq type='get' id='x'/>"])
def test_starttls_with_pipelined_plaintext_is_refused(injected: bytes) -> None:
    client = Client(auto_tls=False)
    client.feed(header() + STARTTLS + injected)
    assert client.summary() == [
        "header",
        "features",
        "error:policy-violation",
        "close",
        "Closed:policy-violation",
    ]


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_plaintext_after_proceed_is_refused(split: str) -> None:
    client = Client(split, auto_tls=False)
    client.feed(header() + STARTTLS)
    client.feed(KEEPALIVE)  # whitespace is harmless
    assert client.neg.state is State.TLS_PENDING
    client.feed(plain())
    assert client.summary() == [
        "header",
        "features",
        "proceed",
        "StartTLS",
        "error:policy-violation",
        "close",
        "Closed:policy-violation",
    ]
    client.neg.tls_started()  # too late: ignored once closed


@pytest.mark.parametrize(
    "options",
    [{"secure": True}, {"tls_available": False, "tls_required": False}],
    ids=["already-tls", "no-tls"],
)
def test_starttls_not_offered(mode: str, options: dict[str, bool]) -> None:
    client = Client(mode, **options)
    client.run(header(), STARTTLS)
    assert client.summary() == ["header", "features", "tls-failure", "close", "Closed"]


def test_second_starttls_after_tls(mode: str) -> None:
    client = Client(mode)
    client.run(header(), STARTTLS, header(), STARTTLS)
    assert client.summary() == [*PRE_AUTH_TLS, "tls-failure", "close", "Closed"]


# -- rule 4: SASL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "data", "condition"),
    [
        ({"tls_available": False, "tls_required": False}, plain(), "encryption-required"),
        ({}, plain(), "encryption-required"),
        ({}, auth("SCRAM-SHA-256", b"n,,n=juliet,r=abc"), "encryption-required"),
        ({"secure": True}, auth("DIGEST-MD5", b"x"), "invalid-mechanism"),
        ({"secure": True}, auth("SCRAM-SHA-256-PLUS", b"x"), "invalid-mechanism"),
        ({"secure": True}, b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", "invalid-mechanism"),
        ({"secure": True}, auth("PLAIN", raw="!!not base64!!"), "incorrect-encoding"),
        ({"secure": True}, auth("SCRAM-SHA-1", raw="bm9"), "incorrect-encoding"),
        ({"secure": True}, auth("PLAIN", b"juliet"), "malformed-request"),
        ({"secure": True}, auth("SCRAM-SHA-256", raw="="), "malformed-request"),
        ({"secure": True}, plain(authzid="romeo@example.com"), "invalid-authzid"),
        ({"secure": True}, plain(authzid="juliet@example.net"), "invalid-authzid"),
        ({"secure": True}, plain(authcid="bad user"), "not-authorized"),
        ({"secure": True}, plain(password="wrong"), "not-authorized"),
        ({"secure": True}, plain(authcid="romeo"), "not-authorized"),
    ],
)
def test_sasl_failure(mode: str, options: dict[str, bool], data: bytes, condition: str) -> None:
    client = Client(mode, **options)
    client.run(header(), data)
    assert client.summary()[-1] == f"failure:{condition}"
    assert client.neg.state is State.FEATURES
    assert not client.events(Authenticated)


def test_scram_wrong_password(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), scram_auth(pw="wrong"), scram_response)
    assert client.summary()[2:] == ["CredentialsNeeded", "challenge", "failure:not-authorized"]


@pytest.mark.parametrize(
    ("user", "asked"), [("romeo", True), ("bad user", False)], ids=["unknown", "invalid"]
)
def test_scram_unknown_user_still_gets_a_challenge(mode: str, user: str, asked: bool) -> None:
    client = Client(mode, secure=True)
    client.run(header(), scram_auth(user=user), scram_response)
    expected = ["CredentialsNeeded"] if asked else []
    assert client.summary()[2:] == [*expected, "challenge", "failure:not-authorized"]


def test_bad_base64_in_response(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), scram_auth(), response(raw="%%%"))
    assert client.summary()[-1] == "failure:incorrect-encoding"


def test_abort_then_retry(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), scram_auth(), ABORT, plain(), header())
    assert client.summary() == [
        "header",
        "features",
        "CredentialsNeeded",
        "challenge",
        "failure:aborted",
        "CredentialsNeeded",
        "success",
        "Authenticated",
        "header",
        "features",
    ]


def test_too_many_failures(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), plain(password="a"), plain(password="b"), plain(password="c"))
    assert client.summary()[2:] == [
        "CredentialsNeeded",
        "failure:not-authorized",
        "CredentialsNeeded",
        "failure:not-authorized",
        "CredentialsNeeded",
        "failure:not-authorized",
        "error:policy-violation",
        "close",
        "Closed:policy-violation",
    ]


def test_max_auth_failures_is_configurable(mode: str) -> None:
    client = Client(mode, secure=True, max_auth_failures=1)
    client.run(header(), auth("X-OAUTH2", b"t"))
    assert client.summary()[2:] == [
        "failure:invalid-mechanism",
        "error:policy-violation",
        "close",
        "Closed:policy-violation",
    ]


# -- rule 5: nothing else before authentication and binding ----------------------------------


@pytest.mark.parametrize(
    "data",
    [MESSAGE, PRESENCE, bind_iq(), SESSION_IQ, b"<foo xmlns='urn:x'/>", response(b"x"), ABORT],
)
def test_element_before_auth(mode: str, data: bytes) -> None:
    client = Client(mode, secure=True)
    client.run(header(), data)
    assert client.summary() == [
        "header",
        "features",
        "error:not-authorized",
        "close",
        "Closed:not-authorized",
    ]


def test_element_during_sasl_exchange(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), scram_auth(), MESSAGE)
    assert client.summary()[-3:] == ["error:not-authorized", "close", "Closed:not-authorized"]


@pytest.mark.parametrize(
    "data",
    [
        b"<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
        SESSION_IQ,
        MESSAGE,
        plain(),
        b"<iq type='set'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",  # no id
    ],
)
def test_element_before_bind(mode: str, data: bytes) -> None:
    client = Client(mode, secure=True)
    client.run(header(), plain(), header(), data)
    assert client.summary()[-3:] == ["error:not-authorized", "close", "Closed:not-authorized"]
    assert not client.events(BindRequested)


# -- rule 6: binding -----------------------------------------------------------------------------


@pytest.mark.parametrize("resource", ["tab&#9;", "x" * 1024])
def test_invalid_resource_then_valid(mode: str, resource: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), plain(), header(), bind_iq(resource, "b1"), bind_iq("ok", "b2"))
    assert client.summary()[-5:] == [
        "features",
        "iq:error:bad-request",
        "BindRequested",
        "iq:result",
        "Established",
    ]
    error_iq = client.elements("iq")[0]
    assert error_iq.get("id") == "b1"
    assert error_iq.find("{jabber:client}error").get("type") == "modify"
    assert client.events(BindRequested) == [BindRequested("ok", "b2")]


def test_bind_failed_then_retry(mode: str) -> None:
    conflict = StanzaError("conflict", "resource in use")
    client = Client(mode, secure=True, bind_errors=(conflict,))
    client.run(header(), plain(), header(), bind_iq("a", "b1"), bind_iq("b", "b2"))
    assert client.summary()[-5:] == [
        "BindRequested",
        "iq:error:conflict",
        "BindRequested",
        "iq:result",
        "Established",
    ]
    error = client.elements("iq")[0].find("{jabber:client}error")
    assert error.get("type") == "cancel"
    assert error.findtext(f"{{{STANZAS_NS}}}text") == "resource in use"


def test_resource_is_prepared(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), plain(), header(), bind_iq("caf\u0065\u0301"))
    assert client.events(BindRequested) == [BindRequested("caf\u00e9", "b1")]


def test_session_iq_only_answered_after_bind_and_bind_passes_after() -> None:
    client = Client(secure=True)
    client.run(header(), plain(), header(), bind_iq(), SESSION_IQ, bind_iq(iq_id="b2"))
    assert client.summary()[-3:] == ["Established", "iq:result", "StanzaIn"]


# -- rule 7: ending ------------------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 3, 5, 7])
def test_client_closes(mode: str, steps: int) -> None:
    conversation = [header(), STARTTLS, header(), plain(), header(), bind_iq(), MESSAGE]
    client = Client(mode)
    client.run(*conversation[:steps], CLOSE)
    assert client.summary()[-2:] == ["close", "Closed"]
    assert client.summary().count("close") == 1


def test_eof_closes_without_data(mode: str) -> None:
    client = Client(mode, secure=True)
    client.run(header(), plain(), header(), bind_iq(), MESSAGE)
    before = len(client.log)
    client.eof()
    assert client.log[before:] == [Closed(None)]


def test_eof_after_buffered_stanza_delivers_it_first() -> None:
    client = Client(secure=True)
    client.run(header(), plain(), header(), bind_iq())
    client.neg.receive_data(MESSAGE + b"<pres")
    client.eof()
    assert client.summary()[-2:] == ["StanzaIn", "Closed"]


def test_eof_while_waiting_for_the_caller() -> None:
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.eof()
    assert client.summary() == ["header", "features", "CredentialsNeeded", "Closed"]
    client.neg.provide_credentials(None)  # ignored once closed
    client.drain()


@pytest.mark.parametrize(("steps", "headers"), [(0, 1), (1, 1), (3, 2), (5, 2)])
def test_caller_closes_with_error(steps: int, headers: int) -> None:
    conversation = [header(), plain(), header(), bind_iq(), MESSAGE]
    client = Client(secure=True)
    client.run(*conversation[:steps])
    error = StreamError("system-shutdown", "bye")
    client.neg.close(error)
    client.drain()
    assert client.summary()[-3:] == ["error:system-shutdown", "close", "Closed:system-shutdown"]
    assert client.closed == Closed(error)
    assert client.summary().count("header") == headers


def test_caller_closes_without_error() -> None:
    client = Client()
    client.neg.close()
    client.drain()
    assert client.summary() == ["header", "close", "Closed"]
    client.neg.close(StreamError("reset"))  # a second close is ignored
    client.drain()


def test_caller_closes_while_waiting_for_credentials() -> None:
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.neg.close(StreamError("connection-timeout"))
    client.drain()
    assert client.summary()[-3:] == [
        "error:connection-timeout",
        "close",
        "Closed:connection-timeout",
    ]


def test_input_after_closed_is_ignored() -> None:
    client = Client()
    client.run(header(to="example.net"))
    closed = client.closed
    client.neg.receive_data(header() + STARTTLS)
    assert client.neg.next_event() == closed
    assert client.neg.next_event() == closed
    client.neg.receive_eof()
    client.neg.receive_data(b"more")
    assert client.neg.next_event() == closed


def test_too_much_data_while_waiting_for_the_caller() -> None:
    client = Client(secure=True, answer=False, max_stanza_bytes=100)
    client.feed(header() + plain())
    client.feed(MESSAGE * 2)
    assert client.summary()[-3:] == ["error:policy-violation", "close", "Closed:policy-violation"]


# -- caller errors -------------------------------------------------------------------------------


def test_illegal_caller_inputs_name_state_and_input() -> None:
    client = Client()
    with pytest.raises(LocalProtocolError, match="'credentials'.*'header'"):
        client.neg.provide_credentials(None)
    client.feed(header())
    with pytest.raises(LocalProtocolError, match="'tls-started'.*'features'"):
        client.neg.tls_started()
    with pytest.raises(LocalProtocolError, match="'bind-done'.*'features'"):
        client.neg.bind_done(JID.make("juliet", DOMAIN, "r"))
    with pytest.raises(LocalProtocolError, match="'bind-failed'.*'features'"):
        client.neg.bind_failed(StanzaError("conflict"))


def test_bind_done_needs_the_accounts_full_jid() -> None:
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.neg.provide_credentials(ACCOUNTS["juliet"]["SCRAM-SHA-256"])
    client.drain()
    client.feed(header() + bind_iq())
    for wrong in (JID.make("juliet", DOMAIN), JID.make("romeo", DOMAIN, "r")):
        with pytest.raises(LocalProtocolError):
            client.neg.bind_done(wrong)
    assert client.neg.state is State.BIND_PENDING


def test_receive_data_after_eof_is_a_caller_error() -> None:
    neg = C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=False)
    neg.receive_eof()
    with pytest.raises(LocalProtocolError):
        neg.receive_data(header())


def test_constructor_rejects_contradictions() -> None:
    with pytest.raises(ValueError):
        C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=True)
    with pytest.raises(ValueError):
        C2SNegotiation(domain=DOMAIN, tls_available=True, tls_required=False, max_auth_failures=0)


def test_default_stream_ids_are_fresh() -> None:
    ids = set()
    for _ in range(3):
        neg = C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=False)
        neg.receive_data(header())
        event = neg.next_event()
        assert isinstance(event, SendData)
        match = re.search(rb" id='([^']+)'", event.data)
        assert match is not None
        ids.add(match.group(1))
    assert len(ids) == 3 and all(len(i) >= 16 for i in ids)


# -- structure -----------------------------------------------------------------------------------


CLIENT_ELEMENTS = [
    Input.STARTTLS,
    Input.AUTH,
    Input.RESPONSE,
    Input.ABORT,
    Input.BIND_IQ,
    Input.SESSION_IQ,
    Input.ELEMENT,
    Input.STREAM_END,
]


def test_transition_table_is_well_formed() -> None:
    for (state, _input), handler in TRANSITIONS.items():
        assert callable(getattr(C2SNegotiation, handler)), handler
        if state is State.CLOSED:
            assert handler == "_ignore"
    for state in State:
        # the server can always be closed, and the client can always go away
        assert (state, Input.CLOSE) in TRANSITIONS and (state, Input.EOF) in TRANSITIONS
    reading = [State.FEATURES, State.SASL_INITIAL, State.SASL_CHALLENGE, State.BIND]
    for state in [*reading, State.ESTABLISHED]:  # every client element has an answer
        assert all((state, element) in TRANSITIONS for element in CLIENT_ELEMENTS)


def test_module_is_sans_io() -> None:
    spec = importlib.util.find_spec("casper.negotiation")
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "asyncio", "socket", "ssl"}
