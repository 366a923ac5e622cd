"""Which domains a peer's certificate speaks for (RFC 6125, RFC 6120 §13.7.1.2), sans-IO.

Pure functions over a parsed certificate (no I/O, no trio). Whether the chain verifies
against the trust anchors is decided by OpenSSL during the handshake (:mod:`.trust`); the
result arrives here as :class:`PeerCertificate`, which the stream machines
(:mod:`.inbound`, :mod:`.outbound`) consult before SASL EXTERNAL.

Identities, in the order RFC 6125 §6.4 and RFC 7590 §3 consider them:

- ``dNSName`` SANs, matched case-insensitively in A-label form; a ``*`` is accepted only
  as the whole left-most label, and it stands for exactly one label (``*.example.org``
  covers ``chat.example.org``, not ``example.org`` nor ``a.b.example.org``); a wildcard
  needs at least two labels after it.
- ``SRVName`` otherNames (RFC 4985) for the service ``_xmpp-server``: exact match.
- ``XmppAddr`` otherNames (``id-on-xmppAddr``, RFC 6120 §13.7.1.4): exact match of the
  prepared domain; no wildcards.
- The subject's common name, only when the certificate has none of the above (no CN
  fallback next to SANs); matched like a ``dNSName``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from casper.jid import InvalidJID, prep_domain

ID_ON_XMPPADDR = ObjectIdentifier("1.3.6.1.5.5.7.8.5")
ID_ON_DNSSRV = ObjectIdentifier("1.3.6.1.5.5.7.8.7")
SRV_PREFIX = "_xmpp-server."
_UTF8STRING, _IA5STRING = 0x0C, 0x16


@dataclass(frozen=True)
class Identities:
    """The reference identities a certificate presents (RFC 6125 §1.8)."""

    dns_names: tuple[str, ...] = ()  #: lowercase A-labels; may start with ``*.``
    srv_names: tuple[str, ...] = ()  #: domains of ``_xmpp-server.`` SRVNames
    xmpp_addrs: tuple[str, ...] = ()  #: XmppAddr values (prepared when valid)
    common_names: tuple[str, ...] = ()  #: the subject CNs (used only without the others)

    def covers(self, domain: str) -> bool:
        """Whether this certificate speaks for ``domain`` (see the module docstring)."""
        reference = _a_label(domain)
        if reference is None:
            return False
        if self.dns_names or self.srv_names or self.xmpp_addrs:
            return (
                any(_dns_matches(name, reference) for name in self.dns_names)
                or any(_a_label(name) == reference for name in self.srv_names)
                or any(_same_domain(addr, domain) for addr in self.xmpp_addrs)
            )
        return any(_dns_matches(name.lower(), reference) for name in self.common_names)

    def __str__(self) -> str:
        names = [*self.dns_names, *(f"srv:{n}" for n in self.srv_names),
                 *(f"xmpp:{n}" for n in self.xmpp_addrs)]  # fmt: skip
        if not names:
            names = [f"CN={n}" for n in self.common_names]
        return ", ".join(names) or "(no names)"


@dataclass(frozen=True)
class PeerCertificate:
    """What TLS told us about the peer: its identities and whether its chain verified.

    :param verified: the chain leads to a trust anchor, every certificate is within its
        validity period and properly signed (OpenSSL's verdict during the handshake).
    :param error: why the chain did not verify (``None`` when it did).
    """

    identities: Identities
    verified: bool
    error: str | None = None

    def authenticates(self, domain: str) -> bool:
        """Whether the chain verified and the certificate covers ``domain``."""
        return self.verified and self.identities.covers(domain)

    def describe(self, domain: str) -> str:
        """A short reason for logs: verified for ``domain``, or why not."""
        if not self.verified:
            return f"certificate not trusted ({self.error})"
        if not self.identities.covers(domain):
            return f"certificate is for {self.identities}, not {domain}"
        return "certificate verified"


def identities_of(cert: x509.Certificate) -> Identities:
    """Collect the identities of ``cert``; malformed entries are skipped, never trusted."""
    dns: list[str] = []
    srv: list[str] = []
    xmpp: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == ID_ON_XMPPADDR:
                value = _der_string(other.value, _UTF8STRING)
                if value:
                    xmpp.append(value)
            elif other.type_id == ID_ON_DNSSRV:
                value = _der_string(other.value, _IA5STRING)
                if value and value.lower().startswith(SRV_PREFIX):
                    srv.append(value[len(SRV_PREFIX) :].lower())
    common = [str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return Identities(tuple(dns), tuple(srv), tuple(xmpp), tuple(common))


def _a_label(domain: str) -> str | None:
    """``domain`` in lowercase A-label form, without a trailing dot; ``None`` if invalid."""
    domain = domain.rstrip(".")
    try:
        return domain.encode("idna").decode("ascii").lower() if domain else None
    except UnicodeError:
        return None


def _dns_matches(presented: str, reference: str) -> bool:
    presented = presented.rstrip(".")
    if not presented.startswith("*."):
        return "*" not in presented and presented == reference
    rest = presented[2:]
    if "*" in rest or rest.count(".") < 1:
        return False  # one wildcard only, and never for a whole public suffix like *.org
    label, dot, parent = reference.partition(".")
    return bool(label and dot) and parent == rest


def _same_domain(addr: str, domain: str) -> bool:
    try:
        return prep_domain(addr) == prep_domain(domain)
    except InvalidJID:
        return False


def _der_string(data: bytes, tag: int) -> str | None:
    """Decode a DER string of type ``tag`` (UTF8String, IA5String); ``None`` if malformed."""
    if len(data) < 2 or data[0] != tag:
        return None
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if len(data) != offset + length:
        return None
    try:
        return data[offset:].decode("utf-8" if tag == _UTF8STRING else "ascii")
    except UnicodeDecodeError:
        return None
