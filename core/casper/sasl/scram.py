"""SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677): sans-IO server (the client used by tests
and benchmarks is in :mod:`casper.sasl.scram_client`).

Passwords are stored only as :class:`ScramCredentials` (salt, iteration count, StoredKey,
ServerKey); :func:`verify_password` checks a plaintext password against them for SASL PLAIN.

Channel binding (RFC 5802 §6, RFC 5056): the ``-PLUS`` variants bind the exchange to the TLS
channel. The server is given the binding data of its stream by type (``tls-unique``,
``tls-server-end-point``; see :mod:`casper.tls`), empty when it offers no ``-PLUS``
mechanism. GS2 flags: ``p=<type>`` only with a ``-PLUS`` mechanism and a type it has
(``c=`` must then echo the GS2 header followed by the binding data, else ``not-authorized``);
``n`` always with the others; ``y`` ("the server does not seem to support it") only when it
offers no ``-PLUS`` mechanism, since otherwise someone removed them (a downgrade).

Server rules:

1. The steps run in the order of ``_SERVER_TRANSITIONS``; calling a method out of order is a
   bug in the caller and raises :class:`~casper.errors.LocalProtocolError`. A ``Failure``
   ends the exchange.
2. Unknown users are indistinguishable until the final step: :meth:`ScramServer.credentials`
   with ``None`` answers with a salt derived from ``fake_key`` and the username, and the proof
   check runs against random keys before failing with ``not-authorized``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from casper.errors import LocalProtocolError
from casper.sasl.steps import Challenge, Failure, NeedCredentials, Success

__all__ = [
    "MECHANISMS",
    "PLUS_MECHANISMS",
    "ScramCredentials",
    "ScramServer",
    "base_mechanism",
    "derive_credentials",
    "saslprep",
    "verify_password",
]

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1")  # preference order; credentials are stored per name
PLUS_MECHANISMS = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS")  # same credentials, channel-bound
_PLUS = "-PLUS"
_HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-1": "sha1"}
_CB_NAME = re.compile(r"[A-Za-z0-9.-]+")  # RFC 5802 §7 cb-name
DEFAULT_ITERATIONS = 4096
_SALT_BYTES = 16

# RFC 3454 table B.1, "commonly mapped to nothing" (used by SASLprep, RFC 4013 §2.1)
_MAPPED_TO_NOTHING = frozenset(
    "\u00ad\u034f\u1806\u180b\u180c\u180d\u200b\u200c\u200d\u2060\ufeff"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
)
_PROHIBITED_CATEGORIES = frozenset({"Cc", "Cs", "Co"})


# -- credentials -----------------------------------------------------------------------------


def saslprep(text: str) -> str:
    """Prepare a password with SASLprep (RFC 4013), approximated.

    Non-ASCII spaces become U+0020, "mapped to nothing" characters are removed, the result is
    NFKC-normalized; control, surrogate and private-use code points are refused.

    :raises ValueError: if the result is empty or contains a prohibited code point.
    """
    if not (text.isascii() and text.isprintable()):
        mapped = (" " if unicodedata.category(c) == "Zs" else c for c in text)
        text = unicodedata.normalize(
            "NFKC", "".join(c for c in mapped if c not in _MAPPED_TO_NOTHING)
        )
        if any(unicodedata.category(c) in _PROHIBITED_CATEGORIES for c in text):
            raise ValueError("password contains a prohibited character")
    if not text:
        raise ValueError("password is empty")
    return text


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What the server stores for one user and one SCRAM mechanism (RFC 5802 §3)."""

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes = field(repr=False)
    server_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:  # a -PLUS variant uses its base's credentials
            raise ValueError(f"unsupported SCRAM mechanism {self.mechanism!r}")
        size = _digest_size(self.mechanism)
        if self.iterations < 1 or not self.salt:
            raise ValueError("SCRAM credentials need a salt and at least one iteration")
        if len(self.stored_key) != size or len(self.server_key) != size:
            raise ValueError(f"{self.mechanism} keys must be {size} bytes")


def base_mechanism(mechanism: str) -> str:
    """Return the mechanism without ``-PLUS``: the name its credentials are stored under."""
    return mechanism.removesuffix(_PLUS)


def _hash_name(mechanism: str) -> str:
    try:
        return _HASHES[base_mechanism(mechanism)]
    except KeyError:
        raise ValueError(f"unsupported SCRAM mechanism {mechanism!r}") from None


def _digest_size(mechanism: str) -> int:
    return hashlib.new(_hash_name(mechanism)).digest_size


