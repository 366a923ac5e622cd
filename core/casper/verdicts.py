"""Results of the routing filter hooks: pass (``None``), ``Drop`` or ``Bounce``.

The allow/deny decision has a direction relative to the local account (ejabberd's
``in``/``out``). A filter returns a verdict; it never mutates the stanza.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Drop:
    """Discard the stanza silently. ``reason`` is for logs and tests only."""

    reason: str


@dataclass(frozen=True)
class Bounce:
    """Discard the stanza and answer its sender with a stanza error."""

    condition: str
    type: str | None = None
    text: str | None = None
    # an extra application-specific condition element, e.g. XEP-0191's <blocked/>, as (ns, name)
    app_condition: tuple[str, str] | None = None


@dataclass(frozen=True)
class OfflineEquivalent:
    """Handle the stanza exactly as if the addressed account had no session at all.

    The one answer shared by offline, hidden-from and blocked: whoever sent the stanza can't
    tell the three apart.
    """

    reason: str


Verdict = Drop | Bounce | OfflineEquivalent
