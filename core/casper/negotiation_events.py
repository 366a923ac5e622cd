"""The events :class:`casper.negotiation.C2SNegotiation` hands its caller.

Frozen dataclasses, one per thing the caller must do or learn (h11's ``_events``). They are
re-exported by :mod:`casper.negotiation`, where the rules that produce them live.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from casper.errors import StreamError
from casper.jid import JID


@dataclass(frozen=True)
class SendData:
    data: bytes  #: write to the transport, in the order the events come


@dataclass(frozen=True)
class StartTLS:
    """Wrap the transport in TLS (server side), then call ``tls_started()``."""


@dataclass(frozen=True)
class CredentialsNeeded:
    username: str  #: prepared localpart; answer with ``provide_credentials()``
    mechanism: str  #: whose credentials (PLAIN asks for SCRAM-SHA-256 ones)


@dataclass(frozen=True)
class Authenticated:
    username: str  #: the account's prepared localpart


@dataclass(frozen=True)
class AuthFailed:
    """A ``<failure/>`` was sent (already queued as data before this event)."""

    username: str | None  #: the prepared localpart tried, if the attempt got that far
    condition: str  #: the SASL condition sent, e.g. ``not-authorized``


@dataclass(frozen=True)
class BindRequested:
    resource: str | None  #: prepared, or None to pick one; answer bind_done() or bind_failed()
    iq_id: str


@dataclass(frozen=True)
class Established:
    jid: JID  #: the bound full JID; top-level elements follow as StanzaIn


@dataclass(frozen=True)
class ResumeRequested:
    """XEP-0198 ``<resume/>``: answer ``resume_done()`` or ``resume_failed()``."""

    previd: str  #: the SM-ID of the stream to resume ('' if missing)
    h: str | None  #: the client's count of our stanzas, unparsed


@dataclass(frozen=True)
class Resumed:
    jid: JID  #: the resumed session's full JID; top-level elements follow as StanzaIn


@dataclass(frozen=True)
class StanzaIn:
    element: Element  #: a top-level element received on the established stream


@dataclass(frozen=True)
class Closed:
    error: StreamError | None  #: the stream is over: flush, then close the transport


Event = (SendData | StartTLS | CredentialsNeeded | Authenticated | AuthFailed | BindRequested
         | Established | ResumeRequested | Resumed | StanzaIn | Closed)  # fmt: skip


class State(enum.Enum):
    HEADER = "header"  # waiting for the client's stream header
    FEATURES = "features"  # pre-auth features sent: <starttls/> or <auth/> expected
    TLS_PENDING = "tls-pending"  # <proceed/> sent: waiting for tls_started()
    SASL_INITIAL = "sasl-initial"  # empty challenge sent: the initial response is due
    SASL_CREDENTIALS = "sasl-credentials"  # waiting for provide_credentials()
    SASL_CHALLENGE = "sasl-challenge"  # SCRAM challenge sent: the final response is due
    BIND = "bind"  # authenticated stream: a bind request is due
    BIND_PENDING = "bind-pending"  # waiting for bind_done() or bind_failed()
    RESUME_PENDING = "resume-pending"  # waiting for resume_done() or resume_failed()
    ESTABLISHED = "established"  # stanzas pass through
    CLOSED = "closed"
