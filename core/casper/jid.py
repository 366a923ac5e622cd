"""Immutable XMPP addresses (RFC 7622), prepared once and compared by their prepared parts.

A JID is ``[localpart "@"] domainpart ["/" resourcepart]``. Splitting follows RFC 7622 §3.1:
the resourcepart is everything after the *first* ``/`` (so it may itself contain ``/`` and
``@``), and the localpart is everything before the first ``@`` of what remains.

Each part is then prepared with an approximation of the PRECIS profiles (RFC 8264/8265):

- localpart (UsernameCaseMapped): NFKC, then lower case; no ``" & ' / : < > @``, no spaces,
  control, format, surrogate, private-use or unassigned code points.
- domainpart: one trailing dot stripped, NFKC, lower case, ideographic full stops mapped to
  ``.``; non-empty labels of at most 63 octets in A-label form; an IPv6 literal ``[...]`` is
  allowed and written in its compressed form. A-labels (``xn--``) are not decoded.
- resourcepart (OpaqueString): non-ASCII spaces mapped to U+0020, then NFC; no control or
  surrogate code points; case is kept.

Every part is 1 to 1023 octets of UTF-8 after preparation. Parsing sits on the routing hot
path, so :meth:`JID.parse` memoizes short inputs in a bounded LRU cache.
"""

from __future__ import annotations

import functools
import ipaddress
import unicodedata
from dataclasses import dataclass, field

__all__ = ["JID", "InvalidJID", "prep_domain", "prep_localpart", "prep_resource"]

MAX_PART_BYTES = 1023
# The parse cache holds the hot addresses (contacts, bound sessions) and evicts the rest: a
# cached parse takes about 0.2 µs, a fresh one 3 to 5 µs. An entry costs about 600 bytes for
# a typical full JID (with its memoized string and bare JID), about 1.3 KiB for the longest
# cached input, so the full cache holds 2.5 to 5 MiB. Every new resource is a new entry, so a
# busy server fills it (65,536 entries cost 37 MiB and took an hour of soak to fill).
_CACHE_SIZE = 4096
# Inputs longer than this are parsed without caching, which bounds the cache's memory use.
_CACHE_MAX_CHARS = 256
_MAX_LABEL_BYTES = 63

_PRINTABLE_ASCII = frozenset(map(chr, range(0x21, 0x7F)))
_LOCAL_FORBIDDEN = frozenset("\"&'/:<>@")
_DOMAIN_FORBIDDEN = frozenset("\"&'/:<>@[\\]")
_LOCAL_ASCII_OK = _PRINTABLE_ASCII - _LOCAL_FORBIDDEN
_DOMAIN_ASCII_OK = _PRINTABLE_ASCII - _DOMAIN_FORBIDDEN
_RESOURCE_ASCII_OK = _PRINTABLE_ASCII | {" "}

_SPACES = frozenset({"Zs", "Zl", "Zp"})
_LOCAL_BAD_CATEGORIES = _SPACES | {"Cc", "Cf", "Cs", "Co", "Cn"}
_DOMAIN_BAD_CATEGORIES = _LOCAL_BAD_CATEGORIES
# FreeformClass (RFC 8264 §9): controls, format characters (most are Default_Ignorable),
# private use, surrogates and unassigned code points are disallowed; the join controls are
# allowed in context (CONTEXTJ, RFC 5892 Appendix A.1 and A.2), checked separately.
_RESOURCE_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_ZWNJ, _ZWJ = "\u200c", "\u200d"
_VIRAMA = 9  # canonical combining class
_FULL_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class InvalidJID(ValueError):
    """Text that is not a valid JID; the stanza layer answers it with ``jid-malformed``."""


# -- preparation of the three parts ----------------------------------------------------------


def _check_length(part: str, value: str) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        raise InvalidJID(f"{part} is not encodable as UTF-8") from None
    if not 1 <= size <= MAX_PART_BYTES:
        raise InvalidJID(f"{part} must be 1..{MAX_PART_BYTES} bytes, not {size}")


