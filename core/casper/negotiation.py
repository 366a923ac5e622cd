"""Sans-IO client-to-server stream negotiation: STARTTLS, SASL, resource binding (RFC 6120).

Bytes and the caller's answers go in; :class:`SendData` and other events come out of
:meth:`C2SNegotiation.next_event` (h11 ``Connection`` style). Nothing here does I/O or imports
trio. Once the resource is bound, every top-level element passes through as :class:`StanzaIn`.

Rules (the numbers are quoted by the handlers below):

1. Stream header. The server always answers with its own header (a fresh id on every stream,
   ``from`` = our domain, ``to`` = the client's ``from`` if it is a valid JID) before features
   or an error. The client's ``to`` must be our domain (``host-unknown``), its ``version`` at
   least 1.0 (``unsupported-version``), its default namespace ``jabber:client``
   (``invalid-namespace``). Every stream error, from the parser or from these rules, is sent as
   header (if not yet sent on this stream) + ``<stream:error>`` + ``</stream:stream>``, then
   :class:`Closed` carries the error.
2. Features. Before TLS (``tls_available`` and not yet secure): ``<starttls/>``, with
   ``<required/>`` if ``tls_required``, in which case no mechanisms are offered until TLS is
   up. SASL mechanisms: SCRAM-SHA-256, SCRAM-SHA-1, and PLAIN only on a TLS-protected stream
   with ``allow_plain``. After SASL: ``<bind/>``, the optional legacy ``<session/>`` and the
   extra features set by the caller.
3. STARTTLS. An offered ``<starttls/>`` is answered with ``<proceed/>`` and :class:`StartTLS`;
   :meth:`~C2SNegotiation.tls_started` restarts the stream. Any byte other than whitespace
   received after ``<starttls/>`` and before the TLS layer (queued in the parser, not yet
   parsed, or fed later) is plaintext injection: ``policy-violation``. A ``<starttls/>`` that
   was not offered is answered with a TLS ``<failure/>`` and the stream is closed.
4. SASL (RFC 6120 §6.4). ``<auth/>`` without data gets an empty ``<challenge/>`` and the data
   comes in a ``<response/>``; ``=`` means empty data. Conditions: a mechanism not offered ->
   ``invalid-mechanism``; PLAIN or any mechanism while TLS is still required ->
   ``encryption-required``; bad base64 -> ``incorrect-encoding``; ``<abort/>`` -> ``aborted``;
   the mechanism's own failures as they come. PLAIN's authzid, if any, must be
   ``authcid@domain`` (``invalid-authzid``); an authcid that is not a valid localpart, an
   unknown user or a wrong password -> ``not-authorized``. A SCRAM username that is not a
   valid localpart is treated as an unknown user: the challenge is still sent. The
   ``max_auth_failures``-th failure (any condition, ``aborted`` included) also closes the
   stream with ``policy-violation``. On success the stream restarts and the bytes the client
   pipelined after the final SASL element go to the new stream.
5. Before authentication any other element, stanza or not, is a ``not-authorized`` stream
   error; so is anything but a bind request after authentication and before binding.
6. Binding. ``<iq type='set' id=...><bind><resource>R</resource></bind></iq>``: an empty or
   missing resource is requested as ``None`` (the caller picks one); a resource that fails
   preparation is answered with a ``bad-request`` iq error without asking the caller;
   :meth:`~C2SNegotiation.bind_failed` answers with the given iq error and waits for another
   request. After binding, the legacy session iq is answered here with an empty result.
7. Ending. ``</stream:stream>`` from the client is answered with ``</stream:stream>`` and
   ``Closed(None)``; EOF gives ``Closed(None)`` without data; :meth:`~C2SNegotiation.close`
   works in every state. After :class:`Closed`, input is ignored and ``next_event()`` keeps
   returning that :class:`Closed`.
8. Whitespace keepalives are ignored everywhere.

Every transition is an entry of :data:`TRANSITIONS`; an input with no entry for the current
state is a bug in the caller and raises :class:`~casper.errors.LocalProtocolError`.
"""

