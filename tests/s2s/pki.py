"""Certificates made in the tests with ``cryptography``: a CA and leaves with exactly the
identities a test needs (dNSName, wildcard, XmppAddr, SRVName, CN only), expired ones and
self-signed ones."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from casper.s2s.certs import ID_ON_DNSSRV, ID_ON_XMPPADDR
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def der_string(tag: int, text: str) -> bytes:
    data = text.encode()
    if len(data) < 128:
        return bytes([tag, len(data)]) + data
    return bytes([tag, 0x81, len(data)]) + data  # long form (up to 255 bytes here)


def xmpp_addr(domain: str) -> x509.OtherName:
    return x509.OtherName(ID_ON_XMPPADDR, der_string(0x0C, domain))  # UTF8String


def srv_name(domain: str) -> x509.OtherName:
    return x509.OtherName(ID_ON_DNSSRV, der_string(0x16, f"_xmpp-server.{domain}"))  # IA5String


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def write(self, directory: Path, name: str = "leaf") -> tuple[Path, Path]:
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        cert.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(self.key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))  # fmt: skip
        return cert, key


class CA:
    """A throwaway certificate authority."""

    def __init__(self, name: str = "Casper Test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            _builder(self.name, self.name, self.key, NOW - DAY, NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def write(self, directory: Path) -> Path:
        path = directory / "ca.pem"
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, *dns: str, names: tuple[x509.GeneralName, ...] = (), cn: str | None = None,
              not_before: datetime.datetime = NOW - DAY,
              not_after: datetime.datetime = NOW + 10 * DAY) -> Issued:  # fmt: skip
        """A leaf with SANs ``dns`` (dNSNames) plus ``names``; no SAN extension at all when
        both are empty; subject CN ``cn`` if given."""
        return _leaf(self.name, self.key, dns, names, cn, not_before, not_after)


def self_signed(*dns: str, cn: str | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or (dns[0] if dns else "x"))])
    return _leaf(name, key, dns, (), cn, NOW - DAY, NOW + 10 * DAY, own_key=key)


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             not_before: datetime.datetime, not_after: datetime.datetime) -> x509.CertificateBuilder:  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _leaf(issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey, dns: tuple[str, ...],
          names: tuple[x509.GeneralName, ...], cn: str | None, not_before: datetime.datetime,
          not_after: datetime.datetime,
          own_key: ec.EllipticCurvePrivateKey | None = None) -> Issued:  # fmt: skip
    key = own_key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    if own_key is not None:
        subject = issuer
    builder = _builder(subject, issuer, key, not_before, not_after).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
    )
    sans = [x509.DNSName(d) for d in dns] + list(names)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(issuer_key, hashes.SHA256()), key)
