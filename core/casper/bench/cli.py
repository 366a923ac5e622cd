"""``python -m casper.bench``: measure one or more XMPP servers and print figures and ratios.

::

    python -m casper.bench --spawn-casper                       # a fresh Casper, default sizes
    python -m casper.bench --host 127.0.0.1 --port 5222 --domain localhost \\
        --users 100 --password secret --cafile cert.pem [--server-pid PID]
    python -m casper.bench --spawn-casper --target prosody=127.0.0.1:5322:localhost:PID \\
        --insecure --json out.json

Targets, in this order: the ``--spawn-casper`` one, the ``--host`` one, then every
``--target NAME=HOST:PORT:DOMAIN[:PID]`` (``NAME=spawn`` spawns a Casper). They are measured
interleaved, never concurrently: each of ``--repeat`` rounds runs each workload on every target
in turn, so background noise hits them alike, and a figure is the median over the rounds.
Memory is measured in the first round only: a server keeps the memory its closed connections
freed, so a later round would measure the reuse of that memory. The first target is the
baseline: every figure of a later target is also printed as a ratio ``target / baseline``
measured in the same run. Whether higher or lower is better is printed next to each figure.
With a PID (given, or of a spawned Casper) the server's RSS and CPU time are read from
``/proc``.

Accounts ``{prefix}0`` .. ``{prefix}{users-1}`` with one password must exist on every target
not spawned (``--create-accounts DATA_DIR`` adds them to a Casper data directory for
``--domain``). For Prosody: ``prosodyctl register bench$i localhost secret``; for ejabberd:
``ejabberdctl register bench$i localhost secret`` (its default ``max_user_sessions`` is 10:
keep ``idle / users`` at most 10). The spawned Casper's certificate is trusted automatically;
other targets need ``--cafile`` or ``--insecure``.

Exit status: 0 when every workload succeeded, 1 when one failed (its figures are missing and
the reason is printed), 2 for a usage error. Only loopback addresses are accepted unless
``--allow-remote``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import resource
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from casper.bench.client import SCRAM_PREFERENCE, client_ssl_context
from casper.bench.report import TargetResult, format_table, to_json
from casper.bench.spawn import SpawnError, create_accounts, log_tail, spawned_casper
from casper.bench.workloads import (
    Accounts,
    Bench,
    Target,
    measure_chat,
    measure_idle,
    measure_logins,
)
from casper.sasl.scram import DEFAULT_ITERATIONS

WORKLOADS = ("login", "chat", "idle")
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
    """A target as given on the command line: ``spawn`` or an address."""

    name: str
    spawn: bool = False
    target: Target | None = None


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
    return TargetSpec(name, target=Target(name, host, int(parts[0]), parts[1], pid))


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


def _workloads(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(WORKLOADS)}, got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``python -m casper.bench`` command line."""
    p = argparse.ArgumentParser(
        prog="python -m casper.bench",
        description="Drive XMPP clients over loopback sockets and print figures.",
    )
    t = p.add_argument_group("targets (the first one is the baseline for ratios)")
    t.add_argument("--spawn-casper", action="store_true", help="measure a fresh casper serve")
    t.add_argument("--host", help="a running server's address (target 'server')")
    t.add_argument("--port", type=int, default=5222, help="its c2s port (default 5222)")
    t.add_argument("--domain", default="localhost", help="its XMPP domain (default localhost)")
    t.add_argument("--server-pid", type=int, metavar="PID", help="its PID, for memory figures")
    t.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT:DOMAIN[:PID]",
        help="another target, repeatable; NAME=spawn spawns a Casper",
    )
    t.add_argument("--allow-remote", action="store_true", help="accept non-loopback hosts")
    s = p.add_argument_group("TLS and accounts")
    s.add_argument("--cafile", type=Path, help="PEM file of certificates to trust")
    s.add_argument("--insecure", action="store_true", help="skip certificate verification")
    s.add_argument("--mechanism", choices=SCRAM_PREFERENCE, help="force a SCRAM mechanism")
    s.add_argument("--user-prefix", default="bench", help="account names (default bench)")
    s.add_argument("--users", type=_positive, default=100, help="accounts (default 100)")
    s.add_argument("--password", default="secret", help="their password (default secret)")
    s.add_argument(
        "--create-accounts",
        type=Path,
        metavar="DATA_DIR",
        help="add missing accounts to this Casper data dir for --domain first",
    )
    w = p.add_argument_group("workloads")
    w.add_argument(
        "--workloads",
        type=_workloads,
        default=WORKLOADS,
        metavar="A,B",
        help=f"subset of {','.join(WORKLOADS)} (default all)",
    )
    w.add_argument("--logins", type=_positive, default=200, help="login cycles (default 200)")
    w.add_argument("--login-concurrency", type=_positive, default=10, help="(default 10)")
    w.add_argument("--pairs", type=_positive, default=20, help="chat pairs (default 20)")
    w.add_argument("--messages", type=_positive, default=200, help="per pair (default 200)")
    w.add_argument("--in-flight", type=_positive, default=10, help="per pair (default 10)")
    w.add_argument("--warmup", type=int, default=10, help="untimed messages per pair first")
    w.add_argument("--idle", type=_positive, default=500, help="idle connections (default 500)")
    w.add_argument("--idle-concurrency", type=_positive, default=20, help="(default 20)")
    w.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        help="rounds; each figure is the median over them (default 1)",
    )
    w.add_argument("--timeout", type=float, default=60.0, help="seconds per workload (60)")
    w.add_argument("--step-timeout", type=float, default=10.0, help="seconds per login/message")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    o.add_argument("--casper-log-level", default="warning", help="log level of spawned Caspers")
    return p