def _hmac(hash_name: str, key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, hash_name)


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _client_key(hash_name: str, password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """Return ``(ClientKey, ServerKey)`` for a prepared password."""
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8"), salt, iterations)
    return _hmac(hash_name, salted, b"Client Key"), _hmac(hash_name, salted, b"Server Key")


def _credentials(mechanism: str, password: str, salt: bytes, iterations: int) -> ScramCredentials:
    hash_name = _hash_name(mechanism)
    client_key, server_key = _client_key(hash_name, password, salt, iterations)
    stored_key = hashlib.new(hash_name, client_key).digest()
    return ScramCredentials(mechanism, salt, iterations, stored_key, server_key)


def derive_credentials(
    password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> dict[str, ScramCredentials]:
    """Derive the stored credentials of ``password`` for every mechanism in :data:`MECHANISMS`.

    :param password: the plaintext password; SASLprep is applied.
    :param iterations: the PBKDF2 iteration count.
    :param salt: the salt shared by all mechanisms; a random 16-byte salt if ``None``.
    :raises ValueError: if the password fails SASLprep or ``iterations`` is below 1.
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    prepared = saslprep(password)
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    return {mech: _credentials(mech, prepared, salt, iterations) for mech in MECHANISMS}


def verify_password(creds: ScramCredentials, password: str) -> bool:
    """Check a plaintext password (SASL PLAIN) against stored SCRAM credentials.

    The comparison is constant-time; a password that fails SASLprep does not match.
    """
    try:
        prepared = saslprep(password)
    except ValueError:
        return False
    candidate = _credentials(creds.mechanism, prepared, creds.salt, creds.iterations)
    return hmac.compare_digest(candidate.stored_key, creds.stored_key)


# -- message syntax (RFC 5802 §7) ------------------------------------------------------------


class _Malformed(ValueError):
    """A SCRAM message breaks the grammar; becomes ``malformed-request``."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _Malformed("invalid base64") from None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed("not UTF-8") from None


def _attr(item: str, name: str) -> str:
    """Return the value of ``name=value``; the value must be non-empty."""
    if len(item) < 3 or item[0] != name or item[1] != "=":
        raise _Malformed(f"expected attribute {name!r}")
    return item[2:]


def _check_extensions(items: list[str]) -> None:
    for item in items:
        if len(item) < 3 or not (item[0].isascii() and item[0].isalpha()) or item[1] != "=":
            raise _Malformed("invalid extension attribute")


def _check_no_mandatory_extension(items: list[str]) -> None:
    if items and items[0].startswith("m="):
        raise _Malformed("mandatory extensions are not supported")


def _escape_name(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def _unescape_name(text: str) -> str:
    if "\0" in text:
        raise _Malformed("NUL in saslname")
    parts = text.split("=")
    for part in parts[1:]:
        if not part.startswith(("2C", "3D")):
            raise _Malformed("invalid escape in saslname")
    return parts[0] + "".join({"2C": ",", "3D": "="}[p[:2]] + p[2:] for p in parts[1:])


MAX_NONCE_CHARS = 512  # clients send 16-48; the server echoes it, so a long one costs twice


def _check_nonce(nonce: str) -> str:
    if len(nonce) > MAX_NONCE_CHARS:
        raise _Malformed(f"nonce longer than {MAX_NONCE_CHARS} characters")
    if not nonce or not all("\x21" <= c <= "\x7e" and c != "," for c in nonce):
        raise _Malformed("nonce must be printable ASCII")
    return nonce


@dataclass(frozen=True, slots=True)
class _ClientFirst:
    gs2_header: str
    cb_flag: str  # n, y or p
    cb_type: str | None  # with p
    authzid: str | None
    username: str
    nonce: str
    bare: str


def _parse_cb_flag(flag: str) -> str | None:
    """Return the channel-binding type of ``p=<type>``, ``None`` for ``n`` and ``y``."""
    if flag in ("n", "y"):
        return None
    if flag.startswith("p=") and _CB_NAME.fullmatch(flag[2:]):
        return flag[2:]
    raise _Malformed("invalid GS2 channel-binding flag")


def _parse_client_first(data: bytes) -> _ClientFirst:
    parts = _decode(data).split(",", 2)
    if len(parts) != 3:
        raise _Malformed("missing GS2 header")
    flag, authzid_item, bare = parts
    cb_type = _parse_cb_flag(flag)
    authzid = _unescape_name(_attr(authzid_item, "a")) if authzid_item else None
    items = bare.split(",")
    _check_no_mandatory_extension(items)
    if len(items) < 2:
        raise _Malformed("client-first-message needs n= and r=")
    username = _unescape_name(_attr(items[0], "n"))
    nonce = _check_nonce(_attr(items[1], "r"))
    _check_extensions(items[2:])
    gs2_header = f"{flag},{authzid_item},"
    return _ClientFirst(gs2_header, flag[0], cb_type, authzid, username, nonce, bare)


@dataclass(frozen=True, slots=True)
class _ClientFinal:
    channel_binding: bytes
    nonce: str
    proof: bytes
    without_proof: str


def _parse_client_final(data: bytes) -> _ClientFinal:
    items = _decode(data).split(",")
    if len(items) < 3:
        raise _Malformed("client-final-message needs c=, r= and p=")
    channel_binding = _unb64(_attr(items[0], "c"))
    nonce = _check_nonce(_attr(items[1], "r"))
    _check_extensions(items[2:-1])
    proof = _unb64(_attr(items[-1], "p"))
    return _ClientFinal(channel_binding, nonce, proof, ",".join(items[:-1]))


@dataclass(frozen=True, slots=True)
class _ServerFirst:
    nonce: str
    salt: bytes
    iterations: int


def _parse_server_first(data: bytes) -> _ServerFirst:
    items = _decode(data).split(",")
    _check_no_mandatory_extension(items)
    if len(items) < 3:
        raise _Malformed("server-first-message needs r=, s= and i=")
    nonce = _check_nonce(_attr(items[0], "r"))
    salt = _unb64(_attr(items[1], "s"))
    count = _attr(items[2], "i")
    _check_extensions(items[3:])
    if not (count.isascii() and count.isdigit()) or int(count) < 1 or not salt:
        raise _Malformed("invalid salt or iteration count")
    return _ServerFirst(nonce, salt, int(count))


# -- server ----------------------------------------------------------------------------------


class _State(enum.Enum):
    START = "start"
    NEED_CREDENTIALS = "need-credentials"
    NEED_FINAL = "need-final"
    NEED_VERIFY = "need-verify"
    DONE = "done"


# (state, event) -> state after the event succeeds; a Failure always leads to DONE.
_SERVER_TRANSITIONS: dict[tuple[_State, str], _State] = {
    (_State.START, "start"): _State.NEED_CREDENTIALS,
    (_State.NEED_CREDENTIALS, "credentials"): _State.NEED_FINAL,
    (_State.NEED_FINAL, "respond"): _State.DONE,
}
_CLIENT_TRANSITIONS: dict[tuple[_State, str], _State] = {
    (_State.START, "first"): _State.NEED_FINAL,
    (_State.NEED_FINAL, "final"): _State.NEED_VERIFY,
    (_State.NEED_VERIFY, "verify"): _State.DONE,
}


def _advance(
    owner: object, table: dict[tuple[_State, str], _State], state: _State, event: str
) -> _State:
    try:
        return table[(state, event)]
    except KeyError:
        name = type(owner).__name__
        raise LocalProtocolError(
            f"{name}.{event}() is not allowed in state {state.value}"
        ) from None


def _malformed(exc: _Malformed) -> Failure:
    return Failure("malformed-request", str(exc))


class ScramServer:
    """The server side of one SCRAM exchange: ``start``, ``credentials``, then ``respond``.

    :param mechanism: one of :data:`MECHANISMS` or :data:`PLUS_MECHANISMS`.
    :param nonce: the server's part of the nonce; random if ``None`` (set it only in tests).
    :param fake_key: the secret from which unknown users' salts are derived. Pass the same
        server-wide secret to every instance: with the per-instance random default an unknown
        user's salt changes between attempts, which a patient attacker can notice.
    :param default_iterations: the iteration count announced for unknown users; make it the
        count used for real accounts.
    :param domain: if given, an authzid equal to ``username@domain`` is also accepted.
    :param channel_bindings: the channel-binding data of the stream by type, non-empty exactly
        when the server offers the ``-PLUS`` mechanisms on it (whichever this one is).
    :raises ValueError: on an unknown mechanism, a bad nonce, ``default_iterations`` below 1,
        or a ``-PLUS`` mechanism without channel bindings.
    """

    def __init__(
        self,
        mechanism: str,
        *,
        nonce: str | None = None,
        fake_key: bytes | None = None,
        default_iterations: int = DEFAULT_ITERATIONS,
        domain: str | None = None,
        channel_bindings: Mapping[str, bytes] | None = None,
    ) -> None:
        if default_iterations < 1:
            raise ValueError("default_iterations must be at least 1")
        self.mechanism = mechanism
        self._hash = _hash_name(mechanism)
        self._plus = mechanism.endswith(_PLUS)
        self._bindings = dict(channel_bindings or {})
        if self._plus and not self._bindings:
            raise ValueError(f"{mechanism} needs channel bindings")
        self._server_nonce = _check_nonce(secrets.token_urlsafe(18) if nonce is None else nonce)
        self._fake_key = secrets.token_bytes(32) if fake_key is None else fake_key
        self._default_iterations = default_iterations
        self._domain = domain
        self._state = _State.START
        self._first: _ClientFirst | None = None
        self._creds: ScramCredentials | None = None
        self._known_user = False
        self._server_first = ""

    def _enter(self, event: str) -> _State:
        next_state = _advance(self, _SERVER_TRANSITIONS, self._state, event)
        self._state = _State.DONE  # until the step succeeds
        return next_state

    def _authzid_ok(self, authzid: str | None, username: str) -> bool:
        if authzid is None or authzid == username:
            return True
        return self._domain is not None and authzid == f"{username}@{self._domain}"

    def _channel_binding_failure(self, first: _ClientFirst) -> Failure | None:
        """Apply the GS2 flag rules (RFC 5802 §6); the ``text`` is its server-error-value."""
        if self._plus != (first.cb_type is not None):
            return Failure("malformed-request", "p= goes with a -PLUS mechanism, and only there")
        if first.cb_type is not None and first.cb_type not in self._bindings:
            return Failure("not-authorized", "unsupported-channel-binding-type")
        if first.cb_flag == "y" and self._bindings:  # the client did not see our -PLUS offer
            return Failure("not-authorized", "server-does-support-channel-binding")
        return None

    def start(self, initial_response: bytes) -> NeedCredentials | Failure:
        """Parse the client-first-message.

        :return: ``NeedCredentials(username)``, or ``Failure`` (``malformed-request``,
            ``invalid-authzid``). The username is the unescaped saslname, not yet prepared.
        """
        next_state = self._enter("start")
        try:
            first = _parse_client_first(initial_response)
        except _Malformed as exc:
            return _malformed(exc)
        if failure := self._channel_binding_failure(first):
            return failure
        if not self._authzid_ok(first.authzid, first.username):
            return Failure("invalid-authzid")
        self._first, self._state = first, next_state
        return NeedCredentials(first.username)

    def _fake_credentials(self, username: str) -> ScramCredentials:
        tag = _hmac("sha256", self._fake_key, b"scram-salt\0" + username.encode("utf-8"))
        size = hashlib.new(self._hash).digest_size
        keys = secrets.token_bytes(size), secrets.token_bytes(size)
        mechanism, salt = base_mechanism(self.mechanism), tag[:_SALT_BYTES]
        return ScramCredentials(mechanism, salt, self._default_iterations, *keys)

    def credentials(self, creds: ScramCredentials | None) -> Challenge:
        """Answer with the server-first-message.

        :param creds: the user's credentials for this mechanism (without ``-PLUS``), or
            ``None`` if the user does not exist (or has none for this mechanism); the
            challenge looks the same.
        :raises ValueError: if ``creds`` belongs to another mechanism.
        """
        next_state = self._enter("credentials")
        assert self._first is not None
        if creds is not None and creds.mechanism != base_mechanism(self.mechanism):
            raise ValueError(f"credentials for {creds.mechanism}, not {self.mechanism}")
        self._known_user = creds is not None
        self._creds = creds or self._fake_credentials(self._first.username)
        nonce = self._first.nonce + self._server_nonce
        salt, iterations = _b64(self._creds.salt), self._creds.iterations
        self._server_first = f"r={nonce},s={salt},i={iterations}"
        self._state = next_state
        return Challenge(self._server_first.encode("ascii"))

    def respond(self, client_final: bytes) -> Success | Failure:
        """Verify the client-final-message.

        :return: ``Success(username, b"v=" + signature)``, or ``Failure`` with
            ``malformed-request`` (bad syntax) or ``not-authorized`` (wrong channel-binding
            echo or data, nonce or proof, or unknown user).
        """
        self._state = self._enter("respond")
        assert self._first is not None and self._creds is not None
        try:
            final = _parse_client_final(client_final)
        except _Malformed as exc:
            return _malformed(exc)
        if len(final.proof) != len(self._creds.stored_key):
            return Failure("malformed-request", "proof has the wrong length")
        auth_message = f"{self._first.bare},{self._server_first},{final.without_proof}"
        signature = _hmac(self._hash, self._creds.stored_key, auth_message.encode("utf-8"))
        stored_key = hashlib.new(self._hash, _xor(final.proof, signature)).digest()
        cb_data = self._bindings[self._first.cb_type] if self._first.cb_type else b""
        checks = (
            hmac.compare_digest(final.channel_binding, self._first.gs2_header.encode() + cb_data),
            hmac.compare_digest(final.nonce, self._first.nonce + self._server_nonce),
            hmac.compare_digest(stored_key, self._creds.stored_key),
            self._known_user,
        )
        if not all(checks):
            return Failure("not-authorized")
        verifier = _hmac(self._hash, self._creds.server_key, auth_message.encode("utf-8"))
        return Success(self._first.username, f"v={_b64(verifier)}".encode("ascii"))
