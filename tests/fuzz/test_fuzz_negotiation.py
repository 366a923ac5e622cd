"""Fuzz the sans-IO c2s negotiation (casper.negotiation) with random element sequences.

A client sends a random sequence drawn from the elements of a negotiation (stream headers
good and bad, STARTTLS, SASL auth/response/abort with PLAIN and SCRAM, bind and session
IQs, stanzas, close tags, whitespace, garbage, random bytes, mutations of all of these),
cut into random chunks. A correct caller answers every request (StartTLS, credentials,
bind), choosing at random between the possible answers, and gives TLS streams channel
bindings (SCRAM-*-PLUS). Properties:

1. With a correct caller nothing is raised; every event is of a documented type; once
   ``Closed`` comes, it keeps coming and input is ignored.
2. A caller that also makes random calls at random times (answers nobody asked for) gets
   :class:`LocalProtocolError` for those and nothing else.
3. Whatever the input, the server's own output is a well-formed XML stream up to each
   restart.
"""

from __future__ import annotations

import base64

import pytest
from casper import negotiation as ng
from casper.errors import LocalProtocolError, StanzaError, StreamError
from casper.jid import JID
from casper.sasl import Failure, ScramClient, derive_credentials
from casper.xml import NEED_DATA, StanzaReceived, XMLStreamParser
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.fuzzing import FUZZ, chunked, corpus_files, mutated

DOMAIN = "example.com"
PASSWORD = "secret"
ACCOUNTS = {"juliet": derive_credentials(PASSWORD, iterations=16, salt=b"salt")}
STREAM_NS = "http://etherx.jabber.org/streams"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
RESTARTS = ("{urn:ietf:params:xml:ns:xmpp-tls}proceed", f"{{{SASL_NS}}}success")
EVENTS = (
    ng.SendData,
    ng.StartTLS,
    ng.CredentialsNeeded,
    ng.Authenticated,
    ng.AuthFailed,
    ng.BindRequested,
    ng.Established,
    ng.StanzaIn,
    ng.Closed,
)


def header(to: str = DOMAIN, version: str = "1.0", ns: str = "jabber:client") -> bytes:
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{ns}' xmlns:stream='{STREAM_NS}' "
        f"to='{to}' version='{version}'>"
    ).encode()


def sasl(name: str, data: bytes | None = None, mechanism: str | None = None) -> bytes:
    mech = f" mechanism='{mechanism}'" if mechanism else ""
    if data is None:
        return f"<{name} xmlns='{SASL_NS}'{mech}/>".encode()
    payload = base64.b64encode(data).decode() or "="
    return f"<{name} xmlns='{SASL_NS}'{mech}>{payload}</{name}>".encode()


SCRAM_FIRST = ScramClient("SCRAM-SHA-256", "juliet", PASSWORD, nonce="abc").first()
BINDINGS = {"tls-unique": b"u" * 12, "tls-server-end-point": b"e" * 32}
PLUS_FIRST = ScramClient("SCRAM-SHA-256-PLUS", "juliet", PASSWORD, nonce="abc",
                         cb_flag="p=tls-unique", cb_data=BINDINGS["tls-unique"]).first()  # fmt: skip
VOCABULARY = [
    header(),
    header(),
    header(to="other.example"),
    header(version="0.9"),
    header(ns="jabber:server"),
    b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    sasl("auth", f"\0juliet\0{PASSWORD}".encode(), "PLAIN"),
    sasl("auth", b"\0juliet\0wrong", "PLAIN"),
    sasl("auth", b"\0nobody\0x", "PLAIN"),
    sasl("auth", b"juliet@example.com\0juliet\0secret", "PLAIN"),
    sasl("auth", None, "PLAIN"),
    sasl("auth", SCRAM_FIRST, "SCRAM-SHA-256"),
    sasl("auth", SCRAM_FIRST, "SCRAM-SHA-1"),
    sasl("auth", b"x", "X-OAUTH2"),
    sasl("response", b"c=biws,r=abc,p=AAAA"),
    sasl("response", b""),
    sasl("response", None),
    sasl("abort"),
    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>",
    b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    (
        b"<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>balcony</resource></bind></iq>"
    ),
    (
        b"<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>\xe2\x80\xa8</resource></bind></iq>"
    ),
    b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    b"<message to='romeo@example.net'><body>hi</body></message>",
    b"<presence/>",
    b"<foo xmlns='urn:x'/>",
    b" ",
    b"\n",
    b"</stream:stream>",
    b"<garbage",
    b"&amp;",
    sasl("auth", PLUS_FIRST, "SCRAM-SHA-256-PLUS"),
    sasl("auth", PLUS_FIRST, "SCRAM-SHA-1"),
    sasl("auth", b"y" + SCRAM_FIRST[1:], "SCRAM-SHA-1"),
]
STARTTLS = VOCABULARY[5]
LOGINS = [sasl("auth", f"\0juliet\0{PASSWORD}".encode(), "PLAIN"), VOCABULARY[9]]
BINDS = VOCABULARY[19:23]
SEEDS = VOCABULARY + [path.read_bytes() for path in corpus_files("negotiation")]


