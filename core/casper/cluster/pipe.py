"""A client stream carried over the bus between two workers, as a Trio stream.

The worker that accepted a connection relays its (decrypted) bytes through a :class:`Pipe`
to the account's home worker, where the other end of the pipe is the stream a
:class:`casper.connection.Connection` runs over. Each direction has a window of
:data:`WINDOW` bytes: a sender waits for the receiver to have consumed (acknowledged) data
before sending more, so a slow client or a slow worker holds its peer back, as TCP would.

Ends, as on a TCP connection: :meth:`Pipe.send_eof` says "no more data from me" (the other
end reads EOF once it has read the rest, and may go on writing); :meth:`Pipe.aclose` ends
the pipe for both (the other end reads what it has, then EOF, and can no longer write).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import trio

WINDOW = 256 * 1024  # bytes in flight per direction
CHUNK = 64 * 1024  # bytes per bus message
DATA, ACK, EOF, CLOSE = b"D", b"A", b"E", b"C"
Send = Callable[[bytes, bytes, bytes], Awaitable[None]]  # kind, key, payload


class Pipe(trio.abc.HalfCloseableStream):
    """One end of a pipe.

    :param send: sends ``(kind, key, payload)`` to the worker at the other end.
    :param key: the pipe's identity on both workers.
    :param on_close: called once when this end is closed (to forget the pipe).
    """

    def __init__(self, send: Send, key: bytes, on_close: Callable[[], None]) -> None:
        self.key = key
        self._send = send
        self._on_close = on_close
        self._buffer = bytearray()
        self._credit = WINDOW  # bytes we may still send before an ack
        self._consumed = 0  # bytes read and not yet acknowledged
        self._peer_eof = False  # the other end sends no more
        self._peer_closed = False  # the other end is gone
        self._eof_sent = False  # this end sends no more
        self._closed = False  # this end closed
        self._lot = trio.lowlevel.ParkingLot()  # readers and senders waiting for a change

    # ------------------------------------------------------------ from the bus

    def fed(self, data: bytes) -> None:
        self._buffer += data
        self._lot.unpark_all()

    def acked(self, count: int) -> None:
        self._credit += count
        self._lot.unpark_all()

    def peer_sent_eof(self) -> None:
        self._peer_eof = True
        self._lot.unpark_all()

    def peer_closed(self) -> None:
        self._peer_eof = self._peer_closed = True
        self._lot.unpark_all()

    # ------------------------------------------------------------ trio.abc.Stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while True:
            self._check_writable()
            if not view:
                await trio.lowlevel.checkpoint()
                return
            if self._credit <= 0:
                await self._lot.park()
                continue
            size = min(len(view), self._credit, CHUNK)
            self._credit -= size
            await self._send(DATA, self.key, bytes(view[:size]))
            view = view[size:]
            if not view:
                return

    async def wait_send_all_might_not_block(self) -> None:
        while self._credit <= 0 and not (self._closed or self._peer_closed):
            await self._lot.park()
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the pipe is closed")
        if self._eof_sent or self._peer_closed:
            await trio.lowlevel.checkpoint()
            return
        self._eof_sent = True
        await self._send(EOF, self.key, b"")

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Cancelled, it takes nothing: what it took is returned."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._buffer and not self._peer_eof and not self._closed:
            await self._lot.park()
        if self._closed:
            raise trio.ClosedResourceError("the pipe is closed")
        if not self._buffer:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return b""  # the other end sends no more
        size = len(self._buffer) if max_bytes is None else min(max_bytes, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._consumed += size
        if self._consumed >= WINDOW // 4 and not self._peer_eof:
            consumed, self._consumed = self._consumed, 0
            with trio.CancelScope(shield=True):
                await self._send(ACK, self.key, str(consumed).encode())
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return data

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._lot.unpark_all()
        self._on_close()
        if self._peer_closed:
            await trio.lowlevel.checkpoint()
            return
        with trio.CancelScope(shield=True):
            try:
                await self._send(CLOSE, self.key, b"")
            except trio.ClosedResourceError:
                pass  # the bus is closed: the other worker is stopping too

    def _check_writable(self) -> None:
        if self._closed or self._eof_sent:
            raise trio.ClosedResourceError("the pipe is closed for writing")
        if self._peer_closed:
            raise trio.BrokenResourceError("the other end of the pipe closed")


class Pipes:
    """The pipes of one worker, by key, and the dispatch of their bus messages."""

    def __init__(self) -> None:
        self._pipes: dict[bytes, Pipe] = {}

    def __len__(self) -> int:
        return len(self._pipes)

    def open(self, send: Send, key: bytes) -> Pipe:
        pipe = Pipe(send, key, partial(self._forget, key))
        self._pipes[key] = pipe
        return pipe

    def _forget(self, key: bytes) -> None:
        self._pipes.pop(key, None)

    def handle(self, kind: bytes, key: bytes, payload: bytes) -> None:
        """A DATA, ACK, EOF or CLOSE message for pipe ``key`` (ignored once it is closed
        here)."""
        pipe = self._pipes.get(key)
        if pipe is None:
            return
        if kind == DATA:
            pipe.fed(payload)
        elif kind == ACK:
            pipe.acked(int(payload))
        elif kind == EOF:
            pipe.peer_sent_eof()
        else:
            self._pipes.pop(key, None)
            pipe.peer_closed()