def _check_chars(
    part: str,
    value: str,
    ascii_ok: frozenset[str],
    bad_categories: frozenset[str],
    forbidden: frozenset[str] = frozenset(),
) -> None:
    if value.isascii():
        if not ascii_ok.issuperset(value):
            raise InvalidJID(f"{part} contains a forbidden character")
        return
    for char in value:
        if char in forbidden or unicodedata.category(char) in bad_categories:
            raise InvalidJID(f"{part} contains forbidden character U+{ord(char):04X}")


def _nfkc_lower(text: str) -> str:
    prepared = unicodedata.normalize("NFKC", text).lower()
    if not unicodedata.is_normalized("NFKC", prepared):  # lower() can denormalize; stay idempotent
        prepared = unicodedata.normalize("NFKC", prepared)
    return prepared


def prep_localpart(text: str) -> str:
    """Prepare a localpart (UsernameCaseMapped, approximated).

    :param text: the localpart as received, without ``@``.
    :return: the canonical localpart.
    :raises InvalidJID: if it is empty, too long or contains a forbidden character.
    """
    local = text.lower() if text.isascii() else _nfkc_lower(text)
    _check_chars("localpart", local, _LOCAL_ASCII_OK, _LOCAL_BAD_CATEGORIES, _LOCAL_FORBIDDEN)
    _check_length("localpart", local)
    return local


def _prep_ip_literal(domain: str) -> str:
    if not domain.endswith("]") or "%" in domain:
        raise InvalidJID("domainpart is not a valid IPv6 literal")
    try:
        address = ipaddress.IPv6Address(domain[1:-1])
    except ValueError:
        raise InvalidJID("domainpart is not a valid IPv6 literal") from None
    return f"[{address.compressed}]"


def _label_size(label: str) -> int:
    if label.isascii():
        return len(label)
    return len("xn--") + len(label.encode("punycode"))


def _check_labels(domain: str) -> None:
    for label in domain.split("."):
        if not label:
            raise InvalidJID("domainpart has an empty label")
        if _label_size(label) > _MAX_LABEL_BYTES:
            raise InvalidJID(f"domainpart label is longer than {_MAX_LABEL_BYTES} octets")


def prep_domain(text: str) -> str:
    """Prepare a domainpart: a host name, an IPv4 address or a bracketed IPv6 address.

    :param text: the domainpart as received; one trailing dot is allowed and removed.
    :return: the canonical domainpart.
    :raises InvalidJID: if it is empty, too long, has an empty label or a forbidden character.
    """
    domain = text.lower() if text.isascii() else _nfkc_lower(text).translate(_FULL_STOPS)
    domain = domain.removesuffix(".")
    if domain.startswith("["):
        return _prep_ip_literal(domain)
    _check_chars("domainpart", domain, _DOMAIN_ASCII_OK, _DOMAIN_BAD_CATEGORIES, _DOMAIN_FORBIDDEN)
    _check_length("domainpart", domain)
    _check_labels(domain)
    return domain


def _map_space(char: str) -> str:
    return " " if unicodedata.category(char) == "Zs" else char


def prep_resource(text: str) -> str:
    """Prepare a resourcepart (OpaqueString, approximated); its case is kept.

    :param text: the resourcepart as received, without the leading ``/``.
    :return: the canonical resourcepart.
    :raises InvalidJID: if it is empty, too long or contains a character the PRECIS
        FreeformClass disallows (controls, format, private-use, unassigned code points).
    """
    if text.isascii():
        resource = text
    else:
        resource = unicodedata.normalize("NFC", "".join(map(_map_space, text)))
    if _ZWNJ in resource or _ZWJ in resource:
        _check_join_controls(resource)
        resource_chars = resource.replace(_ZWNJ, "").replace(_ZWJ, "")
    else:
        resource_chars = resource
    _check_chars("resourcepart", resource_chars, _RESOURCE_ASCII_OK, _RESOURCE_BAD_CATEGORIES)
    _check_length("resourcepart", resource)
    return resource


