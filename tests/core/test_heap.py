"""Memory given back: heap trimming (malloc_trim every TRIM_INTERVAL seconds, nothing elsewhere) and the sweep of idle streams."""

from __future__ import annotations

import itertools

import trio
import trio.testing
from casper import heap
from casper.heap import TRIM_INTERVAL, IdleStreams, malloc_trim, trim_periodically
from casper.testing import open_test_server


async def test_trims_every_interval(autojump_clock: trio.testing.MockClock) -> None:
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(trim_periodically, lambda: times.append(trio.current_time()), 10.0)
        await trio.sleep(35)
        nursery.cancel_scope.cancel()
    assert times == [10.0, 20.0, 30.0]


async def test_without_malloc_trim_the_task_ends_at_once(monkeypatch) -> None:
    monkeypatch.setattr(heap, "malloc_trim", lambda: None)
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:  # exits only once the task has ended
            await nursery.start(trim_periodically)


def test_glibc_trim_is_callable_here() -> None:
    trim = malloc_trim()
    assert trim is not None  # Debian's glibc
    assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release
    assert TRIM_INTERVAL > 0


async def test_the_server_trims_its_heap(
    monkeypatch, autojump_clock: trio.testing.MockClock
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(heap, "malloc_trim", lambda: lambda: calls.append(trio.current_time()))
    async with open_test_server(default_plugins=False):
        started = trio.current_time()
        await trio.sleep(2.5 * TRIM_INTERVAL)
        during = [t for t in calls if t > started]  # (starting up moved the clock, too)
        assert len(during) in (2, 3)  # 2.5 intervals, from wherever the clock stood
        assert all(
            later - earlier == TRIM_INTERVAL for earlier, later in itertools.pairwise(during)
        )


class _Stream:
    def __init__(self) -> None:
        self.activity = 0
        self.released = 0

    def release_idle_memory(self) -> None:
        self.released += 1


def test_a_stream_silent_between_two_sweeps_releases_its_memory() -> None:
    streams, busy, quiet = IdleStreams(), _Stream(), _Stream()
    streams.watch(busy)
    streams.watch(quiet)
    assert streams.sweep() == 0  # the first sweep only notes where each stream is
    busy.activity += 1
    assert streams.sweep() == 1
    assert (busy.released, quiet.released) == (0, 1)
    busy.activity += 3
    quiet.activity += 1  # the client spoke: the parser woke up
    assert streams.sweep() == 0
    assert streams.sweep() == 2
    assert (busy.released, quiet.released) == (1, 2)


def test_a_forgotten_stream_is_swept_no_more() -> None:
    streams, stream = IdleStreams(), _Stream()
    streams.watch(stream)
    streams.sweep()
    streams.forget(stream)
    streams.forget(stream)  # twice is fine (an ended connection)
    assert streams.sweep() == 0 and stream.released == 0
