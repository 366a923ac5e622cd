"""TLS material: a self-signed certificate on first start, the server's SSL context, and the
channel bindings (RFC 5056) of a TLS connection for SCRAM-*-PLUS.

The generated certificate is meant for development and private deployments; clients will have
to accept it explicitly. Production servers set ``cert_file``/``key_file`` in the config.

Channel bindings: ``tls-unique`` (RFC 5929 §3) on TLS 1.2 only, as RFC 9266 forbids it on
TLS 1.3, and ``tls-server-end-point`` (RFC 5929 §4), a hash of our certificate, which a
plain :class:`ssl.SSLContext` cannot tell us: :class:`ServerContext` computes it when the
certificate is loaded. ``tls-exporter`` (RFC 9266), the binding meant for TLS 1.3, needs
``SSL_export_keying_material``, which Python 3.11's ``ssl`` module does not expose, so it
is not offered.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("casper.tls")

CERT_VALIDITY = datetime.timedelta(days=3650)
CLOCK_SKEW = datetime.timedelta(days=1)  # backdate notBefore so slightly wrong clocks accept it
# TLS 1.2 cipher suites: ECDHE/DHE key exchange and AES-GCM or ChaCha20-Poly1305 only, the
# "intermediate" profile of Mozilla's server-side TLS guidelines. No RSA key exchange, no CBC,
# no SHA-1 MACs, no RC4/3DES/export/NULL/anonymous suites.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"
TLS_UNIQUE_VERSIONS = frozenset({"TLSv1", "TLSv1.1", "TLSv1.2"})  # not TLS 1.3: RFC 9266 §3


class TLSConfigError(Exception):
    """The certificate or key cannot be used; the message is meant for users."""


def ensure_certificate(data_dir: Path, domain: str) -> tuple[Path, Path]:
    """Return ``(cert, key)`` under ``data_dir/tls``, generating a self-signed pair if missing.

    The certificate uses an EC P-256 key, is valid for ten years, and names ``domain``,
    ``*.domain``, ``localhost``, ``127.0.0.1`` and ``::1``. Existing files are reused as they
    are, even if they were made for another domain. The key file is created with mode 0600.

    :raises TLSConfigError: if only one of the two files exists or they cannot be written.
    """
    tls_dir = data_dir / "tls"
    cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    if cert_path.exists() or key_path.exists():
        present = cert_path if cert_path.exists() else key_path
        raise TLSConfigError(
            f"{present} exists without its partner in {tls_dir}; remove it to regenerate both"
        )
    cert_pem, key_pem = _self_signed(domain)
    try:
        tls_dir.mkdir(parents=True, exist_ok=True)
        _write_private(key_path, key_pem)
        cert_path.write_bytes(cert_pem)
    except OSError as exc:
        raise TLSConfigError(f"cannot write TLS files in {tls_dir}: {exc.strerror}") from exc
    log.info("generated a self-signed certificate for %s: %s", domain, cert_path)
    return cert_path, key_path


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, without a window where others could read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _a_label(domain: str) -> str:
    """Return the ASCII form of ``domain``, as certificates require (RFC 6125 §6.4.2)."""
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise TLSConfigError(f"cannot put domain {domain!r} into a certificate: {exc}") from exc


def _subject_alt_names(domain: str) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [
        x509.DNSName(domain),
        x509.DNSName(f"*.{domain}"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    if domain == "localhost":
        del names[2]  # already present; duplicate SANs only confuse tools
    return x509.SubjectAlternativeName(names)


def _self_signed(domain: str) -> tuple[bytes, bytes]:
    """Return PEM ``(certificate, private key)`` for a fresh self-signed certificate."""
    domain = _a_label(domain)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(_subject_alt_names(domain), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def check_ca_file(ca_file: Path | None) -> None:
    """``[s2s] ca_file``, when set, must name an existing file (checked before anything
    is generated or listens)."""
    if ca_file is not None and not ca_file.is_file():
        raise TLSConfigError(f"s2s.ca_file {ca_file} does not exist")


def _check_readable(path: Path, what: str) -> None:
    if not path.is_file():
        raise TLSConfigError(f"TLS {what} file {path} does not exist")
    if not os.access(path, os.R_OK):
        raise TLSConfigError(f"TLS {what} file {path} is not readable")


class ServerContext(ssl.SSLContext):
    """A server-side :class:`ssl.SSLContext` that knows its certificate's channel binding."""

    #: the ``tls-server-end-point`` channel-binding data of the certificate, if defined
    tls_server_end_point: bytes | None = None


def end_point_binding(cert_pem: bytes) -> bytes | None:
    """Return the ``tls-server-end-point`` binding of the first certificate in ``cert_pem``.

    RFC 5929 §4.1: the hash of the DER certificate, with the hash function of its signature
    algorithm, SHA-256 instead of MD5 or SHA-1. ``None`` where that is undefined (Ed25519,
    Ed448: no single hash function) or the PEM holds no certificate we can parse.
    """
    try:
        cert = x509.load_pem_x509_certificates(cert_pem)[0]
        algorithm = cert.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm):
        return None
    if algorithm is None:
        return None
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    return cert.fingerprint(algorithm)


class TLSConnection(Protocol):
    """What :func:`channel_bindings` reads: an :class:`ssl.SSLObject`, a trio.SSLStream or a
    :class:`~casper.tls_stream.SocketTLSStream`."""

    @property
    def context(self) -> ssl.SSLContext: ...

    def version(self) -> str | None: ...

    def get_channel_binding(self, cb_type: str = ...) -> bytes | None: ...


def channel_bindings(tls: TLSConnection) -> dict[str, bytes]:
    """Return the channel-binding data of a server-side connection after its handshake.

    ``tls-unique`` only below TLS 1.3; ``tls-server-end-point`` if the context is a
    :class:`ServerContext` (others do not tell us our certificate).
    """
    bindings: dict[str, bytes] = {}
    if tls.version() in TLS_UNIQUE_VERSIONS and (unique := tls.get_channel_binding("tls-unique")):
        bindings["tls-unique"] = unique
    context = tls.context
    if isinstance(context, ServerContext) and context.tls_server_end_point:
        bindings["tls-server-end-point"] = context.tls_server_end_point
    return bindings


def server_ssl_context(cert: Path, key: Path) -> ServerContext:
    """Build the server-side context used for STARTTLS, direct TLS and HTTPS.

    TLS 1.2 is the minimum. TLS 1.2 connections get only forward-secret AEAD suites
    (:data:`TLS12_CIPHERS`); TLS 1.3 suites are all strong and left as OpenSSL has them. The
    server's order of preference wins; compression and renegotiation are disabled. A TLS 1.3
    handshake issues one session ticket, not OpenSSL's two: a client resumes its one stream
    with it, and the second ticket cost ~20 µs and a write per handshake. The
    certificate's ``tls-server-end-point`` binding is computed once, here.

    :raises TLSConfigError: if a file is missing or unreadable, or they do not form a pair.
    """
    _check_readable(cert, "certificate")
    _check_readable(key, "key")
    ctx = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.num_tickets = 1
    try:
        pem = cert.read_bytes()
        ctx.load_cert_chain(cert, key)
        loaded = pem == cert.read_bytes()  # not replaced meanwhile (a renewal under way)
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(f"cannot load TLS certificate {cert} with key {key}: {exc}") from exc
    ctx.tls_server_end_point = end_point_binding(pem) if loaded else None
    return ctx
