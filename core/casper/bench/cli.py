"""``python -m casper.bench``: measure XMPP servers side by side and print figures and ratios.

::

    python -m casper.bench --spawn-casper                       # a fresh Casper, default sizes
    python -m casper.bench --spawn-casper --spawn-casper-privacy --spawn-prosody \\
        --spawn-ejabberd --mode both --pin --json out.json      # the comparison of issue 13
    python -m casper.bench --spawn-casper-from before=/tmp/casper-head --spawn-casper
    python -m casper.bench --spawn-casper --target prosody=127.0.0.1:5322:localhost:PID \\
        --insecure

Targets, in this order: ``--spawn-casper`` (``casper``), every ``--spawn-casper-from
NAME=DIR`` (the Casper of another source tree), ``--spawn-casper-privacy``
(``casper-privacy``: the ``privacy-lists`` strategy on, every account with a default list of
``--privacy-items`` items), ``--spawn-prosody``, ``--spawn-ejabberd`` (Debian's packages run
privately on loopback, see :mod:`casper.bench.peers`), the ``--host`` one, then every
``--target NAME=HOST:PORT:DOMAIN[:PID]`` (``NAME=spawn`` spawns a Casper). The first target
is the baseline: every figure of a later target is printed with the ratio ``baseline /
target`` (Casper/peer) measured in the same run, and the ``vs best peer`` column compares the
baseline with the best server of another kind (see :mod:`casper.bench.report`).

Modes (``--mode``): ``warm`` starts each spawned server once and runs every workload on it
(``--repeat`` rounds), one server at a time; ``fresh`` restarts the server before each
workload (its data directory is kept). Targets are measured one after the other, never
concurrently, so an idle server's background work (an Erlang VM's busy-waiting schedulers)
does not slow the one measured; in ``fresh`` mode they alternate workload by workload. A
figure is the median over the rounds; memory is measured in the first round only (a server
keeps the memory its closed connections freed). ``--pin`` runs every spawned server on CPU
``--server-cpu`` (``taskset -c``) and this load generator on ``--bench-cpu``.

Accounts ``{prefix}0`` .. ``{prefix}{users-1}``, the presence hub ``{prefix}hub`` and its
contacts ``{prefix}c0 ..`` (one password) are created on spawned servers; on others they
must exist (``--create-accounts DATA_DIR`` adds the first ones to a Casper data directory).
Login uses ``--mechanism`` (SCRAM-SHA-1 by default, which all three servers offer).
Spawned servers' certificates are trusted automatically; other targets need ``--cafile`` or
``--insecure``.

Exit status: 0 when every workload succeeded, 1 when one failed (its figures are missing and
the reason is printed), 2 for a usage error. Only loopback addresses are accepted unless
``--allow-remote``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from casper.bench.client import SCRAM_PREFERENCE, client_ssl_context
from casper.bench.peers import EjabberdServer, ProsodyServer
from casper.bench.presence import measure_presence
from casper.bench.report import TargetResult, format_table, to_json
from casper.bench.spawn import (
    CasperServer,
    Provision,
    SpawnedServer,
    SpawnError,
    create_accounts,
    log_tail,
    running,
)
from casper.bench.workloads import (
    Accounts,
    Bench,
    Target,
    measure_chat,
    measure_idle,
    measure_logins,
    measure_rate,
)
from casper.sasl.scram import DEFAULT_ITERATIONS

WORKLOADS = ("login", "chat", "rate", "presence", "idle")
MODES = ("warm", "fresh")
# Measured in the first round only: a server keeps the memory its closed connections freed,
# so later rounds would measure reuse of that memory rather than the cost of a connection.
FIRST_ROUND_ONLY = frozenset({"idle"})
EXIT_FAILED = 1
EXIT_USAGE = 2
SETTLE = 0.5  # seconds between workloads, for the server to finish closing connections


class UsageError(Exception):
    """A bad command line; the message is one line."""


@dataclass(frozen=True)
class TargetSpec:
    """A target as given on the command line: a server to spawn, or an address."""

    name: str
    spawn: bool = False
    target: Target | None = None
    kind: str = "casper"
    source: Path | None = None
    privacy: bool = False
    workers: int = 1
    cpus: str | None = None  # with --pin: taskset's CPU list for this target


# -- command line ---------------------------------------------------------------------------------


def _host_port(text: str) -> tuple[str, str]:
    """Split ``HOST:REST`` where HOST may be a bracketed IPv6 address."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]:")
    else:
        host, sep, rest = text.partition(":")
    if not sep or not host:
        raise UsageError(f"expected HOST:PORT:DOMAIN[:PID], got {text!r}")
    return host, rest


