"""Sans-IO receiving side of a server-to-server stream (RFC 6120 §4-§5, XEP-0220).

Bytes go in with ``receive_data``; events come out of ``next_event()``; bytes to write
come out of ``data_to_send()`` (wsproto style, so that an answer computed in another task,
a dialback verification, can be written without the reader). No I/O, no trio. Rules:

1. The peer's header: default namespace ``jabber:server`` (``invalid-namespace``),
   ``version`` >= 1.0 (``unsupported-version``), ``to`` one of our domains (``host-unknown``;
   absent means the main domain), ``from`` never one of ours (``invalid-from``). We answer
   with our header (fresh id), then features: ``<starttls/>`` (``<required/>`` when TLS is
   required) before TLS; dialback once TLS is up, or right away when TLS is optional; SASL
   EXTERNAL as well when the peer's certificate verified (rule 6).
2. STARTTLS: ``<proceed/>`` then :class:`StartTLS`; ``tls_started(peer_certificate)``
   restarts the stream.
   Anything buffered after ``<starttls/>`` is plaintext injection: ``policy-violation``.
3. ``<db:result/>`` (the peer wants to send as ``from`` to ``to``): not before TLS when it is
   required (``policy-violation``); ``to`` must be ours (``host-unknown``), ``from`` a valid
   domain that is not ours (``invalid-from``). The caller gets :class:`DialbackRequest`,
   verifies the key with the authoritative server and answers ``dialback_result()``, which
   sends ``type='valid'`` and authorizes the pair, or ``type='invalid'`` and closes with
   ``not-authorized``.
4. ``<db:verify/>`` (the peer asks whether a key is ours) is answered at once, in any state
   after the header, by comparing with ``dialback_key(receiving, originating, stream_id)``.
5. Stanzas (``message``, ``presence``, ``iq``): before any pair is authorized ->
   ``not-authorized``; missing or invalid ``from``/``to`` -> ``improper-addressing``;
   ``to`` not ours -> ``host-unknown``; ``from`` domain not authorized for that ``to`` ->
   ``invalid-from`` (a peer never speaks for a domain it did not prove). Passed on as
   :class:`StanzaIn`, converted to ``jabber:client``.
6. SASL EXTERNAL (RFC 6120 §6.4, XEP-0178) is offered after TLS, until it succeeds, when
   the peer's certificate chain verified and, if the header names a ``from``, covers that
   domain. ``<auth mechanism='EXTERNAL'>`` carries an authzid that is empty, ``=`` or the
   header's ``from`` (else ``invalid-authzid``; not base64: ``incorrect-encoding``); the
   domain (the authzid, or else ``from``) must be covered by the certificate and not ours
   (else ``not-authorized``). Success: ``<success/>``, :class:`Authorized` with mechanism
   ``EXTERNAL``, and the stream restarts (a new header, a new id); the pair counts exactly
   like one dialback authorized. Any failure leaves the stream open: dialback is still
   there. ``<auth/>`` when EXTERNAL was not offered, or another mechanism:
   ``invalid-mechanism``. Any other element: ``unsupported-stanza-type``.
7. Errors: [our header if not yet sent] + ``<stream:error>`` + close tag, then
   :class:`Closed`. ``</stream:stream>`` gets ours and ``Closed(None)``; EOF gives
   ``Closed(None)``. Parser limits (size, depth) are stream errors like any other.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from casper.errors import LocalProtocolError, StreamError
from casper.jid import JID, InvalidJID
from casper.xml import NEED_DATA, STREAM_CLOSE, NeedData, XMLStreamParser, stream_error_of
from casper.xml.events import StanzaReceived, StreamClosed, StreamOpened

from . import wire
from .certs import PeerCertificate


@dataclass(frozen=True)
class StartTLS:
    """Wrap the transport in TLS (server side), then call ``tls_started()``."""


@dataclass(frozen=True)
class DialbackRequest:
    """Verify ``key`` with ``originating``'s authoritative server, then ``dialback_result()``."""

    originating: str
    receiving: str
    key: str
    stream_id: str


@dataclass(frozen=True)
class Authorized:
    originating: str  #: the peer may now send stanzas from this domain...
    receiving: str  #: ...to this one of ours
    mechanism: str = "dialback"  #: or "EXTERNAL" (the certificate)


