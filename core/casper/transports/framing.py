"""Sans-IO translation between RFC 6120 stream bytes and per-element transports.

WebSocket (RFC 7395) and BOSH (XEP-0206) carry XMPP as standalone elements instead of one
long XML document. The :class:`~casper.connection.Connection` speaks the long document in
both directions, so the adapters translate at the edge:

- inbound, an ``<open/>`` (or a BOSH session creation or restart) becomes a stream header
  (:func:`stream_header_for`), each element is re-serialized (:func:`parse_element`
  validates one element under the same restricted-XML rules and limits as a TCP stream),
  and ``<close/>`` becomes ``</stream:stream>``;
- outbound, :class:`StreamSplitter` parses what the connection writes back into
  :class:`Opened`, :class:`ElementOut` and :class:`Closed` frames, following the stream
  restart after SASL ``<success/>``; :func:`standalone` writes an element as a complete
  document (its namespace declared, the ``stream:`` prefix too).

Parsing our own output costs a little CPU on these transports only; in exchange the
connection, negotiation, hooks and plugins stay exactly the same for every transport.
No trio here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from casper.errors import RemoteProtocolError
from casper.xml import (
    NEED_DATA,
    STREAM_NS,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    XMLStreamParser,
    escape_attr,
    serialize,
)

FRAMING_NS = "urn:ietf:params:xml:ns:xmpp-framing"
SASL_SUCCESS = "{urn:ietf:params:xml:ns:xmpp-sasl}success"
CLOSE = f"<close xmlns='{FRAMING_NS}'/>".encode()
_WRAPPER = (
    f"<stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}'>".encode()
)  # parses one element as a TCP stream would see it
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>")
_HEADER_ATTRS = ("to", "from", "id", "version", "xml:lang")
OUTBOUND_LIMIT = 64 * 1024 * 1024  # our own output: a sanity bound, not a policy


@dataclass(frozen=True)
class Opened:
    attrs: dict[str, str]  #: the server's stream header attributes (id, from, version...)


@dataclass(frozen=True)
class ElementOut:
    element: Element  #: one top-level element the server sent


@dataclass(frozen=True)
class Closed:
    """The server wrote ``</stream:stream>``."""


Frame = Opened | ElementOut | Closed


def stream_header_for(attrs: Mapping[str, str]) -> bytes:
    """Return the RFC 6120 stream header equivalent to an ``<open/>`` with ``attrs``.

    Only ``to``, ``from``, ``id``, ``version`` and ``xml:lang`` are carried over; the
    content namespace is always ``jabber:client``.
    """
    parts = [f"<stream:stream xmlns='jabber:client' xmlns:stream='{STREAM_NS}'"]
    for name in _HEADER_ATTRS:
        value = attrs.get(name)
        if value is not None:
            parts.append(f" {name}='{escape_attr(value)}'")
    parts.append(">")
    return "".join(parts).encode()


def parse_element(data: bytes, *, max_bytes: int, max_depth: int) -> Element:
    """Parse ``data`` as exactly one complete XML element (an XML declaration may lead).

    Unqualified elements count as ``jabber:client``. The parser's rules apply: no DTD,
    comments, processing instructions or entities, at most ``max_bytes`` and ``max_depth``.

    :raises RemoteProtocolError: ``not-well-formed`` for anything but one complete element,
        or the parser's condition (``restricted-xml``, ``policy-violation``...).
    """
    match = _XML_DECL.match(data)
    if match:
        data = data[match.end() :]
    parser = XMLStreamParser(max_stanza_bytes=max_bytes, max_depth=max_depth + 1)
    parser.feed(_WRAPPER)
    parser.next_event()  # the wrapper's StreamOpened
    parser.feed(data)
    event = parser.next_event()
    if not isinstance(event, StanzaReceived) or parser.trailing_bytes():
        raise RemoteProtocolError("not-well-formed", "expected exactly one complete XML element")
    return event.element


def standalone(element: Element, default_ns: str = "") -> bytes:
    """Serialize ``element`` as a complete document; ``default_ns`` is the one in scope."""
    data = serialize(element, default_ns)
    if element.tag.startswith("{" + STREAM_NS + "}"):
        qname = b"<stream:" + element.tag.rpartition("}")[2].encode()
        declaration = f" xmlns:stream='{STREAM_NS}'".encode()
        data = qname + declaration + data[len(qname) :]
    return data


def open_element(attrs: Mapping[str, str]) -> bytes:
    """Return the RFC 7395 ``<open/>`` answering a stream header with ``attrs``."""
    parts = [f"<open xmlns='{FRAMING_NS}'"]
    for name in _HEADER_ATTRS:
        value = attrs.get(name)
        if value is not None:
            parts.append(f" {name}='{escape_attr(value)}'")
    parts.append("/>")
    return "".join(parts).encode()


class StreamSplitter:
    """Cut the server's stream bytes into frames (sans-IO).

    The negotiation writes a fresh stream header after SASL success, so the parser is
    restarted right after a ``<success/>`` element.
    """

    def __init__(self) -> None:
        self._parser = self._new_parser()
        self._authenticated = False

    @staticmethod
    def _new_parser() -> XMLStreamParser:
        return XMLStreamParser(max_stanza_bytes=OUTBOUND_LIMIT, max_depth=1024)

    def feed(self, data: bytes) -> list[Frame]:
        """Return the frames completed by ``data``.

        Until SASL succeeds the bytes go to the parser one tag at a time, so that a new
        stream header written right after ``<success/>`` reaches the new parser.

        :raises RemoteProtocolError: the bytes are not a stream (a bug in the caller).
        """
        frames: list[Frame] = []
        while data and not self._authenticated:
            cut = data.find(b">") + 1 or len(data)
            self._parser.feed(data[:cut])
            data = data[cut:]
            self._pull(frames)
        if data:
            self._parser.feed(data)
            self._pull(frames)
        return frames

    def _pull(self, frames: list[Frame]) -> None:
        while (event := self._parser.next_event()) is not NEED_DATA:
            if isinstance(event, StreamOpened):
                frames.append(Opened(event.attrs))
            elif isinstance(event, StreamClosed):
                frames.append(Closed())
            else:
                frames.append(ElementOut(event.element))
                if event.element.tag == SASL_SUCCESS:
                    self._authenticated = True
                    self._parser = self._new_parser()