def target_specs(args: argparse.Namespace) -> list[TargetSpec]:
    """Return the targets in measuring order; raise UsageError for bad or remote ones."""
    specs = [TargetSpec("casper", spawn=True)] if args.spawn_casper else []
    if args.host is not None:
        target = Target("server", args.host, args.port, args.domain, args.server_pid)
        specs.append(TargetSpec("server", target=target))
    specs += [parse_target(text) for text in args.target]
    if not specs:
        raise UsageError("nothing to measure: give --spawn-casper, --host or --target")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"target names must differ: {', '.join(names)}")
    for spec in specs:
        if spec.target is not None and not args.allow_remote:
            check_loopback(spec.target.host)
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


def _workload_calls(args: argparse.Namespace) -> dict[str, Callable[[Bench], Awaitable[dict]]]:
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
        "idle": lambda b: measure_idle(b, connections=args.idle, concurrency=args.idle_concurrency),
    }


async def run_workload(
    bench: Bench, name: str, args: argparse.Namespace, result: TargetResult, log: Path | None
) -> None:
    """Run workload ``name`` once against ``bench``, bounded by ``--timeout``; record samples.

    A workload that failed once for a target is not run again for it.
    """
    if name in result.errors:
        return
    started = time.perf_counter()
    try:
        with trio.fail_after(args.timeout):
            figures = await _workload_calls(args)[name](bench)
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


async def run(args: argparse.Namespace, specs: Sequence[TargetSpec]) -> list[TargetResult]:
    """Measure every target, interleaved: each round runs each workload on every target in turn.

    Spawned Caspers run for the whole measurement. A figure is the median over the rounds.
    """
    accounts = Accounts(args.user_prefix, args.users, args.password)
    if args.create_accounts is not None:
        await trio.to_thread.run_sync(
            create_accounts, args.create_accounts, args.domain, accounts, DEFAULT_ITERATIONS
        )
    external_ssl = client_ssl_context(args.cafile, insecure=args.insecure)
    async with contextlib.AsyncExitStack() as stack:
        entries: list[tuple[Bench, Path | None]] = []
        for spec in specs:
            if spec.spawn:
                server = await stack.enter_async_context(
                    spawned_casper(accounts, name=spec.name, log_level=args.casper_log_level)
                )
                context = client_ssl_context(server.cafile)
                bench = Bench(server.target, accounts, context, args.mechanism, args.step_timeout)
                entries.append((bench, server.log_path))
            else:
                assert spec.target is not None
                bench = Bench(
                    spec.target, accounts, external_ssl, args.mechanism, args.step_timeout
                )
                entries.append((bench, None))
        results = [TargetResult(b.target.name, asdict(b.target)) for b, _ in entries]
        for round_ in range(args.repeat):
            for name in args.workloads:
                if round_ and name in FIRST_ROUND_ONLY:
                    continue
                for (bench, log), result in zip(entries, results, strict=True):
                    await run_workload(bench, name, args, result, log)
    for result in results:
        result.figures = {k: statistics.median(v) for k, v in result.samples.items()}
    return results


def _summary(args: argparse.Namespace) -> str:
    parts = {
        "login": f"{args.logins} logins ({args.login_concurrency} at a time)",
        "chat": f"{args.pairs} pairs x {args.messages} messages ({args.in_flight} in flight)",
        "idle": f"{args.idle} idle connections",
    }
    return "; ".join(parts[name] for name in args.workloads)


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
    _raise_open_file_limit(args.idle * 11 // 10 + 2 * args.pairs + args.login_concurrency + 256)
    print(f"casper.bench: {_summary(args)}", file=sys.stderr)
    try:
        results = trio.run(run, args, specs)
    except SpawnError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(format_table(results))
    if args.json is not None:
        params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        params.pop("password", None)
        args.json.write_text(json.dumps(to_json(params, results), indent=2) + "\n")
    return EXIT_FAILED if any(r.errors for r in results) else 0
