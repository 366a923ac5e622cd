"""Privacy lists (XEP-0016), and invisibility built from them as XEP-0126 describes.

Strategy plugin ``privacy-lists``. A user keeps named lists of allow/deny rules on the
server (by JID, roster group or subscription; for messages, IQs, inbound presence,
outbound presence, or everything), picks an *active* list per session and a *default*
list for the account. The rules are enforced through the core's filters and its single
visibility decision, so a blocked or hidden party gets exactly the offline answer.

What it hides (with a list denying ``presence-out``, e.g. XEP-0126's ``invisible``):

- the session's presence, from everyone the list denies, everywhere the core asks the
  visibility decision: broadcasts, probe answers, unavailable on logoff, bare-JID
  routing, last activity and disco#items on the bare JID — each answers as for an
  offline account. A contact newly denied gets unavailable at once (XEP-0016's MUST);
  one newly allowed gets the current presence. Edits, active/default changes and
  roster changes count at once.
- chat states (XEP-0085), message events (XEP-0022), receipts (XEP-0184) and chat
  markers (XEP-0333) the client sends, without a body, to someone it is hidden from
  (``block_chat_states``): dropped, since they would show the user online.
- with IQ blocking (``<iq/>`` or an item without children): IQs to the client's full
  JID (version, time, last, disco, ping) and, through the default list, the server's
  answers on the account's bare JID — answered ``service-unavailable`` like an offline
  resource, so probing can't defeat invisibility (XEP-0126 §5).

What it cannot hide:

- a message with a ``<body/>`` is the user's deliberate chat: it is delivered with
  whatever chat state, receipt request or event it carries (filters can't edit stanzas).
- directed presence: an outbound presence *to* someone (a room join, "visible to
  Juliet") is the user's explicit act. It passes a presence-out deny unless the deciding
  item is a ``jid`` item (a fall-through, group or subscription deny does not stop it;
  a ``jid`` deny bounces it ``not-acceptable``). The core never hides a session from
  whom it sent directed presence, so a list edit doesn't send the room unavailable; an
  edit that puts in force a ``jid`` item denying presence-out to such a recipient is as
  explicit, and withdraws that directed presence (the recipient gets unavailable).
  Availability and error presence from where the session sent directed presence pass a
  ``presence-in`` deny that is not a ``jid`` item (matched by bare JID: a room reflects
  occupants from many nicknames).
- a ``user@domain/resource`` presence-out item only affects what is addressed to that
  full JID: broadcasts go to a contact's bare JID.
- subscription requests and probes from a blocked entity are still processed by the core
  (roster state, probe answers); only their delivery to the sessions is filtered.
- the administrator's policy (``[invisibility]``) comes first: where the account may not
  hide, activating or defaulting a list that denies ``<presence-out/>`` is refused
  ``not-allowed``, and ``never_hidden_from`` observers see the user whatever the list.

Blocked inbound stanzas (XEP-0016 §2.13): presence dropped; IQ get/set answered
``service-unavailable`` exactly as for an offline resource, other IQs dropped; groupchat
(and error) messages dropped, since an error back gets the user kicked from the room;
other messages to a session whose active list denies them are handled as if that session
were offline (other resources, then the account level); at the account level (no
session, or none would take it) the default list decides, and a denied message is
bounced ``service-unavailable`` or dropped (``blocked_message_reply``) — never stored
offline. Outbound stanzas a list denies are answered ``not-acceptable``. The account's
own resources and the server's domain JID are never blocked.

Offline accounts: every account's default list is loaded at startup and kept in memory,
so offline decisions are exact. A default list with group or subscription items also
needs the roster: while connected, the core's live roster is used; after logoff, a
snapshot taken then. Only contacts' subscription stanzas change a roster while the user
is offline, and no hook reports them, so the snapshot is reloaded in the background each
time it is used: a decision may lag one stanza behind such a change. Without any roster
(a brief moment after login), group and subscription items are read restrictively: a
deny item is taken to match, an allow item not.

Hooks: ``casper_configure``, ``casper_serve``, ``casper_iq_handlers`` (``jabber:iq:privacy``
on the account), ``casper_disco_features`` (``jabber:iq:privacy`` for the server),
``casper_filter_incoming``, ``casper_filter_outgoing`` (a denied outbound stanza is
answered ``not-acceptable``, which the core hands straight back to the sender),
``casper_hidden_from``, ``casper_session_bound``, ``casper_session_ended``.

Config keys (``[plugin.privacy-lists]``):

- ``blocked_message_reply`` (``"bounce"`` default, per XEP-0016 1.5+, or ``"drop"``):
  what a message the default list denies gets at the account level.
- ``block_chat_states`` (bool, default ``true``): drop body-less chat states, events,
  receipts and markers to anyone the session is hidden from.
- ``max_lists`` (1..1000, default 50) and ``max_items`` (1..10000, default 250) per
  account and per list; beyond them a set is answered ``not-allowed``.

Shared with the blocking command (XEP-0191, plugin ``blocking``): one engine per server,
the store and the enforcing strategy (:func:`shared_strategy`, registered as
``privacy-lists.state`` by whichever of the two plugins configures first). The blocklist is
a view of the default list, so both protocols always agree; each pushes the other's
changes to its own clients. With ``blocking`` alone, the strategy enforces the default
lists without the ``jabber:iq:privacy`` protocol (registered as ``privacy-lists.protocol``
by this plugin only); the settings above apply to it too.

Modules: :mod:`.model` (sans-IO lists and matching), :mod:`.compiled` (a list indexed for
matching, so a decision costs the same at 1 or 1,000 items), :mod:`.store` (persistence
and caches), :mod:`.protocol` (the IQ handlers), :mod:`.strategy` (the hooks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from casper.hookspecs import hookimpl

from .store import NAME, PrivacyStore
from .strategy import Config, PrivacyLists

CLUSTER_READY = True  # looks only at the sessions of the account it acts for

if TYPE_CHECKING:
    from casper.server import Server

__all__ = ["NAME", "Config", "PrivacyLists", "casper_configure", "shared_strategy"]

STATE = f"{NAME}.state"
PROTOCOL = f"{NAME}.protocol"


def shared_strategy(server: Server) -> PrivacyLists:
    """The server's one privacy engine (store, caches, enforcement), created on first use.

    Called from ``casper_configure`` by ``privacy-lists`` and by ``blocking``, in either
    order: both get the same object, so there is one store and one enforcement.
    """
    strategy: PrivacyLists | None = server.pm.get_plugin(STATE)
    if strategy is None:
        config = Config.from_mapping(server.plugin_config(NAME))
        store = PrivacyStore(server)
        store.load_defaults()
        strategy = PrivacyLists(server, config, store)
        server.pm.register(strategy, STATE)
    return strategy


@hookimpl
def casper_configure(server: Server) -> None:
    strategy = shared_strategy(server)
    strategy.store.watch_default(strategy.protocol.default_changed)
    server.pm.register(strategy.protocol, PROTOCOL)