@dataclass(frozen=True)
class StanzaIn:
    element: Element  #: converted to ``jabber:client``; addresses checked (rule 5)
    from_: JID
    to: JID


@dataclass(frozen=True)
class Closed:
    error: StreamError | None


Event = StartTLS | DialbackRequest | Authorized | StanzaIn | Closed


class State(enum.Enum):
    HEADER = "header"
    OPEN = "open"
    TLS_PENDING = "tls-pending"
    CLOSED = "closed"


class InboundStream:
    """One incoming s2s connection, from the peer's header to the close.

    :param hosted: whether a domain is served here (the main domain, components).
    :param default_domain: the domain assumed when the header has no ``to``.
    :param dialback_key: ``(receiving, originating, stream_id) -> key`` with our secret.
    :param tls_available: STARTTLS can be offered.
    :param require_tls: nothing but STARTTLS before TLS.
    :param secure: the transport is TLS already.
    :param stream_id: makes the id of each stream.
    """

    def __init__(self, *, hosted: Callable[[str], bool], default_domain: str,
                 dialback_key: Callable[[str, str, str], str], tls_available: bool,
                 require_tls: bool, secure: bool = False, max_stanza_bytes: int = 262144,
                 max_depth: int = 32, stream_id: Callable[[], str] = wire.new_stream_id) -> None:  # fmt: skip
        self._hosted, self._default = hosted, default_domain
        self._key, self._new_id = dialback_key, stream_id
        self._tls_available, self._require_tls, self.secure = tls_available, require_tls, secure
        self._limits = {"max_stanza_bytes": max_stanza_bytes, "max_depth": max_depth}
        self._parser = XMLStreamParser(**self._limits)
        self._inbox = bytearray()
        self._out = bytearray()
        self._events: deque[Event] = deque()
        self._state = State.HEADER
        self._eof = self._header_sent = False
        self.stream_id = ""
        self.local_domain = default_domain
        self.peer_domain: str | None = None  # the header's from, if any
        self.authorized: set[tuple[str, str]] = set()  # (originating, receiving)
        self.mechanisms: dict[tuple[str, str], str] = {}  # how each pair authenticated
        self._pending: set[tuple[str, str]] = set()
        self.peer_certificate: PeerCertificate | None = None  # after TLS, if one was sent
        self._external_offered = False
        self._external_done = False
        self.closed: Closed | None = None

    @property
    def state(self) -> State:
        return self._state

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes) -> None:
        if self._state is State.CLOSED:
            return
        if self._eof:
            raise LocalProtocolError("receive_data() after receive_eof()")
        if self._state is State.TLS_PENDING:
            if data.strip(wire.WS):
                self._fail(StreamError("policy-violation", "plaintext after <starttls/>"))
            return
        self._inbox += data

    def receive_eof(self) -> None:
        self._eof = True

    def tls_started(self, peer_certificate: PeerCertificate | None = None) -> None:
        """TLS is up; ``peer_certificate`` is what the peer presented (rule 6)."""
        if self._state is not State.TLS_PENDING:
            raise LocalProtocolError(f"tls_started() in state {self._state.value!r}")
        self.secure = True
        self.peer_certificate = peer_certificate
        self._restart()

    def _restart(self, carry: bytes = b"") -> None:
        self._parser.close()
        self._parser = XMLStreamParser(**self._limits)
        self._inbox[:0] = carry
        self._header_sent = False
        self._state = State.HEADER

    def dialback_result(self, originating: str, receiving: str, valid: bool) -> None:
        """Answer a :class:`DialbackRequest` (rule 3)."""
        if (originating, receiving) not in self._pending:
            raise LocalProtocolError(f"no dialback request for {originating} -> {receiving}")
        self._pending.discard((originating, receiving))
        if self._state is State.CLOSED:
            return
        kind = "valid" if valid else "invalid"
        self._out += wire.db_element("result", from_=receiving, to=originating, type=kind)
        if valid:
            self.authorized.add((originating, receiving))
            self.mechanisms[(originating, receiving)] = "dialback"
            self._events.append(Authorized(originating, receiving))
        else:
            self._fail(StreamError("not-authorized", f"dialback for {originating} failed"))

    def close(self, error: StreamError | None = None) -> None:
        if self._state is State.CLOSED:
            return
        if error is not None:
            self._fail(error)
        else:
            self._end(STREAM_CLOSE, None)

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
            if self._state is State.TLS_PENDING:
                return NEED_DATA
            try:
                event = self._pull()
            except StreamError as exc:  # RemoteProtocolError from the parser
                self._fail(exc)
                continue
            if event is NEED_DATA:
                if not self._eof:
                    return NEED_DATA
                self._end(None, None)
            else:
                try:
                    self._handle(event)
                except StreamError as exc:
                    self._fail(exc)
        return self._events.popleft()

    # ------------------------------------------------------------------ internals

    def _pull(self) -> StreamOpened | StanzaReceived | StreamClosed | NeedData:
        """Feed the parser; before TLS one ``>`` at a time, so nothing is read past
        ``<starttls/>`` (rule 2)."""
        while (event := self._parser.next_event()) is NEED_DATA and self._inbox:
            if self._state is State.HEADER and not self._parser.trailing_bytes():
                self._inbox[:] = self._inbox.lstrip(wire.WS)
                if not self._inbox:
                    break
            size = len(self._inbox)
            if not self.secure and self._tls_available:
                size = self._inbox.find(b">") + 1 or size
            self._parser.feed(bytes(self._inbox[:size]))
            del self._inbox[:size]
        return event

    def _handle(self, event: StreamOpened | StanzaReceived | StreamClosed) -> None:
        if isinstance(event, StreamOpened):
            self._open(event)
        elif isinstance(event, StreamClosed):
            self._end(STREAM_CLOSE, None)
        else:
            self._element(event.element)

    def _send_header(self, to: str | None) -> None:
        self.stream_id = self._new_id()
        self._out += wire.stream_header(from_=self.local_domain, to=to, id=self.stream_id)
        self._header_sent = True

    def _open(self, opened: StreamOpened) -> None:
        """Rule 1."""
        attrs = opened.attrs
        to = wire.domain_or_none(attrs.get("to")) or (None if attrs.get("to") else self._default)
        peer = wire.domain_or_none(attrs.get("from"))
        if to is not None and self._hosted(to):
            self.local_domain = to
        self._send_header(peer)
        if to is None or not self._hosted(to):
            raise StreamError("host-unknown", f"{attrs.get('to')!r} is not served here")
        if peer is not None and self._hosted(peer):
            raise StreamError("invalid-from", "a remote server cannot speak for this one")
        version = re.fullmatch(r"([0-9]+)\.([0-9]+)", attrs.get("version", ""))
        if not version or (int(version[1]), int(version[2])) < (1, 0):
            raise StreamError("unsupported-version", "version 1.0 or later is required")
        if opened.default_ns != wire.SERVER_NS:
            raise StreamError("invalid-namespace", "the default namespace must be jabber:server")
        self.peer_domain = peer
        offer: list[Element] = []
        if self._tls_available and not self.secure:
            offer.append(wire.starttls_feature(self._require_tls))
        if self._offers_external(peer):
            offer.append(wire.mechanisms_feature("EXTERNAL"))
        if self.secure or not self._require_tls:
            offer.append(wire.dialback_feature())
        self._external_offered = any(e.tag == wire.SASL_MECHANISMS for e in offer)
        self._out += wire.features(*offer)
        self._state = State.OPEN

    def _element(self, element: Element) -> None:
        tag = element.tag
        if tag == wire.STARTTLS:
            self._starttls()
        elif tag == wire.DB_RESULT:
            self._db_result(element)
        elif tag == wire.DB_VERIFY:
            self._db_verify(element)
        elif tag in wire.STANZA_TAGS:
            self._stanza(element)
        elif tag == wire.SASL_AUTH:
            self._auth(element)
        elif tag == wire.STREAM_ERROR:
            self._end(STREAM_CLOSE, wire.stream_error_from(element))
        else:
            raise StreamError("unsupported-stanza-type", tag)

    def _starttls(self) -> None:
        """Rule 2."""
        if not self._tls_available or self.secure or self.authorized:
            self._end(wire.simple(wire.TLS_FAILURE) + STREAM_CLOSE, None)
            return
        if self._parser.trailing_bytes() or self._inbox.strip(wire.WS):
            raise StreamError("policy-violation", "data pipelined after <starttls/>")
        self._out += wire.simple(wire.PROCEED)
        self._events.append(StartTLS())
        self._state = State.TLS_PENDING

    def _offers_external(self, peer: str | None) -> bool:
        """Rule 6: after TLS, with a verified chain that covers the announced domain."""
        cert = self.peer_certificate
        if not self.secure or self._external_done or cert is None or not cert.verified:
            return False
        return peer is None or cert.identities.covers(peer)

    def _auth(self, element: Element) -> None:
        """Rule 6."""
        if not self._external_offered or element.get("mechanism") != "EXTERNAL":
            self._out += wire.sasl_failure("invalid-mechanism")
            return
        text = (element.text or "").strip()
        try:
            authzid = "" if text in ("", "=") else \
                base64.b64decode(text, validate=True).decode()  # fmt: skip
        except (binascii.Error, UnicodeDecodeError):
            self._out += wire.sasl_failure("incorrect-encoding")
            return
        claimed = wire.domain_or_none(authzid) if authzid else self.peer_domain
        if authzid and (claimed is None or self.peer_domain not in (None, claimed)):
            self._out += wire.sasl_failure("invalid-authzid")
            return
        cert = self.peer_certificate
        if claimed is None or self._hosted(claimed) or cert is None or \
                not cert.authenticates(claimed):  # fmt: skip
            self._out += wire.sasl_failure("not-authorized")
            return
        self._out += wire.simple(wire.SASL_SUCCESS)
        self._external_offered, self._external_done = False, True
        self.peer_domain = claimed
        self.authorized.add((claimed, self.local_domain))
        self.mechanisms[(claimed, self.local_domain)] = "EXTERNAL"
        self._events.append(Authorized(claimed, self.local_domain, "EXTERNAL"))
        carry = self._parser.trailing_bytes()  # nothing, unless the peer did not wait
        self._restart(carry)

    def _db_result(self, element: Element) -> None:
        """Rule 3."""
        if element.get("type") is not None:
            return  # answers belong on outgoing streams; ignore like Prosody does
        if self._require_tls and not self.secure:
            raise StreamError("policy-violation", "encryption is required before dialback")
        receiving = wire.domain_or_none(element.get("to"))
        originating = wire.domain_or_none(element.get("from"))
        if receiving is None or originating is None:
            raise StreamError("improper-addressing", "db:result needs from and to")
        if not self._hosted(receiving):
            raise StreamError("host-unknown", f"{receiving} is not served here")
        if self._hosted(originating):
            raise StreamError("invalid-from", "a remote server cannot speak for this one")
        pair = (originating, receiving)
        if pair in self.authorized or pair in self._pending:
            return
        self._pending.add(pair)
        key = (element.text or "").strip()
        self._events.append(DialbackRequest(originating, receiving, key, self.stream_id))

    def _db_verify(self, element: Element) -> None:
        """Rule 4: the peer (a receiving server) asks whether a key is ours."""
        if element.get("type") is not None:
            return
        receiving = element.get("from") or ""
        originating = element.get("to") or ""
        stream_id = element.get("id") or ""
        if not self._hosted(wire.domain_or_none(originating) or ""):
            raise StreamError("host-unknown", f"{originating!r} is not served here")
        key = (element.text or "").strip()
        expected = self._key(receiving, originating, stream_id)
        kind = "valid" if key and wire.keys_equal(key, expected) else "invalid"
        self._out += wire.db_element("verify", from_=originating, to=receiving, id=stream_id,
                                     type=kind, key=key)  # fmt: skip

    def _stanza(self, element: Element) -> None:
        """Rule 5."""
        if not self.authorized:
            raise StreamError("not-authorized", "stanza before authentication")
        try:
            from_ = JID.parse(element.get("from") or "")
            to = JID.parse(element.get("to") or "")
        except InvalidJID:
            raise StreamError("improper-addressing", "stanza without valid from and to") from None
        if not self._hosted(to.domain):
            raise StreamError("host-unknown", f"{to.domain} is not served here")
        if (from_.domain, to.domain) not in self.authorized:
            raise StreamError("invalid-from", f"{from_.domain} is not authenticated here")
        self._events.append(StanzaIn(wire.to_client_ns(element), from_, to))

    def _end(self, data: bytes | None, error: StreamError | None) -> None:
        if data:
            if not self._header_sent:
                self._send_header(None)
            self._out += data
        self.closed = Closed(error)
        self._events.append(self.closed)
        self._state = State.CLOSED

    def _fail(self, error: StreamError) -> None:
        if self._state is State.CLOSED:
            return
        self._end(stream_error_of(error) + STREAM_CLOSE, error)
