"""``casper compare``: run the catalogue, print the matrix, write the reports.

::

    casper compare [--strategies A,B,C+D] [--scenarios X,Y] [--catalogue DIR] [--list]
                   [--json FILE] [--markdown FILE] [--html FILE]
                   [--target NAME=HOST:PORT --domain D --account [ROLE=]USER:PASSWORD ...
                    [--muc DOMAIN] [--via A,B] [--insecure | --cafile PEM] [--only-target]]
                   [--parallel N] [--timeout S] [--no-progress] [--verbose]

Without ``--strategies``, every built-in strategy whose plugin is installed runs, with
``none`` (no hiding at all) first as the reference. A target needs four accounts, for the
roles user, friend, colleague and stranger (in that order, or named: ``friend=bob:pw``);
its columns are ``NAME/STRATEGY``, one per ``--via`` strategy (default: all of them).

Error handling: a mistake the user can fix (unknown strategy, bad ``--target``, missing
accounts, an unreachable target, an account that cannot log in, an unwritable file)
prints ``casper compare: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import trio

from casper.bench.client import client_ssl_context

from .catalogue import ROLES, CatalogueError, load_catalogue, select
from .report import Report
from .runner import (
    Plan,
    Runner,
    Target,
    TargetError,
    casper_plan,
    check_target,
    default_strategies,
    target_plan,
)
from .servers import local_tls
from .strategies import ADAPTERS
from .text import ProgressBar, markdown, terminal_table

EXIT_USAGE = 2


class UsageError(Exception):
    pass


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="casper compare",
        description=(
            "Run the invisibility scenario catalogue against each strategy (and foreign servers) "
            "and report what each hides, leaks and costs."
        ),
    )
    p.add_argument(
        "--strategies",
        type=_names,
        metavar="A,B,C+D",
        help=f"columns to run on Casper (known: {', '.join(ADAPTERS)}; '+' combines)",
    )
    p.add_argument("--scenarios", type=_names, metavar="X,Y", help="run only these scenarios")
    p.add_argument(
        "--catalogue", type=Path, metavar="DIR", help="scenario directory (default: shipped)"
    )
    p.add_argument(
        "--list", action="store_true", help="list the scenarios and strategies, run nothing"
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full report as JSON")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="write the matrix as Markdown")
    p.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
    t = p.add_argument_group("auditing another server")
    t.add_argument(
        "--target", metavar="NAME=HOST:PORT", help="a foreign XMPP server (c2s, STARTTLS)"
    )
    t.add_argument("--domain", help="the target's XMPP domain")
    t.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="[ROLE=]USER:PASSWORD",
        help="an account on the target; give four: user, friend, colleague, stranger",
    )
    t.add_argument("--muc", metavar="DOMAIN", help="the target's MUC service, for the room checks")
    t.add_argument(
        "--via", type=_names, metavar="A,B", help="strategies to try on the target (default: all)"
    )
    t.add_argument("--insecure", action="store_true", help="do not verify the target's certificate")
    t.add_argument(
        "--cafile", type=Path, metavar="PEM", help="trust these certificates for the target"
    )
    t.add_argument("--only-target", action="store_true", help="run no Casper columns")
    r = p.add_argument_group("running")
    r.add_argument(
        "--parallel", type=int, default=8, metavar="N", help="Casper worlds in flight (default 8)"
    )
    r.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="longest wait for one answer"
    )
    r.add_argument(
        "--grace",
        type=float,
        default=0.3,
        metavar="S",
        help="extra wait after each barrier on a target (default 0.3)",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    r.add_argument("--verbose", action="store_true", help="show the servers' warnings")
    return p


def parse_target(args: argparse.Namespace) -> Target | None:
    if args.target is None:
        if args.domain or args.account or args.muc or args.via or args.only_target:
            raise UsageError("--domain, --account, --muc, --via and --only-target need --target")
        return None
    name, eq, address = args.target.partition("=")
    host, colon, port_text = address.rpartition(":")
    if (
        not eq
        or not name
        or not colon
        or not host
        or not port_text.isdigit()
        or not 0 < int(port_text) < 65536
    ):
        raise UsageError(f"--target must look like NAME=HOST:PORT, got {args.target!r}")
    if not args.domain:
        raise UsageError("--target needs --domain (the target's XMPP domain)")
    accounts = parse_accounts(args.account, args.domain)
    if args.insecure and args.cafile:
        raise UsageError("--insecure and --cafile exclude each other")
    try:
        context = client_ssl_context(args.cafile, insecure=args.insecure)
    except OSError as exc:
        raise UsageError(f"cannot read --cafile {args.cafile}: {exc.strerror or exc}") from None
    return Target(
        name, host.strip("[]"), int(port_text), args.domain.lower(), accounts, context, args.muc
    )


def parse_accounts(given: Sequence[str], domain: str) -> dict[str, tuple[str, str]]:
    """``[ROLE=]USER:PASSWORD`` options: named roles first, the others fill the roles in order."""
    named: list[tuple[str, str]] = []
    positional: list[str] = []
    for text in given:
        role, eq, rest = text.partition("=")
        if eq and role in ROLES:
            named.append((role, rest))
        else:
            positional.append(text)
    free = [r for r in ROLES if r not in {role for role, _ in named}]
    if len(positional) > len(free):
        raise UsageError(f"too many --account options (the roles are {', '.join(ROLES)})")
    accounts: dict[str, tuple[str, str]] = {}
    for role, text in named + list(zip(free, positional)):
        user, colon, password = text.partition(":")
        if not colon or not user or not password:
            raise UsageError(
                f"--account must look like [ROLE=]USER:PASSWORD, got {user!r} without a password"
            )
        local, at, host = user.partition("@")
        if at and host.lower() != domain.lower():
            raise UsageError(f"account {user} is not on the target's domain {domain}")
        if role in accounts:
            raise UsageError(f"two accounts for the role {role}")
        accounts[role] = (local, password)
    missing = [r for r in ROLES if r not in accounts]
    if missing:
        raise UsageError(
            f"the target needs an account for {', '.join(missing)} "
            f"(roles: {', '.join(ROLES)}; give --account four times)"
        )
    users = [u.lower() for u, _ in accounts.values()]
    if len(set(users)) != len(users):
        raise UsageError("each role needs its own account")
    return accounts


def make_plans(args: argparse.Namespace, target: Target | None) -> list[Plan]:
    plans: list[Plan] = []
    specs = (
        args.strategies
        if args.strategies is not None
        else ([] if args.only_target else default_strategies())
    )
    try:
        plans += [casper_plan(spec) for spec in specs]
        if target is not None:
            plans += [target_plan(target, spec) for spec in (args.via or list(ADAPTERS))]
    except KeyError as exc:
        raise UsageError(
            f"unknown strategy {exc.args[0]!r}; known: {', '.join(ADAPTERS)}"
        ) from None
    ids = [p.column.id for p in plans]
    if len(set(ids)) != len(ids):
        raise UsageError("a column is listed twice")
    if not plans:
        raise UsageError("nothing to run: no strategies and no target")
    return plans


def _list(args: argparse.Namespace) -> int:
    for scenario in select(load_catalogue(args.catalogue), args.scenarios):
        print(f"{scenario.id:<24} {scenario.title} ({len(scenario.checks)} checks)")
    print()
    for name, (adapter, plugins) in ADAPTERS.items():
        print(
            f"{name:<24} {adapter.summary}"
            + (f" [plugins: {', '.join(plugins)}]" if plugins else "")
        )
    return 0


async def _run(args: argparse.Namespace, plans: list[Plan], target: Target | None) -> Report:
    scenarios = select(load_catalogue(args.catalogue), args.scenarios)
    if target is not None:
        await check_target(target, args.timeout)
    bar = None if args.no_progress else ProgressBar()
    start = trio.current_time()

    def progress(done: int, total: int, label: str) -> None:
        if bar is not None:
            bar(done, total, label, trio.current_time() - start)

    with local_tls() as tls:
        runner = Runner(
            scenarios,
            plans,
            tls=tls,
            parallel=max(1, args.parallel),
            timeout=args.timeout,
            target_grace=args.grace,
            progress=progress,
        )
        report = await runner.run()
    try:
        report.casper_version = version("casper-xmpp")
    except PackageNotFoundError:
        pass
    return report


def write_outputs(report: Report, args: argparse.Namespace) -> None:
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    if args.markdown is not None:
        args.markdown.write_text(markdown(report), encoding="utf-8")
    if args.html is not None:
        from .html import html_report

        args.html.write_text(html_report(report), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``casper compare`` with ``argv``; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.ERROR)
    try:
        if args.list:
            return _list(args)
        target = parse_target(args)
        plans = make_plans(args, target)
        for path in (args.json, args.markdown, args.html):
            if path is not None and not path.resolve().parent.is_dir():
                raise UsageError(f"cannot write {path}: no such directory {path.parent}")
        report = trio.run(_run, args, plans, target)
        sys.stdout.write(terminal_table(report, colour=sys.stdout.isatty()))
        write_outputs(report, args)
    except (UsageError, CatalogueError, TargetError) as exc:
        print(f"casper compare: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(
            f"casper compare: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_USAGE
    return 0