@st.composite
def conversations(draw: st.DrawFn) -> bytes:
    """Mostly a plausible client: a header first, then elements of the vocabulary; now and
    then a mutated element or random bytes (which usually end the stream at once)."""
    parts = [header()] if draw(st.integers(0, 9)) else []
    if draw(st.booleans()):  # a login that gets far, for the later states
        if draw(st.booleans()):
            parts += [STARTTLS, header()]
        parts += [draw(st.sampled_from(LOGINS)), header()]
        parts += draw(st.lists(st.sampled_from(BINDS), max_size=2))
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 19))
        if kind < 17:
            parts.append(draw(st.sampled_from(VOCABULARY)))
        elif kind < 19:
            parts.append(draw(mutated(SEEDS)))
        else:
            parts.append(draw(st.binary(max_size=24)))
    return b"".join(parts)


inputs = conversations()
options = st.fixed_dictionaries(
    {
        "secure": st.booleans(),
        "tls_available": st.booleans(),
        "tls_required": st.booleans(),
        "allow_plain": st.booleans(),
        "max_auth_failures": st.integers(1, 4),
        "max_stanza_bytes": st.sampled_from([256, 1024, 262144]),
        "max_depth": st.integers(2, 8),
    }
)


def negotiation(opts: dict) -> ng.C2SNegotiation:
    if opts["tls_required"] and not (opts["tls_available"] or opts["secure"]):
        opts = {**opts, "tls_required": False}
    neg = ng.C2SNegotiation(domain=DOMAIN, scram_iterations=16, scram_fake_key=b"k" * 32, **opts)
    if opts["secure"]:
        neg.set_channel_bindings(BINDINGS)
    return neg


class Caller:
    """Answers every request correctly, picking among the possible answers with ``choose``."""

    def __init__(self, neg: ng.C2SNegotiation, choose) -> None:
        self.neg, self.choose = neg, choose
        self.user: str | None = None
        self.closed: ng.Closed | None = None
        self.output: list[bytes] = []

    def drain(self) -> None:
        for _ in range(10_000):
            event = self.neg.next_event()
            if event is ng.NEED_DATA:
                return
            assert isinstance(event, EVENTS), event
            if self.closed is not None:
                assert event == self.closed, "Closed must repeat once the stream is over"
                return
            self.answer(event)
        raise AssertionError("next_event() never asked for data")

    def answer(self, event: object) -> None:
        if isinstance(event, ng.SendData):
            assert event.data
            self.output.append(event.data)
        elif isinstance(event, ng.Closed):
            assert event.error is None or isinstance(event.error, StreamError)
            self.closed = event
        elif isinstance(event, ng.StartTLS):
            self.neg.tls_started()
            self.neg.set_channel_bindings(BINDINGS)
        elif isinstance(event, ng.CredentialsNeeded):
            answer = self.choose(["known", "unknown", "refuse"])
            if answer == "refuse":
                self.neg.refuse_credentials(Failure("temporary-auth-failure"))
            else:
                known = ACCOUNTS.get(event.username, {}).get(event.mechanism)
                self.neg.provide_credentials(known if answer == "known" else None)
        elif isinstance(event, ng.Authenticated):
            self.user = event.username
        elif isinstance(event, ng.BindRequested):
            if self.choose(["bind", "conflict"]) == "conflict":
                self.neg.bind_failed(StanzaError("conflict"))
            else:
                self.neg.bind_done(JID.make(self.user, DOMAIN, event.resource or "generated"))


