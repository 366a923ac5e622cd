"""Every Casper hook, documented, in lifecycle order.

Banners: initialization, server lifecycle, negotiation, routing filters, visibility,
handlers, session lifecycle, discovery.

Rules that hold for every hook:

- Hooks are synchronous: pluggy cannot await, and a hook must never block the router.
  Async work goes one of two ways: return an async callable that the core awaits in the
  calling task (hooks whose return type says so), or start a task in :func:`casper_serve`.
- Filters decide and never mutate; they return a verdict (:mod:`casper.verdicts`).
- A crashing filter or visibility hook fails closed: the stanza is dropped or the session
  hidden, and the error is logged with the stanza id and the plugin name.
- Arguments are only ever appended; an implementation may accept any subset of them, so a
  plugin written for an older hook set keeps working.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    from .iq import IqHandler
    from .jid import JID
    from .server import Server
    from .session import Session
    from .stanza import Stanza
    from .storage.base import RosterItem
    from .verdicts import Verdict

hookspec = pluggy.HookspecMarker("casper")
hookimpl = pluggy.HookimplMarker("casper")

# A spec's body is never run: pluggy reads only its signature and docstring. The hooks that
# return a list therefore carry ``# type: ignore[empty-body]``, as pytest's hookspecs do.

AsyncCallable = Callable[[], Awaitable[None]]

HOOK_API_VERSION = 2
"""Bumped when a hook gains an argument; older implementations keep working regardless."""

# ---------------------------------------------------------------- initialization


@hookspec(historic=True)
def casper_addhooks(pm: pluggy.PluginManager) -> None:
    """Let a plugin publish hookspecs of its own with ``pm.add_hookspecs(module)``.

    :param pm: the server's plugin manager.
    :return: nothing.
    Called for every plugin, including ones registered later (historic). Synchronous.
    Since: 1.
    """


@hookspec
def casper_configure(server: Server) -> None:
    """Set up a plugin once the server object exists, before any listener starts.

    A stateful plugin registers an object here:
    ``server.pm.register(MyPlugin(server), "my-plugin.state")``.

    :param server: the server; read settings with ``server.plugin_config(name)``.
    :return: nothing.
    Synchronous; raise ``casper.config.ConfigError`` for bad plugin settings. Since: 1.
    """


# ---------------------------------------------------------------- server lifecycle


@hookspec
def casper_serve(server: Server, nursery: object) -> None:
    """Start the plugin's background tasks: ``nursery.start_soon(fn)``.

    :param server: the running server.
    :param nursery: a nursery-like object whose ``start_soon`` runs tasks in the server's
        nursery; they end when the server stops, and one that raises is logged with the
        plugin's name instead of taking the server down.
    :return: nothing.
    Synchronous; the tasks it starts are async. Since: 1.
    """


# ---------------------------------------------------------------- negotiation


@hookspec
def casper_stream_features(server: Server) -> list[Element]:  # type: ignore[empty-body]
    """Contribute stream features offered once the client has authenticated (beside bind).

    :param server: the server.
    :return: a list of feature elements (results are flattened).
    Synchronous. Since: 1.
    """


# ---------------------------------------------------------------- routing filters


@hookspec(firstresult=True)
def casper_handle_outgoing(stanza: Stanza, session: Session) -> bool | AsyncCallable | None:
    """Take over a stanza a client sent, before the core processes it.

    For protocol a plugin owns entirely (e.g. XEP-0018 ``<presence type='invisible'/>``).
    ``from`` is already stamped with the session's full JID.

    :param stanza: the stanza as the client sent it, ``from`` stamped.
    :param session: the sending session.
    :return: ``None`` to let the core process it; ``True`` when handled; or an async
        callable the core awaits in the session's task (handled, with async work).
    Stops at the first non-None result. Since: 1.
    """


@hookspec(firstresult=True)
def casper_filter_outgoing(stanza: Stanza, session: Session) -> Verdict | None:
    """Decide the fate of a stanza *sent by* ``session``'s account, before routing.

    Direction is relative to the local account (ejabberd ``out``).

    :param stanza: immutable; ``from`` already stamped by the core.
    :param session: the sending session.
    :return: ``None`` to pass, ``Drop(reason)`` to discard, ``Bounce(condition)`` to answer
        the sender with an error.
    Stops at the first non-None result. Synchronous; consult caches only. A crash drops
    the stanza and bounces ``internal-server-error`` (fail closed). Since: 1.
    """


@hookspec(firstresult=True)
def casper_filter_incoming(
    stanza: Stanza, recipient: JID, session: Session | None
) -> Verdict | None:
    """Decide the fate of a stanza about to be *delivered to* a local account (``in``).

    :param stanza: immutable, addressed and stamped.
    :param recipient: the local account's bare JID.
    :param session: the session it would be delivered to, or ``None`` when the account
        has no session the stanza can go to (offline storage, server answers).
    :return: ``None`` to pass; ``Drop``; ``Bounce``; or ``OfflineEquivalent(reason)`` to
        handle the stanza exactly as if the account (or that session) were offline.
    Stops at the first non-None result. Synchronous. A crash drops the stanza
    (fail closed). Since: 1.
    """


# ---------------------------------------------------------------- visibility


@hookspec
def casper_hidden_from(session: Session, observer: JID) -> bool | None:
    """Say whether ``session`` must look offline to ``observer``.

    The core's single visibility decision asks this for every enforcement point:
    presence broadcast, probe replies, unavailable on logoff, bare-JID routing, server
    answers on the account's behalf and whatever plugins expose. Every implementation is
    asked; any ``True`` hides (deny wins), so strategies compose.

    Directed presence is the user's explicit act and the core keeps it apart: an entity
    the session sent directed presence to keeps that presence, knows the session is online
    and reaches it by bare JID whatever this hook says; it gets no broadcast update the
    hook withholds. (Since the first release of API version 1.)

    :param session: a session of a local account.
    :param observer: the bare or full JID asking; never one of the account's own JIDs.
    :return: ``True`` to hide, ``False``/``None`` for no objection.
    Synchronous and cheap: it runs per recipient of every broadcast. A crash hides the
    session (fail closed). Since: 1.
    """


@hookspec
def casper_presence_blocked(session: Session, observer: JID) -> bool | None:
    """Say whether ``observer`` is blocked from all communication with ``session``'s account
    (XEP-0191 blocking, a deny-everything privacy item).

    A block is not invisibility: it hides presence even where the administrator's policy
    forbids the account to hide; only ``never_hidden_from`` overrides it. Every
    implementation is asked; any ``True`` blocks.

    :param session: a session of a local account.
    :param observer: the bare or full JID asking; never one of the account's own JIDs.
    :return: ``True`` when blocked, ``False``/``None`` otherwise.
    Synchronous and cheap. A crash blocks (fail closed). Since: 1.
    """


@hookspec(firstresult=True)
def casper_bare_route_while_unavailable(session: Session, sender: JID) -> bool | None:
    """Say whether bare-JID stanzas from ``sender`` may reach a session that sent no
    broadcast presence.

    RFC 6121 routes bare-JID messages to available resources only; a strategy may widen
    that (Openfire 3.5: to whom the session sent directed presence).

    :param session: a connected session that is not publicly available.
    :param sender: the sender's JID.
    :return: ``True`` to allow, ``None`` for the RFC rule.
    Stops at the first non-None result. Synchronous. Since: 1.
    """


@hookspec(firstresult=True)
def casper_initial_probes_wanted(session: Session) -> bool | None:
    """Say whether the session's initial presence probes its contacts (RFC 6121 §4.2.2).

    :param session: the session sending its initial presence.
    :return: ``False`` to send no probes (the user then gets no contact presence until
        contacts change it), ``None`` for the core's rule (probe).
    Stops at the first non-None result. Synchronous. Since: 1.
    """


@hookspec(firstresult=True)
def casper_roster_push_wanted(session: Session) -> bool | None:
    """Say whether ``session`` gets roster pushes.

    RFC 6121 §2.1.6 pushes to every *interested resource*: one that requested the roster
    (the core's default). A strategy may narrow it, e.g. to resources that are also
    available (the rfc3921bis reading discussed under the Openfire 3.5 post).

    :param session: a session of the account whose roster changed.
    :return: ``True``/``False`` to decide, ``None`` for the core's rule.
    Stops at the first non-None result. Synchronous. Since: 1.
    """


@hookspec
def casper_roster_changed(account: JID, contact: str, item: RosterItem | None) -> None:
    """A roster item was written or removed, whether or not the account is connected.

    For plugins whose decisions depend on roster groups or subscriptions (e.g. privacy
    lists) and keep their own view of offline accounts' rosters.

    :param account: the account whose roster changed.
    :param contact: the contact's bare JID.
    :param item: the new item, or ``None`` when it was removed.
    :return: nothing. Synchronous; called after storage was written. Since: 1.
    """


# ---------------------------------------------------------------- handlers


@hookspec
def casper_iq_handlers() -> list[IqHandler]:  # type: ignore[empty-body]
    """Declare IQ handlers as data: ``IqHandler(type, ns, name, handler, target)``.

    Collected once at startup into a table keyed by ``(target, type, payload tag)``; a
    duplicate key is a startup error.

    :return: a list of :class:`casper.iq.IqHandler`.
    Synchronous; the handlers are async. Since: 1.
    """


@hookspec(firstresult=True)
def casper_offline_message(stanza: Stanza, account: JID) -> AsyncCallable | None:
    """Offer to keep a message for an account none of whose sessions may receive it.

    Called on the offline-equivalent path (offline, hidden-from, or blocked when the
    blocking plugin lets it through to here).

    :param stanza: a ``normal`` or ``chat`` message, addressed and stamped.
    :param account: the recipient's bare JID.
    :return: an async callable that stores the message, or ``None`` (the core then
        bounces ``service-unavailable``).
    Stops at the first non-None result. Since: 1.
    """


# ---------------------------------------------------------------- session lifecycle


@hookspec
def casper_session_bound(session: Session) -> AsyncCallable | None:
    """A session has bound its resource and can exchange stanzas.

    :param session: the new session.
    :return: an optional async callable awaited in the session's task.
    Since: 1.
    """


@hookspec
def casper_session_available(session: Session) -> AsyncCallable | None:
    """A session sent its first available broadcast presence (RFC 6121 initial presence).

    Offline messages are delivered here.

    :param session: the session.
    :return: an optional async callable awaited in the session's task.
    Since: 1.
    """


@hookspec
def casper_session_shown(session: Session) -> AsyncCallable | None:
    """A connected, already available session became visible to someone it was hidden
    from (a strategy lifted invisibility, or a new subscriber may now see it).

    Offline messages kept while it looked offline are delivered here.

    :param session: the session.
    :return: an optional async callable awaited in the task that made the change.
    Since: 1.
    """


@hookspec
def casper_session_ended(session: Session) -> None:
    """A session is gone; its presence cleanup has been done. Drop per-session state.

    :param session: the ended session.
    :return: nothing. Synchronous. Since: 1.
    """


@hookspec
def casper_remote_session_ended(jid: JID) -> None:
    """With several workers (``[server] workers``): a session of an account living on
    another worker ended there (:func:`casper_session_ended` ran on that worker). For state
    kept here about sessions of other accounts, e.g. the occupants of a chat room.

    :param jid: the session's full JID.
    :return: nothing. Synchronous. Since: 2.
    """


# ---------------------------------------------------------------- discovery


@hookspec
def casper_disco_features(target: str) -> list[str]:  # type: ignore[empty-body]
    """Contribute service discovery features (XEP-0030).

    :param target: ``"server"`` for the domain, ``"account"`` for a user's bare JID.
    :return: a list of feature namespaces (results are flattened).
    Synchronous. Since: 1.
    """
