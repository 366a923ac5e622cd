"""Pure functions that write XMPP stream XML (h11 ``_writers`` style).

Elements use Clark notation (``{ns}name``) as produced by :class:`casper.xml.XMLStreamParser`.
Namespaces are written as default-namespace declarations only where they change, the streams
namespace with the ``stream:`` prefix declared by :func:`stream_header`. Attribute values are
apostrophe-quoted. This runs once per routed stanza, so it builds strings with a list and
``"".join`` rather than going through ElementTree's writer.
"""

from __future__ import annotations

import re
from typing import Final
from xml.etree.ElementTree import Element

from casper.errors import STREAM_CONDITIONS, StreamError
from casper.errors import STREAMS_NS as ERRORS_NS

STREAM_NS: Final = "http://etherx.jabber.org/streams"
XML_NS: Final = "http://www.w3.org/XML/1998/namespace"
STREAM_CLOSE: Final = b"</stream:stream>"

_TEXT_SPECIAL = re.compile(r"[&<>\r]")
_TEXT_TABLE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_SPECIAL = re.compile(r"[&<>\"'\t\n\r]")
_ATTR_TABLE = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def escape_text(text: str) -> str:
    """Escape character data (``\\r`` too, so that it survives end-of-line handling)."""
    return text.translate(_TEXT_TABLE) if _TEXT_SPECIAL.search(text) else text


def escape_attr(value: str) -> str:
    """Escape an attribute value for either quote style (whitespace kept from normalization)."""
    return value.translate(_ATTR_TABLE) if _ATTR_SPECIAL.search(value) else value


def stream_header(
    *,
    from_: str,
    id: str,
    to: str | None = None,
    version: str = "1.0",
    lang: str = "en",
    default_ns: str = "jabber:client",
) -> bytes:
    """Return the XML declaration and ``<stream:stream>`` start tag (RFC 6120 §4.7).

    :param from_: the server's domain.
    :param id: the stream id (RFC 6120 §4.7.3).
    :param to: the peer's address, if known; omitted when ``None``.
    :param version: ``"1.0"`` for RFC 6120 streams.
    :param lang: the default ``xml:lang`` of the stream.
    :param default_ns: the content namespace (``jabber:client`` or ``jabber:server``).
    """
    parts = [
        "<?xml version='1.0'?><stream:stream xmlns='",
        escape_attr(default_ns),
        f"' xmlns:stream='{STREAM_NS}' from='",
        escape_attr(from_),
        "' id='",
        escape_attr(id),
    ]
    if to is not None:
        parts += ("' to='", escape_attr(to))
    parts += ("' version='", escape_attr(version), "' xml:lang='", escape_attr(lang), "'>")
    return "".join(parts).encode()


def serialize(element: Element, default_ns: str = "jabber:client") -> bytes:
    """Return ``element`` (without its tail) as UTF-8 XML.

    :param element: tags and attribute names in Clark notation.
    :param default_ns: the default namespace in scope where the bytes will be written.
    :raises ValueError: an ``xmlns`` or ``xmlns:*`` attribute (use Clark notation instead).
    """
    out: list[str] = []
    _write(out, element, default_ns)
    return "".join(out).encode()


def stream_error(condition: str, text: str | None = None, app: Element | None = None) -> bytes:
    """Return a ``<stream:error>`` element for ``condition`` (RFC 6120 §4.9), with ``app``
    as its application-specific condition (§4.9.4) if given."""
    if condition not in STREAM_CONDITIONS:
        raise ValueError(f"unknown stream error condition {condition!r}")
    parts = ["<stream:error><", condition, " xmlns='", ERRORS_NS, "'/>"]
    if text is not None:
        parts += ("<text xmlns='", ERRORS_NS, "'>", escape_text(text), "</text>")
    if app is not None:
        parts.append(serialize(app).decode())
    parts.append("</stream:error>")
    return "".join(parts).encode()


def stream_error_of(error: StreamError) -> bytes:
    """:func:`stream_error` for a raised :class:`~casper.errors.StreamError`."""
    return stream_error(error.condition, error.text, error.app)


_SPLIT_CACHE: dict[str, tuple[str, str]] = {}
_SPLIT_CACHE_MAX = 4096  # names come from peers: bounded, the first ones seen are kept


def _split(name: str) -> tuple[str, str]:
    """Split a Clark name into (namespace, local name); ``""`` means no namespace."""
    split = _SPLIT_CACHE.get(name)
    if split is not None:
        return split
    if name[:1] == "{":
        ns, _, local = name[1:].partition("}")
        split = (ns, local)
    else:
        split = ("", name)
    if len(_SPLIT_CACHE) < _SPLIT_CACHE_MAX:
        _SPLIT_CACHE[name] = split
    return split


def _write(out: list[str], element: Element, default_ns: str) -> None:
    ns, local = _split(element.tag)
    if ns == STREAM_NS:
        qname = "stream:" + local
        out += ("<", qname)
    else:
        qname = local
        out += ("<", local)
        if ns != default_ns:
            out += (" xmlns='", escape_attr(ns), "'")
            default_ns = ns
    if element.attrib:
        _write_attrs(out, element.attrib)
    text = element.text
    if not text and not len(element):
        out.append("/>")
        return
    out.append(">")
    if text:
        out.append(escape_text(text))
    for child in element:
        _write(out, child, default_ns)
        if child.tail:
            out.append(escape_text(child.tail))
    out += ("</", qname, ">")


def _write_attrs(out: list[str], attrib: dict[str, str]) -> None:
    prefixes: dict[str, str] = {}
    for name, value in attrib.items():
        if name[:5] == "xmlns":
            raise ValueError(f"attribute {name!r}: give namespaces in Clark notation instead")
        if name[:1] == "{":
            ns, local = _split(name)
            if ns == XML_NS:
                name = "xml:" + local
            else:
                prefix = prefixes.get(ns)
                if prefix is None:
                    prefix = prefixes[ns] = f"ns{len(prefixes)}"
                    out += (" xmlns:", prefix, "='", escape_attr(ns), "'")
                name = prefix + ":" + local
        out += (" ", name, "='", escape_attr(value), "'")