from __future__ import annotations

import base64
import enum
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from xml.etree.ElementTree import Element, SubElement

from casper.errors import STANZAS_NS, LocalProtocolError, StanzaError, StreamError
from casper.jid import JID, InvalidJID, prep_domain, prep_localpart
from casper.sasl import (
    MECHANISMS,
    Failure,
    ScramCredentials,
    ScramServer,
    Success,
    parse_plain,
    verify_password,
)
from casper.xml import (
    NEED_DATA,
    STREAM_CLOSE,
    STREAM_NS,
    NeedData,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    XMLStreamParser,
    serialize,
    stream_error,
    stream_header,
)

__all__ = [
    "NEED_DATA",
    "TRANSITIONS",
    "Authenticated",
    "BindRequested",
    "C2SNegotiation",
    "Closed",
    "CredentialsNeeded",
    "Established",
    "Event",
    "Input",
    "SendData",
    "StanzaIn",
    "StartTLS",
    "State",
]

CLIENT_NS = "jabber:client"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION_NS = "urn:ietf:params:xml:ns:xmpp-session"
PLAIN = "PLAIN"
_WS = b" \t\r\n"


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendData:
    """Write ``data`` to the transport, in the order the events come."""

    data: bytes


@dataclass(frozen=True)
class StartTLS:
    """Wrap the transport in TLS (server side), then call ``tls_started()``."""


@dataclass(frozen=True)
class CredentialsNeeded:
    """Look up ``username``'s credentials for ``mechanism``; answer ``provide_credentials()``.

    For PLAIN, ``mechanism`` is ``"SCRAM-SHA-256"``: the password is checked against those.
    """

    username: str
    mechanism: str


@dataclass(frozen=True)
class Authenticated:
    """SASL succeeded for the account ``username`` (a prepared localpart)."""

    username: str


@dataclass(frozen=True)
class BindRequested:
    """Bind ``resource`` (prepared; ``None``: pick one); answer ``bind_done``/``bind_failed``."""

    resource: str | None
    iq_id: str


@dataclass(frozen=True)
class Established:
    """The resource is bound to ``jid``; stanzas follow as :class:`StanzaIn`."""

    jid: JID


@dataclass(frozen=True)
class StanzaIn:
    """A top-level element the client sent on the established stream."""

    element: Element


@dataclass(frozen=True)
class Closed:
    """The stream is over: flush what was sent, then close the transport."""

    error: StreamError | None


Event = (
    SendData
    | StartTLS
    | CredentialsNeeded
    | Authenticated
    | BindRequested
    | Established
    | StanzaIn
    | Closed
)


# -- states, inputs and the transition table ---------------------------------------------------


class State(enum.Enum):
    HEADER = "header"  # waiting for the client's stream header
    FEATURES = "features"  # pre-auth features sent: <starttls/> or <auth/> expected
    TLS_PENDING = "tls-pending"  # <proceed/> sent: waiting for tls_started()
    SASL_INITIAL = "sasl-initial"  # empty challenge sent: the initial response is due
    SASL_CREDENTIALS = "sasl-credentials"  # waiting for provide_credentials()
    SASL_CHALLENGE = "sasl-challenge"  # SCRAM challenge sent: the final response is due
    BIND = "bind"  # authenticated stream: a bind request is due
    BIND_PENDING = "bind-pending"  # waiting for bind_done() or bind_failed()
    ESTABLISHED = "established"  # stanzas pass through
    CLOSED = "closed"


class Input(enum.Enum):
    # from the client, through the parser
    STREAM_HEADER = "stream-header"
    STARTTLS = "starttls"
    AUTH = "auth"
    RESPONSE = "response"
    ABORT = "abort"
    BIND_IQ = "bind-iq"
    SESSION_IQ = "session-iq"
    ELEMENT = "element"  # any other top-level element
    STREAM_END = "stream-end"
    EOF = "eof"
    # from the caller
    TLS_STARTED = "tls-started"
    CREDENTIALS = "credentials"
    BIND_DONE = "bind-done"
    BIND_FAILED = "bind-failed"
    CLOSE = "close"


