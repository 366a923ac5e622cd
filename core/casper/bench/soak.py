"""``python -m casper.bench.soak``: many clients churning against one Casper for a while;
prints the server's memory, open file descriptors and sessions over time.

::

    python -m casper.bench.soak                                   # 500 clients, 60 s
    python -m casper.bench.soak --clients 3000 --duration 600 --sample 10 --json soak.json

A fresh ``casper serve`` is spawned on a free loopback port (temporary data directory,
``xep0018`` enabled, the connection and stanza-rate limits off, the ``/health`` endpoint on
another free port). Every account has its neighbours as mutual contacts, so presence fans
out. Each of ``--clients`` client slots then loops until the duration is over: log in
(STARTTLS, SCRAM, bind), become available (or XEP-0018 invisible), do a few random things
a second or two apart (chat with a random account, online or not, so offline storage fills
and drains; go invisible or visible, to all or to one contact; change its show), and
disconnect, either properly or by dropping the TCP connection. Slots start spread over the
first tenth of the run.

Every ``--sample`` seconds one line shows the server's RSS and open file descriptors (from
``/proc/PID``), its threads, the sessions it has bound (``/health``) and the client side's
counters. At the end every client disconnects and, once the server reports no session, a
final sample is taken. The summary compares memory after warm-up with memory at the end of
the load (growth, slope per minute and per login) and the file descriptors before any
client with those after the last one left: a leak shows as memory that keeps climbing (look at the second half: Python
and SQLite keep what they once allocated, so memory grows while caches warm up) or fds that
do not come back.

Only loopback is used; every wait is bounded; the server is stopped (SIGINT, then SIGKILL)
and its temporary directory removed at the end. Exit status 0 when no fd leaked and the
server ended with no session, 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import socket
import ssl
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

from casper.bench.client import BenchClient, XMPPFailure, client_ssl_context, login
from casper.jid import JID
from casper.sasl import derive_credentials
from casper.storage import RosterItem, open_storage
from casper.tls import ensure_certificate
from casper.xml import STREAM_CLOSE

LOOPBACK = "127.0.0.1"
DOMAIN = "localhost"
PASSWORD = "secret"
PREFIX = "soak"
NEIGHBOURS = 2  # contacts on each side: account i has i-2 .. i+2 as mutual contacts
STOP_TIMEOUT = 10.0
SETTLE_TIMEOUT = 30.0
FD_TOLERANCE = 2  # fds the server may legitimately hold beyond its idle baseline
_MESSAGE = "{jabber:client}message"


@dataclass
class Counters:
    """What the clients did, cumulatively."""

    connected: int = 0
    logins: int = 0
    sessions: int = 0
    dropped: int = 0  # sessions ended by closing TCP without </stream:stream>
    sent: int = 0
    received: int = 0
    visibility: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int
    threads: int
    server_sessions: int | None
    clients: int
    logins: int
    sent: int
    received: int
    errors: int


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def prepare(root: Path, accounts: int, port: int, http_port: int, log_level: str) -> Path:
    """Write the config, the accounts with their rosters and the certificate; return the
    config file. Blocking."""
    data = root / "data"
    quote = json.dumps
    config = root / "casper.toml"
    config.write_text(
        f"[server]\ndomain = {quote(DOMAIN)}\nhost = {quote(LOOPBACK)}\nport = {port}\n"
        f"tls_port = false\ndata_dir = {quote(str(data))}\n"
        "[limits]\nmax_connections_per_ip = false\nstanza_rate = false\n"
        f'[plugins]\nenable = ["xep0018"]\n[http]\nport = {http_port}\n'
        f"[log]\nlevel = {quote(log_level)}\n",
        encoding="utf-8",
    )
    credentials = derive_credentials(PASSWORD)
    jids = [str(JID.make(f"{PREFIX}{i}", DOMAIN)) for i in range(accounts)]
    with open_storage(data) as storage:
        for jid in jids:
            storage.create_account(jid, credentials)
        for i, jid in enumerate(jids):
            for step in range(1, NEIGHBOURS + 1):
                for j in (i - step, i + step):
                    if 0 <= j < accounts:
                        storage.put_roster_item(jid, RosterItem(jids[j], subscription="both"))
    ensure_certificate(data, DOMAIN)
    return config


@asynccontextmanager
async def spawned_server(root: Path, config: Path, port: int) -> AsyncIterator[trio.Process]:
    log = (root / "server.log").open("ab")
    command = [sys.executable, "-m", "casper", "serve", "--config", str(config)]
    process = await trio.lowlevel.open_process(command, stdout=log, stderr=log, cwd=root)
    try:
        with trio.fail_after(30):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"casper serve exited with {process.returncode}")
                try:
                    probe = await trio.open_tcp_stream(LOOPBACK, port)
                except OSError:
                    await trio.sleep(0.05)
                    continue
                await probe.aclose()
                break
        yield process
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                with trio.move_on_after(STOP_TIMEOUT):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            log.close()


def proc_figures(pid: int) -> tuple[int, int, int]:
    """``(VmRSS KiB, open fds, threads)`` of process ``pid``."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


