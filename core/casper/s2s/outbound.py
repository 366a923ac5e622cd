"""Sans-IO initiating side of a server-to-server stream (RFC 6120 §4-§6, XEP-0220).

Same shape as :mod:`casper.s2s.inbound`: ``receive_data``/``next_event``/``data_to_send``;
no I/O, no trio. The stream is opened from ``local`` to ``remote``. Rules:

1. ``start()`` sends our header. The peer's header must use ``jabber:server``
   (``invalid-namespace``) and carry an id (``invalid-xml``: dialback keys need it).
2. Features before TLS: ``<starttls/>`` is taken whenever offered (:class:`StartTLS`, then
   ``tls_started()`` restarts the stream). A peer that offers no TLS while TLS is required
   is left with ``policy-violation``.
3. Authentication, once TLS is settled: SASL EXTERNAL if the peer offers it,
   ``try_external`` (our certificate may verify there) and the peer's own certificate
   (``tls_started(peer_certificate)``) verified and covers ``remote``; success restarts the
   stream, failure falls back to dialback, and so does a peer whose certificate does not
   verify (the handshake never fails for that). Dialback: ``<db:result>`` with ``dialback_key(stream_id)``;
   ``type='valid'`` gives :class:`Authenticated`, anything else ``not-authorized``.
4. ``request_verify()`` asks the peer, as authoritative server, whether a key some other
   stream presented is its own (XEP-0220 §2.3). Requests wait until TLS is settled, are
   sent even before our own authentication ends, and are answered by :class:`VerifyResult`.
5. ``send_stanza()`` only once authenticated. Stanzas the peer sends here are ignored
   (streams are one-way); a ``<stream:error>`` or ``</stream:stream>`` ends the stream.
"""

from __future__ import annotations

import base64
import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from casper.errors import LocalProtocolError, StreamError
from casper.xml import (
    NEED_DATA,
    STREAM_CLOSE,
    NeedData,
    XMLStreamParser,
    serialize,
    stream_error_of,
)
from casper.xml.events import StanzaReceived, StreamClosed, StreamOpened

from . import wire
from .certs import PeerCertificate


@dataclass(frozen=True)
class StartTLS:
    """Wrap the transport in TLS (client side, for ``remote``), then ``tls_started()``."""


@dataclass(frozen=True)
class Authenticated:
    mechanism: str  #: "dialback" or "EXTERNAL": stanzas may be sent now


@dataclass(frozen=True)
class VerifyResult:
    receiving: str  #: ours: the domain the verified stream was sent to
    originating: str  #: the peer's domain that claimed the key
    stream_id: str
    valid: bool


@dataclass(frozen=True)
class Closed:
    error: StreamError | None


Event = StartTLS | Authenticated | VerifyResult | Closed


class State(enum.Enum):
    IDLE = "idle"  # start() not called yet
    HEADER = "header"  # waiting for the peer's header
    FEATURES = "features"  # waiting for its features
    TLS_PENDING = "tls-pending"  # <starttls/> sent, <proceed/> expected, then tls_started()
    SASL = "sasl"  # EXTERNAL sent
    DIALBACK = "dialback"  # <db:result/> sent
    READY = "ready"  # authenticated: stanzas flow
    CLOSED = "closed"


