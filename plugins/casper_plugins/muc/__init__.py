"""Multi-user chat: a XEP-0045 service at ``conference.<domain>``.

Plugin ``muc``. Rooms are created by joining them; their creator owns them. Implemented:
create (locked until configured, or instant), join, leave, nick changes and nick
conflicts (``409 conflict``), groupchat with discussion history on join
(``<history maxstanzas maxchars seconds since/>``, XEP-0203 delays), private messages,
subject, roles (moderator, participant, visitor) and affiliations (owner, admin, member,
outcast) with kick and ban, the configuration form (XEP-0004 ``muc#roomconfig``:
persistent, public, members-only, moderated, password, anonymity, subject changes,
invitations, private messages, maximum occupants), mediated invitations and declines,
destroy, service and room discovery (with ``muc#roominfo``; the server's disco#items
lists the service), XEP-0410 self-ping, and storage of persistent rooms with their
affiliations and subject in the core's service storage, which belongs to no account: a
room is kept whoever owns it (local, remote, or an account since deleted) until it is
destroyed or made temporary (see :mod:`.store`), and reloaded at start. Status codes:
100, 104, 110, 172-174, 201, 210, 301, 303, 307, 321, 322, 333.

Invisibility, and what a room reveals:

- Joining is directed presence to ``room/nick``; the core delivers it to the room whether
  or not the session sent broadcast presence, so one joins while invisible under any
  strategy (or none). The room learns the session's full JID, as any recipient of directed
  presence does; its occupants learn it only as the room's anonymity says: in a
  non-anonymous room everyone (the joiner is told: status 100; the room says so in its
  disco#info: ``muc_nonanonymous``), in a semi-anonymous room moderators, in a fully
  anonymous room nobody. A room made non-anonymous later warns (status 172) and reveals
  only occupants who join after the change.
- Leaving — directed unavailable, or broadcast unavailable (which the core sends to every
  room the session is in) — is answered with the occupant's own unavailable (status 110),
  which reaches the session even though it is now unavailable: the core keeps the route.
- An occupant the room puts out without its asking (kick, ban, lost membership, an error
  from its server, the room destroyed) gets its unavailable from the room, and the core is
  told to drop the room's JIDs from the session's directed presence and ``seen_by``
  (``server.presence.forget``, which sends nothing): the session's later unavailable is
  not sent to a room that already said it is out.
- Rooms get nothing but what the core sends to entities the session sent directed
  presence to: broadcast presence never reaches them, and XEP-0018 ``invisible``/``visible``
  are consumed before routing (a room ignores any presence type other than available,
  unavailable and error).
- Every stanza to a user goes through the router and its incoming filters: a privacy list
  that blocks an occupant JID must *drop* its groupchat — an error back to the room gets
  the blocker removed (status 333), as XEP-0045 services do.

Not implemented: IQs to occupant JIDs are not forwarded (vCards, version: answered
``service-unavailable``), nick registration, voice requests, multi-session nicks (a second
resource of the same account joining under a used nick gets ``conflict``), room logging.

Hooks: ``casper_configure`` (registers the service and the component handler),
``casper_serve`` (the room task), ``casper_session_ended``.

Config keys (``[plugin.muc]``):

- ``subdomain`` (string, default ``"conference"``): the service is ``<subdomain>.<domain>``.
- ``name`` (string, default ``"Chatrooms"``): the service's disco name.
- ``history_size`` (int, 0..1000, default 20): messages kept per room for newcomers.
- ``max_occupants`` (int, 1..100000, default 200): a new room's and any room's limit.
- ``lock_new_rooms`` (bool, default true): new rooms wait for their owner's configuration.
- ``queue_size`` (int, 16..1000000, default 4096): stanzas waiting for the room task; a
  full queue makes the service unreachable until it drains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from casper.config import ConfigError
from casper.hookspecs import hookimpl

from .config import NAME, Config
from .service import MucService

# Each room lives on the worker its JID says (casper.cluster), like an account; an
# occupant's session may live on another (see casper.presence.PresenceService.forget_all_of).
CLUSTER_READY = True

if TYPE_CHECKING:
    from casper.server import Server

__all__ = ["NAME", "Config", "MucService"]


@hookimpl
def casper_configure(server: Server) -> None:
    service = MucService(server, Config.from_mapping(server.plugin_config(NAME)))
    if service.domain == server.domain or service.domain in server.components:
        raise ConfigError(f"plugin.{NAME}: the domain {service.domain} is already served")
    server.components[service.domain] = service.handle
    server.pm.register(service, f"{NAME}.service")
