"""The client side of SCRAM (RFC 5802, RFC 7677), for tests and benchmarks: sans-IO.

It shares the message syntax and the key derivation of :mod:`casper.sasl.scram`. It does
what it is told, including what a server must refuse (``p=`` with a mechanism without
``-PLUS``, wrong channel-binding data), so that tests can check the refusals.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from casper.sasl.scram import (
    _CB_NAME,
    _CLIENT_TRANSITIONS,
    _advance,
    _attr,
    _b64,
    _check_nonce,
    _client_key,
    _decode,
    _escape_name,
    _hash_name,
    _hmac,
    _Malformed,
    _parse_server_first,
    _State,
    _unb64,
    _xor,
    saslprep,
)

__all__ = ["ScramClient", "ScramKeyCache"]

# (hash, SASLprepped password, salt, iterations) -> (ClientKey, ServerKey)
ScramKeyCache = dict[tuple[str, str, bytes, int], tuple[bytes, bytes]]


class ScramClient:
    """The client side of one SCRAM exchange: ``first``, ``final``, then ``verify``.

    :param mechanism: a SCRAM mechanism, with or without ``-PLUS``.
    :param username: sent as the saslname (escaped, otherwise unchanged).
    :param password: SASLprep is applied.
    :param nonce: the client nonce; random if ``None`` (set it only in tests).
    :param authzid: an optional authorization identity for the GS2 header.
    :param cb_flag: the GS2 channel-binding flag: ``"n"``, ``"y"`` or ``"p=<type>"``.
    :param cb_data: the channel-binding data sent after the GS2 header in ``c=`` (with ``p=``).
    :param key_cache: keys derived earlier, filled as keys are derived: a client that logs in
        again with the same password, salt and iteration count skips the PBKDF2 run, as
        RFC 5802 §5.1 allows (the server's work is the same either way).
    :raises ValueError: on an unknown mechanism, a bad flag or nonce, or a password failing
        SASLprep.
    """

    def __init__(
        self,
        mechanism: str,
        username: str,
        password: str,
        *,
        nonce: str | None = None,
        authzid: str | None = None,
        cb_flag: str = "n",
        cb_data: bytes = b"",
        key_cache: ScramKeyCache | None = None,
    ) -> None:
        if cb_flag not in ("n", "y") and not (
            cb_flag.startswith("p=") and _CB_NAME.fullmatch(cb_flag[2:])
        ):
            raise ValueError("cb_flag must be 'n', 'y' or 'p=<type>'")
        self.mechanism = mechanism
        self._hash = _hash_name(mechanism)
        self._password = saslprep(password)
        self._nonce = _check_nonce(secrets.token_urlsafe(18) if nonce is None else nonce)
        authzid_item = "" if authzid is None else f"a={_escape_name(authzid)}"
        self._gs2_header = f"{cb_flag},{authzid_item},"
        self._cb_input = self._gs2_header.encode() + cb_data  # c= (RFC 5802 §7)
        self._bare = f"n={_escape_name(username)},r={self._nonce}"
        self._server_signature = b""
        self._state = _State.START
        self._key_cache = key_cache

    def _enter(self, event: str) -> None:
        self._state = _advance(self, _CLIENT_TRANSITIONS, self._state, event)

    def first(self) -> bytes:
        """Return the client-first-message."""
        self._enter("first")
        return f"{self._gs2_header}{self._bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        """Return the client-final-message answering ``server_first``.

        :raises ValueError: if ``server_first`` is malformed or does not extend our nonce.
        """
        self._enter("final")
        first = _parse_server_first(server_first)
        if not first.nonce.startswith(self._nonce) or first.nonce == self._nonce:
            raise ValueError("server nonce does not extend the client nonce")
        client_key, server_key = self._keys(first.salt, first.iterations)
        without_proof = f"c={_b64(self._cb_input)},r={first.nonce}"
        auth_message = f"{self._bare},{server_first.decode('utf-8')},{without_proof}".encode()
        stored_key = hashlib.new(self._hash, client_key).digest()
        proof = _xor(client_key, _hmac(self._hash, stored_key, auth_message))
        self._server_signature = _hmac(self._hash, server_key, auth_message)
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def _keys(self, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
        if self._key_cache is None:
            return _client_key(self._hash, self._password, salt, iterations)
        index = (self._hash, self._password, salt, iterations)
        keys = self._key_cache.get(index)
        if keys is None:
            keys = self._key_cache[index] = _client_key(
                self._hash, self._password, salt, iterations
            )
        return keys

    def verify(self, server_final: bytes) -> bool:
        """Return True if ``server_final`` (the ``<success/>`` data) proves the server's key."""
        self._enter("verify")
        try:
            items = _decode(server_final).split(",")
            verifier = _unb64(_attr(items[0], "v"))
        except _Malformed:
            return False
        return hmac.compare_digest(verifier, self._server_signature)
