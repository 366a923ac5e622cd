"""Certificates between servers: which domains a certificate speaks for (RFC 6125, sans-IO),
whether its chain verifies (OpenSSL, during an in-memory handshake that never fails for
that), and when our own certificate is worth SASL EXTERNAL."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing
from casper.s2s.certs import Identities, PeerCertificate, identities_of
from casper.s2s.tlsstream import PyOpenSSLStream
from casper.s2s.trust import S2STLS
from casper.tls import TLSConfigError, ensure_certificate
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.s2s.pki import CA, DAY, NOW, Issued, der_string, self_signed, srv_name, xmpp_addr

# ---------------------------------------------------------------- identities (sans-IO)

IDENTITY_CASES = [
    # (dNSNames, other SANs, CN, domain, covered)
    (("example.org",), (), None, "example.org", True),
    (("example.org",), (), None, "EXAMPLE.org", True),
    (("example.org",), (), None, "chat.example.org", False),
    (("*.example.org",), (), None, "chat.example.org", True),
    (("*.example.org",), (), None, "example.org", False),  # one label, not zero
    (("*.example.org",), (), None, "a.b.example.org", False),  # nor two
    (("*.org",), (), None, "example.org", False),  # never a whole suffix
    (("f*.example.org",), (), None, "foo.example.org", False),  # partial wildcards: no
    (("chat.*.org",), (), None, "chat.example.org", False),  # only the left-most label
    (("xn--caf-dma.example",), (), None, "café.example", True),  # IDN: A-labels
    ((), ("xmpp:example.org",), None, "example.org", True),
    ((), ("xmpp:example.org",), None, "other.org", False),
    ((), ("xmpp:*.example.org",), None, "chat.example.org", False),  # no wildcard XmppAddr
    ((), ("srv:example.org",), None, "example.org", True),
    ((), ("srv:example.org",), None, "chat.example.org", False),
    (("wrong.org",), (), None, "example.org", False),
    ((), (), "example.org", "example.org", True),  # CN only when there are no SANs
    (("other.org",), (), "example.org", "example.org", False),  # no CN fallback next to SANs
    ((), ("xmpp:other.org",), "example.org", "example.org", False),
]


def _other(spec: str) -> x509.GeneralName:
    kind, _, domain = spec.partition(":")
    return xmpp_addr(domain) if kind == "xmpp" else srv_name(domain)


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.mark.parametrize("dns, others, cn, domain, covered", IDENTITY_CASES)
def test_certificate_identity_matching_follows_rfc_6125(
    ca: CA, dns: tuple[str, ...], others: tuple[str, ...], cn: str | None, domain: str,
    covered: bool,
) -> None:  # fmt: skip
    cert = ca.issue(*dns, names=tuple(_other(o) for o in others), cn=cn).cert
    assert identities_of(cert).covers(domain) is covered


def test_malformed_xmpp_addr_is_ignored_not_trusted(ca: CA) -> None:
    bad = x509.OtherName(xmpp_addr("x").type_id, der_string(0x16, "example.org"))  # not UTF8
    cert = ca.issue(names=(bad,), cn="example.org").cert
    identities = identities_of(cert)
    assert identities.xmpp_addrs == ()
    assert identities.covers("example.org")  # so the CN counts, as with no SAN at all


def test_long_xmpp_addr_uses_the_der_long_form(ca: CA) -> None:
    domain = ".".join(["x" * 60] * 3) + ".example.org"  # 196 bytes
    cert = ca.issue(names=(xmpp_addr(domain),)).cert
    assert identities_of(cert).xmpp_addrs == (domain,)
    assert identities_of(cert).covers(domain)


def test_identities_describe_themselves_for_logs() -> None:
    cert = PeerCertificate(Identities(dns_names=("a.test",)), verified=True)
    assert cert.describe("a.test") == "certificate verified"
    assert cert.describe("b.test") == "certificate is for a.test, not b.test"
    untrusted = PeerCertificate(Identities(common_names=("a.test",)), False, "self-signed")
    assert untrusted.describe("a.test") == "certificate not trusted (self-signed)"
    assert not untrusted.authenticates("a.test")


# ---------------------------------------------------------------- the handshake (OpenSSL)


def _tls(tmp_path: Path, ca: CA, issued: Issued, name: str, *,
         configured: bool = True) -> S2STLS:  # fmt: skip
    cert, key = issued.write(tmp_path, name)
    return S2STLS(cert, key, ca_file=ca.write(tmp_path), configured=configured)


async def _handshake(server: S2STLS, client: S2STLS, hostname: str = "server.test"
                     ) -> tuple[PyOpenSSLStream, PyOpenSSLStream]:  # fmt: skip
    left, right = trio.testing.memory_stream_pair()
    server_side = PyOpenSSLStream(left, server.server_context, server_side=True)
    client_side = PyOpenSSLStream(right, client.client_context, server_side=False,
                                  server_hostname=hostname)  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_side.do_handshake)
        nursery.start_soon(client_side.do_handshake)
    return server_side, client_side


async def test_handshake_verifies_both_chains_from_the_trusted_ca(tmp_path: Path, ca: CA) -> None:
    server = _tls(tmp_path, ca, ca.issue("server.test"), "server")
    client = _tls(tmp_path, ca, ca.issue("client.test"), "client")
    server_side, client_side = await _handshake(server, client)
    seen_by_server, seen_by_client = server_side.peer_certificate(), client_side.peer_certificate()
    assert seen_by_server is not None and seen_by_server.authenticates("client.test")
    assert seen_by_client is not None and seen_by_client.authenticates("server.test")
    assert not seen_by_client.authenticates("client.test")
    # and data flows both ways, with a clean close
    await client_side.send_all(b"<stream:stream>")
    assert await server_side.receive_some(100) == b"<stream:stream>"
    await server_side.send_all(b"ok")
    assert await client_side.receive_some(100) == b"ok"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client_side.aclose)
        assert await server_side.receive_some(100) == b""
    await server_side.aclose()


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda ca: self_signed("client.test"), "self-signed certificate"),
        (lambda ca: CA("Another CA").issue("client.test"), "unable to get local issuer"),
        (
            lambda ca: ca.issue("client.test", not_before=NOW - 9 * DAY, not_after=NOW - DAY),
            "certificate has expired",
        ),
    ],
    ids=["self-signed", "unknown-ca", "expired"],
)
async def test_untrusted_peer_certificate_is_recorded_not_fatal(
    tmp_path: Path, ca: CA, make, reason: str
) -> None:
    server = _tls(tmp_path, ca, ca.issue("server.test"), "server")
    client = _tls(tmp_path, ca, make(ca), "client")
    server_side, client_side = await _handshake(server, client)
    seen = server_side.peer_certificate()
    assert seen is not None and not seen.verified and not seen.authenticates("client.test")
    assert seen.error is not None and reason in seen.error
    assert seen.identities.covers("client.test")  # the names are there, the trust is not
    await client_side.send_all(b"dialback then")
    assert await server_side.receive_some(100) == b"dialback then"


async def test_server_certificate_is_verified_by_the_connecting_side(
    tmp_path: Path, ca: CA
) -> None:
    server = _tls(tmp_path, ca, self_signed("server.test"), "server")
    client = _tls(tmp_path, ca, ca.issue("client.test"), "client")
    _, client_side = await _handshake(server, client)
    seen = client_side.peer_certificate()
    assert seen is not None and not seen.verified and seen.identities.covers("server.test")


async def test_tls_failure_is_a_broken_stream(tmp_path: Path, ca: CA) -> None:
    server = _tls(tmp_path, ca, ca.issue("server.test"), "server")
    left, right = trio.testing.memory_stream_pair()
    tls = PyOpenSSLStream(left, server.server_context, server_side=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(right.send_all, b"this is not a ClientHello at all\r\n")
        with pytest.raises(trio.BrokenResourceError):
            await tls.do_handshake()


# ---------------------------------------------------------------- our own certificate


def test_own_certificate_is_presentable_when_it_verifies_for_the_domain(tmp_path: Path,
                                                                        ca: CA) -> None:  # fmt: skip
    tls = _tls(tmp_path, ca, ca.issue("a.test", "*.a.test"), "own")
    assert tls.presentable("a.test") and tls.presentable("muc.a.test")
    assert not tls.presentable("b.test")


def test_self_signed_or_generated_certificates_are_never_presentable(tmp_path: Path,
                                                                     ca: CA) -> None:  # fmt: skip
    assert not _tls(tmp_path, ca, self_signed("a.test"), "own").presentable("a.test")
    cert, key = ensure_certificate(tmp_path, "a.test")
    assert not S2STLS(cert, key, configured=False).presentable("a.test")
    assert not _tls(tmp_path, ca, ca.issue("a.test"), "gen", configured=False).presentable("a.test")


def test_unusable_ca_file_is_a_configuration_error(tmp_path: Path, ca: CA) -> None:
    cert, key = ca.issue("a.test").write(tmp_path)
    with pytest.raises(TLSConfigError, match="missing.pem"):
        S2STLS(cert, key, ca_file=tmp_path / "missing.pem")


def test_common_name_only_certificate(ca: CA) -> None:
    cert = ca.issue(cn="cn.test").cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cn.test"
    assert identities_of(cert) == Identities(common_names=("cn.test",))
