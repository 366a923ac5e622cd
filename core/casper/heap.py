"""Hand freed heap memory back to the operating system, periodically.

A server whose sessions come and go frees much of what it allocates, but glibc's allocator
keeps freed pages resident (in its main heap and the arenas of worker threads), so the
process's RSS creeps up long after its live data stopped growing (the soak benchmark
showed that: flat Python allocations, rising RSS). ``malloc_trim(0)`` returns those pages;
it is called every :data:`TRIM_INTERVAL` seconds, and never on a C library without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

import trio

log = logging.getLogger("casper.heap")
TRIM_INTERVAL = 60.0  # seconds; one trim of a few hundred MiB heap takes milliseconds


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