_ELEMENTS = (
    Input.STARTTLS,
    Input.AUTH,
    Input.RESPONSE,
    Input.ABORT,
    Input.BIND_IQ,
    Input.SESSION_IQ,
    Input.ELEMENT,
)
# states that read the client's input; the others wait for the caller
_READING = frozenset(
    {
        State.HEADER,
        State.FEATURES,
        State.SASL_INITIAL,
        State.SASL_CHALLENGE,
        State.BIND,
        State.ESTABLISHED,
    }
)
_OPEN = [state for state in State if state is not State.CLOSED]

# (state, input) -> name of the C2SNegotiation handler, which returns the next state.
TRANSITIONS: dict[tuple[State, Input], str] = {
    # rule 5: elements not listed below, before binding
    **{
        (state, element): "_reject"
        for state in (State.FEATURES, State.SASL_INITIAL, State.SASL_CHALLENGE, State.BIND)
        for element in _ELEMENTS
    },
    # rule 1
    (State.HEADER, Input.STREAM_HEADER): "_open_stream",
    # rule 3
    (State.FEATURES, Input.STARTTLS): "_start_tls",
    (State.BIND, Input.STARTTLS): "_start_tls",
    (State.TLS_PENDING, Input.TLS_STARTED): "_tls_started",
    # rule 4
    (State.FEATURES, Input.AUTH): "_start_auth",
    (State.SASL_INITIAL, Input.RESPONSE): "_initial_response",
    (State.SASL_CREDENTIALS, Input.CREDENTIALS): "_check_credentials",
    (State.SASL_CHALLENGE, Input.RESPONSE): "_final_response",
    (State.SASL_INITIAL, Input.ABORT): "_abort_auth",
    (State.SASL_CHALLENGE, Input.ABORT): "_abort_auth",
    # rule 6
    (State.BIND, Input.BIND_IQ): "_request_bind",
    (State.BIND_PENDING, Input.BIND_DONE): "_finish_bind",
    (State.BIND_PENDING, Input.BIND_FAILED): "_refuse_bind",
    (State.ESTABLISHED, Input.SESSION_IQ): "_answer_session",
    **{
        (State.ESTABLISHED, element): "_pass"
        for element in _ELEMENTS
        if element is not Input.SESSION_IQ
    },
    # rule 7
    **{(state, Input.STREAM_END): "_end_stream" for state in _READING - {State.HEADER}},
    **{(state, Input.EOF): "_lose_transport" for state in _OPEN},
    **{(state, Input.CLOSE): "_close" for state in _OPEN},
    **{
        (State.CLOSED, caller_input): "_ignore"
        for caller_input in (
            Input.EOF,
            Input.TLS_STARTED,
            Input.CREDENTIALS,
            Input.BIND_DONE,
            Input.BIND_FAILED,
            Input.CLOSE,
        )
    },
}


def _classify(event: StreamOpened | StanzaReceived | StreamClosed) -> Input:
    if isinstance(event, StreamOpened):
        return Input.STREAM_HEADER
    if isinstance(event, StreamClosed):
        return Input.STREAM_END
    element = event.element
    tag = element.tag
    if tag == f"{{{TLS_NS}}}starttls":
        return Input.STARTTLS
    if tag.startswith(f"{{{SASL_NS}}}"):
        sasl = {"auth": Input.AUTH, "response": Input.RESPONSE, "abort": Input.ABORT}
        return sasl.get(tag[len(SASL_NS) + 2 :], Input.ELEMENT)
    if (
        tag == f"{{{CLIENT_NS}}}iq"
        and element.get("type") == "set"
        and element.get("id")
        and len(element) == 1
    ):
        if element[0].tag == f"{{{BIND_NS}}}bind":
            return Input.BIND_IQ
        if element[0].tag == f"{{{SESSION_NS}}}session":
            return Input.SESSION_IQ
    return Input.ELEMENT


