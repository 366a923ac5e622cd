"""A worker process: ``python -m casper.cluster.child RUN_DIR INDEX SUPERVISOR_PID``
(started by :mod:`casper.cluster.supervisor`, never by hand)."""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import hashlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import trio

from casper.cli import LOG_FORMAT, serve_reloading
from casper.config import Config
from casper.server import C2SListener

from .supervisor import read_run_dir
from .worker import WorkerPlace

BACKLOG = 4096


def _listeners(fds: dict[str, Any], kind: str) -> list[trio.SocketListener]:
    """The supervisor's sockets of ``kind``, listening from now on (if not yet)."""
    listeners = []
    for fd in fds.get(kind, []):
        sock = socket.socket(fileno=fd)
        sock.listen(BACKLOG)
        listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
    return listeners


async def _serve(config: Config, place: WorkerPlace, fds: dict[str, Any], index: int) -> None:
    listeners = [C2SListener(lst) for lst in _listeners(fds, "c2s")]
    listeners += [C2SListener(lst, direct_tls=True) for lst in _listeners(fds, "tls")]
    http = _listeners(fds, "http") if index == 0 else []
    await serve_reloading(
        config, listeners=listeners, worker=place,
        http_listeners=http or None, s2s_listeners=_listeners(fds, "s2s") or None,
    )  # fmt: skip


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _stop_with(supervisor: int) -> bool:
    """Have the kernel send SIGTERM when the supervisor dies (Linux), so no worker is left
    serving on its own; ``False`` if it is already gone."""
    name = ctypes.util.find_library("c")
    if name is not None and sys.platform.startswith("linux"):
        ctypes.CDLL(name, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == supervisor


def main(argv: list[str]) -> int:
    run_dir, index, supervisor = Path(argv[0]), int(argv[1]), int(argv[2])
    if not _stop_with(supervisor):
        return 1
    config, secret, fds = read_run_dir(run_dir)
    logging.basicConfig(level=config.log_level.upper(),
                        format=f"worker {index}: {LOG_FORMAT}")  # fmt: skip
    if index != 0:  # WebSocket and BOSH are served by worker 0 alone
        config = dataclasses.replace(config, http_port=None)
    place = WorkerPlace(
        index=index, count=config.workers, run_dir=run_dir,
        scram_secret=hashlib.sha256(b"scram salts" + secret).digest(),
    )  # fmt: skip
    trio.run(_serve, config, place, fds, index)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
