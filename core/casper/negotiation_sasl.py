"""SASL for the c2s negotiation (RFC 6120 §6): the handlers of rule 4, as a mixin.

:class:`casper.negotiation.C2SNegotiation` inherits them; its transition table names them.
The state they keep (``_scram``, ``_mechanism``, ``_username``, ``_password``,
``_auth_failures``) is initialised there.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element, SubElement

from casper import sasl
from casper.errors import StreamError
from casper.jid import JID, InvalidJID, prep_localpart
from casper.negotiation_events import Authenticated, AuthFailed, CredentialsNeeded, State
from casper.xml import serialize
from casper.xml.events import StanzaReceived

_SASL = "{urn:ietf:params:xml:ns:xmpp-sasl}"
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


class SaslNegotiation:
    """Rule 4's handlers; everything else they use belongs to the negotiation."""

    _out: Any
    _send: Any
    _restart: Any
    _mechanisms: Any

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
        scram = sasl.ScramServer(self._mechanism, **self._scram_options)
        step = scram.start(data)
        if isinstance(step, sasl.Failure):
            return self._auth_failure(step.condition, step.text)
        self._scram, self._username = scram, _or_none(prep_localpart, step.username)
        if self._username is None:  # no such account: answer exactly as for an unknown user
            return self._challenge(scram.credentials(None).data)
        self._out.append(CredentialsNeeded(self._username, self._mechanism))
        return State.SASL_CREDENTIALS

    def _challenge(self, data: bytes) -> State:
        challenge = Element(_SASL + "challenge")
        challenge.text = base64.b64encode(data).decode()
        self._send(serialize(challenge))
        return State.SASL_CHALLENGE

    def _check_credentials(self, creds: sasl.ScramCredentials | sasl.Failure | None) -> State:
        if isinstance(creds, sasl.Failure):  # refuse_credentials()
            return self._auth_failure(creds.condition, creds.text)
        if self._scram is not None:
            return self._challenge(self._scram.credentials(creds).data)
        password, self._password = self._password, None  # PLAIN
        if creds is None or password is None or not sasl.verify_password(creds, password):
            return self._auth_failure("not-authorized")
        return self._succeed(None)

    def _final_response(self, event: StanzaReceived) -> State:
        assert self._scram is not None
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