def parse_target(text: str) -> TargetSpec:
    """Parse ``NAME=spawn`` or ``NAME=HOST:PORT:DOMAIN[:PID]``."""
    name, sep, spec = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--target wants NAME=HOST:PORT:DOMAIN[:PID] or NAME=spawn, got {text!r}")
    if spec == "spawn":
        return TargetSpec(name, spawn=True)
    host, rest = _host_port(spec)
    parts = rest.split(":")
    if len(parts) not in (2, 3) or not parts[0].isdigit() or not parts[1]:
        raise UsageError(f"--target {name}: expected HOST:PORT:DOMAIN[:PID], got {spec!r}")
    if len(parts) == 3 and not parts[2].isdigit():
        raise UsageError(f"--target {name}: PID must be a number, got {parts[2]!r}")
    pid = int(parts[2]) if len(parts) == 3 else None
    target = Target(name, host, int(parts[0]), parts[1], pid)
    return TargetSpec(name, target=target, kind="server")


def parse_source(text: str) -> TargetSpec:
    """Parse ``NAME=DIR``: a Casper source tree (with ``core/casper``) to spawn."""
    name, sep, directory = text.partition("=")
    path = Path(directory)
    if not sep or not name or not (path / "core" / "casper").is_dir():
        raise UsageError(f"--spawn-casper-from wants NAME=DIR with DIR/core/casper, got {text!r}")
    return TargetSpec(name, spawn=True, source=path.resolve())


