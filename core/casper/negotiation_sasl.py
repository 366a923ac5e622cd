"""SASL for the c2s negotiation (RFC 6120 §6): the handlers of rule 4, as a mixin.

:class:`casper.negotiation.C2SNegotiation` inherits them; its transition table names them.
The state they keep (declared on :class:`SaslNegotiation`) is initialised there, and
:class:`NegotiationHost` lists what they use of the negotiation itself.

Channel binding (rule 10): the caller hands over the binding data of a TLS stream
(:func:`casper.tls.channel_bindings`); with any, SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS
come first among the mechanisms and the types are announced in XEP-0440's
``<sasl-channel-binding/>`` feature. Every SCRAM exchange on the stream gets the data, so
that a ``y`` flag (the client saw no -PLUS) fails as a downgrade (RFC 5802 §6).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Protocol
from xml.etree.ElementTree import Element, SubElement

from casper import sasl
from casper.errors import LocalProtocolError, StreamError
from casper.jid import JID, InvalidJID, prep_localpart
from casper.negotiation_events import Authenticated, AuthFailed, CredentialsNeeded, Event, State
from casper.xml import XMLStreamParser, serialize
from casper.xml.events import StanzaReceived

_SASL = "{urn:ietf:params:xml:ns:xmpp-sasl}"
_SASL_CB = "{urn:xmpp:sasl-cb:0}"  # XEP-0440
PLAIN = "PLAIN"


def _b64decode(text: str | None) -> bytes | None:
    """Decode SASL data (``=`` or nothing: empty); ``None`` if it is not base64."""
    text = (text or "").strip()
    try:
        return b"" if text in ("", "=") else base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        return None


def _or_none(prepare: Callable[[str], object], text: str | None) -> str | None:
    try:
        return None if text is None else str(prepare(text))
    except InvalidJID:
        return None


class NegotiationHost(Protocol):
    """What the SASL handlers use of the negotiation that inherits them.

    :class:`SaslNegotiation` subclasses it, so a type checker holds
    :class:`casper.negotiation.C2SNegotiation` to it.
    """

    domain: str
    _out: list[Event]  # events for next_event()
    _inbox: bytearray  # received, not yet fed to the parser
    _parser: XMLStreamParser
    _tls: bool
    _tls_required: bool
    _allow_plain: bool
    _authenticated: bool

    def _send(self, data: bytes) -> None:
        """Queue ``data`` for the client."""

    def _restart(self) -> State:
        """Expect a new stream header, on a new parser; return the state for it."""


class SaslNegotiation(NegotiationHost):
    """Rule 4's handlers; everything else they use belongs to the negotiation."""

    # SASL state, initialised by the negotiation's __init__
    _channel_bindings: dict[str, bytes]  # rule 10; only ever set on TLS
    _scram_options: dict[str, Any]  # keyword arguments for sasl.ScramServer
    _mechanism: str | None
    _scram: sasl.ScramServer | None
    _username: str | None  # prepared localpart, once known
    _password: str | None  # PLAIN, until the credentials come
    _auth_failures: int
    _max_auth_failures: int

    def _mechanisms(self) -> tuple[str, ...]:
        """Rule 2: what is offered on this stream, in order of preference."""
        if self._tls_required and not self._tls:
            return ()
        plus = sasl.PLUS_MECHANISMS if self._channel_bindings else ()
        return plus + sasl.MECHANISMS + ((PLAIN,) if self._tls and self._allow_plain else ())

    def _sasl_features(self, features: Element) -> None:
        """Add ``<mechanisms/>`` and, with channel bindings, ``<sasl-channel-binding/>``."""
        if mechanisms := self._mechanisms():
            parent = SubElement(features, _SASL + "mechanisms")
            for name in mechanisms:
                SubElement(parent, _SASL + "mechanism").text = name
        if self._channel_bindings and mechanisms:
            parent = SubElement(features, _SASL_CB + "sasl-channel-binding")
            for cb_type in self._channel_bindings:
                SubElement(parent, _SASL_CB + "channel-binding", type=cb_type)

    def _set_channel_bindings(self, bindings: dict[str, bytes]) -> State:
        """Rule 10: only on a TLS stream, before the header that the features answer."""
        if not self._tls or self._authenticated:
            raise LocalProtocolError("channel bindings need a TLS stream not yet authenticated")
        if not all(isinstance(k, str) and isinstance(v, bytes) and v for k, v in bindings.items()):
            raise LocalProtocolError(f"channel bindings map types to data, not {bindings!r}")
        self._channel_bindings = dict(bindings)
        return State.HEADER

    def _start_auth(self, event: StanzaReceived) -> State:
        """Rule 4: check the mechanism, then start it (or ask for the initial response)."""
        mechanism = event.element.get("mechanism", "")
        if not self._mechanisms() or (mechanism == PLAIN and self._allow_plain and not self._tls):
            return self._auth_failure("encryption-required")
        if mechanism not in self._mechanisms():
            return self._auth_failure("invalid-mechanism")
        self._mechanism = mechanism
        if not (event.element.text or "").strip():
            self._send(serialize(Element(_SASL + "challenge")))
            return State.SASL_INITIAL
        return self._initial_response(event)

    def _initial_response(self, event: StanzaReceived) -> State:
        if len(event.element):  # SASL data is character data only (RFC 6120 §6.4.2)
            return self._auth_failure("malformed-request", "SASL data cannot hold elements")
        data = _b64decode(event.element.text)
        if data is None:
            return self._auth_failure("incorrect-encoding")
        return self._begin_plain(data) if self._mechanism == PLAIN else self._begin_scram(data)

    def _begin_plain(self, data: bytes) -> State:
        parsed = sasl.parse_plain(data)
        if isinstance(parsed, sasl.Failure):
            return self._auth_failure(parsed.condition, parsed.text)
        authzid, authcid, self._password = parsed
        self._username = _or_none(prep_localpart, authcid)
        if self._username is None:
            return self._auth_failure("not-authorized")
        if authzid and _or_none(JID.parse, authzid) != f"{self._username}@{self.domain}":
            return self._auth_failure("invalid-authzid")
        self._out.append(CredentialsNeeded(self._username, sasl.MECHANISMS[0]))
        return State.SASL_CREDENTIALS

    def _begin_scram(self, data: bytes) -> State:
        assert self._mechanism is not None
        scram = sasl.ScramServer(
            self._mechanism, channel_bindings=self._channel_bindings, **self._scram_options
        )
        step = scram.start(data)
        if isinstance(step, sasl.Failure):
            return self._auth_failure(step.condition, step.text)
        self._scram, self._username = scram, _or_none(prep_localpart, step.username)
        if self._username is None:  # no such account: answer exactly as for an unknown user
            return self._challenge(scram.credentials(None).data)
        self._out.append(CredentialsNeeded(self._username, sasl.base_mechanism(self._mechanism)))
        return State.SASL_CREDENTIALS

    def _challenge(self, data: bytes) -> State:
        challenge = Element(_SASL + "challenge")
        challenge.text = base64.b64encode(data).decode()
        self._send(serialize(challenge))
        return State.SASL_CHALLENGE

    def _check_credentials(self, creds: sasl.ScramCredentials | sasl.Failure | None) -> State:
        if isinstance(creds, sasl.Failure):  # refuse_credentials()
            return self._auth_failure(creds.condition, creds.text)
        asked = sasl.MECHANISMS[0] if self._scram is None else self._scram.mechanism
        asked = sasl.base_mechanism(asked)  # as in CredentialsNeeded; PLAIN asks for SCRAM's
        if creds is not None and not (
            isinstance(creds, sasl.ScramCredentials) and creds.mechanism == asked
        ):
            raise LocalProtocolError(f"provide_credentials() needs {asked} credentials or None")
        if self._scram is not None:
            return self._challenge(self._scram.credentials(creds).data)
        password, self._password = self._password, None  # PLAIN
        if creds is None or password is None or not sasl.verify_password(creds, password):
            return self._auth_failure("not-authorized")
        return self._succeed(None)

    def _final_response(self, event: StanzaReceived) -> State:
        assert self._scram is not None
        if len(event.element):  # SASL data is character data only (RFC 6120 §6.4.2)
            return self._auth_failure("malformed-request", "SASL data cannot hold elements")
        data = _b64decode(event.element.text)
        if data is None:
            return self._auth_failure("incorrect-encoding")
        step = self._scram.respond(data)
        if isinstance(step, sasl.Success):
            return self._succeed(step.additional_data)
        return self._auth_failure(step.condition, step.text)

    def _abort_auth(self, _event: StanzaReceived) -> State:
        return self._auth_failure("aborted")

    def _auth_failure(self, condition: str, text: str | None = None) -> State:
        username = self._username
        self._scram = self._mechanism = self._username = self._password = None
        failure = Element(_SASL + "failure")
        SubElement(failure, _SASL + condition)
        if text:
            SubElement(failure, _SASL + "text").text = text
        self._send(serialize(failure))
        self._out.append(AuthFailed(username, condition))
        self._auth_failures += 1
        if self._auth_failures >= self._max_auth_failures:
            raise StreamError("policy-violation", "too many authentication failures")
        return State.FEATURES

    def _succeed(self, data: bytes | None) -> State:
        assert self._username is not None
        success = Element(_SASL + "success")
        success.text = None if data is None else base64.b64encode(data).decode() or "="
        self._send(serialize(success))
        self._out.append(Authenticated(self._username))
        self._authenticated = True
        self._scram = self._mechanism = None
        self._inbox[:0] = self._parser.trailing_bytes()  # normally empty: see _pull()
        return self._restart()
