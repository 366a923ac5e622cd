"""casper.stream_management, sans-IO: XEP-0198 counters, the unacked queue and the answers;
and rule 9 of casper.negotiation (``<resume/>`` instead of binding, ``<enable/>`` too early).

Plain sync tests, table-driven: elements in, bytes and state out. The Trio side (detaching,
resuming, rescuing) is tested in ``test_stream_management.py``.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
from pathlib import Path
from xml.etree.ElementTree import Element

import pytest
from casper import negotiation as ng
from casper import stream_management as sm
from casper.errors import STANZAS_NS, LocalProtocolError, StreamError
from casper.jid import JID
from casper.sasl import derive_credentials
from casper.testing import parse_xml

NS = sm.NS


def el(xml: str) -> Element:
    """A self-closing element in the SM namespace, written without its xmlns."""
    return parse_xml(xml.replace("/>", f" xmlns='{NS}'/>", 1))


def answer_of(data: bytes) -> Element:
    return parse_xml(data.decode())


def make(max_unacked: int = 10, resume_timeout: int | None = 300) -> sm.StreamManagement[str]:
    return sm.StreamManagement(max_unacked=max_unacked, resume_timeout=resume_timeout,
                               new_id=lambda: "sm-id")  # fmt: skip


def enabled(state: sm.StreamManagement[str], resume: bool = True) -> sm.StreamManagement[str]:
    answer = state.receive(el("<enable resume='true'/>" if resume else "<enable/>"))
    assert answer is not None and answer.enabled
    state.start_counting()
    return state


def condition(data: bytes) -> str:
    failed = answer_of(data)
    assert failed.tag == f"{{{NS}}}failed"
    (child,) = list(failed)
    assert child.tag.startswith(f"{{{STANZAS_NS}}}")
    return child.tag.split("}")[1]


# -------------------------------------------------------------------- enabling


ENABLE_CASES = [
    # (enable attributes, resume_timeout, expected <enabled/> attributes)
    ("", 300, {}),
    ("resume='true'", 300, {"id": "sm-id", "resume": "true", "max": "300"}),
    ("resume='1'", 300, {"id": "sm-id", "resume": "true", "max": "300"}),
    ("resume='false'", 300, {}),
    ("resume='true' max='60'", 300, {"id": "sm-id", "resume": "true", "max": "60"}),
    ("resume='true' max='9999'", 300, {"id": "sm-id", "resume": "true", "max": "300"}),
    ("resume='true' max='junk'", 300, {"id": "sm-id", "resume": "true", "max": "300"}),
    ("resume='true' max='0'", 300, {"id": "sm-id", "resume": "true", "max": "300"}),
    ("resume='true'", None, {}),  # resumption switched off: acks only
]


@pytest.mark.parametrize("attrs, timeout, expected", ENABLE_CASES)
def test_enable_answers(attrs: str, timeout: int | None, expected: dict[str, str]) -> None:
    state = make(resume_timeout=timeout)
    answer = state.receive(parse_xml(f"<enable xmlns='{NS}' {attrs}/>"))
    assert answer is not None and answer.enabled
    reply = answer_of(answer.data)
    assert reply.tag == f"{{{NS}}}enabled"
    assert reply.attrib == expected
    assert state.enabled and state.resumable == bool(expected)
    assert state.id == expected.get("id") and state.max == (
        int(expected["max"]) if expected else None
    )


def test_new_ids_are_unpredictable() -> None:
    ids = set()
    for _ in range(3):
        state = sm.StreamManagement[str](max_unacked=10, resume_timeout=60)
        state.receive(el("<enable resume='true'/>"))
        ids.add(state.id)
    assert len(ids) == 3 and all(i and len(i) >= 24 for i in ids)


@pytest.mark.parametrize("element", ["<enable/>", "<resume previd='x' h='0'/>"])
def test_second_enable_or_late_resume_fail_with_unexpected_request(element: str) -> None:
    state = enabled(make())
    answer = state.receive(el(element))
    assert answer is not None and not answer.enabled
    assert condition(answer.data) == "unexpected-request"
    assert state.id == "sm-id"  # unchanged


@pytest.mark.parametrize("element", ["<r/>", "<a h='0'/>"])
def test_requests_and_acks_before_enable_end_the_stream(element: str) -> None:
    with pytest.raises(StreamError) as info:
        make().receive(el(element))
    assert info.value.condition == "unsupported-stanza-type"


@pytest.mark.parametrize("enable", [False, True])
def test_unknown_elements_in_the_namespace_end_the_stream(enable: bool) -> None:
    state = enabled(make()) if enable else make()
    for name in ("enabled", "resumed", "failed", "nonsense"):
        with pytest.raises(StreamError) as info:
            state.receive(parse_xml(f"<{name} xmlns='{NS}'/>"))
        assert info.value.condition == "unsupported-stanza-type"


def test_every_client_input_has_an_answer_in_every_state() -> None:
    for state in sm.State:
        for kind in sm.Input:
            handler = sm.TRANSITIONS[(state, kind)]
            assert callable(getattr(sm.StreamManagement, handler))


def test_start_counting_before_enable_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="'off'"):
        make().start_counting()


# -------------------------------------------------------------------- counting and acks


def test_inbound_counting_starts_with_enable() -> None:
    state = make()
    state.stanza_received()  # before <enable/>: not counted
    enabled(state)
    for _ in range(3):
        state.stanza_received()
    answer = state.receive(el("<r/>"))
    assert answer is not None
    ack = answer_of(answer.data)
    assert ack.tag == f"{{{NS}}}a" and ack.get("h") == "3"


def test_outbound_counting_starts_when_enabled_is_written() -> None:
    state = make()
    state.receive(el("<enable/>"))
    assert not state.sent("written before <enabled/>")  # not tracked
    state.start_counting()
    assert state.sent("m1") and state.sent("m2") and state.sent("m3")
    assert (state.sent_count, state.pending, state.unrequested) == (3, 3, 3)


ACK_CASES = [
    # (stanzas sent, h values acked in order, left unacked)
    (3, [0], ["m1", "m2", "m3"]),
    (3, [1], ["m2", "m3"]),
    (3, [3], []),
    (3, [1, 1, 2], ["m3"]),  # the same h twice acks nothing more
    (3, [2, 3], []),
]


@pytest.mark.parametrize("sent, acks, left", ACK_CASES)
def test_acks_trim_the_queue(sent: int, acks: list[int], left: list[str]) -> None:
    state = enabled(make())
    for n in range(1, sent + 1):
        state.sent(f"m{n}")
    for h in acks:
        assert state.receive(el(f"<a h='{h}'/>")) is None
    assert state.take_all() == left
    assert state.acked == acks[-1]


@pytest.mark.parametrize("h", ["4", "-1", "x", "", "4294967296", None])
def test_bad_or_too_high_h_is_a_stream_error(h: str | None) -> None:
    state = enabled(make())
    for n in range(3):
        state.sent(f"m{n}")
    element = (
        parse_xml(f"<a xmlns='{NS}'/>") if h is None else parse_xml(f"<a xmlns='{NS}' h='{h}'/>")
    )
    with pytest.raises(StreamError) as info:
        state.receive(element)
    assert info.value.condition == "undefined-condition"
    assert state.pending == 3  # nothing was dropped


def test_too_high_h_names_handled_count_too_high_with_both_counts() -> None:
    state = enabled(make())
    for n in range(3):
        state.sent(f"m{n}")
    with pytest.raises(StreamError) as info:
        state.receive(el("<a h='5'/>"))
    app = info.value.app
    assert app is not None and app.tag == f"{{{NS}}}handled-count-too-high"
    assert (app.get("h"), app.get("send-count")) == ("5", "3")


def test_counters_wrap_at_two_to_the_32() -> None:
    state = enabled(make(max_unacked=100))
    state._inbound = sm.MODULUS - 1
    state.stanza_received()
    assert state.inbound == 0
    state._acked = sm.MODULUS - 2
    for n in range(4):
        state.sent(f"m{n}")
    assert state.sent_count == 2
    state.receive(el("<a h='1'/>"))  # 2**32-2 + 3, wrapped
    assert state.take_all() == ["m3"]


def test_requests_reset_the_unrequested_count() -> None:
    state = enabled(make())
    state.sent("m1")
    state.sent("m2")
    state.request_sent()
    assert state.unrequested == 0
    state.sent("m3")
    assert state.unrequested == 1
    assert sm.REQUEST_DATA == f"<r xmlns='{NS}'/>".encode()


def test_over_limit_counts_unacked_and_held_and_drops_nothing() -> None:
    state = enabled(make(max_unacked=3))
    state.sent("m1")
    state.sent("m2")
    state.hold("m3")
    assert not state.over_limit
    state.hold("m4")
    assert state.over_limit
    assert state.take_all() == ["m1", "m2", "m3", "m4"]
    assert not state.over_limit


def test_held_items_come_after_the_unacked_ones_and_hold_first_keeps_order() -> None:
    state = enabled(make())
    state.sent("m1")
    state.hold("m4")
    state.hold_first(["m2", "m3"])
    assert state.take_all() == ["m1", "m2", "m3", "m4"]


# -------------------------------------------------------------------- resumption


RESUME_CASES = [
    # (sent, client's h on resume, retransmitted)
    (0, 0, ["held"]),
    (3, 0, ["m1", "m2", "m3", "held"]),
    (3, 2, ["m3", "held"]),
    (3, 3, ["held"]),
]


@pytest.mark.parametrize("sent, h, resent", RESUME_CASES)
def test_resume_retransmits_after_h_and_renumbers(sent: int, h: int, resent: list[str]) -> None:
    state = enabled(make())
    for _ in range(2):
        state.stanza_received()
    for n in range(1, sent + 1):
        state.sent(f"m{n}")
    state.hold("held")
    reply = answer_of(state.resume(h))
    assert reply.tag == f"{{{NS}}}resumed"
    assert reply.attrib == {"h": "2", "previd": "sm-id"}
    assert state.retransmit() == resent
    assert state.sent_count == h and state.pending == 0
    for item in resent:  # written again on the new stream: numbered as before
        state.sent(item)
    assert state.sent_count == sent + 1
    state.receive(el(f"<a h='{sent + 1}'/>"))
    assert state.pending == 0


def test_resume_with_too_high_h_is_a_stream_error_and_keeps_the_queue() -> None:
    state = enabled(make())
    state.sent("m1")
    with pytest.raises(StreamError) as info:
        state.resume(2)
    assert info.value.condition == "undefined-condition"
    assert info.value.app is not None and info.value.app.get("send-count") == "1"
    assert state.take_all() == ["m1"]


def test_resume_needs_a_resumable_session() -> None:
    state = enabled(make(), resume=False)
    with pytest.raises(LocalProtocolError):
        state.resume(0)


@pytest.mark.parametrize(
    "text, value",
    [("0", 0), ("17", 17), ("4294967295", 4294967295), ("4294967296", None), ("-1", None),
     ("+1", None), (" 1", None), ("1.0", None), ("", None), (None, None), ("١", None)],
)  # fmt: skip
def test_parse_counter(text: str | None, value: int | None) -> None:
    assert sm.parse_counter(text) == value


def test_failed_and_feature_elements() -> None:
    assert condition(sm.failed("item-not-found")) == "item-not-found"
    assert answer_of(sm.failed("item-not-found", h=5)).get("h") == "5"
    assert sm.feature().tag == f"{{{NS}}}sm"
    assert sm.is_sm_element(el("<r/>")) and not sm.is_sm_element(parse_xml("<message/>"))


def test_module_is_sans_io() -> None:
    spec = importlib.util.find_spec("casper.stream_management")
    assert spec is not None and spec.origin is not None
    imported: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "asyncio", "socket", "ssl", "time"}


# -------------------------------------------------------------------- negotiation rule 9

DOMAIN = "example.com"
HEADER = (
    f"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    f" to='{DOMAIN}' version='1.0'>"
).encode()


def drive(neg: ng.C2SNegotiation, data: bytes = b"") -> list[object]:
    """Feed ``data`` and return the events up to NEED_DATA (credentials are answered)."""
    if data:
        neg.receive_data(data)
    events: list[object] = []
    while (event := neg.next_event()) is not ng.NEED_DATA:
        events.append(event)
        if isinstance(event, ng.CredentialsNeeded):
            neg.provide_credentials(derive_credentials("secret", iterations=16)[event.mechanism])
        if isinstance(event, ng.Closed):
            break
    return events


def authenticated_negotiation() -> ng.C2SNegotiation:
    neg = ng.C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=False, secure=True)
    drive(neg, HEADER)
    drive(neg, b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
               + base64.b64encode(b"\0juliet\0secret") + b"</auth>")  # fmt: skip
    events = drive(neg, HEADER)
    assert neg.state is ng.State.BIND, events
    return neg


def sent(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ng.SendData))


@pytest.mark.parametrize("split", [False, True])
def test_negotiation_passes_resume_up_instead_of_a_bind_request(split: bool) -> None:
    neg = authenticated_negotiation()
    resume = f"<resume xmlns='{NS}' previd='abc' h='7'/>".encode()
    events: list[object] = []
    for chunk in [resume[i : i + 1] for i in range(len(resume))] if split else [resume]:
        events += drive(neg, chunk)
    assert events == [ng.ResumeRequested("abc", "7")]
    assert neg.state is ng.State.RESUME_PENDING
    jid = JID.make("juliet", DOMAIN, "balcony")
    with pytest.raises(LocalProtocolError):
        neg.resume_done(JID.make("romeo", DOMAIN, "r"), b"")  # another account's session
    neg.resume_done(jid, b"<resumed/>")
    events = drive(neg, b"<message/>")
    assert sent(events) == b"<resumed/>"
    assert [type(e) for e in events] == [ng.SendData, ng.Resumed, ng.StanzaIn]
    assert neg.state is ng.State.ESTABLISHED


def test_negotiation_failed_resume_lets_the_client_bind() -> None:
    neg = authenticated_negotiation()
    drive(neg, f"<resume xmlns='{NS}' previd='abc' h='0'/>".encode())
    neg.resume_failed(sm.failed("item-not-found"))
    events = drive(
        neg, b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
    )
    assert condition(sent(events)) == "item-not-found"
    assert isinstance(events[-1], ng.BindRequested)


def test_negotiation_enable_before_bind_fails_and_both_pass_through_after_it() -> None:
    neg = authenticated_negotiation()
    events = drive(neg, f"<enable xmlns='{NS}'/>".encode())
    assert condition(sent(events)) == "unexpected-request" and neg.state is ng.State.BIND
    drive(neg, b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    neg.bind_done(JID.make("juliet", DOMAIN, "r"))
    drive(neg)
    for xml in (
        f"<enable xmlns='{NS}'/>",
        f"<resume xmlns='{NS}' previd='x' h='0'/>",
        f"<r xmlns='{NS}'/>",
    ):
        (event,) = drive(neg, xml.encode())
        assert isinstance(event, ng.StanzaIn) and event.element.tag.startswith(f"{{{NS}}}")


def test_negotiation_rejects_sm_elements_before_authentication() -> None:
    neg = ng.C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=False, secure=True)
    drive(neg, HEADER)
    events = drive(neg, f"<resume xmlns='{NS}' previd='abc' h='0'/>".encode())
    assert isinstance(events[-1], ng.Closed) and events[-1].error is not None
    assert events[-1].error.condition == "not-authorized"