async def server_sessions(http_port: int) -> int | None:
    """Bound sessions as the server counts them (``GET /health``), or None if unavailable."""
    try:
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream(LOOPBACK, http_port)
            async with stream:
                await stream.send_all(
                    b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                )
                data = b""
                while chunk := await stream.receive_some(65536):
                    data += chunk
        return int(json.loads(data.partition(b"\r\n\r\n")[2])["sessions"])
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, ValueError, KeyError):
        return None


# ---------------------------------------------------------------- the clients


@dataclass
class Soak:
    port: int
    accounts: int
    deadline: float
    ssl_context: ssl.SSLContext
    step_timeout: float
    counters: Counters
    seed: int

    async def slot(self, index: int, ramp: float) -> None:
        """One client slot: sessions one after the other until the deadline."""
        rng = random.Random(self.seed * 1_000_003 + index)
        await trio.sleep(rng.uniform(0, ramp))
        session = 0
        while trio.current_time() < self.deadline - 2:
            session += 1
            try:
                with trio.fail_after(self.step_timeout):
                    client = await login(
                        LOOPBACK,
                        self.port,
                        DOMAIN,
                        f"{PREFIX}{index % self.accounts}",
                        PASSWORD,
                        ssl_context=self.ssl_context,
                        resource=f"s{index}-{session}",
                    )
            except (
                XMPPFailure,
                OSError,
                ssl.SSLError,
                trio.TooSlowError,
                trio.BrokenResourceError,
            ) as exc:
                self.counters.errors[f"login: {_reason(exc)}"] += 1
                await trio.sleep(1)
                continue
            self.counters.logins += 1
            self.counters.connected += 1
            try:
                await self._session(client, rng)
            except (
                XMPPFailure,
                OSError,
                ssl.SSLError,
                trio.TooSlowError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ) as exc:
                self.counters.errors[f"session: {_reason(exc)}"] += 1
            finally:
                self.counters.connected -= 1
                self.counters.sessions += 1
            await trio.sleep(rng.uniform(0.1, 1.0))

    async def _session(self, client: BenchClient, rng: random.Random) -> None:
        invisible = rng.random() < 0.3
        reader_done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, client, reader_done)
            await client.send(b"<presence type='invisible'/>" if invisible else b"<presence/>")
            for _ in range(rng.randint(4, 16)):
                await trio.sleep(rng.uniform(0.5, 2.5))
                if trio.current_time() >= self.deadline:
                    break
                action = rng.random()
                peer = f"{PREFIX}{rng.randrange(self.accounts)}@{DOMAIN}"
                if action < 0.6:
                    body = f"soak {rng.getrandbits(64):x}"
                    await client.send(
                        f"<message to='{peer}' type='chat'><body>{body}</body></message>".encode()
                    )
                    self.counters.sent += 1
                elif action < 0.8:
                    invisible = not invisible
                    kind = "invisible" if invisible else "visible"
                    await client.send(f"<presence type='{kind}'/>".encode())
                    self.counters.visibility += 1
                elif action < 0.9:
                    kind = rng.choice(["visible", "invisible"])
                    await client.send(f"<presence to='{peer}' type='{kind}'/>".encode())
                    self.counters.visibility += 1
                else:
                    show = rng.choice(["away", "chat", "dnd", "xa"])
                    await client.send(f"<presence><show>{show}</show></presence>".encode())
            if rng.random() < 0.25:
                self.counters.dropped += 1  # TCP closed under the stream: no goodbye
            else:  # </stream:stream>, then wait for the server's (the reader sees it)
                await client.send(STREAM_CLOSE)
                with trio.move_on_after(self.step_timeout):
                    await reader_done.wait()
            nursery.cancel_scope.cancel()
        await client.aclose(graceful=False)

    async def _read(self, client: BenchClient, done: trio.Event) -> None:
        try:
            while True:
                element = await client.receive()
                if element.tag == _MESSAGE:
                    self.counters.received += 1
        except (
            XMPPFailure,
            OSError,
            ssl.SSLError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ):
            return
        finally:
            done.set()


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, XMPPFailure) else type(exc).__name__


