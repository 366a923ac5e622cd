"""Storage calls run on one thread of their own, in order; results and errors come back."""

from __future__ import annotations

import queue
import threading
import time

import pytest
import trio
from casper.storage.thread import StorageThread


async def test_calls_run_in_order_on_one_thread_that_is_not_the_loops() -> None:
    seen: list[tuple[int, int]] = []

    def record(n: int) -> int:
        seen.append((n, threading.get_ident()))
        return n * 10

    with StorageThread() as storage_thread:
        results: list[int] = []

        async def call(n: int) -> None:
            results.append(await storage_thread.run(lambda: record(n)))

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(call, n)
                await trio.lowlevel.checkpoint()  # queued in this order
    assert [n for n, _ in seen] == list(range(20))
    assert sorted(results) == [n * 10 for n in range(20)]
    threads = {ident for _, ident in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads


async def test_an_exception_in_a_call_is_raised_in_the_caller() -> None:
    def fail() -> None:
        raise KeyError("no such account")

    with StorageThread() as storage_thread:
        with pytest.raises(KeyError, match="no such account"):
            await storage_thread.run(fail)
        assert await storage_thread.run(lambda: "still working") == "still working"


async def test_a_caller_cancelled_meanwhile_still_gets_the_result_then_is_cancelled() -> None:
    def slow_pop() -> list[str]:  # like popping offline messages: a result not to lose
        time.sleep(0.2)
        return ["kept"]

    got: list[str] = []
    with StorageThread() as storage_thread:
        with trio.move_on_after(0.05) as scope:
            got = await storage_thread.run(slow_pop)
            await trio.lowlevel.checkpoint()  # where the cancellation takes effect
            got = ["not reached"]
        assert scope.cancelled_caught
    assert got == ["kept"]


async def test_a_caller_cancelled_before_the_call_does_not_start_it() -> None:
    ran: list[str] = []
    with StorageThread() as storage_thread:
        with trio.CancelScope() as scope:
            scope.cancel()
            await storage_thread.run(lambda: ran.append("ran"))
        assert await storage_thread.run(lambda: len(ran)) == 0


async def test_a_call_outside_the_threads_lifetime_is_refused() -> None:
    storage_thread = StorageThread()
    with pytest.raises(RuntimeError, match="not running"):
        await storage_thread.run(lambda: None)
    with storage_thread:
        pass
    with pytest.raises(RuntimeError, match="not running"):
        await storage_thread.run(lambda: None)


async def test_calls_made_before_the_loop_waits_reach_the_thread_in_one_wake_up() -> None:
    handed: list[int] = []

    class CountingQueue(queue.SimpleQueue):  # type: ignore[type-arg]
        def put(self, batch: list[object] | None, *args: object) -> None:
            handed.append(len(batch) if batch is not None else 0)
            super().put(batch)

    storage_thread = StorageThread()
    storage_thread._batches = CountingQueue()
    with storage_thread:
        results: list[int] = []

        async def call(n: int) -> None:
            results.append(await storage_thread.run(lambda: n))

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(call, n)  # all start in the same scheduler batch
        assert sorted(results) == list(range(10))
        assert handed == [10]
        assert await storage_thread.run(lambda: "later") == "later"
        assert handed == [10, 1]
