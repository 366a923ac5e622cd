"""Invisibility by directed presence, Openfire 3.5 "Casper" style: offline to all but whom you show.

Strategy plugin ``directed-presence``. It needs no XEP and no client support beyond RFC 6121:

- Log in and send no broadcast presence: connected, offline to everyone. Probes, last
  activity and disco#items on the bare JID answer exactly as for an offline account (the
  core's visibility decision and offline-equivalent answer).
- Send directed presence to chosen contacts (or to a room, to join it): they, and only
  they, see the session online and can chat with it. With this plugin, messages to the
  account's *bare* JID from an entity the session sent directed presence to reach the
  session (Openfire 3.5's reading of RFC 3921); from anyone else they take the offline
  path. Matching is by exact normalised JID: directed presence to ``juliet@example.com``
  admits all of Juliet's resources, to ``juliet@example.com/balcony`` only that one.
- Messages to the session's *full* JID are always delivered (RFC 6121 §8.5.3.1), in both
  directions, presence or not.
- Go invisible again with ``<presence type='unavailable'/>``: the stream and its routes
  stay; everyone who saw the session (contacts and directed recipients) gets unavailable,
  nobody else gets anything. Broadcast presence makes it publicly available again.

What it cannot hide: a contact who knows or guesses the full JID can still send IQs
(version, time, ping, disco#info) to the client, and the client answers — only the
``privacy-lists`` strategy (IQ blocking) stops that. Entities you send directed presence
to learn you are online, and a non-anonymous room shows your real JID to its occupants.

Hooks: ``casper_bare_route_while_unavailable``, ``casper_roster_push_wanted``.

Config (``[plugin.directed-presence]``):

- ``roster_pushes``: ``"requested"`` (default; every resource that requested the roster
  gets pushes, as proposed in the discussion under the Openfire post, and as RFC 6121
  defines an interested resource) or ``"available"`` (only resources that requested the
  roster *and* are publicly available, the rfc3921bis reading).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from casper.config import ConfigError
from casper.hookspecs import hookimpl
from casper.jid import JID

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session

NAME = "directed-presence"
ROSTER_PUSH_MODES = ("requested", "available")


@dataclass(frozen=True)
class DirectedPresenceConfig:
    roster_pushes: str = "requested"

    @classmethod
    def from_mapping(cls, settings: object) -> DirectedPresenceConfig:
        values = dict(settings or {})  # type: ignore[call-overload]
        unknown = set(values) - {"roster_pushes"}
        if unknown:
            raise ConfigError(f"plugin.{NAME}: unknown setting {min(unknown)!r}")
        mode = values.get("roster_pushes", "requested")
        if mode not in ROSTER_PUSH_MODES:
            raise ConfigError(
                f"plugin.{NAME}.roster_pushes must be one of {', '.join(ROSTER_PUSH_MODES)}"
            )
        return cls(roster_pushes=mode)


def sent_directed_presence_to(session: Session, sender: JID) -> bool:
    """Whether ``session`` sent ``sender`` directed available presence (exact JIDs)."""
    return sender in session.directed_to or sender.bare in session.directed_to


class DirectedPresence:
    """The strategy's state: only its configuration (sessions carry the rest)."""

    def __init__(self, config: DirectedPresenceConfig) -> None:
        self.config = config

    @hookimpl
    def casper_bare_route_while_unavailable(self, session: Session, sender: JID) -> bool | None:
        return True if sent_directed_presence_to(session, sender) else None

    @hookimpl
    def casper_roster_push_wanted(self, session: Session) -> bool | None:
        if self.config.roster_pushes == "available":
            return session.requested_roster and session.available
        return None


@hookimpl
def casper_configure(server: Server) -> None:
    config = DirectedPresenceConfig.from_mapping(server.plugin_config(NAME))
    server.pm.register(DirectedPresence(config), f"{NAME}.state")