class _BadEncoding(ValueError):
    pass


def _b64decode(text: str | None) -> bytes:
    text = (text or "").strip()
    if text in ("", "="):
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise _BadEncoding(text) from None


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii") or "="


def _element(tag: str, attrib: dict[str, str] | None = None, text: str | None = None) -> Element:
    element = Element(tag, attrib or {})
    element.text = text
    return element


def _default_stream_id() -> str:
    return secrets.token_urlsafe(16)


def _version_ok(version: str | None) -> bool:
    major, dot, minor = (version or "").partition(".")
    digits = major.isascii() and major.isdigit() and minor.isascii() and minor.isdigit()
    return bool(dot and digits) and (int(major), int(minor)) >= (1, 0)


# -- the state machine -------------------------------------------------------------------------


class C2SNegotiation:
    """Drive one client-to-server stream from connection to bound resource.

    :param domain: the served domain; the client's ``to`` must match it.
    :param tls_available: STARTTLS can be offered on this transport.
    :param tls_required: no SASL before TLS (needs ``tls_available`` or ``secure``).
    :param secure: the transport is already TLS (direct TLS, XEP-0368).
    :param allow_plain: offer SASL PLAIN on TLS-protected streams.
    :param scram_iterations: the iteration count announced for unknown SCRAM users.
    :param max_stanza_bytes: the parser's limit on one top-level element.
    :param max_depth: the parser's limit on element nesting.
    :param max_auth_failures: SASL failures after which the stream is closed.
    :param stream_id: makes the id of each stream; unpredictable by default.
    :param scram_fake_key: the server-wide secret from which unknown users' SCRAM salts are
        derived, so that they stay stable between attempts; random per stream if ``None``.
    """

    def __init__(
        self,
        *,
        domain: str,
        tls_available: bool,
        tls_required: bool,
        secure: bool = False,
        allow_plain: bool = True,
        scram_iterations: int = 4096,
        max_stanza_bytes: int = 262144,
        max_depth: int = 32,
        max_auth_failures: int = 3,
        stream_id: Callable[[], str] = _default_stream_id,
        scram_fake_key: bytes | None = None,
    ) -> None:
        if tls_required and not (tls_available or secure):
            raise ValueError("tls_required needs tls_available or secure")
        if max_auth_failures < 1:
            raise ValueError("max_auth_failures must be at least 1")
        self.domain = prep_domain(domain)
        self._tls_available = tls_available
        self._tls_required = tls_required
        self._tls = secure
        self._allow_plain = allow_plain
        self._scram_iterations = scram_iterations
        self._scram_fake_key = scram_fake_key
        self._limits = {"max_stanza_bytes": max_stanza_bytes, "max_depth": max_depth}
        self._max_auth_failures = max_auth_failures
        self._stream_id = stream_id
        self._extra_features: list[Element] = []

        self._state = State.HEADER
        self._out: deque[Event] = deque()
        self._closed: Closed | None = None
        self._parser = XMLStreamParser(**self._limits)
        self._inbox = bytearray()  # received, not yet fed to the parser
        self._parser_fed = False  # the parser has had a byte other than whitespace
        self._eof = False
        self._header_sent = False
        self._authenticated = False
        self._auth_failures = 0
        self._mechanism: str | None = None
        self._scram: ScramServer | None = None
        self._username: str | None = None
        self._password: str | None = None
        self._bind_id: str | None = None

    @property
    def state(self) -> State:
        return self._state

    # -- inputs ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the client; they are parsed by :meth:`next_event`."""
        if self._state is State.CLOSED:
            return
        if self._eof:
            raise LocalProtocolError(f"receive_data() after receive_eof() in state {self._state}")
        if self._state is State.TLS_PENDING:
            if data.strip(_WS):  # rule 3
                self._fail(StreamError("policy-violation", "plaintext after <starttls/>"))
            return
        self._inbox += data
        if self._state not in _READING and len(self._inbox) > self._limits["max_stanza_bytes"]:
            self._fail(StreamError("policy-violation", "too much data sent while waiting"))

    def receive_eof(self) -> None:
        """Note that the client closed its side of the transport."""
        self._eof = True

    def tls_started(self) -> None:
        """Report that the transport is now TLS; a new stream header is expected."""
        self._dispatch(Input.TLS_STARTED, None)

    def provide_credentials(self, creds: ScramCredentials | None) -> None:
        """Answer :class:`CredentialsNeeded`; ``None`` means there is no such user."""
        self._dispatch(Input.CREDENTIALS, creds)

    def bind_done(self, jid: JID) -> None:
        """Answer :class:`BindRequested` with the full JID that is now bound."""
        self._dispatch(Input.BIND_DONE, jid)

    def bind_failed(self, error: StanzaError) -> None:
        """Answer :class:`BindRequested` with an iq error; the client may try again."""
        self._dispatch(Input.BIND_FAILED, error)

    def set_extra_features(self, elements: Iterable[Element]) -> None:
        """Set the features offered after authentication besides bind and session."""
        self._extra_features = list(elements)

    def close(self, error: StreamError | None = None) -> None:
        """End the stream from the server side, with ``error`` if given (rule 7)."""
        self._dispatch(Input.CLOSE, error)

    # -- output ----------------------------------------------------------------------------

    def next_event(self) -> Event | NeedData:
        """Return the next event, or :data:`NEED_DATA` when input is needed.

        In the states that wait for the caller (after :class:`StartTLS`,
        :class:`CredentialsNeeded` or :class:`BindRequested`) this returns
        :data:`NEED_DATA` until the caller answers.
        """
        while not self._out:
            if self._closed is not None:
                return self._closed
            if self._state not in _READING:
                if not self._eof:
                    return NEED_DATA
                self._dispatch(Input.EOF, None)
                continue
            try:
                event = self._pull()
            except StreamError as exc:  # RemoteProtocolError from the parser
                self._fail(exc)
                continue
            if event is not NEED_DATA:
                self._dispatch(_classify(event), event)
            elif self._eof:
                self._dispatch(Input.EOF, None)
            else:
                return NEED_DATA
        return self._out.popleft()

    def _pull(self) -> StreamOpened | StanzaReceived | StreamClosed | NeedData:
        """Return the parser's next event, feeding it from the inbox as needed.

        Until the stream is established the inbox is fed up to one ``>`` at a time, so the
        parser never reads past the element that may end this stream (STARTTLS or SASL
        success): what follows belongs to the next stream and its own parser.
        """
        while True:
            event = self._parser.next_event()
            if event is not NEED_DATA or not self._inbox:
                return event
            if not self._parser_fed:  # rule 8, and an XML declaration must come first
                del self._inbox[: len(self._inbox) - len(self._inbox.lstrip(_WS))]
                self._parser_fed = bool(self._inbox)
                continue
            if self._state is State.ESTABLISHED:
                size = len(self._inbox)
            else:
                size = self._inbox.find(b">") + 1 or len(self._inbox)
            chunk = bytes(self._inbox[:size])
            del self._inbox[:size]
            self._parser.feed(chunk)

    # -- machinery -------------------------------------------------------------------------

    def _dispatch(self, event: Input, payload: object) -> None:
        try:
            handler = TRANSITIONS[(self._state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"{event.value!r} is not allowed in state {self._state.value!r}"
            ) from None
        try:
            self._state = getattr(self, handler)(payload)
        except StreamError as exc:
            self._fail(exc)

    def _emit(self, event: Event) -> None:
        self._out.append(event)

    def _send(self, data: bytes) -> None:
        last = self._out[-1] if self._out else None
        if isinstance(last, SendData):  # one write instead of several
            self._out.pop()
            data = last.data + data
        self._out.append(SendData(data))

    def _send_header(self, to: str | None = None) -> None:
        self._send(stream_header(from_=self.domain, id=self._stream_id(), to=to))
        self._header_sent = True

    def _fail(self, error: StreamError) -> None:
        """Rule 1: header if not yet sent, the stream error, the close tag, Closed(error)."""
        if not self._header_sent:
            self._send_header()
        self._send(stream_error(error.condition, error.text) + STREAM_CLOSE)
        self._finish(error)

    def _finish(self, error: StreamError | None) -> None:
        self._closed = Closed(error)
        self._emit(self._closed)
        self._state = State.CLOSED
        self._scram = self._password = None
        self._inbox.clear()

    def _restart(self) -> State:
        self._parser = XMLStreamParser(**self._limits)
        self._parser_fed = self._header_sent = False
        return State.HEADER

    def _features(self) -> Element:
        features = Element(f"{{{STREAM_NS}}}features")
        if self._authenticated:
            SubElement(features, f"{{{BIND_NS}}}bind")
            session = SubElement(features, f"{{{SESSION_NS}}}session")
            SubElement(session, f"{{{SESSION_NS}}}optional")
            features.extend(self._extra_features)
            return features
        if self._starttls_offered():
            starttls = SubElement(features, f"{{{TLS_NS}}}starttls")
            if self._tls_required:
                SubElement(starttls, f"{{{TLS_NS}}}required")
        if self._sasl_offered():
            mechanisms = SubElement(features, f"{{{SASL_NS}}}mechanisms")
            for name in self._mechanisms():
                SubElement(mechanisms, f"{{{SASL_NS}}}mechanism").text = name
        return features

    def _starttls_offered(self) -> bool:
        return self._tls_available and not self._tls and not self._authenticated

    def _sasl_offered(self) -> bool:
        return self._tls or not self._tls_required

    def _mechanisms(self) -> tuple[str, ...]:
        return MECHANISMS + (PLAIN,) if self._tls and self._allow_plain else MECHANISMS

    # -- handlers: each returns the next state ---------------------------------------------

    def _open_stream(self, opened: StreamOpened) -> State:
        """Rule 1: answer with our header, check theirs, then offer the features (rule 2)."""
        attrs = opened.attrs
        try:
            peer: str | None = str(JID.parse(attrs.get("from", "")))
        except InvalidJID:
            peer = None
        self._send_header(to=peer)
        try:
            to = prep_domain(attrs.get("to", ""))
        except InvalidJID:
            to = None
        if to != self.domain:
            raise StreamError("host-unknown", f"this server serves {self.domain}")
        if not _version_ok(attrs.get("version")):
            raise StreamError("unsupported-version", "version 1.0 or later is required")
        if opened.default_ns != CLIENT_NS:
            raise StreamError("invalid-namespace", f"the default namespace must be {CLIENT_NS}")
        self._send(serialize(self._features()))
        return State.BIND if self._authenticated else State.FEATURES

    def _reject(self, event: StanzaReceived) -> State:
        """Rule 5."""
        what = "binding a resource" if self._authenticated else "authentication"
        raise StreamError("not-authorized", f"<{event.element.tag}> before {what}")

    def _start_tls(self, _event: StanzaReceived) -> State:
        """Rule 3."""
        if not self._starttls_offered():
            self._send(serialize(Element(f"{{{TLS_NS}}}failure")) + STREAM_CLOSE)
            self._finish(None)
            return State.CLOSED
        if self._parser.trailing_bytes() or self._inbox.strip(_WS):
            raise StreamError("policy-violation", "data pipelined after <starttls/>")
        self._send(serialize(Element(f"{{{TLS_NS}}}proceed")))
        self._emit(StartTLS())
        return State.TLS_PENDING

    def _tls_started(self, _payload: None) -> State:
        self._tls = True
        return self._restart()

    def _start_auth(self, event: StanzaReceived) -> State:
        """Rule 4: check the mechanism, then start it (or ask for the initial response)."""
        auth = event.element
        mechanism = auth.get("mechanism", "")
        if not self._sasl_offered() or (mechanism == PLAIN and self._allow_plain and not self._tls):
            return self._auth_failure("encryption-required")
        if mechanism not in self._mechanisms():
            return self._auth_failure("invalid-mechanism")
        self._mechanism = mechanism
        if not (auth.text or "").strip():
            self._send(serialize(Element(f"{{{SASL_NS}}}challenge")))
            return State.SASL_INITIAL
        return self._begin(auth.text)

    def _initial_response(self, event: StanzaReceived) -> State:
        return self._begin(event.element.text)

    def _begin(self, text: str | None) -> State:
        try:
            data = _b64decode(text)
        except _BadEncoding:
            return self._auth_failure("incorrect-encoding")
        if self._mechanism == PLAIN:
            return self._begin_plain(data)
        return self._begin_scram(data)

    def _begin_plain(self, data: bytes) -> State:
        parsed = parse_plain(data)
        if isinstance(parsed, Failure):
            return self._auth_failure(parsed.condition, parsed.text)
        authzid, authcid, password = parsed
        try:
            username = prep_localpart(authcid)
        except InvalidJID:
            return self._auth_failure("not-authorized")
        if authzid and not self._is_account(authzid, username):
            return self._auth_failure("invalid-authzid")
        self._username, self._password = username, password
        self._emit(CredentialsNeeded(username, MECHANISMS[0]))
        return State.SASL_CREDENTIALS

    def _is_account(self, authzid: str, username: str) -> bool:
        try:
            return JID.parse(authzid) == JID.make(username, self.domain)
        except InvalidJID:
            return False

    def _begin_scram(self, data: bytes) -> State:
        assert self._mechanism is not None
        scram = self._scram = ScramServer(
            self._mechanism,
            fake_key=self._scram_fake_key,
            default_iterations=self._scram_iterations,
            domain=self.domain,
        )
        step = scram.start(data)
        if isinstance(step, Failure):
            return self._auth_failure(step.condition, step.text)
        try:
            self._username = prep_localpart(step.username)
        except InvalidJID:  # no such account: answer exactly as for an unknown user
            return self._challenge(scram.credentials(None).data)
        self._emit(CredentialsNeeded(self._username, self._mechanism))
        return State.SASL_CREDENTIALS

    def _challenge(self, data: bytes) -> State:
        self._send(serialize(_element(f"{{{SASL_NS}}}challenge", text=_b64encode(data))))
        return State.SASL_CHALLENGE

    def _check_credentials(self, creds: ScramCredentials | None) -> State:
        if creds is not None and not isinstance(creds, ScramCredentials):
            raise LocalProtocolError(f"provide_credentials() needs ScramCredentials, not {creds!r}")
        if self._mechanism == PLAIN:
            assert self._password is not None
            password, self._password = self._password, None
            if creds is None or not verify_password(creds, password):
                return self._auth_failure("not-authorized")
            return self._succeed(None)
        assert self._scram is not None
        if creds is not None and creds.mechanism != self._mechanism:
            raise LocalProtocolError(f"{creds.mechanism} credentials for {self._mechanism}")
        return self._challenge(self._scram.credentials(creds).data)

    def _final_response(self, event: StanzaReceived) -> State:
        assert self._scram is not None
        try:
            data = _b64decode(event.element.text)
        except _BadEncoding:
            return self._auth_failure("incorrect-encoding")
        step = self._scram.respond(data)
        if isinstance(step, Success):
            return self._succeed(step.additional_data)
        return self._auth_failure(step.condition, step.text)

    def _abort_auth(self, _event: StanzaReceived) -> State:
        return self._auth_failure("aborted")

    def _auth_failure(self, condition: str, text: str | None = None) -> State:
        self._scram = self._mechanism = self._username = self._password = None
        failure = Element(f"{{{SASL_NS}}}failure")
        SubElement(failure, f"{{{SASL_NS}}}{condition}")
        if text:
            SubElement(failure, f"{{{SASL_NS}}}text").text = text
        self._send(serialize(failure))
        self._auth_failures += 1
        if self._auth_failures >= self._max_auth_failures:
            raise StreamError("policy-violation", "too many authentication failures")
        return State.FEATURES

    def _succeed(self, additional_data: bytes | None) -> State:
        assert self._username is not None
        text = None if additional_data is None else _b64encode(additional_data)
        self._send(serialize(_element(f"{{{SASL_NS}}}success", text=text)))
        self._emit(Authenticated(self._username))
        self._authenticated = True
        self._scram = self._mechanism = None
        pipelined = self._parser.trailing_bytes()  # normally empty: see _pull()
        self._inbox[:0] = pipelined
        return self._restart()

    def _request_bind(self, event: StanzaReceived) -> State:
        """Rule 6."""
        iq = event.element
        iq_id = iq.get("id", "")
        resource = iq[0].findtext(f"{{{BIND_NS}}}resource") or None
        if resource is not None:
            try:
                resource = JID.make(self._username, self.domain, resource).resource
            except InvalidJID:
                error = StanzaError("bad-request", "invalid resource", type="modify")
                self._send(serialize(_iq_error(iq_id, error)))
                return State.BIND
        self._bind_id = iq_id
        self._emit(BindRequested(resource, iq_id))
        return State.BIND_PENDING

    def _finish_bind(self, jid: JID) -> State:
        account = JID.make(self._username, self.domain)
        if not isinstance(jid, JID) or jid.resource is None or jid.bare != account:
            raise LocalProtocolError(f"bind_done() needs a full JID of {account}, not {jid!r}")
        assert self._bind_id is not None
        iq = _element(f"{{{CLIENT_NS}}}iq", {"type": "result", "id": self._bind_id})
        bind = SubElement(iq, f"{{{BIND_NS}}}bind")
        SubElement(bind, f"{{{BIND_NS}}}jid").text = str(jid)
        self._send(serialize(iq))
        self._emit(Established(jid))
        return State.ESTABLISHED

    def _refuse_bind(self, error: StanzaError) -> State:
        if not isinstance(error, StanzaError):
            raise LocalProtocolError(f"bind_failed() needs a StanzaError, not {error!r}")
        assert self._bind_id is not None
        self._send(serialize(_iq_error(self._bind_id, error)))
        return State.BIND

    def _answer_session(self, event: StanzaReceived) -> State:
        iq_id = event.element.get("id", "")
        self._send(serialize(_element(f"{{{CLIENT_NS}}}iq", {"type": "result", "id": iq_id})))
        return State.ESTABLISHED

    def _pass(self, event: StanzaReceived) -> State:
        self._emit(StanzaIn(event.element))
        return State.ESTABLISHED

    def _end_stream(self, _event: StreamClosed) -> State:
        """Rule 7."""
        self._send(STREAM_CLOSE)
        self._finish(None)
        return State.CLOSED

    def _lose_transport(self, _payload: None) -> State:
        self._finish(None)
        return State.CLOSED

    def _close(self, error: StreamError | None) -> State:
        if error is not None:
            raise error
        if not self._header_sent:
            self._send_header()
        self._send(STREAM_CLOSE)
        self._finish(None)
        return State.CLOSED

    def _ignore(self, _payload: object) -> State:
        return State.CLOSED


def _iq_error(iq_id: str, error: StanzaError) -> Element:
    iq = _element(f"{{{CLIENT_NS}}}iq", {"type": "error", "id": iq_id})
    child = SubElement(iq, f"{{{CLIENT_NS}}}error", {"type": error.type})
    SubElement(child, f"{{{STANZAS_NS}}}{error.condition}")
    if error.text:
        SubElement(child, f"{{{STANZAS_NS}}}text").text = error.text
    return iq
