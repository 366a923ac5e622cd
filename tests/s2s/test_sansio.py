"""The sans-IO s2s machines (inbound, outbound), dialback keys and DNS messages, without I/O.

An :class:`outbound.OutboundStream` and an :class:`inbound.InboundStream` are wired to each
other in memory (TLS off); dialback verification is answered by a third pair standing for
the authoritative server, as XEP-0220 §2 draws it. Every exchange is also fed byte by byte.
"""

from __future__ import annotations

import ast
import importlib.util
import struct
from pathlib import Path

import pytest
from casper.errors import StreamError
from casper.s2s import dns, inbound, outbound, wire
from casper.xml import NEED_DATA

SECRET_A, SECRET_B = b"secret of a", b"secret of b"
A, B = "a.test", "b.test"


def key_of(secret: bytes):
    return lambda receiving, originating, stream_id: wire.dialback_key(
        secret, receiving, originating, stream_id
    )


def make_inbound(**options: object) -> inbound.InboundStream:
    defaults: dict[str, object] = {
        "hosted": lambda d: d == B,
        "default_domain": B,
        "dialback_key": key_of(SECRET_B),
        "tls_available": False,
        "require_tls": False,
    }
    return inbound.InboundStream(**{**defaults, **options})  # type: ignore[arg-type]


def make_outbound(secret: bytes = SECRET_A, **options: object) -> outbound.OutboundStream:
    defaults: dict[str, object] = {
        "local": A,
        "remote": B,
        "require_tls": False,
        "tls_available": False,
        "dialback_key": lambda sid: wire.dialback_key(secret, B, A, sid),
    }
    return outbound.OutboundStream(**{**defaults, **options})  # type: ignore[arg-type]


def pump(out: outbound.OutboundStream, into: inbound.InboundStream, *,
         byte_by_byte: bool = False) -> tuple[list[object], list[object]]:  # fmt: skip
    """Exchange bytes until both sides need data; return (outbound events, inbound events)."""
    out_events: list[object] = []
    in_events: list[object] = []
    for _ in range(50):
        progressed = False
        for source, sink, events in ((out, into, in_events), (into, out, out_events)):
            data = source.data_to_send()
            if data:
                progressed = True
                chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
                for chunk in chunks:
                    sink.receive_data(chunk)
            while sink.closed is None and (event := sink.next_event()) is not NEED_DATA:
                events.append(event)
                progressed = True
        if not progressed:
            return out_events, in_events
    raise AssertionError("no quiescence")


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_dialback_valid_key_authorizes_the_pair(byte_by_byte: bool) -> None:
    out, into = make_outbound(), make_inbound()
    out.start()
    out_events, in_events = pump(out, into, byte_by_byte=byte_by_byte)
    (request,) = in_events
    assert isinstance(request, inbound.DialbackRequest)
    assert (request.originating, request.receiving) == (A, B)
    assert request.stream_id == into.stream_id == out.stream_id
    # B asks A (the authoritative server) on a stream B -> A; A answers from its secret
    authority = make_inbound(
        hosted=lambda d: d == A, default_domain=A, dialback_key=key_of(SECRET_A)
    )
    asker = make_outbound(local=B, remote=A, dialback_key=lambda sid: "unused")
    asker.request_verify(B, A, request.stream_id, request.key)
    asker.start()
    asker_events, _ = pump(asker, authority, byte_by_byte=byte_by_byte)
    verdict = next(e for e in asker_events if isinstance(e, outbound.VerifyResult))
    assert verdict == outbound.VerifyResult(B, A, request.stream_id, True)
    into.dialback_result(A, B, verdict.valid)
    out_events, in_events = pump(out, into, byte_by_byte=byte_by_byte)
    assert out_events == [outbound.Authenticated("dialback")]
    assert in_events == [inbound.Authorized(A, B)]
    assert out.ready and into.authorized == {(A, B)}
    out.send_stanza(wire.to_client_ns(_message(f"romeo@{A}/r", f"juliet@{B}")))
    _, in_events = pump(out, into, byte_by_byte=byte_by_byte)
    (stanza,) = in_events
    assert isinstance(stanza, inbound.StanzaIn)
    assert stanza.element.tag == "{jabber:client}message"
    assert stanza.element.find("{jabber:client}body").text == "hi"  # type: ignore[union-attr]


