"""The server object and :func:`serve`, which runs listeners and plugins in one nursery.

The :class:`Server` holds the parts (router, presence, rosters, visibility, storage,
plugin manager) and the few operations they share; it does no protocol work itself.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import pluggy
import trio

from .busywait import BusyWait
from .cluster.worker import Cluster, WorkerPlace
from .config import Config
from .corks import Corks
from .heap import IdleStreams, trim_periodically
from .iq import IqHandler, IqTable
from .jid import JID
from .lastseen import LastSeen
from .limits import Limits
from .listening import open_tcp_listeners
from .plugins import (
    GuardedNursery,
    call_safely,
    check_plugin_manager,
    make_plugin_manager,
    run_returned_callables,
)
from .policy import InvisibilityPolicy
from .presence import PresenceService
from .resumption import ResumableSessions
from .roster import Rosters
from .router import Router
from .s2s import S2SManager
from .session import Session
from .stanza import Stanza
from .storage import AccountNotFound, Storage, open_storage
from .storage.thread import StorageThread
from .tls import TLSConfigError, ensure_certificate, server_ssl_context
from .transports.http import serve_http
from .transports.tcp import serve_c2s
from .visibility import Visibility
from .xml import serialize

log = logging.getLogger("casper.server")
T = TypeVar("T")
ComponentHandler = Callable[[Stanza], bool]


@dataclass(frozen=True)
class C2SListener:
    """A listener for client connections; ``direct_tls`` for XEP-0368 ports."""

    listener: trio.abc.Listener[trio.abc.Stream]
    direct_tls: bool = False


class Server:
    """Everything one running server shares; created by :func:`serve`."""

    def __init__(self, config: Config, pm: pluggy.PluginManager, storage: Storage,
                 ssl_context: ssl.SSLContext | None, storage_thread: StorageThread) -> None:  # fmt: skip
        self.config = config
        self.domain = JID.make(None, config.domain).domain
        self.pm = pm
        self.storage = storage
        self.ssl_context = ssl_context
        self.limits = Limits.from_config(config)
        self.router = Router(self)
        self.visibility = Visibility(self)
        self.presence = PresenceService(self)
        self.rosters = Rosters(self)
        self.iq_table = IqTable([])
        self.components: dict[str, ComponentHandler] = {}
        self.started_at = time.time()
        # unknown users get believable SCRAM salts derived from this secret
        self.scram_secret = secrets.token_bytes(32)
        self._ids = itertools.count(1)
        self._storage_thread = storage_thread
        self.lastseen = LastSeen(self)
        self.policy = InvisibilityPolicy.from_config(config)
        self.s2s = S2SManager(self)  # federation; inert unless [s2s] enabled
        self.resumable = ResumableSessions(self)  # XEP-0198 sessions waiting to be resumed
        self.idle_streams = IdleStreams()  # parsers that free expat's state when idle
        self.corks = Corks()  # a task step's stanzas for one client, written together
        self.nursery: trio.Nursery | None = None
        self.cluster: Cluster | None = None  # set while serving as one of several workers

    # ------------------------------------------------------------------ setup

    @property
    def shutting_down(self) -> bool:
        """Whether :meth:`shut_down` was called: connections end with ``system-shutdown``."""
        return self.nursery is not None and self.nursery.cancel_scope.cancel_called

    def shut_down(self) -> None:
        """Stop serving: every connection gets ``system-shutdown``, then :func:`serve` returns."""
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    def build_iq_table(self) -> None:
        """Collect core and plugin IQ handlers once; duplicates are a startup error."""
        handlers = [("core", h) for h in self.rosters.iq_handlers()]
        for impl in self.pm.hook.casper_iq_handlers.get_hookimpls():
            # pluggy types every implementation as returning object; the spec says a list
            returned = cast("list[IqHandler] | None", impl.function())
            # a plugin's object is registered as "<name>.state" (casper.hookspecs)
            owner = impl.plugin_name.removesuffix(".state")
            handlers.extend((owner, h) for h in returned or ())
        self.iq_table = IqTable(handlers)

    def reload_tls(self) -> bool:
        """Load the configured (or generated) certificate and key again, e.g. after renewal.

        New connections use the new certificate (STARTTLS, direct TLS and HTTPS); open ones
        keep theirs. ``casper serve`` calls this on SIGHUP.

        Error handling: files that cannot be loaded are logged and the old certificate stays
        in use.

        :return: whether the new certificate is now in use.
        """
        try:
            context = _ssl_context(self.config)
        except TLSConfigError as exc:
            log.error("TLS certificate not reloaded, keeping the old one: %s", exc)
            return False
        self.ssl_context = context
        self.s2s.reload_tls()  # federation, if serving: same certificate, and [s2s] ca_file
        log.info("TLS certificate reloaded")
        return True

    def plugin_config(self, name: str) -> Any:
        """The ``[plugin.NAME]`` table of the configuration (empty if absent)."""
        return self.config.plugin_config(name)

    # ------------------------------------------------------------------ shared helpers

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a storage call on the storage thread (one at a time, in order)."""
        return await self._storage_thread.run(partial(fn, *args))

    def new_id(self) -> str:
        return f"casper-{next(self._ids)}"

    def serialize(self, stanza: Stanza) -> str:
        return serialize(stanza.element).decode()

    async def account_exists(self, account: JID) -> bool:
        if self.router.has_sessions(account):
            return True
        return await self.db(self.storage.account_exists, str(account))

    def wants_roster_push(self, session: Session) -> bool:
        """RFC 6121 interested resource (requested the roster), unless a plugin decides."""
        decided = call_safely(self.pm, "casper_roster_push_wanted", None, session=session)
        return session.requested_roster if decided is None else bool(decided)

    def deliver_to_component(self, stanza: Stanza) -> bool:
        """Hand a stanza to the plugin serving its domain (e.g. a MUC service); with several
        workers, an address with a local part (a room) lives on its home worker."""
        to = stanza.to
        assert to is not None
        handler = self.components.get(to.domain)
        if handler is None:
            return False
        if self.cluster is not None and to.local is not None and self.cluster.elsewhere(to):
            return self.cluster.forward_nowait(stanza, to)  # e.g. a room lives on its home
        try:
            return bool(handler(stanza))
        except Exception:
            log.exception("component %s crashed on stanza id %s", to.domain, stanza.id)
            return False

    # ------------------------------------------------------------------ visibility inputs

    async def visibility_inputs_changed(self, account: JID) -> None:
        """Roster or strategy state changed: bring every session's audience up to date."""
        for session in self.router.sessions_of(account):
            await self.presence.reconcile(session)

    async def last_public_activity(
        self, account: JID, observer: JID | None = None
    ) -> tuple[float, str | None]:
        """When ``observer`` (default: anyone not hidden from) last saw the account go
        offline; ``(0, None)`` if never."""
        return await self.lastseen.for_observer(account, observer)

    async def record_public_logoff(self, session: Session, status: str | None) -> None:
        """Remember a public logoff, unless another session keeps the account visible."""
        others = [s for s in self.router.sessions_of(session.account)
                  if s is not session and s.available and s.shown_publicly]  # fmt: skip
        if not others:
            try:
                await self.lastseen.record_logoff(session, status, time.time())
            except AccountNotFound:
                log.info("%s logged off after its account was deleted", session.jid)

    # ------------------------------------------------------------------ session lifecycle

    async def session_bound(self, session: Session) -> None:
        results = call_safely(self.pm, "casper_session_bound", [], session=session)
        await run_returned_callables(self.pm, "casper_session_bound", results)

    async def session_available(self, session: Session) -> None:
        results = call_safely(self.pm, "casper_session_available", [], session=session)
        await run_returned_callables(self.pm, "casper_session_available", results)

    async def session_shown(self, session: Session) -> None:
        results = call_safely(self.pm, "casper_session_shown", [], session=session)
        await run_returned_callables(self.pm, "casper_session_shown", results)

    async def unbind(self, session: Session) -> None:
        """Take the session off the routing table, then send its unavailable presence."""
        if session.unbound:
            return
        session.unbound = True
        self.router.unbind(session)
        try:
            await self.presence.session_ended(session)
        finally:
            if not self.router.sessions_of(session.account):
                self.rosters.evict(session.account)
                self.lastseen.forget(session.account)

    async def session_ended(self, session: Session) -> None:
        await self.unbind(session)
        call_safely(self.pm, "casper_session_ended", None, session=session)
        if self.cluster is not None:
            self.cluster.session_ended(session.jid)  # casper_remote_session_ended elsewhere


