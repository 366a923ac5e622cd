"""TLS contexts for server-to-server streams, which verify the peer without ever aborting.

Python's :mod:`ssl` has no verify callback: with ``CERT_OPTIONAL``/``CERT_REQUIRED`` a
certificate that does not verify aborts the handshake, so a peer with a self-signed
certificate could not even fall back to dialback. These contexts are pyOpenSSL's: both
sides ask for the peer's certificate and a callback records OpenSSL's verdict for every
certificate of the chain while always letting the handshake go on. After the handshake,
:func:`peer_certificate` turns the record into a :class:`~.certs.PeerCertificate`; the
stream machines decide with it (SASL EXTERNAL when it verifies, dialback otherwise).

Trust anchors: the system's CAs plus ``[s2s] ca_file``. The certificate's purpose
(extended key usage) is not checked, as Prosody does not either: servers present their
server certificate when they connect out, and many of those lack ``clientAuth``.

Our own certificate is presented both ways. :meth:`S2STLS.presentable` tells whether
SASL EXTERNAL is worth trying for one of our domains: a configured certificate (not the
generated self-signed one) that covers the domain and verifies against our own anchors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from OpenSSL import SSL, crypto

from casper.tls import TLS12_CIPHERS, TLSConfigError, check_ca_file, ensure_certificate

from .certs import PeerCertificate, identities_of

if TYPE_CHECKING:
    from casper.config import Config

log = logging.getLogger("casper.s2s")
X509_V_ERR_INVALID_PURPOSE = 26
TOLERATED = frozenset({X509_V_ERR_INVALID_PURPOSE})
VERIFY_ERRORS = {  # X509_V_ERR_* names for logs (OpenSSL's x509_vfy.h)
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    24: "invalid CA certificate",
    25: "path length constraint exceeded",
    28: "certificate rejected",
    26: "unsupported certificate purpose",
}


@dataclass
class _Verification:
    """OpenSSL's verdict on one connection's peer chain, filled in by the callback."""

    called: bool = False
    errors: list[str] = field(default_factory=list)


def _record(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
    record = conn.get_app_data()
    if isinstance(record, _Verification):
        record.called = True
        if not ok and errnum not in TOLERATED:
            reason = VERIFY_ERRORS.get(errnum, f"X509 error {errnum}")
            record.errors.append(f"{reason} at depth {depth}")
    return True  # never abort: an unverified peer may still use dialback


def new_connection(context: SSL.Context) -> SSL.Connection:
    """A memory-BIO connection whose peer verification :func:`peer_certificate` reads."""
    conn = SSL.Connection(context, None)
    conn.set_app_data(_Verification())
    return conn


def peer_certificate(conn: SSL.Connection) -> PeerCertificate | None:
    """The peer's certificate after the handshake (``None`` if it sent none)."""
    cert = conn.get_peer_certificate(as_cryptography=True)
    if cert is None:
        return None
    record = conn.get_app_data()
    called = isinstance(record, _Verification) and record.called
    errors = record.errors if isinstance(record, _Verification) else []
    verified = called and not errors
    error = None if verified else (errors[0] if errors else "not verified")
    return PeerCertificate(identities_of(cert), verified, error)


class S2STLS:
    """Our certificate and trust anchors, as pyOpenSSL contexts for both directions.

    :param cert_file: PEM chain (leaf first) presented to peers.
    :param key_file: its private key.
    :param ca_file: extra trust anchors (PEM), besides the system's.
    :param configured: the certificate was configured (not generated here).
    :raises TLSConfigError: a file is missing or unusable.
    """

    def __init__(self, cert_file: Path, key_file: Path, *, ca_file: Path | None = None,
                 configured: bool = True) -> None:  # fmt: skip
        check_ca_file(ca_file)
        self.server_context = self._context(SSL.TLS_SERVER_METHOD, cert_file, key_file, ca_file)
        self.client_context = self._context(SSL.TLS_CLIENT_METHOD, cert_file, key_file, ca_file)
        chain = _chain(cert_file)
        self._own = identities_of(chain[0])
        self._presentable = configured and self._chain_verifies(chain)

    @classmethod
    def from_config(cls, config: Config) -> S2STLS:
        check_ca_file(config.s2s_ca_file)  # before a certificate is generated
        if config.cert_file is not None and config.key_file is not None:
            return cls(config.cert_file, config.key_file, ca_file=config.s2s_ca_file)
        cert, key = ensure_certificate(config.data_dir, config.domain)
        return cls(cert, key, ca_file=config.s2s_ca_file, configured=False)

    def presentable(self, domain: str) -> bool:
        """Whether our certificate could authenticate ``domain`` at a peer (EXTERNAL)."""
        return self._presentable and self._own.covers(domain)

    @staticmethod
    def _context(method: int, cert_file: Path, key_file: Path,
                 ca_file: Path | None) -> SSL.Context:  # fmt: skip
        context = SSL.Context(method)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_cipher_list(TLS12_CIPHERS.encode())
        context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION
                            | SSL.OP_CIPHER_SERVER_PREFERENCE)  # fmt: skip
        try:
            context.use_certificate_chain_file(str(cert_file))
            context.use_privatekey_file(str(key_file))
            context.check_privatekey()
            context.set_default_verify_paths()
            if ca_file is not None:
                context.load_verify_locations(str(ca_file))
        except (SSL.Error, OSError) as exc:
            raise TLSConfigError(f"s2s TLS: cannot use {cert_file}, {key_file}"
                                 f"{f' or {ca_file}' if ca_file else ''}: {exc}") from exc  # fmt: skip
        context.set_verify(SSL.VERIFY_PEER, _record)  # ask, record, never abort
        return context

    def _chain_verifies(self, chain: list[x509.Certificate]) -> bool:
        store = self.client_context.get_cert_store()
        if store is None:
            return False
        leaf, *rest = (crypto.X509.from_cryptography(c) for c in chain)
        try:
            crypto.X509StoreContext(store, leaf, rest).verify_certificate()
        except crypto.X509StoreContextError as exc:
            log.info("s2s: our certificate does not verify against our trust anchors (%s); "
                     "SASL EXTERNAL will not be tried", exc)  # fmt: skip
            return False
        return True


def _chain(cert_file: Path) -> list[x509.Certificate]:
    """The certificates of a PEM chain file, leaf first (at least one)."""
    try:
        return x509.load_pem_x509_certificates(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise TLSConfigError(f"s2s TLS: cannot read certificate {cert_file}: {exc}") from exc