def test_a_forged_key_is_invalid_and_closes_the_stream() -> None:
    out, into = make_outbound(secret=b"not a's secret"), make_inbound()
    out.start()
    _, (request,) = pump(out, into)
    authority = make_inbound(
        hosted=lambda d: d == A, default_domain=A, dialback_key=key_of(SECRET_A)
    )
    asker = make_outbound(local=B, remote=A, dialback_key=lambda sid: "unused")
    asker.start()
    asker.request_verify(B, A, request.stream_id, request.key)
    asker_events, _ = pump(asker, authority)
    verdict = next(e for e in asker_events if isinstance(e, outbound.VerifyResult))
    assert not verdict.valid
    into.dialback_result(A, B, False)
    out_events, _ = pump(out, into)
    assert into.closed is not None and into.closed.error is not None
    assert into.closed.error.condition == "not-authorized"
    assert isinstance(out_events[-1], outbound.Closed) and out_events[-1].error is not None
    assert out_events[-1].error.condition == "not-authorized"


def _message(from_: str, to: str) -> object:
    from xml.etree.ElementTree import Element, SubElement

    element = Element("{jabber:client}message", {"from": from_, "to": to, "type": "chat"})
    SubElement(element, "{jabber:client}body").text = "hi"
    return element


HEADER = (
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
    "xmlns:db='jabber:server:dialback' from='{frm}' to='{to}' version='1.0'>"
)


def opened(into: inbound.InboundStream, frm: str = A, to: str = B, **fmt: str) -> None:
    into.receive_data(HEADER.format(frm=frm, to=to).encode())
    assert into.next_event() is NEED_DATA


def closed_with(into: inbound.InboundStream) -> str:
    event = into.next_event()
    assert isinstance(event, inbound.Closed), event
    assert event.error is not None
    assert b"<stream:error>" in into.data_to_send()
    return event.error.condition


@pytest.mark.parametrize(
    "header, condition",
    [
        (HEADER.format(frm=A, to="elsewhere.test"), "host-unknown"),
        (HEADER.format(frm=B, to=B), "invalid-from"),
        (
            HEADER.format(frm=A, to=B).replace("jabber:server'", "jabber:client'", 1),
            "invalid-namespace",
        ),
        (
            HEADER.format(frm=A, to=B).replace("version='1.0'", "version='0.9'"),
            "unsupported-version",
        ),
    ],
)
def test_bad_headers(header: str, condition: str) -> None:
    into = make_inbound()
    into.receive_data(header.encode())
    assert closed_with(into) == condition


def test_stanza_before_authentication_is_not_authorized() -> None:
    into = make_inbound()
    opened(into)
    into.receive_data(b"<message from='x@a.test' to='y@b.test'><body>hi</body></message>")
    assert closed_with(into) == "not-authorized"


def _authorized() -> inbound.InboundStream:
    into = make_inbound()
    opened(into)
    into.receive_data(b"<db:result from='a.test' to='b.test'>key</db:result>")
    assert isinstance(into.next_event(), inbound.DialbackRequest)
    into.dialback_result(A, B, True)
    assert into.next_event() == inbound.Authorized(A, B)
    into.data_to_send()
    return into


@pytest.mark.parametrize(
    "stanza, condition",
    [
        ("<message from='eve@c.test' to='y@b.test'/>", "invalid-from"),
        ("<message from='x@b.test' to='y@b.test'/>", "invalid-from"),  # spoofing a local JID
        ("<message from='x@a.test' to='y@c.test'/>", "host-unknown"),
        ("<message to='y@b.test'/>", "improper-addressing"),
        ("<foo xmlns='urn:x'/>", "unsupported-stanza-type"),
    ],
)
def test_authenticated_peer_cannot_spoof(stanza: str, condition: str) -> None:
    into = _authorized()
    into.receive_data(stanza.encode())
    assert closed_with(into) == condition


def test_oversized_stanza_is_a_policy_violation() -> None:
    into = make_inbound(max_stanza_bytes=1024)
    opened(into)
    into.receive_data(b"<message from='x@a.test' to='y@b.test'><body>" + b"x" * 2000)
    assert closed_with(into) == "policy-violation"


def test_dialback_before_tls_when_required_is_refused() -> None:
    into = make_inbound(tls_available=True, require_tls=True)
    opened(into)
    features = into.data_to_send()
    assert b"<starttls" in features and b"<required/>" in features
    assert b"urn:xmpp:features:dialback" not in features
    into.receive_data(b"<db:result from='a.test' to='b.test'>k</db:result>")
    assert closed_with(into) == "policy-violation"


