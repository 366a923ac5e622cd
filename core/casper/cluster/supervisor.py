"""``casper serve`` with ``[server] workers`` > 1: open the listeners once, start the
workers, pass signals on, stop them all together.

The listening sockets are opened here and inherited by every worker, which accept from the
same queues (the kernel hands each connection to one of them). WebSocket/BOSH go to worker
0 only: a BOSH session's requests must all reach the worker that holds it. The
configuration, the listeners' descriptors and a secret shared by the workers (salts for
unknown SCRAM users, and the dialback secret unless configured) are passed through a
private run directory, which also holds the bus sockets and is removed at the end.

Error handling: a worker that exits on its own stops the others; the exit status is then 1.
A worker whose supervisor dies stops: it watches a pipe whose only write end the
supervisor holds, which the kernel closes however the supervisor ends.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pluggy
import trio

from casper.config import Config, ConfigError
from casper.listening import listen_error
from casper.plugins import make_plugin_manager
from casper.storage import open_storage

log = logging.getLogger("casper.cluster")
STOP_SECONDS = 15.0  # a worker still running this long after SIGTERM is killed
CONFIG_FILE, LISTENERS_FILE, SECRET_FILE = "config.pickle", "listeners.json", "secret"


def unready_plugins(pm: pluggy.PluginManager) -> list[str]:
    """Enabled plugins that do not declare ``CLUSTER_READY = True``: they keep state
    about other accounts' sessions, which a worker does not have."""
    return sorted(
        name for name, plugin in pm.list_name_plugin()
        if plugin is not None and not getattr(plugin, "CLUSTER_READY", False)
    )  # fmt: skip


def check_cluster_config(config: Config, extra: Sequence[tuple[object, str]] = ()) -> None:
    """:raises ConfigError: a plugin that cannot run on several workers is enabled (among
    the configured ones and ``extra``, as :func:`casper.plugins.make_plugin_manager`)."""
    unready = unready_plugins(make_plugin_manager(config, extra))
    if unready:
        raise ConfigError(
            f"server.workers = {config.workers}, but plugin(s) {', '.join(unready)} "
            "cannot run on several workers yet; use workers = 1 or disable them"
        )


def _listen(purpose: str, host: str, port: int) -> list[socket.socket]:
    """Bound, inheritable TCP sockets for ``host``:``port`` (every address). Workers make
    them listen when they are ready to accept, so nobody connects before one is."""
    sockets: list[socket.socket] = []
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            for opened in sockets:
                opened.close()
            raise listen_error(purpose, host, port, exc) from exc
        sock.set_inheritable(True)
        sockets.append(sock)
        port = sock.getsockname()[1]  # 0: the other families take the same port
    return sockets


def open_listeners(config: Config) -> dict[str, list[socket.socket]]:
    """The listeners of every enabled kind: ``c2s``, ``tls``, ``http``, ``s2s``."""
    kinds: dict[str, list[socket.socket]] = {"c2s": _listen("c2s", config.host, config.port)}
    if config.tls_port is not None:
        kinds["tls"] = _listen("direct TLS", config.host, config.tls_port)
    if config.http_port is not None:
        kinds["http"] = _listen("WebSocket and BOSH", config.host, config.http_port)
    if config.s2s_enabled:
        kinds["s2s"] = _listen("s2s", config.host, config.s2s_port)
    return kinds


def prepare_run_dir(config: Config, listeners: dict[str, list[socket.socket]]) -> Path:
    """Write what the workers read at start into a new private directory."""
    run_dir = Path(tempfile.mkdtemp(prefix="casper-"))  # mode 0700
    secret = secrets.token_bytes(32)
    if config.s2s_dialback_secret is None:  # every worker must verify every other's keys
        config = dataclasses.replace(config, s2s_dialback_secret=secret.hex())
    fields = {f.name: _thaw(getattr(config, f.name)) for f in dataclasses.fields(config)}
    (run_dir / CONFIG_FILE).write_bytes(pickle.dumps(fields))
    (run_dir / SECRET_FILE).write_bytes(secret)
    fds = {kind: [s.fileno() for s in socks] for kind, socks in listeners.items()}
    (run_dir / LISTENERS_FILE).write_text(json.dumps(fds))
    return run_dir


def _thaw(value: object) -> object:
    """Plain dicts for the config's read-only mappings (which pickle refuses)."""
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    return value


def supervise(config: Config) -> int:
    """Run ``config.workers`` worker processes until SIGINT or SIGTERM; return the status."""
    check_cluster_config(config)
    open_storage(config.data_dir).close()  # the schema exists before workers open it
    listeners = open_listeners(config)
    run_dir = prepare_run_dir(config, listeners)
    try:
        return trio.run(_supervise, config, run_dir, listeners)
    finally:
        for socks in listeners.values():
            for sock in socks:
                sock.close()
        shutil.rmtree(run_dir, ignore_errors=True)


async def _supervise(config: Config, run_dir: Path,
                     listeners: dict[str, list[socket.socket]]) -> int:  # fmt: skip
    fds = [s.fileno() for socks in listeners.values() for s in socks]
    wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    status = 0
    lifeline, keep_open = os.pipe()  # its write end closes with this process: see child.py
    fds.append(lifeline)
    with trio.open_signal_receiver(*wanted) as signals:
        async with trio.open_nursery() as nursery:
            processes = []
            for index in range(config.workers):
                command = [sys.executable, "-m", "casper.cluster.child", str(run_dir),
                           str(index), str(lifeline)]  # fmt: skip
                processes.append(await trio.lowlevel.open_process(command, pass_fds=fds))
            done = trio.Event()
            exits: list[tuple[int, int]] = []

            async def watch(index: int, process: trio.Process) -> None:
                code = await process.wait()
                exits.append((index, code))
                done.set()

            for index, process in enumerate(processes):
                nursery.start_soon(watch, index, process)
            for kind, socks in listeners.items():
                for sock in socks:
                    log.info("%d workers share %s listener %s", config.workers, kind,
                             _describe(sock))  # fmt: skip
            stopping = False
            async with trio.open_nursery() as waiting:
                waiting.start_soon(_wait_then_cancel, done, waiting.cancel_scope)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        _signal_all(processes, signal.SIGHUP)
                        continue
                    log.info("stopping %d workers on %s", config.workers,
                             signal.Signals(signum).name)  # fmt: skip
                    stopping = True
                    break
                waiting.cancel_scope.cancel()
            if not stopping:
                index, code = exits[0]
                log.error("worker %d exited with status %d: stopping the others", index, code)
                status = 1
            _signal_all(processes, signal.SIGTERM)
            with trio.move_on_after(STOP_SECONDS):
                for process in processes:
                    await process.wait()
            for process in processes:
                if process.returncode is None:
                    log.error("worker pid %d did not stop: killed", process.pid)
                    process.kill()
    os.close(lifeline)
    os.close(keep_open)
    return status


async def _wait_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _signal_all(processes: list[trio.Process], signum: int) -> None:
    for process in processes:
        if process.returncode is None:
            try:
                process.send_signal(signum)
            except ProcessLookupError:
                pass


def _describe(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_run_dir(run_dir: Path) -> tuple[Config, bytes, dict[str, Any]]:
    """What :func:`prepare_run_dir` wrote: the config, the shared secret, the fds."""
    config = Config(**pickle.loads((run_dir / CONFIG_FILE).read_bytes()))
    secret = (run_dir / SECRET_FILE).read_bytes()
    fds = json.loads((run_dir / LISTENERS_FILE).read_text())
    return config, secret, fds