# ---------------------------------------------------------------- running and reporting


def _line(sample: Sample) -> str:
    sessions = "?" if sample.server_sessions is None else sample.server_sessions
    return (
        f"t={sample.t:6.1f}s  rss={sample.rss_kib / 1024:7.1f} MiB  fds={sample.fds:5d}  "
        f"threads={sample.threads:2d}  server_sessions={sessions!s:>5}  "
        f"clients={sample.clients:5d}  logins={sample.logins:6d}  sent={sample.sent:6d}  "
        f"received={sample.received:6d}  errors={sample.errors}"
    )


async def _take(pid: int, http_port: int, start: float, counters: Counters) -> Sample:
    rss, fds, threads = proc_figures(pid)
    return Sample(
        round(trio.current_time() - start, 1),
        rss,
        fds,
        threads,
        await server_sessions(http_port),
        counters.connected,
        counters.logins,
        counters.sent,
        counters.received,
        sum(counters.errors.values()),
    )


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs`` (0 if undefined)."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def _slope_mib_per_min(samples: list[Sample]) -> float:
    """RSS growth over time."""
    return 60 * _slope([s.t for s in samples], [s.rss_kib / 1024 for s in samples])


def _kib_per_login(samples: list[Sample]) -> float:
    """RSS growth per login: a leak costs memory per session, warm caches do not."""
    return _slope([float(s.logins) for s in samples], [float(s.rss_kib) for s in samples])


async def run(args: argparse.Namespace) -> dict[str, object]:
    counters = Counters()
    with tempfile.TemporaryDirectory(prefix="casper-soak-") as tmp:
        root = Path(tmp)
        port, http_port = free_port(), free_port()
        config = await trio.to_thread.run_sync(
            prepare, root, args.accounts, port, http_port, args.log_level
        )
        async with spawned_server(root, config, port) as process:
            await trio.sleep(1)  # let the server settle before the baseline
            start = trio.current_time()
            baseline = await _take(process.pid, http_port, start, counters)
            print(_line(baseline), " (baseline, no client)", flush=True)
            samples = [baseline]
            soak = Soak(
                port,
                args.accounts,
                start + args.duration,
                client_ssl_context(root / "data" / "tls" / "cert.pem"),
                args.step_timeout,
                counters,
                args.seed,
            )

            async def sample_until_done() -> None:
                while trio.current_time() < soak.deadline:
                    await trio.sleep(args.sample)
                    samples.append(await _take(process.pid, http_port, start, counters))
                    print(_line(samples[-1]), flush=True)

            async with trio.open_nursery() as outer:
                outer.start_soon(sample_until_done)
                # slots end by themselves after the deadline; this bounds a stuck one
                with trio.move_on_after(args.duration + 2 * args.step_timeout + 10):
                    async with trio.open_nursery() as slots:
                        for index in range(args.clients):
                            slots.start_soon(soak.slot, index, args.duration / 10)
                outer.cancel_scope.cancel()
            with trio.move_on_after(SETTLE_TIMEOUT):
                while await server_sessions(http_port) not in (0, None):
                    await trio.sleep(0.5)
            await trio.sleep(1)
            final = await _take(process.pid, http_port, start, counters)
            print(_line(final), " (all clients gone)", flush=True)
            log_text = (root / "server.log").read_text(errors="replace")
    loaded = [s for s in samples[1:] if s.t >= args.duration * 0.25]
    second_half = [s for s in samples[1:] if s.t >= args.duration * 0.5]
    warm = loaded[0] if loaded else final
    end_load = samples[-1]
    summary = {
        "clients": args.clients,
        "accounts": args.accounts,
        "duration_s": args.duration,
        "logins": counters.logins,
        "sessions_ended": counters.sessions,
        "dropped_connections": counters.dropped,
        "messages_sent": counters.sent,
        "messages_received": counters.received,
        "visibility_changes": counters.visibility,
        "errors": dict(counters.errors),
        "rss_baseline_mib": round(baseline.rss_kib / 1024, 1),
        "rss_after_warmup_mib": round(warm.rss_kib / 1024, 1),
        "rss_peak_mib": round(max(s.rss_kib for s in samples) / 1024, 1),
        "rss_end_of_load_mib": round(end_load.rss_kib / 1024, 1),
        "rss_after_clients_gone_mib": round(final.rss_kib / 1024, 1),
        "rss_growth_after_warmup_mib": round((end_load.rss_kib - warm.rss_kib) / 1024, 1),
        "rss_slope_after_warmup_mib_per_min": round(_slope_mib_per_min(loaded), 2),
        "rss_growth_second_half_mib": round(
            (end_load.rss_kib - (second_half or [end_load])[0].rss_kib) / 1024, 1
        ),
        "rss_slope_second_half_mib_per_min": round(_slope_mib_per_min(second_half), 2),
        "logins_second_half": end_load.logins - (second_half or [end_load])[0].logins,
        "rss_per_login_second_half_kib": round(_kib_per_login(second_half), 3),
        "fds_baseline": baseline.fds,
        "fds_peak": max(s.fds for s in samples),
        "fds_after_clients_gone": final.fds,
        "fd_leak": final.fds - baseline.fds > FD_TOLERANCE,
        "server_sessions_after": final.server_sessions,
        "threads_after": final.threads,
        "server_tracebacks": log_text.count("Traceback"),
        "samples": [asdict(s) for s in [*samples, final]],
    }
    return summary


