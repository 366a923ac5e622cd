"""SASL PLAIN message parsing (RFC 4616).

``message = [authzid] NUL authcid NUL passwd``. Checking the password (see
:func:`casper.sasl.scram.verify_password`) and deciding whether a non-empty authzid may be
used (RFC 6120 §6.3.8: it must equal the authenticated bare JID, else ``invalid-authzid``)
is the caller's job, since both need the account store and the server's domain.
"""

from __future__ import annotations

from casper.sasl.steps import Failure

__all__ = ["parse_plain"]


def _decode(part: bytes) -> str | None:
    try:
        return part.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_plain(data: bytes) -> tuple[str, str, str] | Failure:
    """Split a PLAIN initial response into its parts.

    :param data: the decoded ``<auth/>`` payload.
    :return: ``(authzid, authcid, password)``, with ``authzid == ""`` when none was sent, or
        ``Failure("malformed-request")`` if there are not exactly two NULs, the authcid or the
        password is empty, or a part is not UTF-8.
    """
    parts = data.split(b"\0")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return Failure("malformed-request", "expected [authzid] NUL authcid NUL password")
    authzid, authcid, password = (_decode(part) for part in parts)
    if authzid is None or authcid is None or password is None:
        return Failure("malformed-request", "PLAIN message is not UTF-8")
    return authzid, authcid, password
