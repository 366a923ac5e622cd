"""The bench's gap watch: a workload fails after a gap without progress, not before."""

from __future__ import annotations

import trio
import trio.testing
from casper.bench.workloads import REDATE_SECONDS, GapWatch


async def test_steady_progress_keeps_the_watch_quiet(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.CancelScope() as scope:
        watch = GapWatch(scope, 5.0)
        for _ in range(100):  # 30 s of progress every 0.3 s
            await trio.sleep(0.3)
            watch.progress()
    assert not scope.cancelled_caught


async def test_a_gap_fails_the_scope_within_one_redate_of_the_gap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.CancelScope() as scope:
        watch = GapWatch(scope, 5.0)
        for _ in range(10):
            await trio.sleep(0.3)
            watch.progress()
        last_progress = trio.current_time()
        await trio.sleep(60)
    assert scope.cancelled_caught
    waited = trio.current_time() - last_progress
    assert 5.0 - REDATE_SECONDS <= waited <= 5.0
