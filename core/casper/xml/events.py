"""Events produced by :class:`casper.xml.XMLStreamParser` (h11 ``_events`` style).

The parser turns bytes into these frozen dataclasses. Depth 1 of the XML document is the
``<stream:stream>`` root (RFC 6120 §4.7), depth 2 a stanza or a negotiation element.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final
from xml.etree.ElementTree import Element


@dataclass(frozen=True)
class StreamOpened:
    """The peer opened the stream with a ``<stream:stream>`` start tag.

    :param attrs: the root's attributes: plain names (``to``, ``from``, ``version``, ``id``),
        ``xml:lang`` for the xml namespace's ``lang``, Clark notation for any other namespace.
    :param default_ns: the default namespace declared on the root (``jabber:client``), if any.
    """

    attrs: dict[str, str]
    default_ns: str | None


@dataclass(frozen=True)
class StanzaReceived:
    """A complete depth-2 element: a stanza, or a negotiation element such as ``<auth/>``.

    :param element: tags in Clark notation (``{ns}name``); unnamespaced attributes plain,
        namespaced ones in Clark notation (``{http://www.w3.org/XML/1998/namespace}lang``).
        Text and tails are kept as received.
    """

    element: Element


@dataclass(frozen=True)
class StreamClosed:
    """The peer sent ``</stream:stream>``, or the transport ended an open stream."""


class NeedData(enum.Enum):
    """Type of :data:`NEED_DATA`, the only member (a typed sentinel, PEP 484 style)."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"

    __str__ = __repr__


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by ``next_event()`` when no complete event is buffered: feed more bytes."""

Event = StreamOpened | StanzaReceived | StreamClosed
