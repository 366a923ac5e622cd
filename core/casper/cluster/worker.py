"""A worker's part in the cluster: forwarding stanzas to their accounts' homes, and
piping authenticated client streams there (see :mod:`casper.cluster`).

Messages on the bus (kind, key, payload):

- ``S``, -, stanzas (XML, in a ``<batch/>``): route them here, where their addressees
  are at home.
- ``P``, -, contact NUL observer NUL reply-to: a presence probe of a local contact for an
  account living on the sender; answered to ``reply-to`` only, as a probe between two
  local accounts is (:meth:`casper.presence.PresenceService.answer_cluster_probe`).
- ``N``, -, from NUL to: an available presence the sender forwarded reached nobody here;
  the session that sent it no longer counts ``to`` among those who saw it (so it never
  gets an unavailable for a presence it never got).
- ``G``, -, full JID: a session living on the sender ended
  (:func:`~casper.hookspecs.casper_remote_session_ended` here).
- ``R``, -, session NUL entity: forget the entity's JIDs in a session living here
  (:meth:`casper.presence.PresenceService.forget_all_of`; a room put the session out).
- ``L``, -, address NUL account NUL condition / ``K``, -, account: an authentication
  failure, or success, seen by the sender: every worker applies the same limits.
- ``O``, pipe key, username NUL pending bytes: run the client stream of an account
  authenticated by the sender, starting at the stream restart after SASL.
- ``D``/``A``/``E``/``C``, pipe key, data / bytes consumed / - / -: a pipe's data,
  acknowledgement, end of data and close.
- ``F``, token, -, answered by ``f``, token: a marker behind the stanzas forwarded so far;
  the answer says they have all been routed (:meth:`Cluster.flush`).

Stanzas, probes and flush markers to one worker go through one queue, in order.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree.ElementTree import fromstring

import trio

from casper.jid import JID
from casper.plugins import call_safely
from casper.stanza import Stanza
from casper.xml import serialize

from .bus import Bus
from .homes import home_of
from .pipe import ACK, CLOSE, DATA, EOF, Pipe, Pipes
from .relay import relay

if TYPE_CHECKING:
    from casper.server import Server

log = logging.getLogger("casper.cluster")
STANZAS, PROBE, UNDELIVERED, OPEN, GONE, FORGET = b"S", b"P", b"N", b"O", b"G", b"R"
AUTH_FAILED, AUTH_OK, FLUSH, FLUSHED = b"L", b"K", b"F", b"f"
BATCH = 256  # stanzas forwarded in one message at most
BATCH_OPEN, BATCH_CLOSE = b"<batch xmlns='jabber:client'>", b"</batch>"  # around them
FORWARD_QUEUE = 10_000  # items queued per peer worker before forwarding waits
HOMES_CACHED = 4096  # JIDs whose home is remembered (then the cache starts over)


@dataclass(frozen=True)
class WorkerPlace:
    """Where a worker process stands in the cluster."""

    index: int
    count: int
    run_dir: Path  #: where the bus sockets are
    scram_secret: bytes  #: shared, so unknown users get the same salts from every worker


@dataclass(frozen=True)
class _Marker:
    """A flush marker in a forwarding queue."""

    token: bytes


@dataclass(frozen=True)
class _Probe:
    """A probe of a contact for ``observer``, answered to ``reply_to`` alone."""

    contact: JID
    observer: JID
    reply_to: JID


@dataclass(frozen=True)
class _Gone:
    """A session living on the sender ended."""

    jid: JID


@dataclass(frozen=True)
class _Forget:
    """Forget ``entity``'s JIDs in the bookkeeping of the session ``jid``."""

    jid: JID
    entity: JID


Queued = bytes | _Marker | _Probe | _Gone | _Forget  # bytes: a serialized stanza or a batch