def _print_summary(summary: dict[str, object]) -> None:
    print()
    print(
        f"clients {summary['clients']} on {summary['accounts']} accounts for "
        f"{summary['duration_s']} s: {summary['logins']} logins, "
        f"{summary['dropped_connections']} dropped connections, "
        f"{summary['messages_sent']} messages sent / {summary['messages_received']} received, "
        f"{summary['visibility_changes']} visibility changes"
    )
    print(
        f"errors: {summary['errors'] or 'none'}; server tracebacks: {summary['server_tracebacks']}"
    )
    print(
        f"memory (RSS, MiB): baseline {summary['rss_baseline_mib']}, after warm-up "
        f"{summary['rss_after_warmup_mib']}, peak {summary['rss_peak_mib']}, end of load "
        f"{summary['rss_end_of_load_mib']}, all clients gone "
        f"{summary['rss_after_clients_gone_mib']}; after warm-up "
        f"{summary['rss_growth_after_warmup_mib']:+} MiB, slope "
        f"{summary['rss_slope_after_warmup_mib_per_min']:+} MiB/min; second half "
        f"{summary['rss_growth_second_half_mib']:+} MiB, slope "
        f"{summary['rss_slope_second_half_mib_per_min']:+} MiB/min, "
        f"{summary['rss_per_login_second_half_kib']:+} KiB per login "
        f"({summary['logins_second_half']} logins)"
    )
    print(
        f"file descriptors: baseline {summary['fds_baseline']}, peak {summary['fds_peak']}, "
        f"all clients gone {summary['fds_after_clients_gone']} -> "
        f"{'LEAK' if summary['fd_leak'] else 'no leak'}; server sessions left: "
        f"{summary['server_sessions_after']}; threads: {summary['threads_after']}"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m casper.bench.soak", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--clients", type=_positive, default=500, help="client slots (default 500)")
    p.add_argument("--accounts", type=_positive, help="accounts (default: one per client)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples (5)")
    p.add_argument("--step-timeout", type=float, default=20.0, help="seconds per login/close")
    p.add_argument("--seed", type=int, default=1, help="random seed of the clients' choices")
    p.add_argument("--log-level", default="warning", help="of the spawned server")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write figures as JSON")
    return p


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard == resource.RLIM_INFINITY else min(hard, max(soft, wanted))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    args.accounts = args.accounts or args.clients
    if args.duration <= 0 or args.sample <= 0:
        print("soak: error: --duration and --sample must be positive", file=sys.stderr)
        return 2
    _raise_fd_limit(4 * args.clients + 256)  # clients here; the server inherits the limit
    began = time.monotonic()
    summary = trio.run(run, args)
    _print_summary(summary)
    print(f"(wall time {time.monotonic() - began:.0f} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    ok = not summary["fd_leak"] and summary["server_sessions_after"] in (0, None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
