"""The bench client's reader of a server's XML stream: bytes in, stream events out.

The server's own parser (:class:`casper.xml.XMLStreamParser`) tracks byte offsets to cap
stanza sizes and keep raw input, and builds elements in Python callbacks: about 6.5 µs per
small stanza on this machine. The load generator trusts its peer on loopback and needs
neither, so it reads with the C ``XMLPullParser``, which builds the same elements (Clark
notation tags and attributes) in about 2.5 µs. The generator reads every stanza every
workload delivers, so its cost caps what it can measure.

Error handling: input that is not well-formed XML, or a root other than
``<stream:stream>``, raises :class:`StreamReadError`; the reader is dead from then on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any, cast
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

from casper.xml import NEED_DATA, STREAM_NS, StanzaReceived, StreamClosed, StreamOpened
from casper.xml.events import NeedData

_ROOT = f"{{{STREAM_NS}}}stream"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

StreamEvent = StreamOpened | StanzaReceived | StreamClosed


class StreamReadError(Exception):
    """The server's stream is not a well-formed XMPP stream."""


class StreamReader:
    """One stream's reader: :meth:`feed` bytes, take events with :meth:`next_event`."""

    def __init__(self) -> None:
        self._pull: XMLPullParser[Element] = XMLPullParser(("start", "end", "start-ns"))
        self._events: deque[StreamEvent] = deque()
        self._depth = 0
        self._root: Element | None = None
        self._root_ns: str | None = None
        self._closed = False
        self._dead: StreamReadError | None = None

    def next_event(self) -> StreamEvent | NeedData:
        """The next event, or :data:`NEED_DATA` when the bytes fed so far hold no more."""
        return self._events.popleft() if self._events else NEED_DATA

    def feed(self, data: bytes) -> None:
        """Parse ``data`` and queue the events it completes.

        :raises StreamReadError: the input is not an XMPP stream (and never will be).
        """
        if self._dead is not None:
            raise self._dead
        try:
            self._pull.feed(data)
            self._take_events()
        except ParseError as exc:
            self._dead = StreamReadError(f"not-well-formed: {exc}")
            raise self._dead from exc
        if self._root is not None:
            self._root.clear()  # what was queued is detached: the stream does not grow

    def feed_eof(self) -> None:
        """The transport ended: an open stream ends with :class:`StreamClosed`."""
        if self._root is not None and not self._closed:
            self._closed = True
            self._events.append(StreamClosed())

    def _take_events(self) -> None:
        events = cast(Iterator[tuple[str, Any]], self._pull.read_events())
        for kind, item in events:
            if kind == "start-ns":
                prefix, uri = item
                if self._depth == 0 and not prefix:
                    self._root_ns = uri  # declared on the root (it comes before its start)
            elif kind == "start":
                self._depth += 1
                if self._depth == 1:
                    self._open(item)
            else:
                self._depth -= 1
                if self._depth == 1:
                    self._events.append(StanzaReceived(item))
                elif self._depth == 0:
                    self._closed = True
                    self._events.append(StreamClosed())

    def _open(self, root: Element) -> None:
        if root.tag != _ROOT:
            raise ParseError(f"the root is {root.tag}, not <stream:stream>")
        self._root = root
        attrs = {("xml:lang" if name == _XML_LANG else name): value
                 for name, value in root.attrib.items()}  # fmt: skip
        self._events.append(StreamOpened(attrs, self._root_ns))
