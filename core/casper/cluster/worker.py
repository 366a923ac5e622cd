"""A worker's part in the cluster: forwarding stanzas to their accounts' homes, and
piping authenticated client streams there (see :mod:`casper.cluster`).

Messages on the bus (kind, key, payload):

- ``S``, -, stanzas (XML, in a ``<batch/>``): route them here, where their addressees
  are at home.
- ``O``, pipe key, username + NUL + pending bytes: run the client stream of an account
  authenticated by the sender, starting at the stream restart after SASL.
- ``D``/``A``/``E``, pipe key, data / bytes consumed / -: a pipe's data, acknowledgement
  and end.
- ``F``, token, -, answered by ``f``, token: a marker behind the stanzas forwarded so far;
  the answer says they have all been routed (:meth:`Cluster.flush`).
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
from casper.stanza import Stanza
from casper.xml import serialize

from .bus import Bus
from .homes import home_of
from .pipe import ACK, DATA, END, Pipe, Pipes

if TYPE_CHECKING:
    from casper.server import Server

log = logging.getLogger("casper.cluster")
STANZAS, OPEN, FLUSH, FLUSHED = b"S", b"O", b"F", b"f"
BATCH = 256  # stanzas forwarded in one message at most
BATCH_OPEN, BATCH_CLOSE = b"<batch xmlns='jabber:client'>", b"</batch>"  # around them
FORWARD_QUEUE = 10_000  # stanzas queued per peer worker before forwarding waits
HOMES_CACHED = 4096  # JIDs whose home is remembered (then the cache starts over)
HANDOFF_GRACE = 5.0  # seconds the home may take to finish after the client went away


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


class Cluster:
    """This worker's view of the cluster; ``server.cluster`` while serving."""

    def __init__(self, server: Server, place: WorkerPlace) -> None:
        self._server = server
        self.index, self.count = place.index, place.count
        self._bus = Bus(place.index, place.count, place.run_dir)
        self._pipes = Pipes()
        self._keys = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        self._forward: dict[int, trio.MemorySendChannel[bytes | _Marker]] = {}
        self._inbound: dict[int, trio.MemorySendChannel[bytes | _Marker]] = {}
        self._flushes: dict[bytes, trio.Event] = {}
        self.forwarded = 0  #: stanzas sent to other workers so far
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

    async def _send_forwarded(
        self, peer: int, queued: trio.MemoryReceiveChannel[bytes | _Marker]
    ) -> None:
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
                if isinstance(item, _Marker):
                    await self._send_stanzas(peer, stanzas)
                    stanzas = []
                    await self._bus.send(peer, FLUSH, item.token)
                else:
                    stanzas.append(item)
            await self._send_stanzas(peer, stanzas)

    async def _send_stanzas(self, peer: int, stanzas: list[bytes]) -> None:
        if stanzas:
            await self._bus.send(peer, STANZAS, b"", b"".join((BATCH_OPEN, *stanzas, BATCH_CLOSE)))

    async def _route_forwarded(
        self, sender: int, queued: trio.MemoryReceiveChannel[bytes | _Marker]
    ) -> None:
        """Route stanzas another worker forwarded, one at a time in their order."""
        router = self._server.router
        async for item in queued:
            if isinstance(item, _Marker):
                await self._bus.send(sender, FLUSHED, item.token)
                continue
            try:
                stanzas = [Stanza.from_element(element) for element in fromstring(item)]
            except Exception:
                log.exception("stanzas forwarded by worker %d could not be read", sender)
                continue
            for stanza in stanzas:
                try:
                    await router.route(stanza)
                except Exception:
                    log.exception("a forwarded stanza could not be routed")

    # ------------------------------------------------------------------ client streams

    async def hand_off(self, client: trio.abc.Stream, username: str, pending: bytes) -> None:
        """Relay an authenticated client stream to its account's home until either ends."""
        home = self.home(JID.make(username, self._server.domain))
        key = f"{self.index}.{next(self._keys)}".encode()
        pipe = self._pipes.open(partial(self._bus.send, home), key)
        await self._bus.send(home, OPEN, key, username.encode() + b"\0" + pending)
        async with trio.open_nursery() as nursery:

            async def client_to_home() -> None:
                try:
                    while data := await client.receive_some():
                        await pipe.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                await pipe.aclose()  # the home sees the transport end
                nursery.cancel_scope.deadline = trio.current_time() + HANDOFF_GRACE

            nursery.start_soon(client_to_home)
            try:
                while data := await pipe.receive_some():
                    await client.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            nursery.cancel_scope.cancel()
        with trio.CancelScope(shield=True):
            await pipe.aclose()

    async def _adopt(self, pipe: Pipe, username: str, pending: bytes) -> None:
        """Run a stream another worker authenticated, as if it had been accepted here."""
        from casper.connection import handle_connection  # the connection module imports us

        await handle_connection(self._server, pipe, secure=True, ssl_context=None,
                                authenticated=(username, pending))  # fmt: skip

    # ------------------------------------------------------------------ the bus

    def _handle(self, sender: int, kind: bytes, key: bytes, payload: bytes) -> None:
        if kind == STANZAS:
            self._inbound[sender].send_nowait(payload)  # unbounded: never refuses
        elif kind in (DATA, ACK, END):
            self._pipes.handle(kind, key, payload)
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
                    send, receive = trio.open_memory_channel[bytes | _Marker](FORWARD_QUEUE)
                    self._forward[peer] = send
                    nursery.start_soon(self._send_forwarded, peer, receive)
                    send_in, receive_in = trio.open_memory_channel[bytes | _Marker](math.inf)
                    self._inbound[peer] = send_in
                    nursery.start_soon(self._route_forwarded, peer, receive_in)
                await nursery.start(self._bus.serve, self._handle)
                task_status.started()
        finally:
            self._bus.close()
