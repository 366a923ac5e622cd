"""The workers' ZeroMQ bus between two of itself: messages arrive in order with their
parts, and an inbox waiting for messages keeps nothing of its last empty poll."""

from __future__ import annotations

import gc
from pathlib import Path

import trio
import trio.testing
import zmq
from casper.cluster.bus import Bus


async def test_messages_arrive_in_order_with_sender_kind_key_and_payload(tmp_path: Path) -> None:
    first, second = Bus(0, 2, tmp_path), Bus(1, 2, tmp_path)
    received: list[tuple[int, bytes, bytes, bytes]] = []
    done = trio.Event()

    def handle(sender: int, kind: bytes, key: bytes, payload: bytes) -> None:
        received.append((sender, kind, key, payload))
        if len(received) == 3:
            done.set()

    try:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                await nursery.start(second.serve, handle)
                for n in range(3):
                    await first.send(1, b"m", f"k{n}".encode(), f"<message id='{n}'/>".encode())
                await done.wait()
                nursery.cancel_scope.cancel()
    finally:
        first.close()
        second.close()
    assert received == [(0, b"m", f"k{n}".encode(), f"<message id='{n}'/>".encode())
                        for n in range(3)]  # fmt: skip


async def test_an_inbox_waiting_for_messages_keeps_no_exception_alive(tmp_path: Path) -> None:
    bus = Bus(0, 1, tmp_path)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.serve, lambda *message: None)
            await trio.testing.wait_all_tasks_blocked()
            gc.collect()  # the inbox waits for the worker's whole life
            assert [obj for obj in gc.get_objects() if isinstance(obj, zmq.Again)] == []
            nursery.cancel_scope.cancel()
    finally:
        bus.close()