class Cluster:
    """This worker's view of the cluster; ``server.cluster`` while serving."""

    def __init__(self, server: Server, place: WorkerPlace) -> None:
        self._server = server
        self.index, self.count = place.index, place.count
        self._bus = Bus(place.index, place.count, place.run_dir)
        self._pipes = Pipes()
        self._keys = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._forward: dict[int, trio.MemorySendChannel[Queued]] = {}
        self._inbound: dict[int, trio.MemorySendChannel[Queued]] = {}
        self._flushes: dict[bytes, trio.Event] = {}
        self.forwarded = 0  #: stanzas and probes sent to other workers so far
        self._homes: dict[JID, int] = {}  # of recently seen JIDs

    # ------------------------------------------------------------------ homes

    def home(self, account: JID) -> int:
        home = self._homes.get(account)
        if home is None:
            if len(self._homes) >= HOMES_CACHED:
                self._homes.clear()
            home = self._homes[account] = home_of(account, self.count)
        return home

    def elsewhere(self, account: JID) -> bool:
        """Whether ``account`` (of the served domain) lives on another worker."""
        return self.home(account) != self.index

    # ------------------------------------------------------------------ stanzas

    async def forward(self, stanza: Stanza, account: JID) -> None:
        """Send ``stanza`` to ``account``'s home, which routes it (order kept per pair)."""
        self.forwarded += 1
        await self._forward[self.home(account)].send(serialize(stanza.element))

    def forward_nowait(self, stanza: Stanza, account: JID) -> bool:
        """Like :meth:`forward` without waiting; ``False`` if that home's queue is full."""
        try:
            self._forward[self.home(account)].send_nowait(serialize(stanza.element))
        except trio.WouldBlock:
            log.warning("forwarding queue to worker %d full: stanza %s dropped",
                        self.home(account), stanza.id)  # fmt: skip
            return False
        self.forwarded += 1
        return True

    async def probe(self, contact: JID, observer: JID, reply_to: JID) -> None:
        """Ask ``contact``'s home what ``observer`` may see of it; the answer goes to the
        session ``reply_to`` alone."""
        self.forwarded += 1
        await self._forward[self.home(contact)].send(_Probe(contact, observer, reply_to))

    def session_ended(self, jid: JID) -> None:
        """Tell every other worker that the session ``jid`` living here ended."""
        for queue in self._forward.values():
            self._queue_nowait(queue, _Gone(jid))

    def forget_nowait(self, session: JID, entity: JID) -> None:
        """Have the home of ``session`` forget ``entity``'s JIDs in its bookkeeping."""
        self._queue_nowait(self._forward[self.home(session)], _Forget(session, entity))

    def _queue_nowait(self, queue: trio.MemorySendChannel[Queued], item: Queued) -> None:
        try:
            queue.send_nowait(item)
        except trio.WouldBlock:
            log.warning("forwarding queue full: %r dropped", item)

    async def flush(self) -> None:
        """Return once every stanza this worker forwarded so far has been routed by its
        home (what that routing forwarded in turn may still be on its way)."""
        waits = []
        for queue in self._forward.values():
            marker = _Marker(f"{self.index}.{next(self._keys)}".encode())
            self._flushes[marker.token] = event = trio.Event()
            await queue.send(marker)
            waits.append(event)
        for event in waits:
            await event.wait()

    async def _send_forwarded(self, peer: int, queued: trio.MemoryReceiveChannel[Queued]) -> None:
        """Send what is queued for ``peer``: the stanzas queued at once go as one message."""
        async for first in queued:
            items = [first]
            while len(items) < BATCH:
                try:
                    items.append(queued.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            stanzas: list[bytes] = []
            for item in items:
                if isinstance(item, bytes):
                    stanzas.append(item)
                    continue
                await self._send_stanzas(peer, stanzas)
                stanzas = []
                await self._send_item(peer, item)
            await self._send_stanzas(peer, stanzas)

    async def _send_item(self, peer: int, item: _Marker | _Probe | _Gone | _Forget) -> None:
        if isinstance(item, _Marker):
            await self._bus.send(peer, FLUSH, item.token)
        elif isinstance(item, _Probe):
            await self._bus.send(
                peer, PROBE, b"", _jids(item.contact, item.observer, item.reply_to)
            )
        elif isinstance(item, _Gone):
            await self._bus.send(peer, GONE, b"", _jids(item.jid))
        else:
            await self._bus.send(peer, FORGET, b"", _jids(item.jid, item.entity))

    async def _send_stanzas(self, peer: int, stanzas: list[bytes]) -> None:
        if stanzas:
            await self._bus.send(peer, STANZAS, b"", b"".join((BATCH_OPEN, *stanzas, BATCH_CLOSE)))

    async def _route_forwarded(
        self, sender: int, queued: trio.MemoryReceiveChannel[Queued]
    ) -> None:
        """Route what another worker forwarded, one at a time in their order."""
        async for item in queued:
            try:
                if isinstance(item, _Marker):
                    await self._bus.send(sender, FLUSHED, item.token)
                elif isinstance(item, _Probe):
                    await self._server.presence.answer_cluster_probe(
                        item.contact, item.observer, item.reply_to
                    )
                elif isinstance(item, _Gone):
                    call_safely(self._server.pm, "casper_remote_session_ended", None, jid=item.jid)
                elif isinstance(item, _Forget):
                    self._server.presence.forget_all_of(item.jid, item.entity)
                else:
                    await self._route_batch(sender, item)
            except trio.ClosedResourceError:
                return  # the bus is closed: stopping
            except Exception:
                log.exception("what worker %d forwarded could not be handled", sender)

    async def _route_batch(self, sender: int, batch: bytes) -> None:
        try:
            stanzas = [Stanza.from_element(element) for element in fromstring(batch)]
        except Exception:
            log.exception("stanzas forwarded by worker %d could not be read", sender)
            return
        presence = self._server.presence
        for stanza in stanzas:
            try:
                if stanza.kind == "presence" and stanza.type is None:
                    # available presence: the sender counts it as seen until told otherwise
                    if not presence.deliver_presence(stanza):
                        await self._undelivered(sender, stanza)
                else:
                    await self._server.router.route(stanza)
            except trio.ClosedResourceError:
                raise
            except Exception:
                log.exception("a forwarded stanza could not be routed")

    async def _undelivered(self, sender: int, stanza: Stanza) -> None:
        assert stanza.from_ is not None and stanza.to is not None
        await self._bus.send(sender, UNDELIVERED, b"", b"%s\0%s" % (
            str(stanza.from_).encode(), str(stanza.to).encode()))  # fmt: skip

    def _not_seen(self, payload: bytes) -> None:
        source, _, observer = payload.decode().partition("\0")
        sender = JID.parse(source)
        if sender.resource is None or sender.domain != self._server.domain:
            return  # not a session's presence (e.g. a chat room's)
        session = self._server.router.session_for(sender)
        if session is not None:
            session.seen_by.discard(JID.parse(observer))

    # ------------------------------------------------------------------ limits

    async def auth_failed(self, address: str | None, account: str | None, condition: str) -> None:
        """Tell the other workers of a failed authentication (their limits count it too)."""
        payload = "\0".join((address or "", account or "", condition)).encode()
        await self._to_all(AUTH_FAILED, payload)

    async def auth_succeeded(self, account: str) -> None:
        await self._to_all(AUTH_OK, account.encode())

    async def _to_all(self, kind: bytes, payload: bytes) -> None:
        for peer in range(self.count):
            if peer != self.index:
                await self._bus.send(peer, kind, b"", payload)

    def _limit_news(self, kind: bytes, payload: bytes) -> None:
        limits = self._server.limits
        if kind == AUTH_OK:
            limits.auth_succeeded(payload.decode())
            return
        address, account, condition = payload.decode().split("\0")
        limits.auth_failed(address or None, account or None, condition, trio.current_time())

    # ------------------------------------------------------------------ client streams

    async def hand_off(self, client: trio.abc.Stream, username: str, pending: bytes) -> None:
        """Relay an authenticated client stream to its account's home until it ends."""
        home = self.home(JID.make(username, self._server.domain))
        key = f"{self.index}.{next(self._keys)}".encode()
        pipe = self._pipes.open(partial(self._bus.send, home), key)
        try:
            await self._bus.send(home, OPEN, key, username.encode() + b"\0" + pending)
        except BaseException:
            with trio.CancelScope(shield=True):
                await pipe.aclose()
            raise
        await relay(client, pipe, lambda: self._server.shutting_down)

    async def _adopt(self, pipe: Pipe, username: str, pending: bytes) -> None:
        """Run a stream another worker authenticated, as if it had been accepted here."""
        from casper.connection import handle_connection  # the connection module imports us

        await handle_connection(self._server, pipe, secure=True, ssl_context=None,
                                authenticated=(username, pending))  # fmt: skip

    # ------------------------------------------------------------------ the bus

    def _handle(self, sender: int, kind: bytes, key: bytes, payload: bytes) -> None:
        if kind == STANZAS:
            self._inbound[sender].send_nowait(payload)  # unbounded: never refuses
        elif kind in (DATA, ACK, EOF, CLOSE):
            self._pipes.handle(kind, key, payload)
        elif kind == PROBE:
            contact, observer, reply_to = (JID.parse(j) for j in payload.decode().split("\0"))
            self._inbound[sender].send_nowait(_Probe(contact, observer, reply_to))
        elif kind == GONE:
            self._inbound[sender].send_nowait(_Gone(JID.parse(payload.decode())))
        elif kind == FORGET:
            session, entity = (JID.parse(j) for j in payload.decode().split("\0"))
            self._inbound[sender].send_nowait(_Forget(session, entity))
        elif kind == UNDELIVERED:
            self._not_seen(payload)
        elif kind in (AUTH_FAILED, AUTH_OK):
            self._limit_news(kind, payload)
        elif kind == FLUSH:
            self._inbound[sender].send_nowait(_Marker(key))
        elif kind == FLUSHED:
            event = self._flushes.pop(key, None)
            if event is not None:
                event.set()
        elif kind == OPEN:
            username, _, pending = payload.partition(b"\0")
            assert self._nursery is not None
            # open now: the stream's data follows this message before _adopt runs
            pipe = self._pipes.open(partial(self._bus.send, sender), key)
            self._nursery.start_soon(self._adopt, pipe, username.decode(), pending)
        else:
            log.warning("unknown bus message kind %r from worker %d", kind, sender)

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run this worker's part until cancelled; supports ``nursery.start``."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for peer in range(self.count):
                    if peer == self.index:
                        continue
                    send, receive = trio.open_memory_channel[Queued](FORWARD_QUEUE)
                    self._forward[peer] = send
                    nursery.start_soon(self._send_forwarded, peer, receive)
                    send_in, receive_in = trio.open_memory_channel[Queued](math.inf)
                    self._inbound[peer] = send_in
                    nursery.start_soon(self._route_forwarded, peer, receive_in)
                await nursery.start(self._bus.serve, self._handle)
                task_status.started()
        finally:
            self._bus.close()


def _jids(*jids: JID) -> bytes:
    return b"\0".join(str(jid).encode() for jid in jids)