def check_loopback(host: str) -> None:
    """Raise UsageError unless every address of ``host`` is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"cannot resolve {host!r}: {exc}") from None
    addresses = {str(info[4][0]).partition("%")[0] for info in infos}
    if not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise UsageError(f"{host} is not a loopback address (use --allow-remote to measure it)")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _names(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}, got {text!r}")
        return names

    return parse


def _mode(text: str) -> tuple[str, ...]:
    return MODES if text == "both" else _names(MODES)(text)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``python -m casper.bench`` command line."""
    p = argparse.ArgumentParser(
        prog="python -m casper.bench",
        description="Drive XMPP clients over loopback sockets and print figures.",
    )
    t = p.add_argument_group("targets (the first one is the baseline for ratios)")
    t.add_argument("--spawn-casper", action="store_true", help="measure a Casper it starts")
    t.add_argument("--spawn-casper-from", action="append", default=[], metavar="NAME=DIR",
                   help="a Casper run from another source tree, repeatable")  # fmt: skip
    t.add_argument("--spawn-casper-privacy", action="store_true",
                   help="a Casper with the privacy-lists strategy and a list per account")  # fmt: skip
    t.add_argument("--spawn-casper-workers", type=_positive, action="append", default=[],
                   metavar="N", help="a Casper with N worker processes, repeatable")  # fmt: skip
    t.add_argument("--spawn-prosody", action="store_true", help="Debian's Prosody, private")
    t.add_argument("--spawn-ejabberd", action="store_true", help="Debian's ejabberd, private")
    t.add_argument("--host", help="a running server's address (target 'server')")
    t.add_argument("--port", type=int, default=5222, help="its c2s port (default 5222)")
    t.add_argument("--domain", default="localhost", help="its XMPP domain (default localhost)")
    t.add_argument("--server-pid", type=int, metavar="PID", help="its PID, for memory figures")
    t.add_argument("--target", action="append", default=[], metavar="NAME=HOST:PORT:DOMAIN[:PID]",
                   help="another target, repeatable; NAME=spawn spawns a Casper")  # fmt: skip
    t.add_argument("--allow-remote", action="store_true", help="accept non-loopback hosts")
    s = p.add_argument_group("TLS and accounts")
    s.add_argument("--cafile", type=Path, help="PEM file of certificates to trust")
    s.add_argument("--insecure", action="store_true", help="skip certificate verification")
    s.add_argument("--mechanism", choices=SCRAM_PREFERENCE, default="SCRAM-SHA-1",
                   help="SCRAM mechanism (default SCRAM-SHA-1)")  # fmt: skip
    s.add_argument("--user-prefix", default="bench", help="account names (default bench)")
    s.add_argument("--users", type=_positive, default=100, help="accounts (default 100)")
    s.add_argument("--password", default="secret", help="their password (default secret)")
    s.add_argument("--privacy-items", type=_positive, default=100,
                   help="items of casper-privacy's lists (default 100)")  # fmt: skip
    s.add_argument("--create-accounts", type=Path, metavar="DATA_DIR",
                   help="add missing accounts to this Casper data dir for --domain first")  # fmt: skip
    w = p.add_argument_group("workloads")
    w.add_argument("--workloads", type=_names(WORKLOADS), default=WORKLOADS, metavar="A,B",
                   help=f"subset of {','.join(WORKLOADS)} (default all)")  # fmt: skip
    w.add_argument("--mode", type=_mode, default=("warm",), metavar="MODE",
                   help="warm, fresh or both (default warm)")  # fmt: skip
    w.add_argument("--logins", type=_positive, default=3000, help="login cycles (default 3000)")
    w.add_argument(
        "--login-concurrency", type=_positive, default=100, help="logins at a time (default 100)"
    )
    w.add_argument("--pairs", type=_positive, default=50, help="chat pairs (default 50)")
    w.add_argument("--messages", type=_positive, default=2000, help="per pair (default 2000)")
    w.add_argument("--in-flight", type=_positive, default=10, help="per pair (default 10)")
    w.add_argument("--warmup", type=int, default=10, help="untimed messages per pair first")
    w.add_argument("--rate", type=_positive, default=2000, help="fixed rate, msgs/s (2000)")
    w.add_argument("--rate-seconds", type=float, default=5.0, help="its duration (5 s)")
    w.add_argument("--contacts", type=_positive, default=200, help="hub's contacts (200)")
    w.add_argument("--updates", type=_positive, default=1000, help="hub presences (default 1000)")
    w.add_argument("--presence-in-flight", type=_positive, default=50, help="(default 50)")
    w.add_argument("--idle", type=_positive, default=2000, help="idle connections (2000)")
    w.add_argument("--idle-concurrency", type=_positive, default=20, help="(default 20)")
    w.add_argument("--repeat", type=_positive, default=1,
                   help="rounds; each figure is the median over them (default 1)")  # fmt: skip
    w.add_argument("--timeout", type=float, default=120.0, help="seconds per workload (120)")
    w.add_argument("--step-timeout", type=float, default=10.0, help="seconds per login/message")
    c = p.add_argument_group("CPUs")
    c.add_argument("--pin", action="store_true", help="pin servers and the bench to one CPU each")
    c.add_argument("--server-cpu", type=int, default=0, help="servers' CPU with --pin (0)")
    c.add_argument("--bench-cpu", type=int, default=1, help="the bench's CPU with --pin (1)")
    c.add_argument("--cluster-cpus", metavar="LIST",
                   help="CPUs of --spawn-casper-workers targets with --pin, as taskset -c takes "
                        "them (default: --server-cpu)")  # fmt: skip
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    o.add_argument("--casper-log-level", default="warning", help="log level of spawned Caspers")
    return p


def target_specs(args: argparse.Namespace) -> list[TargetSpec]:
    """Return the targets in measuring order; raise UsageError for bad or remote ones."""
    specs = [TargetSpec("casper", spawn=True)] if args.spawn_casper else []
    specs += [parse_source(text) for text in args.spawn_casper_from]
    if args.spawn_casper_privacy:
        specs.append(TargetSpec("casper-privacy", spawn=True, privacy=True))
    cluster_cpus = args.cluster_cpus or str(args.server_cpu)
    specs += [TargetSpec(f"casper-{n}w", spawn=True, workers=n, cpus=cluster_cpus)
              for n in args.spawn_casper_workers]  # fmt: skip
    if args.spawn_prosody:
        specs.append(TargetSpec("prosody", spawn=True, kind="prosody"))
    if args.spawn_ejabberd:
        specs.append(TargetSpec("ejabberd", spawn=True, kind="ejabberd"))
    if args.host is not None:
        target = Target("server", args.host, args.port, args.domain, args.server_pid)
        specs.append(TargetSpec("server", target=target, kind="server"))
    specs += [parse_target(text) for text in args.target]
    if not specs:
        raise UsageError("nothing to measure: give --spawn-casper, --host or --target")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"target names must differ: {', '.join(names)}")
    for spec in specs:
        if spec.target is not None and not args.allow_remote:
            check_loopback(spec.target.host)
    if args.pin:
        cpus = os.sched_getaffinity(0)
        if {args.server_cpu, args.bench_cpu} - cpus or args.server_cpu == args.bench_cpu:
            raise UsageError(f"--pin needs two different CPUs among {sorted(cpus)}")
    return specs


