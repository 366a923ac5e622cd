"""Helpers for the reliability tests: a ``casper serve`` subprocess that can be killed, and
logged-in :class:`casper.testing.TestClient` objects over loopback TCP to it.

:func:`casper_process` runs ``python -m casper serve --config FILE`` (the same command a user
runs) on a free loopback port, with its log in a file, and yields once the port accepts
connections. ``kill()`` is ``kill -9``; the process is always gone after the ``with`` block.
Accounts are created straight in the data directory before the first start, as
``casper user add`` would.

Import the helpers with ``from tests.reliability.conftest import ...``.
"""

from __future__ import annotations

import json
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
from casper.bench.spawn import free_port
from casper.jid import JID
from casper.sasl import derive_credentials
from casper.storage import open_storage
from casper.testing import TestClient

HOST = "127.0.0.1"
DOMAIN = "localhost"
PASSWORD = "secret"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@dataclass
class ServerFiles:
    """A config file and its data directory, reused across restarts."""

    root: Path
    port: int
    tls_port: int | None = None

    @property
    def config(self) -> Path:
        return self.root / "casper.toml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def cert(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"


def write_config(
    root: Path, *, plugins: Iterable[str] = (), extra: str = "", tls_port: bool = False
) -> ServerFiles:
    """Write a config for a free loopback port (and a direct TLS port if asked)."""
    files = ServerFiles(root, free_port(), free_port() if tls_port else None)
    quote = json.dumps  # a JSON string is a valid TOML basic string
    text = (
        f"[server]\ndomain = {quote(DOMAIN)}\nhost = {quote(HOST)}\nport = {files.port}\n"
        f"tls_port = {files.tls_port if files.tls_port is not None else 'false'}\n"
        f"data_dir = {quote(str(files.data_dir))}\n"
        f'[plugins]\nenable = {json.dumps(list(plugins))}\n[log]\nlevel = "info"\n{extra}'
    )
    files.config.write_text(text, encoding="utf-8")
    return files


def create_accounts(files: ServerFiles, names: Iterable[str]) -> None:
    creds = derive_credentials(PASSWORD, iterations=4096)
    with open_storage(files.data_dir) as storage:
        for name in names:
            storage.create_account(str(JID.make(name, DOMAIN)), creds)


@dataclass
class CasperProcess:
    process: trio.Process
    files: ServerFiles
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """``kill -9``: no cleanup, no flush, nothing."""
        self.process.send_signal(signal.SIGKILL)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.files.cert))


async def _wait_listening(proc: CasperProcess, port: int) -> None:
    with trio.move_on_after(START_TIMEOUT):
        while proc.process.returncode is None:
            try:
                probe = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await probe.aclose()
            return
        raise AssertionError(f"casper serve exited with {proc.process.returncode}:\n{proc.log}")
    raise AssertionError(f"casper serve did not listen in {START_TIMEOUT} s:\n{proc.log}")


@asynccontextmanager
async def casper_process(files: ServerFiles, name: str = "server") -> AsyncIterator[CasperProcess]:
    """Run ``casper serve`` on ``files``; SIGINT then SIGKILL on exit if still running."""
    log_path = files.root / f"{name}.log"
    with log_path.open("ab") as log:
        command = [sys.executable, "-m", "casper", "serve", "--config", str(files.config)]
        process = await trio.lowlevel.open_process(command, stdout=log, stderr=log, cwd=files.root)
    proc = CasperProcess(process, files, log_path)
    try:
        await _wait_listening(proc, files.port)
        yield proc
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                with trio.move_on_after(STOP_TIMEOUT):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def connect(
    proc: CasperProcess, user: str, resource: str | None = None, *, presence: bool = False
) -> TestClient:
    """A client logged in over loopback TCP (STARTTLS with the server's own certificate)."""
    client = TestClient(await trio.open_tcp_stream(HOST, proc.files.port), DOMAIN)
    await client.open_stream()
    await client.starttls(proc.client_context())
    await client.authenticate(user, PASSWORD)
    await client.bind(resource)
    if presence:
        await client.send("<presence/>")
        await client.expect(
            lambda e: e.tag.endswith("presence") and e.get("from") == str(client.jid)
        )
    return client
