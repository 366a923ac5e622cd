"""SCRAM-*-PLUS against a real ``casper serve`` over TCP and TLS on 127.0.0.1.

- slixmpp (it binds with ``tls-unique`` only, Python having no ``tls-exporter``): limited to
  TLS 1.2 it logs in with SCRAM-SHA-256-PLUS (or SCRAM-SHA-1-PLUS when told to); on TLS 1.3
  it sees the -PLUS offer, cannot bind and falls back to SCRAM-SHA-256 (flag ``n``).
- A minimal client of our own, over a plain ``ssl`` socket (direct TLS and STARTTLS), binds
  with ``tls-server-end-point``: the SHA-256 hash of the certificate it was shown, read with
  ``getpeercert(binary_form=True)``. Another certificate's hash fails with ``not-authorized``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import ssl
from collections.abc import Iterator

import pytest
from casper.sasl import ScramClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.realnet.conftest import read_until

pytestmark = pytest.mark.realnet

SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
STREAM_OPEN = (
    b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0'"
    b" xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"


@pytest.fixture
def romeo(casper_server) -> str:
    return casper_server.add_user("romeo")


def offered(peer) -> set[str]:
    return set(peer.xmpp.plugin["feature_mechanisms"].mech_list)


# -- slixmpp ------------------------------------------------------------------------------------


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
@pytest.mark.parametrize("mechanism", [None, "SCRAM-SHA-1-PLUS"])
def test_slixmpp_binds_with_tls_unique_on_tls_12(
    romeo, open_peer, run_async, direct_tls: bool, mechanism: str | None
) -> None:
    async def scenario():
        async with open_peer(
            "romeo", login=False, direct_tls=direct_tls, mechanism=mechanism
        ) as peer:
            peer.xmpp.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2
            await peer.login()
            assert peer.tls_version == "TLSv1.2"
            assert {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"} <= offered(peer)
            assert peer.mechanism == (mechanism or "SCRAM-SHA-256-PLUS")
            await peer.sync()

    run_async(scenario())


@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_slixmpp_falls_back_to_scram_on_tls_13(romeo, open_peer, run_async, direct_tls) -> None:
    async def scenario():
        async with open_peer("romeo", login=False, direct_tls=direct_tls) as peer:
            peer.xmpp.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_3
            await peer.login()
            assert peer.tls_version == "TLSv1.3"
            assert "SCRAM-SHA-256-PLUS" in offered(peer)  # tls-server-end-point is on offer
            assert peer.mechanism == "SCRAM-SHA-256"
            await peer.sync()

    run_async(scenario())


# -- our own client: tls-server-end-point --------------------------------------------------------


@contextlib.contextmanager
def tls_stream(server, starttls: bool) -> Iterator[tuple[ssl.SSLSocket, bytes]]:
    """A TLS connection with the stream open; yields it and the stream features."""
    ctx = server.client_ssl_context()
    port = server.port if starttls else server.tls_port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        if starttls:
            raw.sendall(STREAM_OPEN)
            read_until(raw, b"</stream:features>")
            raw.sendall(STARTTLS)
            read_until(raw, b"<proceed")
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(STREAM_OPEN)
            yield sock, read_until(sock, b"</stream:features>")


def end_point(der: bytes) -> bytes:
    """RFC 5929 §4.1, for the certificates this test meets (signed with SHA-256)."""
    assert isinstance(x509.load_der_x509_certificate(der).signature_hash_algorithm, hashes.SHA256)
    return hashlib.sha256(der).digest()


def sasl(name: str, data: bytes, mechanism: str | None = None) -> bytes:
    mech = f" mechanism='{mechanism}'" if mechanism else ""
    return f"<{name} xmlns='{SASL_NS}'{mech}>{base64.b64encode(data).decode()}</{name}>".encode()


def sasl_data(reply: bytes, name: str) -> bytes:
    match = re.search(rb"<%s[^>]*>([^<]*)</%s>" % (name.encode(), name.encode()), reply)
    assert match, reply
    return base64.b64decode(match[1])


@pytest.mark.parametrize("starttls", [False, True], ids=["direct-tls", "starttls"])
def test_own_client_binds_with_tls_server_end_point(romeo, casper_server, starttls) -> None:
    with tls_stream(casper_server, starttls) as (sock, features):
        assert sock.version() == "TLSv1.3"
        assert b"<mechanism>SCRAM-SHA-256-PLUS</mechanism>" in features
        types = re.findall(rb"<channel-binding type=['\"]([^'\"]+)['\"]", features)
        assert types == [b"tls-server-end-point"]  # tls-unique: not on TLS 1.3
        cb_data = end_point(sock.getpeercert(binary_form=True))
        scram = ScramClient("SCRAM-SHA-256-PLUS", "romeo", "secret",
                            cb_flag="p=tls-server-end-point", cb_data=cb_data)  # fmt: skip
        sock.sendall(sasl("auth", scram.first(), "SCRAM-SHA-256-PLUS"))
        challenge = sasl_data(read_until(sock, b"</challenge>"), "challenge")
        sock.sendall(sasl("response", scram.final(challenge)))
        assert scram.verify(sasl_data(read_until(sock, b"</success>"), "success"))
        sock.sendall(STREAM_OPEN)
        read_until(sock, b"</stream:features>")
        sock.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        assert b"romeo@localhost/" in read_until(sock, b"</iq>")


def test_own_client_with_another_certificates_hash_is_not_authorized(romeo, casper_server) -> None:
    with tls_stream(casper_server, starttls=False) as (sock, _features):
        other = hashlib.sha256(b"a certificate a man in the middle would show").digest()
        scram = ScramClient("SCRAM-SHA-256-PLUS", "romeo", "secret",
                            cb_flag="p=tls-server-end-point", cb_data=other)  # fmt: skip
        sock.sendall(sasl("auth", scram.first(), "SCRAM-SHA-256-PLUS"))
        challenge = sasl_data(read_until(sock, b"</challenge>"), "challenge")
        sock.sendall(sasl("response", scram.final(challenge)))
        assert b"<not-authorized" in read_until(sock, b"</failure>")