def test_starttls_then_restart_offers_dialback() -> None:
    into = make_inbound(tls_available=True, require_tls=True)
    opened(into)
    into.data_to_send()
    into.receive_data(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert isinstance(into.next_event(), inbound.StartTLS)
    assert b"<proceed" in into.data_to_send()
    into.tls_started()
    opened(into)
    assert b"urn:xmpp:features:dialback" in into.data_to_send()


def test_plaintext_after_starttls_is_injection() -> None:
    into = make_inbound(tls_available=True, require_tls=True)
    opened(into)
    into.receive_data(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message/>")
    assert closed_with(into) == "policy-violation"


def test_db_verify_is_answered_from_the_secret() -> None:
    into = make_inbound()
    opened(into)
    into.data_to_send()
    good = wire.dialback_key(SECRET_B, "c.test", B, "sid1")
    into.receive_data(f"<db:verify from='c.test' to='b.test' id='sid1'>{good}</db:verify>".encode())
    into.receive_data(b"<db:verify from='c.test' to='b.test' id='sid1'>bad</db:verify>")
    assert into.next_event() is NEED_DATA
    answers = into.data_to_send()
    assert answers.count(b"type='valid'") == 1 and answers.count(b"type='invalid'") == 1


def test_outbound_requires_tls_when_configured() -> None:
    out = make_outbound(require_tls=True, tls_available=True)
    out.start()
    out.data_to_send()
    out.receive_data(HEADER.format(frm=B, to=A).replace("version", "id='x' version").encode())
    out.receive_data(b"<stream:features/>")
    event = out.next_event()
    assert isinstance(event, outbound.Closed) and event.error is not None
    assert event.error.condition == "policy-violation"


def test_outbound_turns_a_peer_stream_error_into_closed() -> None:
    out = make_outbound()
    out.start()
    out.receive_data(HEADER.format(frm=B, to=A).replace("version", "id='x' version").encode())
    out.receive_data(
        b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    )
    event = out.next_event()
    assert isinstance(event, outbound.Closed) and event.error == event.error
    assert isinstance(event.error, StreamError) and event.error.condition == "host-unknown"


def test_dialback_key_is_xep_0185() -> None:
    """HMAC-SHA256 keyed with the hex SHA-256 of the secret over "receiving originating id"
    (XEP-0185 §2; Prosody's mod_dialback computes the same)."""
    import hashlib
    import hmac

    secret = b"s3cr3tf0rd14lb4ck"
    expected = hmac.new(hashlib.sha256(secret).hexdigest().encode(),
                        b"example.net example.com D60000229F", hashlib.sha256).hexdigest()  # fmt: skip
    assert wire.dialback_key(secret, "example.net", "example.com", "D60000229F") == expected
    assert wire.dialback_key(secret, "example.com", "example.net", "D60000229F") != expected


# ---------------------------------------------------------------- DNS


def _srv_answer(query: bytes, records: list[tuple[int, int, int, str]], rcode: int = 0) -> bytes:
    query_id = struct.unpack("!H", query[:2])[0]
    header = struct.pack("!HHHHHH", query_id, 0x8180 | rcode, 1, len(records), 0, 0)
    question = query[12:]
    answers = b""
    for priority, weight, port, target in records:
        rdata = struct.pack("!HHH", priority, weight, port) + dns.encode_name(target)
        answers += b"\xc0\x0c" + struct.pack("!HHIH", dns.SRV, dns.IN, 60, len(rdata)) + rdata
    return header + question + answers


def test_srv_query_and_answer_round_trip() -> None:
    query = dns.build_query(4242, "_xmpp-server._tcp.example.org")
    answer = _srv_answer(
        query, [(10, 5, 5269, "xmpp1.example.org"), (5, 0, 5270, "xmpp0.example.org")]
    )
    records = dns.parse_srv_answer(answer, 4242)
    assert records == [
        dns.SRVRecord(10, 5, 5269, "xmpp1.example.org"),
        dns.SRVRecord(5, 0, 5270, "xmpp0.example.org"),
    ]
    assert [r.target for r in dns.order_srv(records)] == ["xmpp0.example.org", "xmpp1.example.org"]
    assert dns.parse_srv_answer(answer, 1) is None  # someone else's answer
    assert dns.parse_srv_answer(_srv_answer(query, [], rcode=3), 4242) == []


@pytest.mark.parametrize("cut", [5, 20, 40])
def test_truncated_dns_answers_are_format_errors(cut: int) -> None:
    query = dns.build_query(7, "_xmpp-server._tcp.example.org")
    answer = _srv_answer(query, [(0, 0, 5269, "x.example.org")])
    with pytest.raises(dns.DNSFormatError):
        dns.parse_srv_answer(answer[:cut], 7)


def test_compression_loops_are_refused() -> None:
    message = b"\0" * 12 + b"\xc0\x0c"
    with pytest.raises(dns.DNSFormatError):
        dns.read_name(message, 12)


@pytest.mark.parametrize("module", ["inbound", "outbound", "wire", "dns", "certs"])
def test_sans_io_modules_do_not_import_trio(module: str) -> None:
    spec = importlib.util.find_spec(f"casper.s2s.{module}")
    assert spec is not None and spec.origin is not None
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        assert not any(name.split(".")[0] == "trio" for name in names), (module, names)
