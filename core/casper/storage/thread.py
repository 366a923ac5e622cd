"""One thread of its own that runs the server's storage calls, one at a time, in order.

Storage calls block on disk, so the event loop hands them to another thread. Trio's
``to_thread.run_sync`` takes a thread from its cache, names it, goes through a capacity
limiter and copies the caller's context for every call: about 50 µs of the loop's CPU per
call on this machine, against about 23 µs for a queue to a thread that stays. A login makes
six or seven storage calls.

Error handling: an exception raised by a call is raised in the awaiting task. A call is not
cancellable once handed over: a caller cancelled meanwhile waits for it, gets its result (a
popped offline message is not lost) and meets ``Cancelled`` at its next checkpoint.

Resource handling: :class:`StorageThread` is a context manager; the thread starts on entry,
and on exit it finishes the calls already queued and stops. Enter it around everything that
makes storage calls (the server's nursery), so that no call is left waiting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import outcome
import trio

T = TypeVar("T")
_Job = tuple[Callable[[], Any], trio.lowlevel.Task, trio.lowlevel.TrioToken]


class StorageThread:
    """``await storage_thread.run(fn)`` runs ``fn()`` on the storage thread."""

    def __init__(self, name: str = "casper-storage") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._jobs.put(None)
        self._thread.join()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the storage thread and return what it returns (or raise)."""
        if not self._thread.is_alive():
            raise RuntimeError("the storage thread is not running")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._jobs.put((fn, trio.lowlevel.current_task(), trio.lowlevel.current_trio_token()))
        result: T = await trio.lowlevel.wait_task_rescheduled(_refuse_abort)
        return result

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, task, token = job
            result = outcome.capture(fn)
            try:
                token.run_sync_soon(trio.lowlevel.reschedule, task, result)
            except trio.RunFinishedError:  # the run ended under a waiting task: nobody reads it
                pass


def _refuse_abort(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED  # the call runs on: the caller gets its result first