def _raise_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# -- running --------------------------------------------------------------------------------------


def _describe_failure(exc: BaseException, timeout: float) -> str:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    if isinstance(exc, trio.TooSlowError):
        return f"timed out (workload limit {timeout:g} s, step limit per login or message)"
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def _workload_calls(
    args: argparse.Namespace, provision: Provision
) -> dict[str, Callable[[Bench], Awaitable[dict]]]:
    return {
        "login": lambda b: measure_logins(b, count=args.logins, concurrency=args.login_concurrency),
        "chat": lambda b: measure_chat(
            b,
            pairs=args.pairs,
            messages=args.messages,
            in_flight=args.in_flight,
            warmup=args.warmup,
            concurrency=args.login_concurrency,
        ),
        "rate": lambda b: measure_rate(
            b,
            pairs=args.pairs,
            rate=args.rate,
            seconds=args.rate_seconds,
            concurrency=args.login_concurrency,
        ),
        "presence": lambda b: measure_presence(
            b,
            hub=provision.hub,
            contacts=provision.contact_accounts,
            count=args.contacts,
            updates=args.updates,
            in_flight=args.presence_in_flight,
            concurrency=args.login_concurrency,
        ),
        "idle": lambda b: measure_idle(b, connections=args.idle, concurrency=args.idle_concurrency),
    }


@dataclass
class Entry:
    """A target being measured: a spawned server (restartable) or a fixed address."""

    spec: TargetSpec
    server: SpawnedServer | None
    fixed: Bench | None
    result_kind: str
    version: str

    @property
    def log(self) -> Path | None:
        return self.server.log_path if self.server is not None else None


async def run_workload(
    bench: Bench,
    name: str,
    args: argparse.Namespace,
    provision: Provision,
    result: TargetResult,
    log: Path | None,
) -> None:
    """Run workload ``name`` once against ``bench``, bounded by ``--timeout``; record samples.

    A workload that failed once for a target is not run again for it.
    """
    if name in result.errors:
        return
    started = time.perf_counter()
    try:
        with trio.fail_after(args.timeout):
            figures = await _workload_calls(args, provision)[name](bench)
    except Exception as exc:  # noqa: BLE001 - report it, measure the rest
        result.errors[name] = _describe_failure(exc, args.timeout)
        if log is not None:
            print(f"  end of {result.name}'s log:\n{log_tail(log)}", file=sys.stderr)
    else:
        for key, value in figures.items():
            result.samples.setdefault(key, []).append(value)
    took = time.perf_counter() - started
    state = result.errors.get(name, "ok")
    print(f"  {result.name}: {name} {state} ({took:.1f} s)", file=sys.stderr)
    await trio.sleep(SETTLE)


def _make_entries(args: argparse.Namespace, specs: Sequence[TargetSpec], root: Path,
                  provision: Provision) -> list[Entry]:  # fmt: skip
    external_ssl = client_ssl_context(args.cafile, insecure=args.insecure)
    entries = []
    for spec in specs:
        if not spec.spawn:
            assert spec.target is not None
            bench = Bench(spec.target, provision.accounts, external_ssl, args.mechanism,
                          args.step_timeout)  # fmt: skip
            entries.append(Entry(spec, None, bench, spec.kind, ""))
            continue
        directory = root / spec.name
        server: SpawnedServer
        if spec.kind == "prosody":
            server = ProsodyServer(spec.name, directory, provision)
        elif spec.kind == "ejabberd":
            server = EjabberdServer(spec.name, directory, provision)
        else:
            items = args.privacy_items if spec.privacy else 0
            server = CasperServer(
                spec.name, directory, Provision(provision.accounts, provision.contacts, items),
                log_level=args.casper_log_level, source=spec.source, workers=spec.workers,
            )  # fmt: skip
        entries.append(Entry(spec, server, None, server.kind, server.version()))
    return entries


@contextlib.asynccontextmanager
async def _started(entry: Entry, args: argparse.Namespace) -> AsyncIterator[Bench]:
    if entry.server is None:
        assert entry.fixed is not None
        yield entry.fixed
        return

    def make_bench(target: Target, cafile: Path) -> Bench:
        return Bench(target, entry.server.provision.accounts, client_ssl_context(cafile),  # type: ignore[union-attr]
                     args.mechanism, args.step_timeout)  # fmt: skip

    cpu = (entry.spec.cpus or str(args.server_cpu)) if args.pin else None
    async with running(entry.server, make_bench, cpu=cpu) as bench:
        yield bench


