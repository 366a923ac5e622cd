"""The pipe between two workers as a Trio stream: order, flow control, ends."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from casper.cluster.pipe import ACK, CHUNK, CLOSE, DATA, WINDOW, Pipe, Pipes


class Wire:
    """Two pipes joined by in-memory delivery of their frames, recording what crossed."""

    def __init__(self) -> None:
        self.sides = [Pipes(), Pipes()]
        self.frames: list[tuple[int, list[bytes]]] = []
        self.held = False  # hold side 1's frames (a worker that does not read)
        self._held: list[list[bytes]] = []
        self.a = self.sides[0].open(self._sender(0), b"k")
        self.b = self.sides[1].open(self._sender(1), b"k")

    def _sender(self, side: int):
        async def send(kind: bytes, key: bytes, payload: bytes) -> None:
            await trio.lowlevel.checkpoint()
            frames = [kind, key, payload]
            self.frames.append((side, frames))
            if side == 0 and self.held:
                self._held.append(frames)
                return
            self.sides[1 - side].handle(kind, key, payload)

        return send

    def release(self) -> None:
        self.held = False
        for frames in self._held:
            self.sides[1].handle(*frames)
        self._held.clear()


async def read_exactly(pipe: Pipe, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await pipe.receive_some(65536)
        assert chunk, "EOF too early"
        data += chunk
    return data


async def test_bytes_arrive_in_order_and_large_writes_are_chunked():
    wire = Wire()
    payload = bytes(range(256)) * 1024  # 256 KiB
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wire.a.send_all, payload)
        assert await read_exactly(wire.b, len(payload)) == payload
    sizes = [len(f[2]) for side, f in wire.frames if side == 0 and f[0] == DATA]
    assert max(sizes) <= CHUNK


async def test_a_sender_waits_for_the_window_then_goes_on_when_the_reader_reads():
    wire = Wire()
    with trio.move_on_after(1):
        await wire.a.send_all(b"x" * (WINDOW + 1000))
    sent = sum(len(f[2]) for side, f in wire.frames if side == 0 and f[0] == DATA)
    assert sent == WINDOW  # the rest waits for an acknowledgement
    received = await read_exactly(wire.b, WINDOW)
    assert len(received) == WINDOW
    assert any(f[0] == ACK for side, f in wire.frames if side == 1)
    await wire.a.send_all(b"y" * 1000)  # credit is back
    assert await read_exactly(wire.b, 1000) == b"y" * 1000


async def test_closing_one_end_gives_eof_to_the_reader_and_breaks_the_writer():
    wire = Wire()
    await wire.a.send_all(b"last words")
    await wire.a.aclose()
    assert await wire.b.receive_some() == b"last words"  # data before the end is kept
    assert await wire.b.receive_some() == b""
    with pytest.raises(trio.BrokenResourceError):
        await wire.b.send_all(b"too late")
    with pytest.raises(trio.ClosedResourceError):
        await wire.a.send_all(b"closed here")
    assert len(wire.sides[0]) == len(wire.sides[1]) == 0  # both ends forgotten
    await wire.b.aclose()
    assert [f[0] for side, f in wire.frames if side == 1 and f[0] == CLOSE] == []  # no echo


async def test_a_blocked_reader_is_woken_by_the_other_end_closing():
    wire = Wire()
    async with trio.open_nursery() as nursery:
        results = []

        async def reader() -> None:
            results.append(await wire.b.receive_some())

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await wire.a.aclose()
    assert results == [b""]


async def test_a_sender_waiting_for_credit_is_broken_when_the_other_end_closes():
    wire = Wire()
    wire.held = True  # nothing reaches b: no acknowledgements either
    with trio.move_on_after(0.5):
        await wire.a.send_all(b"z" * (2 * WINDOW))
    wire.release()
    await wire.b.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await wire.a.send_all(b"more")


async def test_frames_for_an_unknown_pipe_are_ignored():
    pipes = Pipes()
    pipes.handle(DATA, b"nobody", b"data")
    pipes.handle(CLOSE, b"nobody", b"")
    assert len(pipes) == 0


async def test_after_send_eof_the_other_end_reads_eof_and_can_still_answer():
    wire = Wire()
    await wire.a.send_all(b"last request")
    await wire.a.send_eof()
    assert await wire.b.receive_some() == b"last request"
    assert await wire.b.receive_some() == b""
    await wire.b.send_all(b"the answer")  # the pipe is half-closed, not gone
    await wire.b.aclose()
    assert await wire.a.receive_some() == b"the answer"
    assert await wire.a.receive_some() == b""
    with pytest.raises(trio.ClosedResourceError):
        await wire.a.send_all(b"after eof")
