"""casper.tls: self-signed certificate generation and the server SSL context."""

from __future__ import annotations

import ipaddress
import logging
import ssl
import stat
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from casper.tls import TLSConfigError, ensure_certificate, server_ssl_context
from cryptography import x509


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_first_call_generates_cert_and_private_key_files(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path, "example.com")
    assert (cert, key) == (tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in key.read_bytes()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_generating_a_certificate_is_logged_and_reusing_it_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="casper.tls"):
        cert, _ = ensure_certificate(tmp_path, "example.com")
        ensure_certificate(tmp_path, "example.com")
    assert [r.getMessage() for r in caplog.records] == [
        f"generated a self-signed certificate for example.com: {cert}"
    ]


def test_generated_certificate_names_domain_wildcard_and_loopback(tmp_path: Path) -> None:
    cert, _ = ensure_certificate(tmp_path, "example.com")
    san = load_cert(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["example.com", "*.example.com", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


def test_localhost_domain_is_not_listed_twice(tmp_path: Path) -> None:
    cert, _ = ensure_certificate(tmp_path, "localhost")
    san = load_cert(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "*.localhost"]


def test_generated_certificate_is_self_signed_and_valid_ten_years(tmp_path: Path) -> None:
    cert = load_cert(ensure_certificate(tmp_path, "example.com")[0])
    assert cert.issuer == cert.subject
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days >= 3650


def test_second_call_reuses_existing_files(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path, "example.com")
    before = cert.read_bytes(), key.read_bytes()
    assert ensure_certificate(tmp_path, "other.example") == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == before


def test_lone_certificate_without_key_is_an_error(tmp_path: Path) -> None:
    _, key = ensure_certificate(tmp_path, "example.com")
    key.unlink()
    with pytest.raises(TLSConfigError, match="without its partner"):
        ensure_certificate(tmp_path, "example.com")


def test_internationalised_domain_is_stored_as_a_label(tmp_path: Path) -> None:
    cert, _ = ensure_certificate(tmp_path, "bücher.example")
    san = load_cert(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "xn--bcher-kva.example" in san.get_values_for_type(x509.DNSName)


def test_context_is_server_side_with_tls12_minimum_and_no_compression(tmp_path: Path) -> None:
    ctx = server_ssl_context(*ensure_certificate(tmp_path, "example.com"))
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.options & getattr(ssl, "OP_NO_RENEGOTIATION", 0) == getattr(
        ssl, "OP_NO_RENEGOTIATION", 0
    )
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER


@pytest.mark.parametrize("missing", ["cert", "key"])
def test_missing_file_raises_tls_config_error_naming_it(tmp_path: Path, missing: str) -> None:
    cert, key = ensure_certificate(tmp_path, "example.com")
    gone = tmp_path / "nope.pem"
    args = (gone, key) if missing == "cert" else (cert, gone)
    with pytest.raises(TLSConfigError, match=f"{missing}.* {gone} does not exist"):
        server_ssl_context(*args)


def test_mismatched_pair_raises_tls_config_error(tmp_path: Path) -> None:
    cert, _ = ensure_certificate(tmp_path / "a", "example.com")
    _, other_key = ensure_certificate(tmp_path / "b", "example.com")
    with pytest.raises(TLSConfigError, match="cannot load"):
        server_ssl_context(cert, other_key)


async def test_client_handshake_succeeds_with_trustme_issued_pair(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("example.com")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    left, right = trio.testing.memory_stream_pair()
    server = trio.SSLStream(left, server_ssl_context(cert, key), server_side=True)
    client = trio.SSLStream(right, client_ctx, server_hostname="example.com")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        await client.do_handshake()
    assert client.version() in ("TLSv1.2", "TLSv1.3")


def _memory_handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> ssl.SSLObject:
    """A TLS handshake over memory BIOs; the client also reads what follows it (tickets)."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost", session=session)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(4):  # enough rounds for a full handshake: the client sends twice
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    with pytest.raises(ssl.SSLWantReadError):
        client.read(1)  # processes the session tickets; no application data follows
    return client


def test_tls13_handshake_issues_one_session_ticket_that_resumes(tmp_path: Path) -> None:
    cert, key = ensure_certificate(tmp_path, "localhost")
    server_ctx = server_ssl_context(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    received: list[object] = []
    client_ctx._msg_callback = lambda _conn, direction, _v, _ct, msg_type, _d: (  # type: ignore[attr-defined]
        received.append(msg_type) if direction == "read" else None
    )
    first = _memory_handshake(server_ctx, client_ctx)
    assert first.version() == "TLSv1.3"
    assert received.count(ssl._TLSMessageType.NEWSESSION_TICKET) == 1  # type: ignore[attr-defined]
    second = _memory_handshake(server_ctx, client_ctx, session=first.session)
    assert second.session_reused
