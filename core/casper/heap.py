"""Give memory back: freed heap pages to the operating system, idle parsers' state to the heap.

A server whose sessions come and go frees much of what it allocates, but glibc's allocator
keeps freed pages resident (in its main heap and the arenas of worker threads), so the
process's RSS creeps up long after its live data stopped growing (the soak benchmark
showed that: flat Python allocations, rising RSS). ``malloc_trim(0)`` returns those pages;
it is called every :data:`TRIM_INTERVAL` seconds, and never on a C library without it.

An idle stream's parser can free expat's state (:meth:`XMLStreamParser.hibernate`).
:class:`IdleStreams` finds idle streams with one sweep every :data:`IDLE_SWEEP_SECONDS` for
the whole server: a stream whose activity count did not change since the previous sweep is
idle. A deadline per stream instead would cost a cancel scope on every write, about a tenth
of the server's CPU per chat message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Protocol

import trio

log = logging.getLogger("casper.heap")
TRIM_INTERVAL = 60.0  # seconds; one trim of a few hundred MiB heap takes milliseconds
IDLE_SWEEP_SECONDS = 0.5  # a stream silent between two sweeps (0.5 to 1 s) frees expat's state


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or ``None`` where there is none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: function(0)


async def trim_periodically(
    trim: Callable[[], object] | None = None,
    interval: float = TRIM_INTERVAL,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``trim`` (default: :func:`malloc_trim`) every ``interval`` seconds, forever."""
    trim = trim or malloc_trim()
    task_status.started()
    if trim is None:
        log.debug("no malloc_trim in this C library: heap memory is not trimmed")
        return
    while True:
        await trio.sleep(interval)
        trim()


class IdleCandidate(Protocol):
    """A stream :class:`IdleStreams` watches."""

    activity: int  # bumped on every read and write

    def release_idle_memory(self) -> None: ...


class IdleStreams:
    """The streams of a server that may free memory while idle, and the sweep that tells."""

    def __init__(self) -> None:
        self._seen: dict[IdleCandidate, int] = {}  # activity count at the previous sweep

    def watch(self, stream: IdleCandidate) -> None:
        self._seen[stream] = -1

    def forget(self, stream: IdleCandidate) -> None:
        self._seen.pop(stream, None)

    def sweep(self) -> int:
        """Have every stream idle since the previous sweep release its memory; return how
        many were idle."""
        idle = 0
        for stream, seen in self._seen.items():
            activity = stream.activity
            if activity == seen:
                stream.release_idle_memory()
                idle += 1
            else:
                self._seen[stream] = activity
        return idle

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sweep every :data:`IDLE_SWEEP_SECONDS`, forever."""
        task_status.started()
        while True:
            await trio.sleep(IDLE_SWEEP_SECONDS)
            self.sweep()
