"""The workers' message bus: a ZeroMQ PUSH/PULL mesh over ``ipc://`` sockets.

Every worker binds one PULL socket (its inbox) and connects one PUSH socket to each other
worker's inbox. ZeroMQ keeps each sender→receiver pair in order, queues while a peer is
still starting, and frames messages; Trio waits on each socket's notification descriptor.

A message is one ZeroMQ frame: the sender's index and the message kind (a byte each), the
length of a key (a byte) and the key, then the payload (:mod:`casper.cluster.worker` says
what kinds mean). One frame per message: each frame costs a call into libzmq.

ZeroMQ's notification descriptor is edge-triggered: it signals new activity only after
``EVENTS`` has been read, so both loops below check ``EVENTS`` before waiting on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import trio
import zmq

log = logging.getLogger("casper.cluster.bus")
HIGH_WATER_MARK = 100_000  # messages queued per peer before a send waits
RECONNECT_MS = 5
Handler = Callable[[int, bytes, bytes, bytes], None]  # sender, kind, key, payload


def inbox_address(run_dir: Path, index: int) -> str:
    return f"ipc://{run_dir / f'worker-{index}.sock'}"


class Bus:
    """This worker's end of the mesh between ``count`` workers.

    :param index: this worker, ``0 <= index < count``.
    :param run_dir: directory of the ``ipc://`` sockets, shared by all workers.
    """

    def __init__(self, index: int, count: int, run_dir: Path) -> None:
        self.index, self.count = index, count
        self._me = bytes((index,))
        self._closed = False
        self._context = zmq.Context()
        self._inbox = self._context.socket(zmq.PULL)
        self._inbox.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        self._inbox.bind(inbox_address(run_dir, index))
        self._peers: dict[int, zmq.Socket[bytes]] = {}
        self._sending: dict[int, trio.Lock] = {}
        for peer in range(count):
            if peer == index:
                continue
            sock = self._context.socket(zmq.PUSH)
            sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
            # a peer still starting: retry its socket soon (the default waits 100 ms,
            # while what is sent meanwhile is queued)
            sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
            sock.connect(inbox_address(run_dir, peer))
            self._peers[peer] = sock
            self._sending[peer] = trio.Lock()

    def close(self) -> None:
        """Close every socket at once, dropping what is still queued: the workers stop
        together, and waiting for a peer that is gone would block the event loop."""
        self._closed = True
        for sock in self._peers.values():
            sock.close(linger=0)
        self._inbox.close(linger=0)
        self._context.term()

    async def send(self, peer: int, kind: bytes, key: bytes = b"", payload: bytes = b"") -> None:
        """Queue a message for worker ``peer``, waiting while its queue is full.

        Messages to one peer leave in the order of the calls.

        :raises trio.ClosedResourceError: the bus is closed (the worker is stopping).
        """
        if self._closed:
            raise trio.ClosedResourceError("the bus is closed")
        sock, lock = self._peers[peer], self._sending[peer]
        message = b"".join((self._me, kind, bytes((len(key),)), key, payload))
        if not lock.locked():
            try:
                sock.send(message, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
        async with lock:  # later senders queue behind the one waiting: order is kept
            while True:
                try:
                    sock.send(message, zmq.NOBLOCK)
                    return
                except zmq.Again:
                    pass
                await _wait(sock, zmq.POLLOUT)  # outside the handler, which would keep zmq.Again

    async def serve(
        self, handle: Handler, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Call ``handle(sender, kind, key, payload)`` for every message received, until
        cancelled.

        ``handle`` must not block: it starts tasks or queues data instead.
        """
        task_status.started()
        sock = self._inbox
        received = 0
        while True:
            try:
                message = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                message = None
            if message is None:  # waited for outside the handler, which would keep zmq.Again
                await _wait(sock, zmq.POLLIN)
                continue
            try:
                end = 3 + message[2]
                handle(message[0], message[1:2], message[3:end], message[end:])
            except Exception:
                log.exception("bus message %r could not be handled", message[:40])
            received += 1
            if received % 64 == 0:
                await trio.lowlevel.checkpoint()  # others run during a long burst


async def _wait(sock: zmq.Socket[bytes], event: int) -> None:
    """Return once ``sock`` may be ready for ``event`` (re-check by trying)."""
    if int(sock.getsockopt(zmq.EVENTS)) & event:
        await trio.lowlevel.checkpoint()
        return
    await trio.lowlevel.wait_readable(int(sock.getsockopt(zmq.FD)))
