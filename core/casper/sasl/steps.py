"""Results of one SASL step, shared by every mechanism (RFC 6120 §6.4 and §6.5).

A mechanism is a sans-IO object: the negotiation layer hands it the decoded payload of
``<auth/>`` or ``<response/>`` and gets back one of these values, which it turns into
``<challenge/>``, ``<success/>`` or ``<failure/>`` (or a credentials lookup) without further
interpretation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["SASL_CONDITIONS", "Challenge", "Failure", "NeedCredentials", "Step", "Success"]

# RFC 6120 §6.5
SASL_CONDITIONS = frozenset(
    {
        "aborted", "account-disabled", "credentials-expired", "encryption-required",
        "incorrect-encoding", "invalid-authzid", "invalid-mechanism", "malformed-request",
        "mechanism-too-weak", "not-authorized", "temporary-auth-failure",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``<challenge/>`` carrying ``data`` and wait for the client's ``<response/>``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Success:
    """Authentication succeeded for ``username``; send ``<success/>`` with ``additional_data``.

    ``additional_data`` is ``None`` when the mechanism has none to send (``<success/>`` is
    empty), as opposed to ``b""`` (``<success>=</success>``).
    """

    username: str
    additional_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """Authentication failed; send ``<failure/>`` with ``condition`` and an optional ``text``."""

    condition: str
    text: str | None = None

    def __post_init__(self) -> None:
        if self.condition not in SASL_CONDITIONS:
            raise ValueError(f"unknown SASL failure condition {self.condition!r}")


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    """Look up the stored credentials of ``username`` and hand them back to the mechanism."""

    username: str


Step: TypeAlias = Challenge | Success | Failure | NeedCredentials
