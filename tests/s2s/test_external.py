"""SASL EXTERNAL between servers (RFC 6120 §6.4, XEP-0178) in the sans-IO machines: offered
only with a verified certificate, accepted only for a domain the certificate covers, a
success restarts the stream, a failure leaves dialback open. Every exchange also fed byte
by byte and with trailing data."""

from __future__ import annotations

import base64

import pytest
from casper.s2s import inbound, outbound, wire
from casper.s2s.certs import Identities, PeerCertificate
from casper.xml import NEED_DATA

from tests.s2s.test_sansio import HEADER, A, B, make_inbound, make_outbound, pump

CERT_A = PeerCertificate(Identities(dns_names=(A,)), verified=True)
UNTRUSTED_A = PeerCertificate(Identities(dns_names=(A,)), verified=False, error="self-signed")
CERT_OTHER = PeerCertificate(Identities(dns_names=("c.test",)), verified=True)
CERT_B = PeerCertificate(Identities(dns_names=(B,)), verified=True)
MECHANISMS = b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def secured(cert: PeerCertificate | None, frm: str | None = A) -> inbound.InboundStream:
    """An incoming stream after STARTTLS with ``cert``, header (from ``frm``) received."""
    into = make_inbound(tls_available=True, require_tls=True)
    into.receive_data(HEADER.format(frm=A, to=B).encode())
    into.receive_data(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert isinstance(into.next_event(), inbound.StartTLS)
    into.tls_started(cert)
    into.data_to_send()
    header = HEADER.format(frm=frm, to=B)
    if frm is None:
        header = header.replace("from='None' ", "")
    into.receive_data(header.encode())
    assert into.next_event() is NEED_DATA
    into.data_to_send()  # our header and features
    return into


def auth(into: inbound.InboundStream, payload: str, *, mechanism: str = "EXTERNAL",
         chunked: bool = False, trailing: bytes = b"") -> bytes:  # fmt: skip
    """Send ``<auth/>`` (whole or byte by byte); return what the stream answered."""
    data = f"<auth xmlns='{SASL}' mechanism='{mechanism}'>{payload}</auth>".encode() + trailing
    for chunk in [data[i : i + 1] for i in range(len(data))] if chunked else [data]:
        into.receive_data(chunk)
    while (event := into.next_event()) is not NEED_DATA:
        if isinstance(event, inbound.Closed):
            break
    return into.data_to_send()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cert, frm, offered",
    [
        (CERT_A, A, True),
        (CERT_A, None, True),  # no from: the authzid will say who
        (UNTRUSTED_A, A, False),  # the chain did not verify
        (CERT_OTHER, A, False),  # verified, but for someone else
        (None, A, False),  # no certificate at all
    ],
)
def test_external_offered_only_for_a_verified_certificate(
    cert: PeerCertificate | None, frm: str | None, offered: bool
) -> None:
    into = make_inbound(tls_available=True, require_tls=True)
    into.receive_data(HEADER.format(frm=A, to=B).encode())
    into.receive_data(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert isinstance(into.next_event(), inbound.StartTLS)
    into.tls_started(cert)
    into.data_to_send()
    header = HEADER.format(frm=frm, to=B).replace("from='None' ", "")
    into.receive_data(header.encode())
    assert into.next_event() is NEED_DATA
    features = into.data_to_send()
    assert (MECHANISMS in features) is offered
    assert b"urn:xmpp:features:dialback" in features  # always there as the fallback


def test_external_not_offered_before_tls() -> None:
    into = make_inbound(tls_available=True, require_tls=False)
    into.receive_data(HEADER.format(frm=A, to=B).encode())
    assert into.next_event() is NEED_DATA
    assert MECHANISMS not in into.data_to_send()
    assert b"<invalid-mechanism/>" in auth(into, b64(A))


@pytest.mark.parametrize("payload", ["", "=", b64(A)], ids=["empty", "equals", "from"])
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "byte-by-byte"])
def test_external_success_authorizes_the_domain_and_restarts(payload: str, chunked: bool) -> None:
    into = secured(CERT_A)
    first_id = into.stream_id
    answer = auth(into, payload, chunked=chunked)
    assert answer == f"<success xmlns='{SASL}'/>".encode()
    assert into.authorized == {(A, B)} and into.mechanisms == {(A, B): "EXTERNAL"}
    assert into.state is inbound.State.HEADER  # the peer opens a new stream
    into.receive_data(HEADER.format(frm=A, to=B).encode())
    assert into.next_event() is NEED_DATA
    features = into.data_to_send()
    assert into.stream_id != first_id and b"<stream:stream" in features
    assert MECHANISMS not in features  # once is enough
    into.receive_data(b"<message from='romeo@a.test' to='juliet@b.test'><body>hi</body></message>")
    stanza = into.next_event()
    assert isinstance(stanza, inbound.StanzaIn) and stanza.from_.domain == A


def test_external_success_event_names_the_mechanism() -> None:
    into = secured(CERT_A)
    into.receive_data(f"<auth xmlns='{SASL}' mechanism='EXTERNAL'>=</auth>".encode())
    assert into.next_event() == inbound.Authorized(A, B, "EXTERNAL")


def test_external_without_from_uses_the_authzid() -> None:
    into = secured(CERT_A, frm=None)
    assert auth(into, b64(A)).startswith(b"<success")
    assert into.authorized == {(A, B)}


def test_header_pipelined_after_auth_is_read_by_the_restarted_stream() -> None:
    into = secured(CERT_A)
    header = HEADER.format(frm=A, to=B).encode()
    answer = auth(into, "=", trailing=header)
    assert answer.startswith(f"<success xmlns='{SASL}'/>".encode())
    assert b"<stream:stream" in answer and into.state is inbound.State.OPEN


