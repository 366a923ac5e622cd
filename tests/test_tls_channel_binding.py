"""casper.tls channel bindings for SCRAM-*-PLUS: RFC 5929 ``tls-server-end-point`` from the
certificate, ``tls-unique`` below TLS 1.3 only (RFC 9266), read from real TLS connections
over memory streams (the client reads its own end the way a SCRAM-PLUS client does)."""

from __future__ import annotations

import datetime
import hashlib
import ssl
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from casper.tls import (
    ServerContext,
    channel_bindings,
    end_point_binding,
    ensure_certificate,
    server_ssl_context,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID


def self_signed_pem(key, algorithm: hashes.HashAlgorithm | None) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, algorithm)
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


# -- tls-server-end-point (RFC 5929 §4.1) ------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "algorithm", "digest"),
    [(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256(), "sha256"),
     (ec.generate_private_key(ec.SECP384R1()), hashes.SHA384(), "sha384"),
     (rsa.generate_private_key(65537, 2048), hashes.SHA512(), "sha512")],
    ids=["ecdsa-sha256", "ecdsa-sha384", "rsa-sha512"],
)  # fmt: skip
def test_end_point_hash_follows_the_signature_hash(key, algorithm, digest: str) -> None:
    pem = self_signed_pem(key, algorithm)
    assert end_point_binding(pem) == hashlib.new(digest, der(pem)).digest()


def test_end_point_of_a_sha1_signed_certificate_uses_sha256() -> None:
    # cryptography no longer signs with SHA-1: relabel a SHA-256 signature as SHA-1 (the OIDs
    # sha256WithRSAEncryption and sha1WithRSAEncryption differ in their last byte); the
    # binding only reads the algorithm, it never checks the signature
    sha256_rsa, sha1_rsa = bytes.fromhex("2a864886f70d01010b"), bytes.fromhex("2a864886f70d010105")
    data = der(self_signed_pem(rsa.generate_private_key(65537, 2048), hashes.SHA256()))
    assert data.count(sha256_rsa) == 2  # tbsCertificate.signature and signatureAlgorithm
    relabelled = data.replace(sha256_rsa, sha1_rsa)
    pem = ssl.DER_cert_to_PEM_cert(relabelled).encode()
    assert isinstance(x509.load_pem_x509_certificate(pem).signature_hash_algorithm, hashes.SHA1)
    assert end_point_binding(pem) == hashlib.sha256(relabelled).digest()


def test_end_point_is_undefined_without_a_single_signature_hash() -> None:
    assert end_point_binding(self_signed_pem(ed25519.Ed25519PrivateKey.generate(), None)) is None
    assert end_point_binding(b"not a certificate") is None


def test_end_point_is_the_leaf_of_a_chain(tmp_path: Path) -> None:
    issued = trustme.CA().issue_cert("example.com")
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    leaf = issued.cert_chain_pems[0].bytes()
    assert end_point_binding(chain) == hashlib.sha256(der(leaf)).digest()


def test_server_context_computes_the_end_point_of_its_certificate(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path, "example.com")  # EC P-256, SHA-256 signature
    context = server_ssl_context(cert, key)
    assert isinstance(context, ServerContext)
    assert context.tls_server_end_point == hashlib.sha256(der(cert.read_bytes())).digest()


# -- from a TLS connection ---------------------------------------------------------------------


async def handshake(
    server_ctx: ssl.SSLContext, ca: trustme.CA, version: ssl.TLSVersion
) -> tuple[trio.SSLStream, trio.SSLStream]:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    client_ctx.maximum_version = version
    left, right = trio.testing.memory_stream_pair()
    server = trio.SSLStream(left, server_ctx, server_side=True)
    client = trio.SSLStream(right, client_ctx, server_hostname="example.com")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        await client.do_handshake()
    return server, client


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    issued = ca.issue_cert("example.com")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


async def test_tls_12_binds_with_tls_unique_and_the_end_point(ca, files) -> None:
    server, client = await handshake(server_ssl_context(*files), ca, ssl.TLSVersion.TLSv1_2)
    assert client.version() == "TLSv1.2"
    bindings = channel_bindings(server)
    assert list(bindings) == ["tls-unique", "tls-server-end-point"]
    assert bindings["tls-unique"] == client.get_channel_binding("tls-unique")  # same both ends
    seen = client.getpeercert(binary_form=True)
    assert bindings["tls-server-end-point"] == hashlib.sha256(seen).digest()


async def test_tls_13_never_offers_tls_unique(ca, files) -> None:
    server, client = await handshake(server_ssl_context(*files), ca, ssl.TLSVersion.TLSv1_3)
    assert client.version() == "TLSv1.3"
    assert server.get_channel_binding("tls-unique")  # Python would give it: RFC 9266 says no
    seen = client.getpeercert(binary_form=True)
    assert channel_bindings(server) == {"tls-server-end-point": hashlib.sha256(seen).digest()}


async def test_a_plain_context_gives_no_end_point(ca, files) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*files)
    server, _ = await handshake(context, ca, ssl.TLSVersion.TLSv1_3)
    assert channel_bindings(server) == {}
    server, _ = await handshake(context, ca, ssl.TLSVersion.TLSv1_2)
    assert list(channel_bindings(server)) == ["tls-unique"]