def check_output(output: list[bytes]) -> None:
    """The server's bytes parse as XML streams, restarting after ``<proceed/>``/``<success/>``."""
    parser = XMLStreamParser(max_stanza_bytes=1 << 20, max_depth=64)
    data = b"".join(output)
    while data:
        size = data.find(b">") + 1 or len(data)
        parser.feed(data[:size])  # a RemoteProtocolError here fails the test
        data = data[size:]
        while (event := parser.next_event()) is not NEED_DATA:
            if isinstance(event, StanzaReceived) and event.element.tag in RESTARTS:
                parser = XMLStreamParser(max_stanza_bytes=1 << 20, max_depth=64)


def run(opts: dict, chunks: list[bytes], choose, *, eof: bool) -> Caller:
    caller = Caller(negotiation(opts), choose)
    caller.drain()
    for chunk in chunks:
        caller.neg.receive_data(chunk)
        caller.drain()
    if eof:
        caller.neg.receive_eof()
        caller.drain()
    if caller.closed is not None:
        caller.neg.receive_data(b"<more/>")  # ignored once closed
        assert caller.neg.next_event() == caller.closed
    check_output(caller.output)
    return caller


@FUZZ
@given(options, inputs.flatmap(chunked), st.booleans(), st.data())
def test_random_element_sequences_with_a_correct_caller(opts, chunks, eof, data) -> None:
    run(opts, chunks, lambda choices: data.draw(st.sampled_from(choices)), eof=eof)


CALLS = [
    "tls_started",
    "set_channel_bindings",
    "provide_credentials",
    "refuse_credentials",
    "bind_done",
    "bind_failed",
    "close",
    "receive_eof",
]


@FUZZ
@given(options, inputs.flatmap(chunked), st.data())
def test_random_caller_calls_raise_only_local_protocol_error(opts, chunks, data) -> None:
    neg = negotiation(opts)
    eof = False
    for chunk in [*chunks, b""]:
        if chunk and not eof:
            neg.receive_data(chunk)
        for _ in range(100):
            if neg.next_event() is ng.NEED_DATA:
                break
        call = data.draw(st.sampled_from(CALLS))
        try:
            if call == "tls_started":
                neg.tls_started()
            elif call == "set_channel_bindings":
                neg.set_channel_bindings(BINDINGS)
            elif call == "provide_credentials":
                creds = data.draw(st.sampled_from([None, *ACCOUNTS["juliet"].values()]))
                neg.provide_credentials(creds)
            elif call == "refuse_credentials":
                neg.refuse_credentials(Failure("temporary-auth-failure"))
            elif call == "bind_done":
                neg.bind_done(JID.make("juliet", DOMAIN, "r"))
            elif call == "bind_failed":
                neg.bind_failed(StanzaError("conflict"))
            elif call == "close":
                neg.close(data.draw(st.sampled_from([None, StreamError("reset")])))
            else:
                neg.receive_eof()
                eof = True
        except LocalProtocolError:
            pass


def test_a_full_login_reaches_established() -> None:
    bind = b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
    chunks = [
        header(),
        sasl("auth", f"\0juliet\0{PASSWORD}".encode(), "PLAIN"),
        header(),
        bind,
        b"<presence/>",
    ]
    caller = run(
        {
            "secure": True,
            "tls_available": False,
            "tls_required": False,
            "allow_plain": True,
            "max_auth_failures": 3,
            "max_stanza_bytes": 262144,
            "max_depth": 8,
        },
        chunks,
        lambda choices: choices[0],
        eof=False,
    )
    assert caller.neg.state is ng.State.ESTABLISHED and caller.user == "juliet"


@pytest.mark.parametrize("path", corpus_files("negotiation"), ids=lambda p: p.name)
def test_corpus_replay(path) -> None:
    data = path.read_bytes()
    for secure in (True, False):
        opts = {
            "secure": secure,
            "tls_available": True,
            "tls_required": True,
            "allow_plain": True,
            "max_auth_failures": 3,
            "max_stanza_bytes": 1024,
            "max_depth": 8,
        }
        for choice in (0, -1):
            run(opts, [data], lambda choices, i=choice: choices[i], eof=True)
            run(
                opts,
                [data[i : i + 1] for i in range(len(data))],
                lambda choices, i=choice: choices[i],
                eof=False,
            )