def _ssl_context(config: Config) -> ssl.SSLContext:
    if config.cert_file is not None and config.key_file is not None:
        return server_ssl_context(config.cert_file, config.key_file)
    cert, key = ensure_certificate(config.data_dir, config.domain)
    return server_ssl_context(cert, key)


async def _open_default_listeners(config: Config) -> list[C2SListener]:
    listeners = [
        C2SListener(lst) for lst in await open_tcp_listeners("c2s", config.port, config.host)
    ]
    if config.tls_port is not None:
        tls = await open_tcp_listeners("direct TLS", config.tls_port, config.host)
        listeners += [C2SListener(lst, direct_tls=True) for lst in tls]
    return listeners


async def serve(
    config: Config,
    *,
    listeners: Sequence[C2SListener] | None = None,
    storage: Storage | None = None,
    ssl_context: ssl.SSLContext | None = None,
    plugins: Sequence[tuple[object, str]] = (),
    s2s_listeners: Sequence[trio.SocketListener] | None = None,
    http_listeners: Sequence[trio.SocketListener] | None = None,
    worker: WorkerPlace | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a Casper server until cancelled.

    :param config: the configuration.
    :param listeners: listeners to serve instead of opening TCP ports from ``config``
        (tests pass memory listeners).
    :param storage: storage to use instead of SQLite under ``config.data_dir``.
    :param ssl_context: TLS context instead of the configured or generated certificate.
    :param plugins: extra ``(plugin, name)`` pairs to register (tests, embedding).
    :param s2s_listeners: listeners for incoming server connections instead of
        ``s2s.port`` (used only with ``[s2s] enabled``).
    :param http_listeners: listeners for WebSocket and BOSH instead of ``http.port``.
    :param worker: this process's place among several workers (:mod:`casper.cluster`).
    :param task_status: ``started(server)`` once every listener accepts connections.

    Error handling: configuration errors raise before anything listens; errors in one
    connection never reach the others. Resource handling: storage is closed on exit.
    """
    pm = make_plugin_manager(config, plugins)
    own_storage = storage is None
    storage = storage if storage is not None else open_storage(config.data_dir)
    try:
        ssl_context = ssl_context or _ssl_context(config)
        with StorageThread() as storage_thread:  # outlives every task that uses it
            await _serve(config, pm, storage, ssl_context, storage_thread, listeners,
                         s2s_listeners, http_listeners, worker, task_status)  # fmt: skip
    finally:
        if own_storage:
            storage.close()


async def _serve(
    config: Config,
    pm: pluggy.PluginManager,
    storage: Storage,
    ssl_context: ssl.SSLContext,
    storage_thread: StorageThread,
    listeners: Sequence[C2SListener] | None,
    s2s_listeners: Sequence[trio.SocketListener] | None,
    http_listeners: Sequence[trio.SocketListener] | None,
    worker: WorkerPlace | None,
    task_status: trio.TaskStatus[Server],
) -> None:
    """:func:`serve` once storage is open and its thread runs."""
    server = Server(config, pm, storage, ssl_context, storage_thread)
    if worker is not None:
        server.cluster = Cluster(server, worker)
        server.scram_secret = worker.scram_secret  # the same salts from every worker
    pm.hook.casper_configure(server=server)
    check_plugin_manager(pm)  # objects registered in casper_configure are checked too
    server.build_iq_table()
    if config.s2s_enabled:
        server.s2s.load_tls()
    if listeners is None:
        listeners = await _open_default_listeners(config)
    async with trio.open_nursery() as nursery:
        server.nursery = nursery
        await nursery.start(server.resumable.serve)  # before any session can detach
        await nursery.start(trim_periodically)
        await nursery.start(server.idle_streams.serve)
        await nursery.start(server.corks.serve)
        if config.busy_wait is not None:
            await nursery.start(BusyWait(config.busy_wait).serve)
        if server.cluster is not None:
            await nursery.start(server.cluster.serve)
        pm.hook.casper_serve(server=server, nursery=GuardedNursery(nursery, pm))
        for spec in listeners:
            await nursery.start(serve_c2s, server, spec.listener, spec.direct_tls)
        if config.http_port is not None:  # WebSocket (RFC 7395) and BOSH (XEP-0206)
            await nursery.start(serve_http, server, http_listeners)
        if config.s2s_enabled:  # federation (RFC 6120 s2s)
            await nursery.start(server.s2s.serve, s2s_listeners)
        task_status.started(server)


Starter = Callable[..., Awaitable[None]]
