"""The sans-IO BOSH session (XEP-0124/0206) and the framing helpers: plain sync table tests.

Time is a number passed in; nothing here runs an event loop. Rule numbers refer to the
docstring of :mod:`casper.transports.bosh_session`.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from casper.errors import RemoteProtocolError
from casper.transports import bosh_session, framing
from casper.transports.bosh_session import (
    BOSH_NS,
    BoshError,
    BoshLimits,
    BoshRequest,
    BoshSession,
    State,
    parse_request,
)
from casper.transports.framing import StreamSplitter, parse_element, standalone
from casper.xml import STREAM_CLOSE

LIMITS = BoshLimits(max_wait=30, max_hold=1, inactivity=60, polling=5, max_body_bytes=4096,
                    max_depth=16, max_pending=8)  # fmt: skip
SID = "s1"
RID = 1000
MSG = "<message xmlns='jabber:client' to='juliet@localhost'><body>hi</body></message>"


def body(rid: int, payload: str = "", *, sid: str | None = SID, **attrs: str) -> bytes:
    fields = {"rid": str(rid), **({"sid": sid} if sid else {}), **attrs}
    text = " ".join(f"{k.replace('__', ':')}='{v}'" for k, v in fields.items())
    return f"<body xmlns='{BOSH_NS}' xmlns:xmpp='urn:xmpp:xbosh' {text}>{payload}</body>".encode()


def req(rid: int, payload: str = "", **attrs: str) -> BoshRequest:
    return parse_request(body(rid, payload, **attrs), limits=LIMITS)


def create(now: float = 0.0, limits: BoshLimits = LIMITS, **attrs: str) -> BoshSession:
    fields = {"to": "localhost", "wait": "20", "hold": "1", "ver": "1.6", "xmpp__version": "1.0"}
    fields.update(attrs)
    request = parse_request(body(RID, sid=None, **fields), limits=limits)
    return BoshSession.create(SID, request, domain="localhost", limits=limits, now=now)


def answer(session: BoshSession, rid: int) -> Element:
    data = session.response(rid)
    assert data is not None, f"rid {rid} is still held"
    return parse_element(data, max_bytes=1 << 20, max_depth=32)


def element(xml: str) -> Element:
    return parse_element(xml.encode(), max_bytes=1 << 20, max_depth=32)


def drain(session: BoshSession) -> bytes | None:
    chunks = []
    while (data := session.take_inbound(1 << 20)) is not None:
        if not data:
            return b"".join(chunks)
        chunks.append(data)
    return b"".join(chunks) + b"<EOF>"


# ---------------------------------------------------------------- parsing requests

GOOD = body(5, MSG)
PARSE_CASES = [
    ("whole", GOOD, None),
    ("xml declaration", b"<?xml version='1.0'?>" + GOOD, None),
    ("trailing data", GOOD + b"<body/>", "bad-request"),
    ("truncated", GOOD[:-3], "bad-request"),
    ("not xml", b"hello there", "bad-request"),
    ("empty", b"", "bad-request"),
    ("wrong root", b"<html xmlns='http://www.w3.org/1999/xhtml'/>", "bad-request"),
    ("body without namespace", b"<body rid='1'/>", "bad-request"),
    ("missing rid", b"<body xmlns='http://jabber.org/protocol/httpbind'/>", "bad-request"),
    ("negative rid", body(5).replace(b"rid='5'", b"rid='-5'"), "bad-request"),
    ("dtd", b"<!DOCTYPE body [<!ENTITY a 'b'>]>" + GOOD, "bad-request"),
    ("too large", body(5, "<presence xmlns='jabber:client'/>" * 200), "policy-violation"),
]


@pytest.mark.parametrize(
    ("data", "condition"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_parse_request(data: bytes, condition: str | None) -> None:
    if condition is None:
        request = parse_request(data, limits=LIMITS)
        assert (request.rid, request.sid, len(request.payload)) == (5, SID, 1)
        assert request.payload[0].tag == "{jabber:client}message"
        return
    with pytest.raises(BoshError) as info:
        parse_request(data, limits=LIMITS)
    assert info.value.condition == condition
    assert info.value.status == (413 if condition == "policy-violation" else 400)
    assert b"type='terminate'" in info.value.body()


def test_parse_request_requalifies_bosh_namespace_as_jabber_client() -> None:
    request = parse_request(
        body(5, "<message to='a@localhost'><body>x</body></message>"), limits=LIMITS
    )
    message = request.payload[0]
    assert message.tag == "{jabber:client}message"
    assert message[0].tag == "{jabber:client}body"


# ---------------------------------------------------------------- creation (rule 1)


def test_creation_caps_wait_and_hold_and_opens_the_stream() -> None:
    session = create(wait="600", hold="5", xml__lang="en")
    assert (session.wait, session.hold, session.requests) == (30, 1, 2)
    assert drain(session) == (
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
        b" to='localhost' version='1.0' xml:lang='en'>"
    )
    assert session.response(RID) is None  # rule 4: held until there is something to say


def test_creation_response_carries_session_attributes_and_features() -> None:
    session = create()
    session.stream_opened({"id": "stream-1", "from": "localhost"}, 0.1)
    session.send(element("<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>"), 0.1)
    reply = answer(session, RID)
    expected = {"sid": SID, "wait": "20", "requests": "2", "hold": "1", "inactivity": "60",
                "polling": "5", "ver": "1.6", "authid": "stream-1", "from": "localhost"}  # fmt: skip
    assert expected.items() <= reply.attrib.items()
    assert reply.get("{urn:xmpp:xbosh}version") == "1.0"
    assert [child.tag for child in reply] == ["{http://etherx.jabber.org/streams}features"]


@pytest.mark.parametrize(
    ("attrs", "condition"),
    [({"to": "elsewhere"}, "host-unknown"), ({"wait": "soon"}, "bad-request")],
)
def test_creation_refused(attrs: dict[str, str], condition: str) -> None:
    with pytest.raises(BoshError) as info:
        create(**attrs)
    assert info.value.condition == condition


def test_creation_with_a_sid_is_refused() -> None:
    request = req(RID, to="localhost")
    with pytest.raises(BoshError, match="bad-request"):
        BoshSession.create(SID, request, domain="localhost", limits=LIMITS, now=0)


# ---------------------------------------------------------------- holding and waiting (rule 4)


def test_held_request_is_answered_empty_after_wait() -> None:
    session = create()
    assert session.next_deadline() == 20
    session.tick(19.9)
    assert session.response(RID) is None
    session.tick(20)
    reply = answer(session, RID)
    assert len(reply) == 0 and reply.get("sid") == SID
    assert session.next_deadline() == 20 + LIMITS.inactivity  # now idle


def test_a_new_request_releases_the_older_one_beyond_hold() -> None:
    session = create()
    session.receive(req(RID + 1), 1)
    assert answer(session, RID).get("sid") == SID and session.response(RID + 1) is None
    session.receive(req(RID + 2, MSG), 2)
    assert len(answer(session, RID + 1)) == 0 and session.held == 1


def test_output_goes_to_the_oldest_held_request_at_once_and_is_batched() -> None:
    session = create()
    session.receive(req(RID + 1), 1)
    first, second = element(MSG), element("<presence xmlns='jabber:client'/>")
    session.send(first, 2)
    reply = answer(session, RID + 1)
    assert [child.tag for child in reply] == ["{jabber:client}message"]
    session.send(second, 3)
    session.send(first, 3)
    assert session.pending == 2  # nothing held: it waits for the next request
    session.receive(req(RID + 2), 4)
    assert [child.tag for child in answer(session, RID + 2)] == [
        "{jabber:client}presence",
        "{jabber:client}message",
    ]


# ---------------------------------------------------------------- ordering and retransmission


def test_requests_are_processed_in_rid_order() -> None:
    session = create(hold="1")
    drain(session)
    session.tick(20)  # the creation request is answered: two may be open now
    session.receive(req(RID + 2, "<presence xmlns='jabber:client' id='second'/>"), 21)
    assert drain(session) == b""  # rule 2: waits for RID + 1
    session.receive(req(RID + 1, "<presence xmlns='jabber:client' id='first'/>"), 22)
    data = drain(session)
    assert data is not None and data.index(b"first") < data.index(b"second")


def test_retransmitted_rid_gets_the_same_answer() -> None:
    session = create()
    session.receive(req(RID + 1, MSG), 1)
    session.send(element(MSG), 2)
    first = session.response(RID + 1)
    session.receive(req(RID + 2), 3)
    session.receive(req(RID + 1, MSG), 4)  # rule 3: the client lost the response
    assert session.response(RID + 1) == first
    assert drain(session) is not None and session.state is State.ACTIVE


@pytest.mark.parametrize(
    ("rid", "condition"),
    [(RID + 3, "item-not-found"), (RID - 50, "item-not-found")],
    ids=["beyond-window", "long-gone"],
)
def test_bad_rid_ends_the_session(rid: int, condition: str) -> None:
    session = create()
    with pytest.raises(BoshError) as info:
        session.receive(req(rid), 1)
    assert info.value.condition == condition
    assert session.state is State.TERMINATED
    assert answer(session, RID).get("type") == "terminate"  # rule 8: open requests answered
    assert drain(session) is not None and session.take_inbound(10) is None  # EOF for the stream


def test_wrong_sid_is_item_not_found() -> None:
    session = create()
    with pytest.raises(BoshError, match="item-not-found"):
        session.receive(req(RID + 1, sid="other"), 1)


# ---------------------------------------------------------------- overactivity (rule 5)


def test_more_open_requests_than_allowed_is_policy_violation() -> None:
    session = create()  # RID held
    session.receive(req(RID + 2), 1)  # early: RID + 1 missing; two open now
    with pytest.raises(BoshError) as info:
        session.receive(req(RID + 1), 2)
    assert info.value.condition == "policy-violation"
    assert answer(session, RID).get("condition") == "policy-violation"
    assert answer(session, RID + 2).get("type") == "terminate"


def test_polling_too_fast_is_policy_violation() -> None:
    session = create(hold="0")
    assert session.response(RID) is not None  # hold=0: answered at once
    session.receive(req(RID + 1), 10)
    with pytest.raises(BoshError, match="policy-violation"):
        session.receive(req(RID + 2), 11)


def test_polling_at_the_advertised_interval_is_fine() -> None:
    session = create(hold="0")
    for step in range(1, 4):
        session.receive(req(RID + step), step * LIMITS.polling)
        assert session.response(RID + step) is not None
    assert session.state is State.ACTIVE


# ---------------------------------------------------------------- restart and terminate (rule 6)


def test_restart_reopens_the_stream() -> None:
    session = create()
    drain(session)
    session.receive(req(RID + 1, to="localhost", xmpp__restart="true"), 1)
    assert drain(session) == framing.stream_header_for({"to": "localhost", "version": "1.0"})


def test_restart_with_payload_is_bad_request() -> None:
    session = create()
    with pytest.raises(BoshError, match="bad-request"):
        session.receive(req(RID + 1, MSG, to="localhost", xmpp__restart="true"), 1)
    assert session.state is State.TERMINATED


def test_terminate_delivers_payload_then_closes() -> None:
    session = create()
    drain(session)
    session.receive(
        req(RID + 1, "<presence xmlns='jabber:client' type='unavailable'/>", type="terminate"), 1
    )
    assert answer(session, RID + 1).get("type") == "terminate"
    assert answer(session, RID).get("type") == "terminate"
    assert drain(session) == b"<presence type='unavailable'/>" + STREAM_CLOSE + b"<EOF>"
    with pytest.raises(BoshError, match="item-not-found"):  # rule 8
        session.receive(req(RID + 2), 2)
    session.receive(req(RID + 1, type="terminate"), 3)  # a repeat still gets its answer


# ---------------------------------------------------------------- inactivity and closing


def test_inactive_session_ends() -> None:
    session = create()
    session.tick(20)  # creation answered; nothing held from now on
    assert session.next_deadline() == 80
    session.tick(79)
    assert session.state is State.ACTIVE
    session.tick(80)
    assert session.state is State.TERMINATED and session.reason == "inactive"
    assert session.next_deadline() == math.inf


def test_server_close_after_stream_error_is_remote_stream_error() -> None:
    session = create()
    error = "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    session.send(element(error), 1)  # goes to RID at once
    session.receive(req(RID + 1), 2)
    session.close(3)
    reply = answer(session, RID + 1)
    assert (reply.get("type"), reply.get("condition")) == ("terminate", "remote-stream-error")
    session.send(element(MSG), 4)  # ignored once terminated
    session.tick(100)
    assert session.pending == 0


# ---------------------------------------------------------------- framing helpers


def test_splitter_cuts_frames_across_a_sasl_restart_fed_byte_by_byte() -> None:
    stream = (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='a' from='localhost' version='1.0'>"
        b"<stream:features/><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='b' from='localhost' version='1.0'>"
        b"<message to='x@localhost'/></stream:stream>"
    )
    for chunks in ([stream], [stream[i : i + 1] for i in range(len(stream))]):
        splitter = StreamSplitter()
        frames = [frame for chunk in chunks for frame in splitter.feed(chunk)]
        kinds = [type(f).__name__ for f in frames]
        assert kinds == ["Opened", "ElementOut", "ElementOut", "Opened", "ElementOut", "Closed"]
        assert [f.attrs["id"] for f in frames if isinstance(f, framing.Opened)] == ["a", "b"]


def test_standalone_declares_namespaces() -> None:
    features = element(
        "<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    )
    assert standalone(features) == (
        b"<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
        b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
    )
    assert standalone(element(MSG)).startswith(b"<message xmlns='jabber:client'")


@pytest.mark.parametrize(
    ("data", "condition"),
    [
        (b"hello", "not-well-formed"),
        (b"<message>", "not-well-formed"),
        (b"<a/><b/>", "not-well-formed"),
        (b"<!-- c --><a/>", "restricted-xml"),
        (b"<a>" * 40 + b"</a>" * 40, "policy-violation"),
        (b"<a>" + b"x" * 5000 + b"</a>", "policy-violation"),
    ],
)
def test_parse_element_refuses(data: bytes, condition: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_element(data, max_bytes=4096, max_depth=16)
    assert info.value.condition == condition


@pytest.mark.parametrize("module", [bosh_session, framing])
def test_sans_io_modules_do_not_import_trio(module: object) -> None:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    names = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in names if name.split(".")[0] in ("trio", "h11", "trio_websocket")]