def _check_join_controls(text: str) -> None:
    """ZWJ only after a virama; ZWNJ after a virama or between two letters (the letters
    approximate RFC 5892's joining-type rule, which Python's unicodedata cannot tell)."""
    for index, char in enumerate(text):
        if char not in (_ZWNJ, _ZWJ):
            continue
        before = text[index - 1] if index else ""
        after = text[index + 1] if index + 1 < len(text) else ""
        if before and unicodedata.combining(before) == _VIRAMA:
            continue
        if char == _ZWNJ and _is_letter(before) and _is_letter(after):
            continue
        raise InvalidJID(f"resourcepart contains U+{ord(char):04X} out of context")


def _is_letter(char: str) -> bool:
    return bool(char) and unicodedata.category(char).startswith(("L", "M"))


# -- the JID value -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JID:
    """A prepared JID; build it with :meth:`parse` or :meth:`make`, never directly.

    Equality and hashing compare the prepared parts, so ``Romeo@Example.com`` and
    ``romeo@example.com.`` are the same JID while resources stay case-sensitive.
    """

    local: str | None
    domain: str
    resource: str | None
    # Memos, filled on first use: a JID is immutable, and parsed JIDs are shared through the
    # parse cache, so routing computes each string form, bare JID and hash once per address.
    _text: str | None = field(default=None, init=False, repr=False, compare=False)
    _bare: JID | None = field(default=None, init=False, repr=False, compare=False)
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> JID:
        """Parse and prepare a JID string (RFC 7622 §3.1); short inputs are cached.

        :param text: e.g. ``"juliet@example.com/balcony"``.
        :raises InvalidJID: if any part is empty or fails its preparation.
        """
        if not isinstance(text, str):
            raise TypeError(f"JID.parse() needs a str, not {type(text).__name__}")
        if len(text) <= _CACHE_MAX_CHARS:
            return _parse_cached(text)
        return _parse(text)

    @classmethod
    def make(cls, local: str | None, domain: str, resource: str | None = None) -> JID:
        """Prepare and validate the parts of a JID.

        :param local: the localpart, or ``None`` for a domain JID.
        :param domain: the domainpart.
        :param resource: the resourcepart, or ``None`` for a bare JID.
        :raises InvalidJID: if a part is empty (``""`` is not ``None``) or invalid.
        """
        return cls(
            None if local is None else prep_localpart(local),
            prep_domain(domain),
            None if resource is None else prep_resource(resource),
        )

    @property
    def bare(self) -> JID:
        """This JID without its resource."""
        if self.resource is None:
            return self
        bare = self._bare
        if bare is None:
            bare = JID(self.local, self.domain, None)
            object.__setattr__(self, "_bare", bare)
        return bare

    @property
    def domain_jid(self) -> JID:
        """The JID of this JID's domain (no localpart, no resource)."""
        if self.local is None and self.resource is None:
            return self
        return JID(None, self.domain, None)

    @property
    def is_bare(self) -> bool:
        """True if this JID has no resource."""
        return self.resource is None

    @property
    def is_full(self) -> bool:
        """True if this JID has a resource."""
        return self.resource is not None

    def with_resource(self, resource: str) -> JID:
        """Return this JID's bare JID with ``resource`` (prepared) as its resourcepart.

        :raises InvalidJID: if ``resource`` is not a valid resourcepart.
        """
        return JID(self.local, self.domain, prep_resource(resource))

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = self.domain if self.local is None else f"{self.local}@{self.domain}"
            if self.resource is not None:
                text = f"{text}/{self.resource}"
            object.__setattr__(self, "_text", text)
        return text

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if other.__class__ is not JID:
            return NotImplemented
        return (
            self.domain == other.domain  # type: ignore[attr-defined]
            and self.local == other.local  # type: ignore[attr-defined]
            and self.resource == other.resource  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            value = hash((self.local, self.domain, self.resource))
            object.__setattr__(self, "_hash", value)
        return value


def _parse(text: str) -> JID:
    rest, slash, resource = text.partition("/")
    local, at, domain = rest.partition("@")
    if not at:
        return JID.make(None, rest, resource if slash else None)
    return JID.make(local, domain, resource if slash else None)


_parse_cached = functools.lru_cache(maxsize=_CACHE_SIZE)(_parse)
