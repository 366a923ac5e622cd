"""Sans-IO XMPP stream parser: bytes in, events out (h11 ``Connection`` style).

The stream is one XML document fed incrementally to expat with namespace processing.
Depth 1 is the ``<stream:stream>`` root (RFC 6120 §4.7), depth 2 a stanza; each complete
depth-2 element becomes one :class:`StanzaReceived`.

Rules enforced here (RFC 6120 §11):

1. Restricted XML: no DOCTYPE, entity declarations, comments, processing instructions
   (the XML declaration at the very start is allowed) or entity references other than the
   five predefined ones and character references -> ``restricted-xml``. DOCTYPE is refused
   where it starts, so no entity is ever declared, let alone expanded (billion laughs).
2. Only UTF-8 -> ``unsupported-encoding``; root must be ``{http://etherx.jabber.org/streams}stream``
   -> ``invalid-namespace``; malformed XML or text directly under the root -> ``not-well-formed``.
3. Limits: one top-level element may not exceed ``max_stanza_bytes`` bytes, counted from its
   ``<`` and checked while it arrives (the prolog plus the ``<stream:stream>`` start tag obey
   the same cap; whitespace between stanzas does not count); elements may not nest deeper
   than ``max_depth`` -> ``policy-violation``.

Error handling: every peer fault raises :class:`~casper.errors.RemoteProtocolError` carrying the
stream error condition; the parser is then dead and raises the same error on every later call.

Resource handling: only the bytes since the end of the last event handed out are retained.
Between stanzas, :meth:`XMLStreamParser.hibernate` frees expat's state (~14 KiB): the next
:meth:`~XMLStreamParser.feed` starts a new expat parser, primed with a start tag that
declares the root's namespaces again, so the stream goes on as one document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NoReturn
from xml.etree.ElementTree import TreeBuilder
from xml.parsers import expat

from casper.errors import LocalProtocolError, RemoteProtocolError
from casper.xml.events import NEED_DATA, Event, NeedData, StanzaReceived, StreamClosed, StreamOpened
from casper.xml.serializer import escape_attr

STREAM_NS = "http://etherx.jabber.org/streams"
XML_NS = "http://www.w3.org/XML/1998/namespace"

TEXT_BUFFER = 1024  # expat's character-data buffer, per connection (its default is 8 KiB)
_SEP = "}"  # expat reports "uri}local"; prefixing "{" gives Clark notation
_ROOT = STREAM_NS + _SEP + "stream"
_WS = b" \t\r\n"
_SLASH = ord("/")
_NON_WS = re.compile(rb"[^ \t\r\n]")
# A tag already accepted by expat ends at the first '>' outside a quoted attribute value.
_TAG_END = re.compile(rb"""(?:[^'">]++|'[^']*+'|"[^"]*+")*+>""")


def _codes(*names: str) -> frozenset[int]:
    messages = (getattr(expat.errors, name, None) for name in names)
    return frozenset(expat.errors.codes[m] for m in messages if m is not None)


_RESTRICTED_CODES = _codes(
    "XML_ERROR_UNDEFINED_ENTITY",
    "XML_ERROR_PARAM_ENTITY_REF",
    "XML_ERROR_RECURSIVE_ENTITY_REF",
    "XML_ERROR_ASYNC_ENTITY",
    "XML_ERROR_BINARY_ENTITY_REF",
    "XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF",
    "XML_ERROR_EXTERNAL_ENTITY_HANDLING",
    "XML_ERROR_ENTITY_DECLARED_IN_PE",
    "XML_ERROR_AMPLIFICATION_LIMIT_BREACH",
    "XML_ERROR_NOT_STANDALONE",
    "XML_ERROR_MISPLACED_XML_PI",
)
_ENCODING_CODES = _codes("XML_ERROR_UNKNOWN_ENCODING", "XML_ERROR_INCORRECT_ENCODING")


_CLARK_CACHE: dict[str, str] = {}
_CLARK_CACHE_MAX = 4096  # names come from peers: bounded, the first ones seen are kept


def _clark(name: str) -> str:
    clark = _CLARK_CACHE.get(name)
    if clark is None:
        clark = "{" + name if _SEP in name else name
        if len(_CLARK_CACHE) < _CLARK_CACHE_MAX:
            _CLARK_CACHE[name] = clark
    return clark


def _clark_attrs(attrs: dict[str, str]) -> dict[str, str]:
    for name in attrs:
        if _SEP in name:
            return {_clark(k): v for k, v in attrs.items()}
    return attrs


def _root_attrs(attrs: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in attrs.items():
        if _SEP in name:
            ns, local = name.split(_SEP, 1)
            name = "xml:" + local if ns == XML_NS else "{" + name
        out[name] = value
    return out


def _translate(exc: expat.ExpatError) -> RemoteProtocolError:
    if exc.code in _RESTRICTED_CODES:
        return RemoteProtocolError("restricted-xml", str(exc))
    if exc.code in _ENCODING_CODES:
        return RemoteProtocolError("unsupported-encoding", str(exc))
    return RemoteProtocolError("not-well-formed", str(exc))


class XMLStreamParser:
    """Turn the bytes of one inbound XML stream into :mod:`casper.xml.events`.

    Make a new parser for every stream restart (after STARTTLS and SASL).

    :param max_stanza_bytes: the largest top-level element accepted, in bytes.
    :param max_depth: the deepest nesting accepted; the root is depth 1, a stanza depth 2.
    """

    def __init__(self, *, max_stanza_bytes: int = 262144, max_depth: int = 32) -> None:
        if max_stanza_bytes < 1 or max_depth < 2:
            raise ValueError("max_stanza_bytes must be >= 1 and max_depth >= 2")
        self._max_bytes = max_stanza_bytes
        self._max_depth = max_depth
        # (event, absolute end offset) from _events[_next] on; a list and an index rather
        # than a deque, whose empty block would cost 760 bytes per idle connection
        self._events: list[tuple[Event, int]] = []
        self._next = 0
        self._buf = bytearray()  # bytes fed from absolute offset _buf_start on
        self._buf_start = 0
        self._fed = 0  # absolute offset of the next byte to arrive
        self._read_pos = 0  # end of the last event returned by next_event()
        self._start: int | None = None  # first non-whitespace byte of the unit arriving
        self._scanned = 0  # no non-whitespace byte between the last unit's end and here
        self._depth = 0
        self._opened = self._closed = self._eof = False
        self._root_ns: str | None = None
        self._root_empty_end: int | None = None  # set if the root is <stream:stream/>
        self._empty_end: int | None = None  # set if the current stanza is <empty/>
        self._builder: TreeBuilder | None = None
        self._error: RemoteProtocolError | None = None
        self._decls: list[tuple[str | None, str | None]] = []  # the root's namespaces
        self._offset = 0  # absolute offset of expat's byte 0 (negative after a wake-up)
        self._waking = False  # the current expat parser is reading the primer tag
        self._expat: expat.XMLParserType | None = self._make_expat()

    # -- public API --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data`` and queue the events it completes.

        :raises RemoteProtocolError: the peer broke a rule; the parser is dead from now on.
        :raises LocalProtocolError: called after :meth:`feed_eof`.
        """
        self._raise_if_dead()
        if self._eof:
            raise LocalProtocolError("feed() called after feed_eof()")
        try:
            parser = self._expat or self._wake()
            self._buf += data
            self._fed += len(data)
            parser.Parse(data, False)
            self._settle()
        except RemoteProtocolError as exc:
            self._die(exc)
            raise
        except expat.ExpatError as exc:
            error = self._error or _translate(exc)
            self._die(error)
            raise error from exc

    def feed_eof(self) -> None:
        """Note that the transport closed; an open stream ends with :class:`StreamClosed`."""
        self._raise_if_dead()
        if self._eof:
            return
        self._eof = True
        if self._opened and not self._closed:
            self._closed = True
            self._events.append((StreamClosed(), self._fed))

    def next_event(self) -> Event | NeedData:
        """Pop the next queued event, or return :data:`NEED_DATA` if there is none."""
        self._raise_if_dead()
        if self._next == len(self._events):
            return NEED_DATA
        event, end = self._events[self._next]
        self._next += 1
        if self._next == len(self._events):
            self._events.clear()
            self._next = 0
        self._read_pos = end
        self._trim()
        return event

    def close(self) -> None:
        """No more input: free expat now. (Its handlers refer to this parser, a cycle that
        only the cyclic garbage collector would otherwise free, in a pause of its own.)"""
        self._expat = None
        self._eof = True

    def hibernate(self) -> bool:
        """Free expat's state if the stream is between stanzas with nothing pending.

        :return: whether it was freed (or already was).
        """
        if self._expat is None:
            return True
        idle = (
            self._opened and not self._closed and self._error is None and self._depth == 1
            and self._start is None and self._next == len(self._events)
            and not self._buf.strip(_WS)
        )  # fmt: skip
        if idle:
            self._expat = None
            self._read_pos = self._scanned = self._fed  # whitespace need not be kept
            self._trim()
        return idle

    def _wake(self) -> expat.XMLParserType:
        """A new expat parser, past a start tag that stands for the root."""
        attrs = "".join(
            f' xmlns{":" + prefix if prefix else ""}="{escape_attr(uri or "")}"'
            for prefix, uri in self._decls
        )
        # the root's own prefix; None if its namespace was the default one
        root = next((p for p, uri in self._decls if uri == STREAM_NS and p), None)
        primer = f"<{root + ':' if root else ''}stream{attrs}>".encode()
        parser = self._expat = self._make_expat()
        self._offset = self._fed - len(primer)
        self._depth, self._waking = 0, True
        parser.Parse(primer, False)
        self._waking = False
        return parser

    def trailing_bytes(self) -> bytes:
        """Return the raw bytes fed after the end of the last event :meth:`next_event` returned.

        Whitespace alone counts as nothing and returns ``b""``. Bytes that already form queued
        events are included, so a non-empty answer right after popping ``<starttls/>`` means
        the peer sent more in the same read: plaintext injection (CVE-2011-1431 class).
        """
        tail = self._buf[self._read_pos - self._buf_start :]
        return bytes(tail) if tail.strip(_WS) else b""

    # -- expat wiring ------------------------------------------------------------------

    def _make_expat(self) -> expat.XMLParserType:
        parser = expat.ParserCreate(encoding="UTF-8", namespace_separator=_SEP)
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.buffer_size = TEXT_BUFFER  # set before buffer_text allocates it
        parser.buffer_text = True
        parser.XmlDeclHandler = self._on_xml_decl
        parser.StartNamespaceDeclHandler = self._on_namespace
        parser.StartElementHandler = self._on_start
        parser.EndElementHandler = self._on_end
        parser.CharacterDataHandler = self._on_text
        # Declarations can only come inside a DOCTYPE, which is refused where it starts;
        # what may appear in content is refused where it appears.
        parser.StartDoctypeDeclHandler = self._refuser("DOCTYPE")
        parser.SkippedEntityHandler = self._refuser("entity reference")
        parser.CommentHandler = self._refuser("comment")
        parser.ProcessingInstructionHandler = self._refuser("processing instruction")
        return parser

    def _refuser(self, what: str) -> Callable[..., NoReturn]:
        def refuse(*_args: object) -> NoReturn:
            self._fail("restricted-xml", f"{what} not allowed in XMPP")

        return refuse

    def _on_xml_decl(self, version: str, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.upper() != "UTF-8":
            self._fail("unsupported-encoding", f"encoding {encoding!r}; XMPP is UTF-8 only")

    def _on_namespace(self, prefix: str | None, uri: str | None) -> None:
        if uri is not None and _SEP in uri:  # recent expat refuses this itself (CVE-2022-25236)
            self._fail("not-well-formed", f"namespace name {uri!r} contains {_SEP!r}")
        if self._depth == 0 and not self._waking:
            self._decls.append((prefix, uri))
            if prefix is None:
                self._root_ns = uri

    def _on_start(self, name: str, attrs: dict[str, str]) -> None:
        depth = self._depth = self._depth + 1
        if depth > self._max_depth:
            self._fail("policy-violation", f"elements nested deeper than {self._max_depth}")
        if depth == 1:
            if not self._waking:
                self._open_stream(name, attrs)
            return
        if depth == 2:
            self._start = self._position()
            end = self._tag_end()
            self._check_size(end)
            self._empty_end = end if self._ends_empty(end) else None
            self._builder = TreeBuilder()
        else:
            self._check_size(self._position())
        assert self._builder is not None
        self._builder.start(_clark(name), _clark_attrs(attrs))

    def _on_text(self, data: str) -> None:
        if self._depth >= 2:
            assert self._builder is not None
            self._check_size(self._position())
            self._builder.data(data)
        elif data.strip(" \t\r\n"):
            self._fail("not-well-formed", "text directly inside <stream:stream>")

    def _on_end(self, name: str) -> None:
        depth = self._depth
        self._depth = depth - 1
        if depth == 1:
            self._closed = True
            end = self._tag_end() if self._root_empty_end is None else self._root_empty_end
            self._emit(StreamClosed(), end)
            return
        assert self._builder is not None
        if depth > 2:
            self._builder.end(_clark(name))
            return
        end = self._tag_end() if self._empty_end is None else self._empty_end
        self._check_size(end)
        self._builder.end(_clark(name))
        element = self._builder.close()
        self._builder = None
        self._emit(StanzaReceived(element), end)

    def _open_stream(self, name: str, attrs: dict[str, str]) -> None:
        if name != _ROOT:
            self._fail("invalid-namespace", f"root must be <stream xmlns='{STREAM_NS}'>")
        self._opened = True
        end = self._tag_end()
        self._find_start()  # the prolog may have arrived in this same feed
        self._check_size(end)
        self._root_empty_end = end if self._ends_empty(end) else None
        self._emit(StreamOpened(_root_attrs(attrs), self._root_ns), end)

    # -- bookkeeping -------------------------------------------------------------------

    def _emit(self, event: Event, end: int) -> None:
        self._events.append((event, end))
        self._start = None
        self._scanned = end

    def _tag_end(self) -> int:
        """Return the absolute offset just past the start or end tag expat is reporting.

        Only valid in a start handler, or in an end handler for an ``</end>`` tag: for an
        empty-element tag expat reports the end event at the offset *after* the tag.
        """
        match = _TAG_END.match(self._buf, self._position() - self._buf_start)
        assert match is not None, "expat accepted a tag that is not in the buffer"
        return self._buf_start + match.end()

    def _position(self) -> int:
        """Absolute offset of what expat is reporting."""
        assert self._expat is not None
        return self._offset + self._expat.CurrentByteIndex

    def _ends_empty(self, end: int) -> bool:
        """Tell whether the start tag ending at ``end`` is an empty-element tag (``/>``)."""
        return self._buf[end - 2 - self._buf_start] == _SLASH

    def _check_size(self, position: int) -> None:
        assert self._start is not None
        if position - self._start > self._max_bytes:
            self._fail("policy-violation", f"stanza larger than {self._max_bytes} bytes")

    def _settle(self) -> None:
        """After a feed: find where the next unit starts, enforce the size cap, free memory."""
        if self._find_start():
            self._check_size(self._fed)
        elif self._next == len(self._events):
            self._read_pos = self._fed  # whitespace keepalives need not be kept
        self._trim()

    def _find_start(self) -> bool:
        """Locate the first non-whitespace byte after the last unit, scanning new bytes only."""
        if self._start is None:
            match = _NON_WS.search(self._buf, self._scanned - self._buf_start)
            if match is None:
                self._scanned = self._fed
                return False
            self._start = self._buf_start + match.start()
        return True

    def _trim(self) -> None:
        cut = self._read_pos - self._buf_start
        if cut > 0:
            del self._buf[:cut]
            self._buf_start = self._read_pos

    def _fail(self, condition: str, text: str) -> NoReturn:
        self._error = RemoteProtocolError(condition, text)
        raise self._error

    def _die(self, error: RemoteProtocolError) -> None:
        self._error = error
        self._expat = None  # see close()
        self._events.clear()
        self._next = 0
        self._buf.clear()
        self._builder = None

    def _raise_if_dead(self) -> None:
        if self._error is not None:
            raise self._error.with_traceback(None)