def _plan(names: Sequence[str], rounds: range) -> list[str]:
    """The workloads of ``rounds`` in order, each first-round-only one in round 0 only."""
    return [n for r in rounds for n in names if not (r and n in FIRST_ROUND_ONLY)]


async def _session(entry: Entry, result: TargetResult, plan: Sequence[str],
                   args: argparse.Namespace, provision: Provision) -> None:  # fmt: skip
    """Start ``entry`` (if spawned), run ``plan`` on it, stop it; a failed start fails it."""
    if not plan:
        return
    try:
        async with _started(entry, args) as bench:
            result.target = asdict(bench.target)
            for name in plan:
                await run_workload(bench, name, args, provision, result, entry.log)
    except SpawnError as exc:
        for name in plan:
            result.errors.setdefault(name, f"server did not start: {exc}")
        print(f"  {result.name}: did not start: {exc}", file=sys.stderr)


async def run(
    args: argparse.Namespace, specs: Sequence[TargetSpec]
) -> dict[str, list[TargetResult]]:
    """Measure every target in every mode; see the module doc. Returns results per mode."""
    accounts = Accounts(args.user_prefix, args.users, args.password)
    contacts = args.contacts if "presence" in args.workloads else 0
    provision = Provision(accounts, contacts)
    if args.create_accounts is not None:
        await trio.to_thread.run_sync(
            create_accounts, args.create_accounts, args.domain, accounts, DEFAULT_ITERATIONS
        )
    out: dict[str, list[TargetResult]] = {}
    with tempfile.TemporaryDirectory(prefix="casper-bench-") as tmp:
        entries = _make_entries(args, specs, Path(tmp), provision)
        for mode in args.mode:
            print(f"casper.bench: {mode} mode", file=sys.stderr)
            results = [
                TargetResult(e.spec.name, asdict(e.spec.target) if e.spec.target else {},
                             kind=e.result_kind, version=e.version)
                for e in entries
            ]  # fmt: skip
            if mode == "fresh":  # a restart before every workload, targets alternating
                for name in _plan(args.workloads, range(args.repeat)):
                    for entry, result in zip(entries, results, strict=True):
                        await _session(entry, result, [name], args, provision)
            else:  # one long-lived server per target, all rounds on it
                plan = _plan(args.workloads, range(args.repeat))
                for entry, result in zip(entries, results, strict=True):
                    await _session(entry, result, plan, args, provision)
            for result in results:
                result.figures = {k: statistics.median(v) for k, v in result.samples.items()}
            out[mode] = results
    return out


def _summary(args: argparse.Namespace) -> str:
    parts = {
        "login": f"{args.logins} logins ({args.login_concurrency} at a time)",
        "chat": f"{args.pairs} pairs x {args.messages} messages ({args.in_flight} in flight)",
        "rate": f"{args.rate} msgs/s for {args.rate_seconds:g} s over {args.pairs} pairs",
        "presence": f"{args.updates} presences to {args.contacts} contacts",
        "idle": f"{args.idle} idle connections",
    }
    modes = "+".join(args.mode)
    pin = f"; servers on CPU {args.server_cpu}, bench on {args.bench_cpu}" if args.pin else ""
    return f"{modes}; " + "; ".join(parts[name] for name in args.workloads) + pin


def main(argv: list[str] | None = None) -> int:
    """Run the bench command line; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        specs = target_specs(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    busiest = max(args.idle * 11 // 10, 2 * args.pairs, args.contacts + 1)
    _raise_open_file_limit(busiest + args.login_concurrency + 256)
    if args.pin:
        os.sched_setaffinity(0, {args.bench_cpu})  # before trio starts its threads
    print(f"casper.bench: {_summary(args)}", file=sys.stderr)
    modes = trio.run(run, args, specs)
    print("\n\n".join(format_table(results, f"{mode} mode") for mode, results in modes.items()))
    if args.json is not None:
        params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        params.pop("password", None)
        args.json.write_text(json.dumps(to_json(params, modes), indent=2) + "\n")
    return EXIT_FAILED if any(r.errors for rs in modes.values() for r in rs) else 0
