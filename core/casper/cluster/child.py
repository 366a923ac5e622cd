"""A worker process: ``python -m casper.cluster.child RUN_DIR INDEX LIFELINE_FD`` (started
by :mod:`casper.cluster.supervisor`, never by hand)."""

from __future__ import annotations

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


async def _serve(config: Config, place: WorkerPlace, fds: dict[str, Any], index: int,
                 lifeline: int) -> None:  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_with_supervisor, lifeline)
        await _serve_worker(config, place, fds, index)
        nursery.cancel_scope.cancel()


async def _serve_worker(config: Config, place: WorkerPlace, fds: dict[str, Any],
                        index: int) -> None:  # fmt: skip
    listeners = [C2SListener(lst) for lst in _listeners(fds, "c2s")]
    listeners += [C2SListener(lst, direct_tls=True) for lst in _listeners(fds, "tls")]
    http = _listeners(fds, "http") if index == 0 else []
    await serve_reloading(
        config, listeners=listeners, worker=place,
        http_listeners=http or None, s2s_listeners=_listeners(fds, "s2s") or None,
    )  # fmt: skip


async def _stop_with_supervisor(lifeline: int) -> None:
    """SIGTERM this worker (a graceful stop) once the supervisor is gone: the write end of
    the ``lifeline`` pipe closes with the supervisor, however it ends."""
    await trio.lowlevel.wait_readable(lifeline)
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    run_dir, index, lifeline = Path(argv[0]), int(argv[1]), int(argv[2])
    config, secret, fds = read_run_dir(run_dir)
    logging.basicConfig(level=config.log_level.upper(),
                        format=f"worker {index}: {LOG_FORMAT}")  # fmt: skip
    if index != 0:  # WebSocket and BOSH are served by worker 0 alone
        config = dataclasses.replace(config, http_port=None)
    place = WorkerPlace(
        index=index, count=config.workers, run_dir=run_dir,
        scram_secret=hashlib.sha256(b"scram salts" + secret).digest(),
    )  # fmt: skip
    trio.run(_serve, config, place, fds, index, lifeline)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