@pytest.mark.parametrize(
    "cert, frm, payload, mechanism, condition",
    [
        (CERT_A, A, b64("c.test"), "EXTERNAL", "invalid-authzid"),  # not the stream's from
        (CERT_A, A, b64("not a domain@"), "EXTERNAL", "invalid-authzid"),
        (CERT_A, A, "not*base64", "EXTERNAL", "incorrect-encoding"),
        (CERT_A, None, "=", "EXTERNAL", "not-authorized"),  # nobody named at all
        (CERT_A, None, b64("c.test"), "EXTERNAL", "not-authorized"),  # not in the certificate
        (CERT_A, None, b64(B), "EXTERNAL", "not-authorized"),  # one of our own domains
        (CERT_A, A, b64(A), "PLAIN", "invalid-mechanism"),
        (UNTRUSTED_A, A, b64(A), "EXTERNAL", "invalid-mechanism"),  # never offered
    ],
)
def test_external_failure_keeps_the_stream_and_dialback(
    cert: PeerCertificate, frm: str | None, payload: str, mechanism: str, condition: str
) -> None:
    into = secured(cert, frm=frm)
    answer = auth(into, payload, mechanism=mechanism)
    assert answer == f"<failure xmlns='{SASL}'><{condition}/></failure>".encode()
    assert into.closed is None and not into.authorized
    into.receive_data(b"<db:result from='a.test' to='b.test'>key</db:result>")
    assert isinstance(into.next_event(), inbound.DialbackRequest)


# ---------------------------------------------------------------- both machines together


def negotiate(out: outbound.OutboundStream, into: inbound.InboundStream, *,
              seen_by_out: PeerCertificate | None, seen_by_in: PeerCertificate | None,
              byte_by_byte: bool = False) -> tuple[list[object], list[object]]:  # fmt: skip
    """Run STARTTLS between the two (the certificates standing for the handshake's)."""
    out.start()
    out_events, in_events = pump(out, into, byte_by_byte=byte_by_byte)
    assert out_events == [outbound.StartTLS()] and in_events == [inbound.StartTLS()]
    into.tls_started(seen_by_in)
    out.tls_started(seen_by_out)
    return pump(out, into, byte_by_byte=byte_by_byte)


@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_both_certificates_verify_external_both_sides(byte_by_byte: bool) -> None:
    out = make_outbound(require_tls=True, tls_available=True, try_external=True)
    into = make_inbound(tls_available=True, require_tls=True)
    out_events, in_events = negotiate(out, into, seen_by_out=CERT_B, seen_by_in=CERT_A,
                                      byte_by_byte=byte_by_byte)  # fmt: skip
    assert out_events == [outbound.Authenticated("EXTERNAL")]
    assert in_events == [inbound.Authorized(A, B, "EXTERNAL")]
    out.send_stanza(wire.to_client_ns(_message()))
    _, in_events = pump(out, into, byte_by_byte=byte_by_byte)
    assert [type(e) for e in in_events] == [inbound.StanzaIn]


@pytest.mark.parametrize(
    "try_external, seen_by_out, seen_by_in",
    [
        (False, CERT_B, CERT_A),  # our certificate would not verify there
        (True, PeerCertificate(Identities(dns_names=(B,)), False, "expired"), CERT_A),
        (True, CERT_OTHER, CERT_A),  # theirs is not for b.test
        (True, CERT_B, UNTRUSTED_A),  # they do not trust ours: no offer
    ],
    ids=["ours-not-presentable", "theirs-untrusted", "theirs-wrong-name", "not-offered"],
)
def test_otherwise_dialback(try_external: bool, seen_by_out: PeerCertificate,
                            seen_by_in: PeerCertificate) -> None:  # fmt: skip
    out = make_outbound(require_tls=True, tls_available=True, try_external=try_external)
    into = make_inbound(tls_available=True, require_tls=True)
    _, in_events = negotiate(out, into, seen_by_out=seen_by_out, seen_by_in=seen_by_in)
    assert [type(e) for e in in_events] == [inbound.DialbackRequest]
    assert out.state is outbound.State.DIALBACK and out.mechanism is None


def test_refused_external_falls_back_to_dialback() -> None:
    """The peer offers EXTERNAL but refuses it: the same stream goes on with dialback."""
    out = make_outbound(require_tls=True, tls_available=True, try_external=True)
    out.start()
    out.data_to_send()
    peer_header = HEADER.format(frm=B, to=A).replace("version", "id='s1' version")
    out.receive_data(peer_header.encode())
    out.receive_data(b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                     b"</stream:features><proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")  # fmt: skip
    assert out.next_event() == outbound.StartTLS()
    out.tls_started(CERT_B)
    out.data_to_send()
    out.receive_data(peer_header.encode())
    out.receive_data(b"<stream:features>" + MECHANISMS + b"</mechanism></mechanisms>"
                     b"</stream:features>")  # fmt: skip
    assert out.next_event() is NEED_DATA
    assert (
        out.data_to_send() == f"<auth xmlns='{SASL}' mechanism='EXTERNAL'>{b64(A)}</auth>".encode()
    )
    out.receive_data(f"<failure xmlns='{SASL}'><not-authorized/></failure>".encode())
    assert out.next_event() is NEED_DATA
    assert out.data_to_send().startswith(b"<db:result from='a.test' to='b.test'>")
    assert out.state is outbound.State.DIALBACK


def _message() -> object:
    from xml.etree.ElementTree import Element, SubElement

    element = Element("{jabber:client}message", {"from": f"romeo@{A}/r", "to": f"juliet@{B}"})
    SubElement(element, "{jabber:client}body").text = "hi"
    return element
