"""Servers the bench starts itself: a Casper here, Prosody and ejabberd in :mod:`.peers`.

A :class:`SpawnedServer` owns a private directory (config, data, certificate, log) under the
bench's temporary directory and a free loopback port. :meth:`SpawnedServer.prepare` writes
everything that can be written offline (once); :func:`running` starts the process (under
``taskset -c CPU`` when pinned), waits until the port accepts connections and, on the first
start only, lets the server finish provisioning online (:meth:`SpawnedServer.provision`).
The data directory is kept across restarts, so "fresh" runs restart a server on the same
accounts and rosters.

Every server gets the same accounts (:class:`Provision`): ``{prefix}0 ..`` for the login,
chat and idle workloads, and for the presence workload a hub ``{prefix}hub`` whose roster
holds the contacts ``{prefix}c0 ..`` with subscription ``from`` (each contact has the hub
with ``to``), so every presence the hub sends is broadcast to every contact. SCRAM uses
the same iteration count everywhere. For Casper, accounts, rosters and (with
``privacy_items``) a default privacy list are written straight into its storage.

:class:`CasperServer` runs ``python -m casper serve``; with ``source`` it runs the Casper of
another source tree (its ``core`` and ``plugins`` first on ``PYTHONPATH``), so two versions
can be measured side by side in one run.

Error handling: if a server exits or does not listen within ``start_timeout`` seconds,
:class:`SpawnError` carries the end of its log.

Resource handling: on leaving :func:`running` the server gets its stop signal (SIGINT for
Casper, SIGTERM for the others), then SIGKILL after ``STOP_TIMEOUT`` seconds. The caller owns
the directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from casper.bench.workloads import Accounts, Bench, Target
from casper.jid import JID
from casper.sasl import derive_credentials
from casper.storage import open_storage
from casper.storage.base import RosterItem
from casper.storage.sqlite import SQLiteStorage
from casper.tls import ensure_certificate

LOOPBACK = "127.0.0.1"
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 20
ITERATIONS = 4096  # SCRAM iterations of every spawned server (ejabberd's fixed default)
PRIVACY_PLUGIN = "privacy-lists"
PRIVACY_LIST = "bench"


class SpawnError(Exception):
    """A spawned server did not come up; the message ends with its log."""


@dataclass(frozen=True)
class Provision:
    """The accounts every spawned server gets; see the module doc.

    :param contacts: contacts of the presence hub (0: no hub, no rosters).
    :param privacy_items: items of the default privacy list of every account (Casper only).
    """

    accounts: Accounts
    contacts: int = 0
    privacy_items: int = 0

    @property
    def hub(self) -> str:
        return f"{self.accounts.prefix}hub"

    @property
    def contact_accounts(self) -> Accounts:
        return Accounts(f"{self.accounts.prefix}c", max(1, self.contacts), self.accounts.password)

    def usernames(self) -> list[str]:
        """Every account to create: bench accounts, then the hub and its contacts."""
        names = [self.accounts.username(i) for i in range(self.accounts.count)]
        if self.contacts:
            contacts = self.contact_accounts
            names += [self.hub, *(contacts.username(i) for i in range(self.contacts))]
        return names


def create_accounts(data_dir: Path, domain: str, accounts: Accounts, iterations: int) -> int:
    """Create the missing bench accounts in Casper storage under ``data_dir``; return how many.

    Blocking (SQLite and PBKDF2); call it from a worker thread in async code.
    """
    return _create_casper_accounts(
        data_dir, domain, [accounts.username(i) for i in range(accounts.count)],
        accounts.password, iterations,
    )  # fmt: skip


def _create_casper_accounts(
    data_dir: Path, domain: str, names: Sequence[str], password: str, iterations: int
) -> int:
    credentials = derive_credentials(password, iterations=iterations)  # one derivation for all
    created = 0
    with open_storage(data_dir) as storage:
        for name in names:
            jid = str(JID.make(name, domain))
            if not storage.account_exists(jid):
                storage.create_account(jid, credentials)
                created += 1
    return created


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"


@dataclass
class SpawnedServer:
    """A server the bench runs in ``root``; subclasses say how. See the module doc."""

    name: str
    root: Path
    provision: Provision
    domain: str = "localhost"
    port: int = field(default_factory=free_port)
    kind = "server"
    stop_signal = signal.SIGTERM
    provisioned: bool = False

    @property
    def log_path(self) -> Path:
        """The log to show when the server fails (its own log file, or its output)."""
        return self.root / "stdout.log"

    @property
    def cafile(self) -> Path:
        return self.root / "data" / "tls" / "cert.pem"

    def prepare(self) -> None:
        """Write config, certificate and offline accounts (blocking; once)."""
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None

    async def provision_online(self, bench: Bench) -> None:
        """Finish provisioning through the running server (after its first start)."""

    def version(self) -> str:
        return ""


@dataclass
class CasperServer(SpawnedServer):
    """``python -m casper serve`` (direct TLS off), optionally from another source tree."""

    log_level: str = "warning"
    source: Path | None = None
    workers: int = 1
    kind = "casper"
    stop_signal = signal.SIGINT

    def prepare(self) -> None:
        data_dir = self.root / "data"
        quote = json.dumps  # a JSON string is a valid TOML basic string
        plugins = f"[plugins]\nenable = [{quote(PRIVACY_PLUGIN)}]\n" if self._privacy() else ""
        (self.root / "casper.toml").write_text(
            f"[server]\ndomain = {quote(self.domain)}\nhost = {quote(LOOPBACK)}\n"
            f"port = {self.port}\ntls_port = false\ndata_dir = {quote(str(data_dir))}\n"
            f"workers = {self.workers}\n"
            f"[auth]\nscram_iterations = {ITERATIONS}\n"
            "[limits]\nmax_connections_per_ip = false\nstanza_rate = false\n"
            f"{plugins}[log]\nlevel = {quote(self.log_level)}\n",
            encoding="utf-8",
        )
        p = self.provision
        _create_casper_accounts(data_dir, self.domain, p.usernames(), p.accounts.password,
                                ITERATIONS)  # fmt: skip
        with open_storage(data_dir) as storage:
            if p.contacts:
                self._write_rosters(storage)
            if self._privacy():
                self._write_privacy_lists(storage)
        ensure_certificate(data_dir, self.domain)

    def _privacy(self) -> bool:
        return self.provision.privacy_items > 0

    def _write_rosters(self, storage: SQLiteStorage) -> None:
        p = self.provision
        hub = str(JID.make(p.hub, self.domain))
        contacts = p.contact_accounts
        for index in range(p.contacts):
            contact = str(JID.make(contacts.username(index), self.domain))
            storage.put_roster_item(hub, RosterItem(contact, subscription="from"))
            storage.put_roster_item(contact, RosterItem(hub, subscription="to"))

    def _write_privacy_lists(self, storage: SQLiteStorage) -> None:
        text = json.dumps(privacy_list_rows(self.provision.privacy_items))
        for name in self.provision.usernames():
            jid = str(JID.make(name, self.domain))
            storage.plugin_put(PRIVACY_PLUGIN, jid, f"list:{PRIVACY_LIST}", text)
            storage.plugin_put(PRIVACY_PLUGIN, jid, "default", PRIVACY_LIST)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "casper", "serve", "--config", str(self.root / "casper.toml")]

    def environment(self) -> dict[str, str] | None:
        if self.source is None:
            return None
        paths = [str(self.source / "core"), str(self.source / "plugins")]
        if os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}

    def version(self) -> str:
        return f"source {self.source}" if self.source else "this tree"


def privacy_list_rows(count: int) -> list[dict[str, object]]:
    """``count`` deny items matching no bench account, in the privacy plugin's storage form.

    Kinds cycle through message, presence-in, presence-out, iq and everything, so every
    stanza is checked against the whole list and none is denied.
    """
    kinds: tuple[list[str], ...] = (["message"], ["presence-in"], ["presence-out"], ["iq"], [])
    return [
        {"action": "deny", "order": i + 1, "type": "jid", "value": f"spam{i}@blocked.invalid",
         "kinds": kinds[i % len(kinds)]}
        for i in range(count)
    ]  # fmt: skip


# -- running a spawned server ---------------------------------------------------------------------


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
        raise SpawnError(f"server exited with {process.returncode}:\n{log_tail(log)}")
    raise SpawnError(f"server did not listen within {timeout:g} s:\n{log_tail(log)}")


async def _stop(process: trio.Process, stop_signal: int) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.send_signal(stop_signal)
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


def pinned(command: list[str], cpu: int | str | None) -> list[str]:
    """``command`` under ``taskset -c cpu`` (a CPU or a list such as ``0,1``; unchanged
    when ``cpu`` is None)."""
    if cpu is None:
        return command
    taskset = shutil.which("taskset")
    if taskset is None:
        raise SpawnError("--pin needs taskset (util-linux)")
    return [taskset, "-c", str(cpu), *command]


@asynccontextmanager
async def running(
    server: SpawnedServer,
    make_bench: object,
    *,
    cpu: int | str | None = None,
    start_timeout: float = 60.0,
) -> AsyncIterator[Bench]:
    """Start ``server``, provision it on its first start, yield a :class:`Bench` for it.

    :param make_bench: ``make_bench(target, cafile) -> Bench``.
    :param cpu: pin the server to this CPU (or CPU list).
    """
    if not server.root.exists():
        server.root.mkdir(parents=True)
        await trio.to_thread.run_sync(server.prepare)
    command = pinned(server.command(), cpu)
    with (server.root / "stdout.log").open("ab") as out:
        process = await trio.lowlevel.open_process(
            command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=server.root,
            env=server.environment(),
        )  # fmt: skip
        try:
            log = server.log_path
            await _wait_listening(process, server.port, start_timeout, log)
            target = Target(server.name, LOOPBACK, server.port, server.domain, pid=process.pid)
            bench = make_bench(target, server.cafile)  # type: ignore[operator]
            if not server.provisioned:
                await server.provision_online(bench)
                server.provisioned = True
            yield bench
        finally:
            await _stop(process, server.stop_signal)
