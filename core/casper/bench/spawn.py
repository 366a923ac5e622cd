"""Bench accounts in a Casper data directory, and a ``casper serve`` subprocess to measure.

:func:`spawned_casper` writes a config for a free loopback port (direct TLS off) into a
temporary directory, creates the bench accounts straight into its storage (one SCRAM
derivation shared by every account, instead of one ``casper user add`` process each), runs
``python -m casper serve`` and yields a :class:`SpawnedCasper` once the port accepts
connections. The server's log goes to ``server.log`` in the temporary directory.

Error handling: if the server exits or does not listen within ``start_timeout`` seconds,
:class:`SpawnError` carries the end of its log.

Resource handling: on exit the server gets SIGINT (its clean shutdown), then SIGKILL after
``STOP_TIMEOUT`` seconds; the temporary directory is removed.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from casper.bench.workloads import Accounts, Target
from casper.jid import JID
from casper.sasl import derive_credentials
from casper.storage import open_storage
from casper.tls import ensure_certificate

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 20


class SpawnError(Exception):
    """The spawned server did not come up; the message ends with its log."""


@dataclass(frozen=True)
class SpawnedCasper:
    """A running server: where to connect, the certificate to trust, its log file."""

    target: Target
    cafile: Path
    log_path: Path


def create_accounts(data_dir: Path, domain: str, accounts: Accounts, iterations: int) -> int:
    """Create the missing bench accounts in Casper storage under ``data_dir``; return how many.

    Blocking (SQLite and PBKDF2); call it from a worker thread in async code.
    """
    credentials = derive_credentials(accounts.password, iterations=iterations)
    created = 0
    with open_storage(data_dir) as storage:
        for index in range(accounts.count):
            jid = str(JID.make(accounts.username(index), domain))
            if not storage.account_exists(jid):
                storage.create_account(jid, credentials)
                created += 1
    return created


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _config_text(domain: str, port: int, data_dir: Path, log_level: str) -> str:
    quote = json.dumps  # a JSON string is a valid TOML basic string
    return (
        f"[server]\ndomain = {quote(domain)}\nhost = {quote(LOOPBACK)}\nport = {port}\n"
        f"tls_port = false\ndata_dir = {quote(str(data_dir))}\n"
        f"[log]\nlevel = {quote(log_level)}\n"
    )


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"


async def _wait_listening(process: trio.Process, port: int, timeout: float, log: Path) -> None:
    with trio.move_on_after(timeout):
        while process.returncode is None:
            try:
                probe = await trio.open_tcp_stream(LOOPBACK, port)
            except OSError:
                await trio.sleep(POLL_INTERVAL)
                continue
            await probe.aclose()
            return
        raise SpawnError(f"casper serve exited with {process.returncode}:\n{log_tail(log)}")
    raise SpawnError(f"casper serve did not listen within {timeout:g} s:\n{log_tail(log)}")


async def _stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def spawned_casper(
    accounts: Accounts,
    *,
    name: str = "casper",
    domain: str = "localhost",
    log_level: str = "warning",
    iterations: int = 4096,
    start_timeout: float = 20.0,
) -> AsyncIterator[SpawnedCasper]:
    """Run a fresh Casper with ``accounts`` on a free loopback port for the ``with`` block."""
    with tempfile.TemporaryDirectory(prefix="casper-bench-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        port = free_port()
        config = root / "casper.toml"
        config.write_text(_config_text(domain, port, data_dir, log_level), encoding="utf-8")
        await trio.to_thread.run_sync(create_accounts, data_dir, domain, accounts, iterations)
        cert, _key = await trio.to_thread.run_sync(ensure_certificate, data_dir, domain)
        log_path = root / "server.log"
        with log_path.open("wb") as log:
            command = [sys.executable, "-m", "casper", "serve", "--config", str(config)]
            process = await trio.lowlevel.open_process(command, stdout=log, stderr=log, cwd=tmp)
            try:
                await _wait_listening(process, port, start_timeout, log_path)
                target = Target(name, LOOPBACK, port, domain, pid=process.pid)
                yield SpawnedCasper(target, cert, log_path)
            finally:
                await _stop(process)
