"""What s2s streams look like on the wire: headers, dialback elements and keys, namespaces.

Pure functions only (no I/O, no trio), shared by the two sans-IO stream machines
(:mod:`casper.s2s.inbound`, :mod:`casper.s2s.outbound`).

The core handles stanzas in the ``jabber:client`` namespace. On an s2s stream the content
namespace is ``jabber:server`` (RFC 6120 §4.8.3); :func:`to_client_ns` converts what
arrives, and :func:`stanza_bytes` writes a core stanza so that it lands in
``jabber:server`` (its elements inherit the stream's default namespace).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from xml.etree.ElementTree import Element, SubElement

from casper.errors import STREAM_CONDITIONS, STREAMS_NS, StreamError
from casper.jid import InvalidJID, prep_domain
from casper.xml import STREAM_NS, escape_attr, escape_text, serialize

SERVER_NS = "jabber:server"
CLIENT_NS = "jabber:client"
DIALBACK_NS = "jabber:server:dialback"
DIALBACK_FEATURE_NS = "urn:xmpp:features:dialback"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"

DB_RESULT = f"{{{DIALBACK_NS}}}result"
DB_VERIFY = f"{{{DIALBACK_NS}}}verify"
STARTTLS = f"{{{TLS_NS}}}starttls"
PROCEED = f"{{{TLS_NS}}}proceed"
TLS_FAILURE = f"{{{TLS_NS}}}failure"
FEATURES = f"{{{STREAM_NS}}}features"
STREAM_ERROR = f"{{{STREAM_NS}}}error"
SASL_AUTH = f"{{{SASL_NS}}}auth"
SASL_SUCCESS = f"{{{SASL_NS}}}success"
SASL_FAILURE = f"{{{SASL_NS}}}failure"
SASL_MECHANISMS = f"{{{SASL_NS}}}mechanisms"
STANZA_TAGS = frozenset(f"{{{ns}}}{kind}" for ns in (SERVER_NS, CLIENT_NS)
                        for kind in ("message", "presence", "iq"))  # fmt: skip
WS = b" \t\r\n"


def new_stream_id() -> str:
    return secrets.token_urlsafe(16)


def stream_header(*, from_: str, to: str | None, id: str | None = None) -> bytes:
    """The XML declaration and ``<stream:stream>`` start tag of an s2s stream, declaring
    the dialback namespace (XEP-0220 §2.1)."""
    parts = [
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server'",
        f" xmlns:stream='{STREAM_NS}' xmlns:db='{DIALBACK_NS}' from='{escape_attr(from_)}'",
    ]
    if to is not None:
        parts.append(f" to='{escape_attr(to)}'")
    if id is not None:
        parts.append(f" id='{escape_attr(id)}'")
    parts.append(" version='1.0'>")
    return "".join(parts).encode()


def dialback_key(secret: bytes, receiving: str, originating: str, stream_id: str) -> str:
    """The XEP-0185 dialback key: ``HMAC-SHA256(SHA256(secret), "recv orig id")`` in hex."""
    mac_key = hashlib.sha256(secret).hexdigest().encode()
    message = f"{receiving} {originating} {stream_id}".encode()
    return hmac.new(mac_key, message, hashlib.sha256).hexdigest()


def keys_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.strip().encode(), b.strip().encode())


def db_element(kind: str, *, from_: str, to: str, id: str | None = None,
               type: str | None = None, key: str | None = None) -> bytes:  # fmt: skip
    """A ``<db:result/>`` or ``<db:verify/>`` element, serialized with the ``db:`` prefix
    declared in the stream header (some servers, ejabberd among them, match the prefix)."""
    parts = [f"<db:{kind} from='{escape_attr(from_)}' to='{escape_attr(to)}'"]
    if id is not None:
        parts.append(f" id='{escape_attr(id)}'")
    if type is not None:
        parts.append(f" type='{escape_attr(type)}'")
    if key:
        parts.append(f">{escape_text(key)}</db:{kind}>")
    else:
        parts.append("/>")
    return "".join(parts).encode()


def features(*children: Element) -> bytes:
    element = Element(FEATURES)
    element.extend(children)
    return serialize(element, SERVER_NS)


def starttls_feature(required: bool) -> Element:
    element = Element(STARTTLS)
    if required:
        SubElement(element, f"{{{TLS_NS}}}required")
    return element


def dialback_feature() -> Element:
    return Element(f"{{{DIALBACK_FEATURE_NS}}}dialback")


def mechanisms_feature(*names: str) -> Element:
    element = Element(SASL_MECHANISMS)
    for name in names:
        SubElement(element, f"{{{SASL_NS}}}mechanism").text = name
    return element


def sasl_failure(condition: str) -> bytes:
    """``<failure><condition/></failure>`` in the SASL namespace (RFC 6120 §6.5)."""
    element = Element(SASL_FAILURE)
    SubElement(element, f"{{{SASL_NS}}}{condition}")
    return serialize(element, SERVER_NS)


def simple(tag: str) -> bytes:
    return serialize(Element(tag), SERVER_NS)


def stanza_bytes(element: Element) -> bytes:
    """Write a core (``jabber:client``) stanza onto an s2s stream, into ``jabber:server``."""
    return serialize(element, CLIENT_NS)


def to_client_ns(element: Element) -> Element:
    """Return a copy of a received stanza with ``jabber:server`` names made ``jabber:client``."""
    tag = element.tag
    if tag.startswith("{jabber:server}"):
        tag = "{jabber:client}" + tag[15:]
    copy = Element(tag, dict(element.attrib))
    copy.text, copy.tail = element.text, element.tail
    copy.extend(to_client_ns(child) if child.tag.startswith("{jabber:server}") else child
                for child in element)  # fmt: skip
    return copy


def domain_or_none(text: str | None) -> str | None:
    """The prepared form of a domain attribute, or ``None`` if absent or invalid."""
    if not text:
        return None
    try:
        return prep_domain(text)
    except InvalidJID:
        return None


def stream_error_from(element: Element) -> StreamError:
    """Turn a received ``<stream:error>`` into a :class:`StreamError`."""
    condition, text = "undefined-condition", None
    for child in element:
        name = child.tag.rpartition("}")[2]
        if child.tag == f"{{{STREAMS_NS}}}text":
            text = child.text
        elif child.tag.startswith(f"{{{STREAMS_NS}}}") and name in STREAM_CONDITIONS:
            condition = name
    return StreamError(condition, text)
