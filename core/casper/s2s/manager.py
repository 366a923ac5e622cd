"""The federation manager: one entry point out (:meth:`S2SManager.send`), one way in.

Outgoing stanzas are queued per ``(local domain, remote domain)`` route; the first stanza
for a route starts a task that resolves, connects, negotiates and then sends the queue
(:mod:`.connections`). When a route cannot be set up, or breaks with stanzas still
queued, those stanzas bounce with ``remote-server-not-found`` (unreachable, refused,
authentication failed) or ``remote-server-timeout`` (too slow, or the peer stopped
reading); only that route is affected. An idle stream is closed; the next stanza opens a
new one (reconnect).

Incoming streams hand over stanzas whose addresses the sans-IO layer already checked
against the authenticated domain pair; they enter :meth:`casper.router.Router.route`
like any other stanza, so every routing rule, filter and the visibility decision apply to
remote entities exactly as to local ones.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import trio

from casper.errors import StanzaError
from casper.jid import JID
from casper.listening import open_tcp_listeners
from casper.stanza import Stanza
from casper.tls import TLSConfigError

from . import wire
from .connections import (
    TRANSPORT_ERRORS,
    OutboundFailed,
    WriteTimeout,
    handle_inbound,
    run_outbound,
)
from .resolve import NoService, Resolver, open_connection
from .trust import S2STLS

if TYPE_CHECKING:
    from casper.config import Config
    from casper.server import Server

    from .connections import _Wire
    from .inbound import InboundStream
    from .outbound import OutboundStream

log = logging.getLogger("casper.s2s")
BOUNCE_QUEUE = 10_000


class _Waiter:
    def __init__(self, key: str) -> None:
        self.key = key
        self.valid = False
        self.done = trio.Event()


class Route:
    """Outgoing traffic from one of our domains to one remote domain."""

    def __init__(self, local: str, remote: str, config: Config) -> None:
        self.local, self.remote = local, remote
        queue_size = config.s2s_queue_size
        self.negotiation_timeout = config.s2s_negotiation_timeout
        self.idle_timeout = config.s2s_idle_timeout
        self.reader_failure: OutboundFailed | None = None
        self._send, self._receive = trio.open_memory_channel[Stanza](queue_size)
        self._waiters: dict[tuple[str, str, str], _Waiter] = {}
        self._neg: OutboundStream | None = None
        self._wire: _Wire | None = None
        self.closing = False
        self.ready = False
        self.mechanism: str | None = None  # how the current stream authenticated
        self.in_flight: Stanza | None = None
        self.last_activity = trio.current_time()

    def __repr__(self) -> str:
        return f"<Route {self.local} -> {self.remote}>"

    # -- stanzas
    def enqueue(self, stanza: Stanza) -> bool:
        """Queue ``stanza``; ``False`` if the queue is full."""
        try:
            self._send.send_nowait(stanza)
        except trio.WouldBlock:
            return False
        return True

    async def next_stanza(self) -> Stanza | None:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            return None

    def close_queue(self) -> list[Stanza]:
        """Stop accepting stanzas; return what was queued and not sent."""
        self._send.close()
        left = [self.in_flight] if self.in_flight is not None else []
        self.in_flight = None
        while True:
            try:
                left.append(self._receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return left

    def has_queued(self) -> bool:
        return self._receive.statistics().current_buffer_used > 0

    def touch(self) -> None:
        self.last_activity = trio.current_time()

    def idle_for(self, idle: float | None) -> bool:
        if idle is None or self._waiters:
            return False
        return trio.current_time() >= self.last_activity + idle

    # -- the connection currently serving the route
    def attach(self, neg: OutboundStream, wire_: _Wire) -> None:
        self._neg, self._wire, self.closing = neg, wire_, False

    def detach(self) -> None:
        self._neg = self._wire = None

    # -- dialback verification through this route (XEP-0220 §2.3)
    def verify_requests(self) -> list[tuple[str, str, str, str]]:
        return [(r, o, i, w.key) for (r, o, i), w in self._waiters.items()]

    async def verify(self, receiving: str, originating: str, stream_id: str, key: str) -> bool:
        waiter = self._waiters.setdefault((receiving, originating, stream_id), _Waiter(key))
        if self._neg is not None and self._wire is not None and not self.closing:
            self._neg.request_verify(receiving, originating, stream_id, key)
            await self._wire.write(self._neg.data_to_send())
        await waiter.done.wait()
        return waiter.valid

    def verified(self, receiving: str, originating: str, stream_id: str, valid: bool) -> None:
        waiter = self._waiters.pop((receiving, originating, stream_id), None)
        if waiter is not None:
            waiter.valid = valid
            waiter.done.set()

    def fail_verifications(self) -> None:
        for waiter in self._waiters.values():
            waiter.done.set()
        self._waiters.clear()


class S2SManager:
    """Federation for one server; ``server.s2s``. Inert unless ``[s2s] enabled``."""

    def __init__(self, server: Server, *, tls: S2STLS | None = None,
                 nameservers: Sequence[tuple[str, int]] | None = None) -> None:  # fmt: skip
        self._server = server
        self.config: Config = server.config
        self.enabled = self.config.s2s_enabled
        secret = self.config.s2s_dialback_secret
        self._secret = secret.encode() if secret else secrets.token_bytes(32)
        self.resolver = Resolver(self.config.s2s_routes, nameservers)
        # certificate and trust anchors, both directions; loaded by serve() unless given
        self.tls: S2STLS | None = tls
        self._routes: dict[tuple[str, str], Route] = {}
        self._inbound: set[InboundStream] = set()
        self._nursery: trio.Nursery | None = None
        self._bounces_in, self._bounces_out = trio.open_memory_channel[tuple[Stanza, StanzaError]](
            BOUNCE_QUEUE
        )
        self.port: int | None = None  # the listening port, once serving

    # ------------------------------------------------------------------ identity

    @property
    def domain(self) -> str:
        return self._server.domain

    def hosted(self, domain: str) -> bool:
        """Whether ``domain`` is served here (the main domain or a component's)."""
        return domain == self._server.domain or domain in self._server.components

    def is_remote(self, domain: str) -> bool:
        return self.enabled and not self.hosted(domain)

    def dialback_key(self, receiving: str, originating: str, stream_id: str) -> str:
        return wire.dialback_key(self._secret, receiving, originating, stream_id)

    # ------------------------------------------------------------------ out

    def send(self, stanza: Stanza) -> bool:
        """Take a stanza for a remote domain; ``False`` if federation can't (disabled, not
        serving yet, or the domain is ours). Failures later bounce to the sender."""
        to = stanza.to
        if not self.enabled or self._nursery is None or to is None or self.hosted(to.domain):
            return False
        sender = stanza.from_
        if sender is None or not self.hosted(sender.domain):
            stanza = stanza.readdressed(from_=JID.make(None, self.domain))
            sender = stanza.from_
            assert sender is not None
        route = self._route(sender.domain, to.domain)
        if not route.enqueue(stanza):
            self._bounce(stanza, StanzaError("remote-server-timeout",
                                             f"too many stanzas queued for {to.domain}"))  # fmt: skip
        return True

    def _route(self, local: str, remote: str) -> Route:
        route = self._routes.get((local, remote))
        if route is None:
            route = self._routes[(local, remote)] = Route(local, remote, self.config)
            assert self._nursery is not None
            self._nursery.start_soon(self._run_route, route)
        return route

    async def _run_route(self, route: Route) -> None:
        """Connect, negotiate and send until idle; again while stanzas are left over."""
        failure: OutboundFailed | None = None
        try:
            while True:
                route.ready = False
                route.reader_failure = None
                try:
                    await self._connect_and_run(route)
                except OutboundFailed as exc:
                    failure = exc
                    break
                if not route.ready:
                    failure = OutboundFailed("remote-server-not-found", f"{route.remote}: lost")
                    break
                if route.in_flight is not None:  # the stream ended while it was written
                    lost, route.in_flight = route.in_flight, None
                    self._bounce(lost, StanzaError("remote-server-timeout", "stream closed"))
                if not route.has_queued():
                    break
                log.info("s2s out: reconnecting to %s for queued stanzas", route.remote)
        finally:
            if self._routes.get((route.local, route.remote)) is route:
                del self._routes[(route.local, route.remote)]
            left = route.close_queue()
            route.fail_verifications()
        if failure is not None:
            log.warning("s2s out: %s -> %s failed: %s (%d stanzas bounced)",
                        route.local, route.remote, failure.text, len(left))  # fmt: skip
            for stanza in left:
                self._bounce(stanza, StanzaError(failure.condition, failure.text))
        else:
            for stanza in left:  # closed with stanzas left: not sent
                self._bounce(stanza, StanzaError("remote-server-timeout", "stream closed"))

    async def _connect_and_run(self, route: Route) -> None:
        try:
            with trio.fail_after(self.config.s2s_connect_timeout):
                stream = await open_connection(self.resolver, route.remote)
        except trio.TooSlowError:
            raise OutboundFailed(
                "remote-server-timeout", f"{route.remote}: connect timed out"
            ) from None
        except NoService:
            raise OutboundFailed(
                "remote-server-not-found", f"{route.remote} has no XMPP service"
            ) from None
        except OSError as exc:
            raise OutboundFailed("remote-server-not-found", f"{route.remote}: {exc}") from None

        async def on_ready() -> None:
            route.ready = True

        await run_outbound(self, route, stream, on_ready)

    async def verify(self, receiving: str, originating: str, stream_id: str, key: str) -> bool:
        """Ask ``originating``'s authoritative server whether ``key`` is its own (dialback)."""
        if not key:
            return False
        route = self._route(receiving, originating)
        with trio.move_on_after(self.config.s2s_negotiation_timeout):
            try:
                valid = await route.verify(receiving, originating, stream_id, key)
            except (WriteTimeout, *TRANSPORT_ERRORS) as exc:
                log.warning("s2s: asking %s to verify a key failed: %s", originating, exc)
                return False
            log.info("s2s: dialback key of %s for %s is %s", originating, receiving,
                     "valid" if valid else "invalid")  # fmt: skip
            return valid
        log.warning("s2s: could not verify the dialback key of %s in time", originating)
        return False

    # ------------------------------------------------------------------ bounces

    def _bounce(self, stanza: Stanza, error: StanzaError) -> None:
        if stanza.type == "error" or (stanza.kind == "iq" and stanza.type == "result"):
            return
        if stanza.kind == "presence" and stanza.type in (None, "unavailable", "probe"):
            return
        try:
            self._bounces_in.send_nowait((stanza, error))
        except trio.WouldBlock:
            log.warning("s2s: bounce queue full; %s dropped without an error reply", stanza)

    async def _bounce_loop(self) -> None:
        async for stanza, error in self._bounces_out:
            try:
                await self._server.router.bounce(stanza, error)
            except Exception:
                log.exception("s2s: bouncing %s failed", stanza)

    # ------------------------------------------------------------------ in

    async def receive(self, element: Element, from_: JID, to: JID) -> None:
        """A stanza from an authenticated peer (addresses checked): route it like any other."""
        stanza = Stanza(element, to, from_)
        try:
            await self._server.router.route(stanza)
        except StanzaError as exc:
            await self._server.router.bounce(stanza, exc)
        except Exception:
            log.exception("s2s in: routing %s failed", stanza)

    def inbound_authorized(self, neg: InboundStream) -> None:
        self._inbound.add(neg)

    def inbound_closed(self, neg: InboundStream) -> None:
        self._inbound.discard(neg)

    def statistics(self) -> dict[str, object]:
        """Routes and incoming streams, for tests and health checks; ``mechanisms`` says
        how each authenticated (``"in a->b"``/``"out a->b"`` -> EXTERNAL or dialback)."""
        ready = [r for r in self._routes.values() if r.ready]
        mechanisms = {f"out {r.local}->{r.remote}": r.mechanism or "?" for r in ready}
        for neg in self._inbound:
            mechanisms.update((f"in {o}->{r}", m) for (o, r), m in neg.mechanisms.items())
        return {
            "outgoing": sorted(f"{r.local}->{r.remote}" for r in ready),
            "connecting": sorted(
                f"{r.local}->{r.remote}" for r in self._routes.values() if not r.ready
            ),
            "incoming": sorted(f"{o}->{r}" for n in self._inbound for (o, r) in n.authorized),
            "mechanisms": dict(sorted(mechanisms.items())),
        }

    # ------------------------------------------------------------------ serving

    def load_tls(self) -> None:
        """Load the s2s certificate and trust anchors once (a configuration error raises
        :class:`casper.tls.TLSConfigError` here, before anything listens)."""
        self.tls = self.tls or S2STLS.from_config(self.config)

    async def serve(self, listeners: Sequence[trio.SocketListener] | None = None, *,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        """Accept incoming server connections and run outgoing routes until cancelled.

        :raises casper.tls.TLSConfigError: the certificate or ``[s2s] ca_file`` is unusable.
        """
        self.load_tls()
        if listeners is None:
            listeners = await open_tcp_listeners("s2s", self.config.s2s_port, self.config.host)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._bounce_loop)
            for listener in listeners:
                host, port = listener.socket.getsockname()[:2]
                self.port = self.port or port
                log.info(
                    "listening for XMPP servers on %s:%s for domain %s", host, port, self.domain
                )
            nursery.start_soon(trio.serve_listeners, self._handle, list(listeners))
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def reload_tls(self) -> bool:
        """Load the certificate, its key and ``[s2s] ca_file`` again; new streams use them.

        Error handling: files that cannot be loaded are logged and the old ones stay.
        :return: whether the new material is in use (``False`` when not serving).
        """
        if self.tls is None:
            return False
        try:
            self.tls = S2STLS.from_config(self.config)
        except TLSConfigError as exc:
            log.error("s2s TLS not reloaded, keeping the old certificate: %s", exc)
            return False
        return True

    async def _handle(self, stream: trio.abc.Stream) -> None:
        await handle_inbound(self, stream)
