"""Sans-IO c2s stream negotiation (RFC 6120 §4-§7): STARTTLS, SASL, resource binding.

Bytes and the caller's answers go in, events come out of ``next_event()`` (h11 style); no I/O,
no trio. After binding, every top-level element passes through as :class:`StanzaIn`. Rules:

1. We answer with our header (fresh id, ``from`` = domain, ``to`` = the client's valid
   ``from``) before features or errors. The client's ``to`` must be our domain
   (``host-unknown``), ``version`` >= 1.0 (``unsupported-version``), default namespace
   ``jabber:client`` (``invalid-namespace``). Any stream error, from the parser or a rule, is
   sent as [header if not yet sent] + ``<stream:error>`` + close tag, then Closed(error).
2. Features: before TLS, ``<starttls/>`` (``<required/>`` if ``tls_required``, and then no
   mechanisms); SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS with channel bindings (rule 10),
   SCRAM-SHA-256, SCRAM-SHA-1, and PLAIN only over TLS with ``allow_plain``.
   After SASL: ``<bind/>``, the optional legacy ``<session/>``, then the extra features.
3. STARTTLS: ``<proceed/>``, then :class:`StartTLS`; ``tls_started()`` restarts the stream.
   Any non-whitespace byte after ``<starttls/>`` and before TLS is plaintext injection:
   ``policy-violation``. A ``<starttls/>`` not offered gets a TLS ``<failure/>`` and the
   close tag, without a stream error (§5.4.2.2).
4. SASL: ``<auth/>`` without data gets an empty ``<challenge/>``; ``=`` is empty data. Not
   offered -> ``invalid-mechanism``; PLAIN without TLS, or anything while TLS is required ->
   ``encryption-required``; bad base64 -> ``incorrect-encoding``; ``<abort/>`` -> ``aborted``.
   PLAIN's authzid must be empty or ``authcid@domain`` (``invalid-authzid``); a bad localpart,
   unknown user or wrong password -> ``not-authorized``; a SCRAM username that is no valid
   localpart counts as unknown (it still gets a challenge). Every ``<failure/>`` comes with
   an :class:`AuthFailed` event (for the caller's rate limits); the caller may answer
   :class:`CredentialsNeeded` with ``refuse_credentials(Failure)`` instead of checking them
   (e.g. ``temporary-auth-failure``). The ``max_auth_failures``-th failure is followed by
   ``policy-violation``. Success restarts the stream; bytes pipelined after the final SASL
   element go to the new one.
5. Before authentication any other element is a ``not-authorized`` stream error; so is
   anything but a bind request between authentication and binding.
6. Bind: an empty or missing resource is requested as ``None`` (the caller picks one); an
   invalid one gets a ``bad-request`` iq error without asking. ``bind_failed()`` sends its iq
   error and waits for another request. After binding, the session iq gets an empty result.
7. ``</stream:stream>`` gets ours and ``Closed(None)``; EOF gives ``Closed(None)`` and no
   data; ``close()`` works in any state. Once closed, input is ignored and ``next_event()``
   keeps returning that Closed.
8. Whitespace keepalives are ignored everywhere, between streams too.
9. Stream management (XEP-0198, namespace ``urn:xmpp:sm:3``): ``<resume/>`` comes instead of
   a bind request and gives :class:`ResumeRequested`; ``resume_done()`` sends the caller's
   ``<resumed/>`` and gives :class:`Resumed` (stanzas follow as after binding),
   ``resume_failed()`` sends its ``<failed/>`` and waits for a bind request. ``<enable/>``
   before binding gets ``<failed><unexpected-request/></failed>``. On the established stream
   both pass through as :class:`StanzaIn`; the caller answers them. Before authentication
   they are rejected by rule 5. The ``<sm/>`` feature is one of the extra features.
10. Channel binding (RFC 5802 §6, XEP-0440): on a TLS stream, before its first header,
   ``set_channel_bindings()`` gives the binding data by type. With any, the -PLUS mechanisms
   and ``<sasl-channel-binding/>`` are offered. ``p=`` goes with -PLUS and only there
   (``malformed-request``), needs an offered type (``not-authorized``), and ``c=`` must
   carry the stream's data (``not-authorized``); ``y`` fails as a downgrade
   (``not-authorized``).
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from casper import sasl
from casper.errors import STANZAS_NS, LocalProtocolError, StanzaError, StreamError
from casper.jid import JID, prep_domain, prep_resource
from casper.negotiation_events import (
    Authenticated,
    AuthFailed,
    BindRequested,
    Closed,
    CredentialsNeeded,
    Established,
    Event,
    Resumed,
    ResumeRequested,
    SendData,
    StanzaIn,
    StartTLS,
    State,
)
from casper.negotiation_sasl import _SASL, PLAIN, SaslNegotiation, _or_none
from casper.stream_management import ENABLE as _SM_ENABLE
from casper.stream_management import RESUME as _SM_RESUME
from casper.stream_management import failed as _sm_failed
from casper.xml import NEED_DATA, STREAM_CLOSE, STREAM_NS, NeedData, XMLStreamParser, serialize
from casper.xml.events import StanzaReceived, StreamClosed, StreamOpened
from casper.xml.serializer import stream_error_of, stream_header

__all__ = [  # the events and states live in their own module; this is their public home
    "NEED_DATA",
    "PLAIN",
    "TRANSITIONS",
    "AuthFailed",
    "Authenticated",
    "BindRequested",
    "C2SNegotiation",
    "Closed",
    "CredentialsNeeded",
    "Established",
    "Event",
    "Input",
    "ResumeRequested",
    "Resumed",
    "SendData",
    "StanzaIn",
    "StartTLS",
    "State",
]  # fmt: skip

_CLIENT = "{jabber:client}"
_IQ = _CLIENT + "iq"
_TLS = "{urn:ietf:params:xml:ns:xmpp-tls}"
_BIND = "{urn:ietf:params:xml:ns:xmpp-bind}"
_SESSION = "{urn:ietf:params:xml:ns:xmpp-session}"
_STANZAS = f"{{{STANZAS_NS}}}"
_WS = b" \t\r\n"


class Input(enum.Enum):
    # from the client through the parser, then from the caller
    STREAM_HEADER = "stream-header"
    STARTTLS = "starttls"
    AUTH = "auth"
    RESPONSE = "response"
    ABORT = "abort"
    BIND_IQ = "bind-iq"
    SESSION_IQ = "session-iq"
    SM_ENABLE = "sm-enable"
    SM_RESUME = "sm-resume"
    ELEMENT = "element"  # any other top-level element
    STREAM_END = "stream-end"
    EOF = "eof"
    TLS_STARTED = "tls-started"
    CHANNEL_BINDINGS = "channel-bindings"
    CREDENTIALS = "credentials"
    BIND_DONE = "bind-done"
    BIND_FAILED = "bind-failed"
    RESUME_DONE = "resume-done"
    RESUME_FAILED = "resume-failed"
    CLOSE = "close"


_ELEMENTS = (Input.STARTTLS, Input.AUTH, Input.RESPONSE, Input.ABORT, Input.BIND_IQ,
             Input.SESSION_IQ, Input.SM_ENABLE, Input.SM_RESUME, Input.ELEMENT)  # fmt: skip
_CLIENT_ONLY = {"stream-header", "stream-end", *(element.value for element in _ELEMENTS)}
_PRE_BIND = (State.FEATURES, State.SASL_INITIAL, State.SASL_CHALLENGE, State.BIND)
# states that read the client's input; the others wait for the caller
_READING = frozenset({State.HEADER, *_PRE_BIND, State.ESTABLISHED})
_OPEN = [state for state in State if state is not State.CLOSED]

# (state, input) -> the C2SNegotiation method that handles it and returns the next state. The
# client cannot reach a missing entry; the caller can, which is a bug: LocalProtocolError.
TRANSITIONS: dict[tuple[State, Input], str] = {
    # rule 5: every element not listed below, before binding
    **{(state, element): "_reject" for state in _PRE_BIND for element in _ELEMENTS},
    # rule 1
    (State.HEADER, Input.STREAM_HEADER): "_open_stream",
    # rule 3
    (State.FEATURES, Input.STARTTLS): "_start_tls",
    (State.BIND, Input.STARTTLS): "_start_tls",
    (State.TLS_PENDING, Input.TLS_STARTED): "_tls_started",
    # rule 10
    (State.HEADER, Input.CHANNEL_BINDINGS): "_set_channel_bindings",
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
    # rule 9
    (State.BIND, Input.SM_RESUME): "_request_resume",
    (State.BIND, Input.SM_ENABLE): "_enable_too_early",
    (State.RESUME_PENDING, Input.RESUME_DONE): "_finish_resume",
    (State.RESUME_PENDING, Input.RESUME_FAILED): "_refuse_resume",
    **{(State.ESTABLISHED, e): "_pass" for e in _ELEMENTS if e is not Input.SESSION_IQ},
    # rule 7
    **{(state, Input.STREAM_END): "_close" for state in _READING - {State.HEADER}},
    **{(state, Input.EOF): "_end" for state in _OPEN},
    **{(state, Input.CLOSE): "_close" for state in _OPEN},
    **{(State.CLOSED, i): "_ignore" for i in Input if i.value not in _CLIENT_ONLY},
}


_TAG_INPUTS = {_TLS + "starttls": Input.STARTTLS, _SASL + "auth": Input.AUTH,
               _SASL + "response": Input.RESPONSE, _SASL + "abort": Input.ABORT,
               _SM_ENABLE: Input.SM_ENABLE, _SM_RESUME: Input.SM_RESUME}  # fmt: skip
_IQ_INPUTS = {_BIND + "bind": Input.BIND_IQ, _SESSION + "session": Input.SESSION_IQ}


def _classify(event: StreamOpened | StanzaReceived | StreamClosed) -> Input:
    if isinstance(event, StreamOpened):
        return Input.STREAM_HEADER
    if isinstance(event, StreamClosed):
        return Input.STREAM_END
    el = event.element
    if el.tag == _CLIENT + "iq" and el.get("type") == "set" and el.get("id") and len(el) == 1:
        return _IQ_INPUTS.get(el[0].tag, Input.ELEMENT)
    return _TAG_INPUTS.get(el.tag, Input.ELEMENT)


def _iq_error(iq_id: str, error: StanzaError) -> Element:
    iq = Element(_CLIENT + "iq", type="error", id=iq_id)
    child = SubElement(iq, _CLIENT + "error", type=error.type)
    SubElement(child, _STANZAS + error.condition)
    if error.text:
        SubElement(child, _STANZAS + "text").text = error.text
    return iq


_new_stream_id = partial(secrets.token_urlsafe, 16)


class C2SNegotiation(SaslNegotiation):
    """Drive one client-to-server stream from connection to bound resource.

    :param domain: the served domain; the client's ``to`` must match it.
    :param tls_available: STARTTLS can be offered on this transport.
    :param tls_required: no SASL before TLS (needs ``tls_available`` or ``secure``).
    :param secure: the transport is already TLS (direct TLS, XEP-0368).
    :param allow_plain: offer SASL PLAIN on TLS-protected streams.
    :param scram_iterations: the iteration count announced for unknown SCRAM users.
    :param max_stanza_bytes: the parser's limit on one top-level element; also the most the
        client may send while the negotiation waits for the caller.
    :param max_depth: the parser's limit on element nesting.
    :param max_auth_failures: SASL failures after which the stream is closed.
    :param stream_id: makes the id of each stream; unpredictable by default.
    :param scram_fake_key: the server-wide secret from which unknown users' SCRAM salts are
        derived, so that they stay stable between attempts; random per stream if ``None``.
    :raises ValueError: ``tls_required`` without TLS.
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
        stream_id: Callable[[], str] = _new_stream_id,
        scram_fake_key: bytes | None = None,
    ) -> None:
        if tls_required and not (tls_available or secure):
            raise ValueError("tls_required needs tls_available or secure")
        self.domain = prep_domain(domain)
        self._tls_available, self._tls_required, self._tls = tls_available, tls_required, secure
        self._allow_plain, self._stream_id = allow_plain, stream_id
        self._channel_bindings: dict[str, bytes] = {}  # rule 10; only ever set on TLS
        self._scram_options: dict[str, Any] = {"fake_key": scram_fake_key, "domain": self.domain}
        self._scram_options["default_iterations"] = scram_iterations
        self._limits = {"max_stanza_bytes": max_stanza_bytes, "max_depth": max_depth}
        self._max_auth_failures, self._auth_failures = max_auth_failures, 0
        self._extra_features: list[Element] = []
        self._state = State.HEADER
        # a list, not a deque: it holds a few events at most (next_event returns as soon as
        # there is one), and an empty deque costs a 64-slot block per connection
        self._out: list[Event] = []
        self._closed: Closed | None = None
        self._parser = XMLStreamParser(**self._limits)
        self._inbox = bytearray()  # received, not yet fed to the parser
        self._eof = self._header_sent = self._authenticated = False
        self._mechanism: str | None = None
        self._scram: sasl.ScramServer | None = None
        self._username: str | None = None  # prepared localpart, once known
        self._password: str | None = None  # PLAIN, until the credentials come
        self._bind_id = ""

    @property
    def state(self) -> State:
        return self._state

    def receive_data(self, data: bytes | bytearray) -> None:
        """Buffer bytes from the client; :meth:`next_event` parses them."""
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

    def set_channel_bindings(self, bindings: Mapping[str, bytes]) -> None:
        """Give the TLS channel-binding data of the stream by type (rule 10), e.g.
        ``{"tls-server-end-point": ...}``: after the handshake, before the client's header.

        :raises LocalProtocolError: if the stream is not TLS, is authenticated, or its
            header came already; or the data is not bytes.
        """
        self._dispatch(Input.CHANNEL_BINDINGS, dict(bindings))

    def provide_credentials(self, creds: sasl.ScramCredentials | None) -> None:
        """Answer :class:`CredentialsNeeded` with the credentials of the mechanism it names;
        ``None`` means there is no such user.

        :raises LocalProtocolError: for anything else, e.g. another mechanism's credentials.
        """
        self._dispatch(Input.CREDENTIALS, creds)

    def refuse_credentials(self, failure: sasl.Failure) -> None:
        """Answer :class:`CredentialsNeeded` with a SASL failure, checking nothing."""
        if not isinstance(failure, sasl.Failure):
            raise LocalProtocolError(f"refuse_credentials() needs a Failure, not {failure!r}")
        self._dispatch(Input.CREDENTIALS, failure)

    def bind_done(self, jid: JID) -> None:
        """Answer :class:`BindRequested` with the full JID now bound."""
        self._dispatch(Input.BIND_DONE, jid)

    def bind_failed(self, error: StanzaError) -> None:
        """Answer :class:`BindRequested` with an iq error; the client may try again."""
        self._dispatch(Input.BIND_FAILED, error)

    def resume_done(self, jid: JID, resumed: bytes) -> None:
        """Answer :class:`ResumeRequested`: send ``resumed`` (``<resumed/>``) and go on as
        the session ``jid`` (rule 9)."""
        self._dispatch(Input.RESUME_DONE, (jid, resumed))

    def resume_failed(self, failure: bytes) -> None:
        """Answer :class:`ResumeRequested` with ``failure`` (``<failed/>``); the client may
        bind a resource instead."""
        self._dispatch(Input.RESUME_FAILED, failure)

    def release_idle_memory(self) -> None:
        """The stream is idle: let the parser free expat's state if it is between stanzas
        (it comes back with the next bytes)."""
        if self._state is State.ESTABLISHED and not self._inbox:
            self._parser.hibernate()

    def take_pending(self) -> bytes:
        """Right after :class:`Authenticated`: the client's bytes not yet parsed, which
        belong to the restarted stream. The caller takes the stream over (it is handed to
        another worker, see :meth:`continue_authenticated`); this negotiation ends."""
        if not self._authenticated or self._state is not State.HEADER:
            raise LocalProtocolError("take_pending() is only valid right after authentication")
        pending = bytes(self._inbox)
        self._inbox.clear()
        self._state = State.CLOSED
        self._closed = Closed(None)
        return pending

    def continue_authenticated(self, username: str, pending: bytes) -> None:
        """Start at the restart after SASL success for ``username`` (authenticated by
        another worker, which passed on the client's ``pending`` bytes)."""
        if self._state is not State.HEADER or self._header_sent or self._authenticated:
            raise LocalProtocolError("continue_authenticated() is only valid on a new stream")
        self._authenticated, self._username = True, username
        self._inbox += pending

    def set_extra_features(self, elements: Iterable[Element]) -> None:
        """Set the features offered after authentication besides bind and session."""
        self._extra_features = list(elements)

    def close(self, error: StreamError | None = None) -> None:
        """End the stream from the server side, with ``error`` if given (rule 7)."""
        self._dispatch(Input.CLOSE, error)

    def next_event(self) -> Event | NeedData:
        """Return the next event, or :data:`NEED_DATA`: feed data, or answer the last request.

        Bytes received while a request (StartTLS, credentials, bind) is unanswered wait.
        """
        while not self._out:
            if self._closed is not None:
                return self._closed
            try:
                event = self._pull() if self._state in _READING else NEED_DATA
            except StreamError as exc:  # RemoteProtocolError from the parser
                self._fail(exc)
                continue
            if type(event) is StanzaReceived and self._state is State.ESTABLISHED:
                if event.element.tag != _IQ:  # the table's answer (_pass), without its lookups
                    return StanzaIn(event.element)
                self._dispatch(_classify(event), event)
            elif event is not NEED_DATA:
                self._dispatch(_classify(event), event)
            elif self._eof:
                self._dispatch(Input.EOF, None)
            else:
                return NEED_DATA
        return self._out.pop(0)

    def _pull(self) -> StreamOpened | StanzaReceived | StreamClosed | NeedData:
        """Return the parser's next event, feeding it from the inbox as needed.

        Until the stream is established the parser gets one ``>`` at a time: it must not read
        past an element that ends its stream (``<starttls/>``, SASL success).
        """
        while (event := self._parser.next_event()) is NEED_DATA and self._inbox:
            if self._state is State.HEADER and not self._parser.trailing_bytes():
                self._inbox[:] = self._inbox.lstrip(_WS)  # an XML declaration must come first
            size = len(self._inbox)
            if self._state is not State.ESTABLISHED:
                size = self._inbox.find(b">") + 1 or size
            self._parser.feed(bytes(self._inbox[:size]))
            del self._inbox[:size]
        return event

    def _dispatch(self, event: Input, payload: object) -> None:
        handler = TRANSITIONS.get((self._state, event))
        if handler is None:
            raise LocalProtocolError(f"{event.value!r} is illegal in state {self._state.value!r}")
        try:
            self._state = getattr(self, handler)(payload)
        except StreamError as exc:
            self._fail(exc)

    def _send(self, data: bytes) -> None:
        last = self._out[-1] if self._out else None
        if isinstance(last, SendData):  # one write instead of several
            self._out.pop()
            data = last.data + data
        self._out.append(SendData(data))

    def _send_header(self, to: str | None = None) -> None:
        self._send(stream_header(from_=self.domain, id=self._stream_id(), to=to))
        self._header_sent = True

    def _end(self, data: bytes | None, error: StreamError | None = None) -> State:
        """Send ``data`` (after our header if none was sent yet), then :class:`Closed`."""
        if data:
            if not self._header_sent:
                self._send_header()
            self._send(data)
        self._closed = Closed(error)
        self._out.append(self._closed)
        self._scram = self._password = None
        self._parser.close()
        self._state = State.CLOSED
        return State.CLOSED

    def _fail(self, error: StreamError) -> None:
        """Rule 1: [header] + stream error + close tag, then Closed(error)."""
        self._end(stream_error_of(error) + STREAM_CLOSE, error)

    def _restart(self) -> State:
        self._parser.close()
        self._parser = XMLStreamParser(**self._limits)
        self._header_sent = False
        return State.HEADER

    def _features(self) -> Element:  # rule 2
        features = Element(f"{{{STREAM_NS}}}features")
        if self._authenticated:
            SubElement(features, _BIND + "bind")
            SubElement(SubElement(features, _SESSION + "session"), _SESSION + "optional")
            features.extend(self._extra_features)
            return features
        if self._starttls_offered():
            starttls = SubElement(features, _TLS + "starttls")
            if self._tls_required:
                SubElement(starttls, _TLS + "required")
        self._sasl_features(features)
        return features

    def _starttls_offered(self) -> bool:
        return self._tls_available and not self._tls and not self._authenticated

    def _open_stream(self, opened: StreamOpened) -> State:
        """Rule 1: answer with our header and check theirs, then offer features (rule 2)."""
        self._send_header(to=_or_none(JID.parse, opened.attrs.get("from")))
        if _or_none(prep_domain, opened.attrs.get("to")) != self.domain:
            raise StreamError("host-unknown", f"this server serves {self.domain}")
        version = re.fullmatch(r"([0-9]+)\.([0-9]+)", opened.attrs.get("version", ""))
        if not version or (int(version[1]), int(version[2])) < (1, 0):
            raise StreamError("unsupported-version", "version 1.0 or later is required")
        if opened.default_ns != "jabber:client":
            raise StreamError("invalid-namespace", "the default namespace must be jabber:client")
        self._send(serialize(self._features()))
        return State.BIND if self._authenticated else State.FEATURES

    def _reject(self, event: StanzaReceived) -> State:
        what = "binding a resource" if self._authenticated else "authentication"
        raise StreamError("not-authorized", f"{event.element.tag} before {what}")

    def _start_tls(self, _event: StanzaReceived) -> State:
        if not self._starttls_offered():
            return self._end(serialize(Element(_TLS + "failure")) + STREAM_CLOSE)
        if self._parser.trailing_bytes() or self._inbox.strip(_WS):
            raise StreamError("policy-violation", "data pipelined after <starttls/>")
        self._send(serialize(Element(_TLS + "proceed")))
        self._out.append(StartTLS())
        return State.TLS_PENDING

    def _tls_started(self, _payload: None) -> State:
        self._tls = True
        return self._restart()

    def _request_bind(self, event: StanzaReceived) -> State:
        iq_id = event.element.get("id", "")
        requested = event.element[0].findall(_BIND + "resource")
        text = requested[0].text if requested else None
        resource = _or_none(prep_resource, text or None)
        if len(requested) > 1 or (text and resource is None):
            self._send(serialize(_iq_error(iq_id, StanzaError("bad-request", "invalid resource"))))
            return State.BIND
        self._bind_id = iq_id
        self._out.append(BindRequested(resource, iq_id))
        return State.BIND_PENDING

    def _finish_bind(self, jid: JID) -> State:
        account = JID.make(self._username, self.domain)
        if not isinstance(jid, JID) or jid.resource is None or jid.bare != account:
            raise LocalProtocolError(f"bind_done() needs a full JID of {account}, not {jid!r}")
        iq = Element(_CLIENT + "iq", type="result", id=self._bind_id)
        SubElement(SubElement(iq, _BIND + "bind"), _BIND + "jid").text = str(jid)
        self._send(serialize(iq))
        self._out.append(Established(jid))
        return State.ESTABLISHED

    def _refuse_bind(self, error: StanzaError) -> State:
        self._send(serialize(_iq_error(self._bind_id, error)))
        return State.BIND

    def _request_resume(self, event: StanzaReceived) -> State:
        self._out.append(ResumeRequested(event.element.get("previd", ""), event.element.get("h")))
        return State.RESUME_PENDING

    def _enable_too_early(self, _event: StanzaReceived) -> State:
        self._send(_sm_failed("unexpected-request"))  # XEP-0198 §3: only after binding
        return State.BIND

    def _finish_resume(self, payload: tuple[JID, bytes]) -> State:
        jid, resumed = payload
        account = JID.make(self._username, self.domain)
        if not isinstance(jid, JID) or jid.resource is None or jid.bare != account:
            raise LocalProtocolError(f"resume_done() needs a full JID of {account}, not {jid!r}")
        self._send(resumed)
        self._out.append(Resumed(jid))
        return State.ESTABLISHED

    def _refuse_resume(self, failure: bytes) -> State:
        self._send(failure)
        return State.BIND

    def _answer_session(self, event: StanzaReceived) -> State:
        iq_id = event.element.get("id", "")
        self._send(serialize(Element(_CLIENT + "iq", type="result", id=iq_id)))
        return State.ESTABLISHED

    def _pass(self, event: StanzaReceived) -> State:
        self._out.append(StanzaIn(event.element))
        return State.ESTABLISHED

    def _close(self, payload: StreamError | StreamClosed | None) -> State:
        """Rule 7: the caller's close(), or the client's ``</stream:stream>``."""
        if isinstance(payload, StreamError):
            raise payload
        return self._end(STREAM_CLOSE)

    def _ignore(self, _payload: object) -> State:
        return State.CLOSED
