"""Busy waiting: after work, poll for I/O for a moment instead of sleeping.

An event loop that sleeps in ``epoll_wait`` between two stanzas pays for the CPU waking
from idle when the next one arrives: on a virtual machine that is a fraction of a
millisecond, often more, and it lands on every stanza of a moderate, steady load. While
:class:`BusyWait` spins, a task stays runnable, so Trio polls without blocking and reads
the next stanza as soon as it is there. It spins for ``window`` seconds after the last
step of any other task, then parks until one runs again: an idle server sleeps as before.
Erlang's schedulers do the same by default (``+sbwt``), which is where ejabberd's low
latency at moderate rates comes from.

The cost is CPU: under a steady load whose gaps are shorter than the window, one core
stays busy. Each turn of the spin yields the CPU (``sched_yield``) to any other thread or
process waiting for it, so workers sharing a core, the storage thread or a neighbour
process are not held up by it. ``[server] busy_wait = false`` switches it off.
"""

from __future__ import annotations

import os

import trio

_yield_cpu = getattr(os, "sched_yield", lambda: None)


class BusyWait(trio.abc.Instrument):
    """Spins for ``window`` seconds after any other task's step (a Trio instrument)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._steps = 0  # steps of other tasks so far
        self._spinner: trio.lowlevel.Task | None = None
        self._parked = False

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if getattr(task.coro, "cr_code", None) is _SERVE_CODE:
            return  # a spinner's turn (this one's, or another server's in the same run)
        self._steps += 1
        if self._parked:
            self._parked = False
            trio.lowlevel.reschedule(self._spinner)  # type: ignore[arg-type]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Spin after work until cancelled."""
        self._spinner = trio.lowlevel.current_task()
        trio.lowlevel.add_instrument(self)
        try:
            task_status.started()
            seen, since = self._steps, trio.current_time()
            while True:
                await trio.lowlevel.checkpoint()
                _yield_cpu()  # a process or thread waiting for this CPU runs first
                if self._steps != seen:
                    seen, since = self._steps, trio.current_time()
                elif trio.current_time() - since >= self.window:
                    await self._park()
                    seen, since = self._steps, trio.current_time()
        finally:
            trio.lowlevel.remove_instrument(self)

    async def _park(self) -> None:
        """Wait until another task runs a step."""
        self._parked = True

        def abort(_: object) -> trio.lowlevel.Abort:
            self._parked = False
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


_SERVE_CODE = BusyWait.serve.__code__
