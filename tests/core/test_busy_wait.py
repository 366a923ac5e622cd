"""The event loop polls for a moment after work, then sleeps (casper.busywait)."""

from __future__ import annotations

import time

import trio
from casper.busywait import BusyWait


async def test_it_spins_after_another_tasks_step_then_parks_until_the_next() -> None:
    busy = BusyWait(0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(busy.serve)
        await trio.lowlevel.checkpoint()  # a step of this task: the spinner spins
        await trio.lowlevel.checkpoint()
        assert not busy._parked
        await trio.sleep(0.3)  # nothing else ran for longer than the window
        assert busy._parked
        await trio.lowlevel.checkpoint()  # the step that just ended woke it
        assert not busy._parked
        nursery.cancel_scope.cancel()


async def _cpu_while_sleeping(seconds: float) -> float:
    cpu = time.process_time()
    await trio.sleep(seconds)
    return time.process_time() - cpu


async def test_it_uses_cpu_for_the_window_after_work_and_none_while_parked() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(BusyWait(0.05).serve)
        cpu = await _cpu_while_sleeping(0.5)  # spins 0.05 s after this task's step, parks
        nursery.cancel_scope.cancel()
    assert 0.01 < cpu < 0.25, cpu
    cpu_without = await _cpu_while_sleeping(0.5)
    assert cpu_without < 0.01, cpu_without


async def test_cancelling_it_removes_the_instrument() -> None:
    busy = BusyWait(0.05)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(busy.serve)
            await trio.sleep(0.2)  # parked when cancelled
            scope.cancel()
    steps = busy._steps
    for _ in range(3):
        await trio.lowlevel.checkpoint()
    assert busy._steps == steps  # no longer told about steps


async def test_every_turn_of_the_spin_yields_the_cpu(monkeypatch) -> None:
    yields: list[None] = []
    monkeypatch.setattr("casper.busywait._yield_cpu", lambda: yields.append(None))
    async with trio.open_nursery() as nursery:
        await nursery.start(BusyWait(0.05).serve)
        for _ in range(20):
            await trio.lowlevel.checkpoint()  # one turn of the spinner each
        nursery.cancel_scope.cancel()
    assert len(yields) >= 19


async def test_two_spinners_in_one_run_do_not_keep_each_other_spinning() -> None:
    first, second = BusyWait(0.01), BusyWait(0.01)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.serve)
        await nursery.start(second.serve)
        cpu = await _cpu_while_sleeping(0.5)
        parked = (first._parked, second._parked)
        nursery.cancel_scope.cancel()
    assert parked == (True, True)
    assert cpu < 0.2, cpu
