"""XMPP error types: stream errors close the stream, stanza errors become error replies.

RFC 6120 §4.9 (stream errors) and §8.3 (stanza errors). Every error carries the protocol
answer it stands for, so the layer that catches it can send it without interpretation.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

STREAMS_NS = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"

STREAM_CONDITIONS = frozenset(
    {
        "bad-format", "bad-namespace-prefix", "conflict", "connection-timeout", "host-gone",
        "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
        "invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed",
        "policy-violation", "remote-connection-failed", "reset", "resource-constraint",
        "restricted-xml", "see-other-host", "system-shutdown", "undefined-condition",
        "unsupported-encoding", "unsupported-feature", "unsupported-stanza-type",
        "unsupported-version",
    }
)  # fmt: skip

# condition -> default error type (RFC 6120 §8.3.3)
STANZA_CONDITIONS: dict[str, str] = {
    "bad-request": "modify", "conflict": "cancel", "feature-not-implemented": "cancel",
    "forbidden": "auth", "gone": "cancel", "internal-server-error": "cancel",
    "item-not-found": "cancel", "jid-malformed": "modify", "not-acceptable": "modify",
    "not-allowed": "cancel", "not-authorized": "auth", "policy-violation": "modify",
    "recipient-unavailable": "wait", "redirect": "modify", "registration-required": "auth",
    "remote-server-not-found": "cancel", "remote-server-timeout": "wait",
    "resource-constraint": "wait", "service-unavailable": "cancel",
    "subscription-required": "auth", "undefined-condition": "cancel",
    "unexpected-request": "wait",
}  # fmt: skip


class XMPPError(Exception):
    """Base of every protocol error; ``condition`` is the RFC's defined condition name."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text


class StreamError(XMPPError):
    """Fatal to the stream: send ``<stream:error>`` and close (RFC 6120 §4.9).

    ``app`` is an application-specific condition, sent beside the defined one (§4.9.4).
    """

    def __init__(
        self, condition: str, text: str | None = None, *, app: Element | None = None
    ) -> None:
        if condition not in STREAM_CONDITIONS:
            raise ValueError(f"unknown stream error condition {condition!r}")
        super().__init__(condition, text)
        self.app = app


class StanzaError(XMPPError):
    """Answer one stanza with an error reply; the stream goes on (RFC 6120 §8.3)."""

    def __init__(self, condition: str, text: str | None = None, *, type: str | None = None) -> None:
        if condition not in STANZA_CONDITIONS:
            raise ValueError(f"unknown stanza error condition {condition!r}")
        super().__init__(condition, text)
        self.type = type or STANZA_CONDITIONS[condition]


class RemoteProtocolError(StreamError):
    """The peer broke the XML or stream rules; raised by the sans-IO layers."""


class LocalProtocolError(Exception):
    """Our own code drove a sans-IO state machine into an illegal transition (a bug)."""