class OutboundStream:
    """One outgoing s2s connection from ``local`` to ``remote``.

    :param dialback_key: ``stream_id -> key`` for this pair, with our secret.
    :param require_tls: refuse a peer that does not offer STARTTLS.
    :param tls_available: we can start TLS (a client context exists).
    :param try_external: offer SASL EXTERNAL when the peer lists it.
    """

    def __init__(self, *, local: str, remote: str, dialback_key: Callable[[str], str],
                 require_tls: bool, tls_available: bool = True, try_external: bool = False,
                 max_stanza_bytes: int = 262144, max_depth: int = 32) -> None:  # fmt: skip
        self.local, self.remote = local, remote
        self._key = dialback_key
        self._require_tls, self._tls_available = require_tls, tls_available
        self._try_external = try_external
        self._limits = {"max_stanza_bytes": max_stanza_bytes, "max_depth": max_depth}
        self._parser = XMLStreamParser(**self._limits)
        self._inbox = bytearray()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._state = State.IDLE
        self._eof = False
        self.secure = False
        self.stream_id = ""
        self._verify_ready = False  # TLS settled: verify requests may go out
        self._verifies: list[bytes] = []
        self._external_failed = False
        self._awaiting_tls = False
        self.mechanism: str | None = None
        self.peer_certificate: PeerCertificate | None = None
        self.closed: Closed | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def ready(self) -> bool:
        return self._state is State.READY

    # ------------------------------------------------------------------ caller input

    def start(self) -> None:
        if self._state is not State.IDLE:
            raise LocalProtocolError("start() called twice")
        self._send_header()

    def receive_data(self, data: bytes) -> None:
        if self._state is State.CLOSED:
            return
        if self._eof:
            raise LocalProtocolError("receive_data() after receive_eof()")
        self._inbox += data

    def receive_eof(self) -> None:
        self._eof = True

    def tls_started(self, peer_certificate: PeerCertificate | None = None) -> None:
        """TLS is up; ``peer_certificate`` is what the peer presented (rule 3)."""
        if self._state is not State.TLS_PENDING:
            raise LocalProtocolError(f"tls_started() in state {self._state.value!r}")
        self.secure = True
        self.peer_certificate = peer_certificate
        self._awaiting_tls = False
        self._inbox.clear()
        self._parser.close()
        self._parser = XMLStreamParser(**self._limits)
        self._send_header()

    def request_verify(self, receiving: str, originating: str, stream_id: str, key: str) -> None:
        """Rule 4: ask whether ``key``, presented to ``receiving`` on stream ``stream_id`` by
        someone claiming ``originating`` (the peer's domain), is the peer's."""
        data = wire.db_element("verify", from_=receiving, to=originating, id=stream_id, key=key)
        if self._verify_ready:
            self._out += data
        else:
            self._verifies.append(data)

    def send_stanza(self, element: Element) -> None:
        if self._state is not State.READY:
            raise LocalProtocolError(f"send_stanza() in state {self._state.value!r}")
        self._out += wire.stanza_bytes(element)

    def close(self, error: StreamError | None = None) -> None:
        if self._state is State.CLOSED:
            return
        if error is None:
            self._end(STREAM_CLOSE, None)
        else:
            self._fail(error)

    # ------------------------------------------------------------------ output

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_event(self) -> Event | NeedData:
        while not self._events:
            if self._state is State.CLOSED:
                assert self.closed is not None
                return self.closed
            if self._awaiting_tls:
                return NEED_DATA
            try:
                event = self._pull()
            except StreamError as exc:
                self._fail(exc)
                continue
            if event is NEED_DATA:
                if not self._eof:
                    return NEED_DATA
                self._end(None, StreamError("remote-connection-failed", "connection closed"))
            else:
                try:
                    self._handle(event)
                except StreamError as exc:
                    self._fail(exc)
        return self._events.popleft()

    # ------------------------------------------------------------------ internals

    def _pull(self) -> StreamOpened | StanzaReceived | StreamClosed | NeedData:
        while (event := self._parser.next_event()) is NEED_DATA and self._inbox:
            if self._state is State.HEADER and not self._parser.trailing_bytes():
                self._inbox[:] = self._inbox.lstrip(wire.WS)
                if not self._inbox:
                    break
            size = len(self._inbox)
            if self._state is not State.READY:  # never read past <proceed/> or <success/>
                size = self._inbox.find(b">") + 1 or size
            self._parser.feed(bytes(self._inbox[:size]))
            del self._inbox[:size]
        return event

    def _send_header(self) -> None:
        self._out += wire.stream_header(from_=self.local, to=self.remote)
        self._state = State.HEADER

    def _handle(self, event: StreamOpened | StanzaReceived | StreamClosed) -> None:
        if isinstance(event, StreamOpened):
            self._opened(event)
        elif isinstance(event, StreamClosed):
            self._end(STREAM_CLOSE, None if self._state is State.READY else
                      StreamError("remote-connection-failed", "the peer closed the stream"))  # fmt: skip
        else:
            self._element(event.element)

    def _opened(self, opened: StreamOpened) -> None:
        """Rule 1."""
        if self._state is not State.HEADER:
            raise StreamError("invalid-xml", "a second stream header")
        if opened.default_ns != wire.SERVER_NS:
            raise StreamError("invalid-namespace", "the default namespace must be jabber:server")
        stream_id = opened.attrs.get("id")
        if not stream_id:
            raise StreamError("invalid-xml", "the stream header has no id")
        self.stream_id = stream_id
        self._state = State.FEATURES

    def _element(self, element: Element) -> None:
        tag, state = element.tag, self._state
        if tag == wire.STREAM_ERROR:
            self._end(STREAM_CLOSE, wire.stream_error_from(element))
        elif tag == wire.FEATURES and state is State.FEATURES:
            self._features(element)
        elif tag == wire.PROCEED and state is State.TLS_PENDING:
            if self._parser.trailing_bytes() or self._inbox.strip(wire.WS):
                raise StreamError("policy-violation", "data pipelined after <proceed/>")
            self._awaiting_tls = True
            self._events.append(StartTLS())
        elif tag == wire.TLS_FAILURE and state is State.TLS_PENDING:
            self._end(STREAM_CLOSE, StreamError("policy-violation", "the peer refused TLS"))
        elif tag == wire.SASL_SUCCESS and state is State.SASL:
            self.mechanism = "EXTERNAL"
            self._parser.close()
            self._parser = XMLStreamParser(**self._limits)
            self._send_header()
        elif tag == wire.SASL_FAILURE and state is State.SASL:
            self._external_failed = True
            self._dialback()
        elif tag == wire.DB_RESULT:
            self._db_result(element)
        elif tag == wire.DB_VERIFY:
            self._db_verify(element)
        elif tag in wire.STANZA_TAGS or tag.endswith("}features"):
            pass  # rule 5: this side of the stream does not take stanzas
        else:
            raise StreamError("unsupported-stanza-type", tag)

    def _features(self, features: Element) -> None:
        """Rules 2 and 3."""
        if self.mechanism == "EXTERNAL":  # the stream after SASL success
            self._authenticated()
            return
        if not self.secure:
            if features.find(wire.STARTTLS) is not None and self._tls_available:
                self._out += wire.simple(wire.STARTTLS)
                self._state = State.TLS_PENDING
                return
            if self._require_tls:
                raise StreamError("policy-violation", "the peer does not offer TLS")
        self._verify_ready = True
        for data in self._verifies:
            self._out += data
        self._verifies.clear()
        mechanisms = features.find(wire.SASL_MECHANISMS)
        names = [] if mechanisms is None else [(m.text or "").strip() for m in mechanisms]
        if "EXTERNAL" in names and self.external_possible:
            auth = Element(wire.SASL_AUTH, mechanism="EXTERNAL")
            auth.text = base64.b64encode(self.local.encode()).decode()
            self._out += serialize(auth, wire.SERVER_NS)
            self._state = State.SASL
            return
        self._dialback()

    @property
    def external_possible(self) -> bool:
        """Rule 3, but for the peer's offer: our certificate may verify there, and theirs
        verified here for ``remote``."""
        cert = self.peer_certificate
        return self._try_external and self.secure and not self._external_failed \
            and cert is not None and cert.authenticates(self.remote)  # fmt: skip

    def _dialback(self) -> None:
        key = self._key(self.stream_id)
        self._out += wire.db_element("result", from_=self.local, to=self.remote, key=key)
        self._state = State.DIALBACK

    def _db_result(self, element: Element) -> None:
        if self._state is not State.DIALBACK:
            return
        if wire.domain_or_none(element.get("from")) != self.remote or \
                wire.domain_or_none(element.get("to")) != self.local:  # fmt: skip
            return  # a result for another pair on the same stream: not ours to judge
        if element.get("type") == "valid":
            self.mechanism = "dialback"
            self._authenticated()
        else:
            raise StreamError("not-authorized", f"{self.remote} refused our dialback key")

    def _db_verify(self, element: Element) -> None:
        kind = element.get("type")
        if kind is None:
            return  # verification requests come on streams to us (inbound), not here
        receiving = wire.domain_or_none(element.get("to")) or ""
        originating = wire.domain_or_none(element.get("from")) or ""
        self._events.append(VerifyResult(receiving, originating, element.get("id") or "",
                                         kind == "valid"))  # fmt: skip

    def _authenticated(self) -> None:
        self._state = State.READY
        assert self.mechanism is not None
        self._events.append(Authenticated(self.mechanism))

    def _end(self, data: bytes | None, error: StreamError | None) -> None:
        if data:
            self._out += data
        self.closed = Closed(error)
        self._events.append(self.closed)
        self._state = State.CLOSED

    def _fail(self, error: StreamError) -> None:
        if self._state is State.CLOSED:
            return
        self._end(stream_error_of(error) + STREAM_CLOSE, error)
