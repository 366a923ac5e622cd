"""The measured workloads: login rate, chat throughput and latency, memory per idle connection.

Each workload takes a :class:`Bench` (where to connect, as whom, how) and returns a flat dict
of figures; the caller decides how to print and compare them. Every figure is measured from
the client side over real sockets, so the same workload runs against any XMPP server.

- :func:`measure_logins`: ``count`` full cycles (TCP connect, STARTTLS, SCRAM, bind, initial
  presence, ``</stream:stream>`` exchange) by ``concurrency`` workers. Figures: ``logins_per_s``
  (cycles per second of wall time), ``login_p50_ms``/``login_p99_ms`` (connect to bound).
- :func:`measure_chat`: ``pairs`` sender/receiver pairs on separate connections; each sender
  keeps ``in_flight`` messages outstanding until ``messages`` have arrived. A message body is
  the sender's ``time.perf_counter_ns()``, so the latency needs no clock synchronisation (both
  ends live in this process). Figures: ``messages_per_s`` (all pairs, first send to last
  receipt), ``message_p50_ms``/``message_p99_ms``.
- :func:`measure_idle`: open ``connections`` logged-in, available connections (after a few
  warm-up ones) and read the server's ``VmRSS`` from ``/proc/PID/status`` before and after. Figure:
  ``kb_per_idle_connection`` (omitted without a PID).

Login and chat also report ``{login,chat}_client_cpu_pct`` and, with a PID,
``{login,chat}_server_cpu_pct``: CPU time over the timed phase's wall time (one core = 100).
The clients run in one thread, so a client figure near 100 means the bench, not the server,
set the pace; compare servers then by server CPU per operation rather than by rate.

Error handling: a refused step raises :class:`~casper.bench.client.XMPPFailure`; a message
bounced back to a sender raises it too, rather than waiting for a message that never comes.
Every wait is bounded: each login by ``step_timeout``, each gap between received messages too.

Resource handling: every connection a workload opens is closed before it returns, gracefully
and concurrently, within a bounded time, even when the workload fails or is cancelled.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from casper.bench.client import CLIENT_NS, BenchClient, XMPPFailure, login
from casper.busywait import BusyWait
from casper.sasl.scram_client import ScramKeyCache
from casper.xml import escape_attr

PRESENCE = b"<presence/>"
CLOSE_TIMEOUT = 10.0
GENERATOR_BUSY_WAIT = 0.002  # seconds the fixed-rate generator polls after work (> its gaps)
_MESSAGE = f"{{{CLIENT_NS}}}message"
_BODY = f"{{{CLIENT_NS}}}body"


@dataclass(frozen=True)
class Target:
    """A server to measure. ``pid`` (optional) is the process whose RSS is read."""

    name: str
    host: str
    port: int
    domain: str
    pid: int | None = None


@dataclass(frozen=True)
class Accounts:
    """Pre-existing accounts ``{prefix}0`` .. ``{prefix}{count-1}``, all with ``password``."""

    prefix: str
    count: int
    password: str

    def username(self, index: int) -> str:
        """The account used by connection ``index`` (accounts are reused round-robin)."""
        return f"{self.prefix}{index % self.count}"


@dataclass(frozen=True)
class Bench:
    """Everything a workload needs to open connections to one target."""

    target: Target
    accounts: Accounts
    ssl_context: ssl.SSLContext | None
    mechanism: str | None = None
    step_timeout: float = 10.0
    # SCRAM keys kept between logins, as real clients keep them: the PBKDF2 run (1.3 ms at
    # 4,096 iterations) is the client's cost, not the server's
    scram_keys: ScramKeyCache = field(default_factory=dict)

    async def connect(self, index: int, resource: str) -> BenchClient:
        """Log in as account ``index`` with ``resource``, within ``step_timeout`` seconds."""
        return await self.connect_as(self.accounts.username(index), resource)

    async def connect_as(self, username: str, resource: str) -> BenchClient:
        """Log in as ``username`` with ``resource``, within ``step_timeout`` seconds."""
        target = self.target
        with trio.fail_after(self.step_timeout):
            return await login(
                target.host,
                target.port,
                target.domain,
                username,
                self.accounts.password,
                ssl_context=self.ssl_context,
                resource=resource,
                mechanism=self.mechanism,
                key_cache=self.scram_keys,
            )


# -- helpers --------------------------------------------------------------------------------------


REDATE_SECONDS = 1.0  # how often a gap watch moves its deadline at most


class GapWatch:
    """Fail a cancel scope after ``gap`` seconds without progress.

    Changing a deadline costs a few microseconds, as much as receiving a stanza, so the
    deadline moves at most once per :data:`REDATE_SECONDS`: the scope fails after ``gap``
    seconds, less up to one second, without progress.
    """

    def __init__(self, scope: trio.CancelScope, gap: float) -> None:
        self._scope, self._gap = scope, gap
        self._dated = trio.current_time()
        scope.deadline = self._dated + gap

    def progress(self) -> None:
        now = trio.current_time()
        if now - self._dated >= REDATE_SECONDS:
            self._scope.deadline = now + self._gap
            self._dated = now


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a supervisor and its worker processes), Linux ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def read_rss_kb(pid: int) -> int:
    """Return ``VmRSS`` in KiB of process ``pid`` and its descendants (Linux ``/proc``)."""
    total = 0
    for member in process_tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                break
        else:
            raise OSError(f"no VmRSS for process {member}")
    return total


def read_cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time process ``pid`` and its descendants have used, in
    seconds (Linux ``/proc``)."""
    total = 0.0
    for member in process_tree(pid):
        stat = Path(f"/proc/{member}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold this load generator's cyclic garbage collector during a timed phase: its
    pauses would count as the server's latency (the same for every server measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CpuMeter:
    """CPU use of this process (the clients) and of the server, over one timed phase.

    A figure near 100 % for the client means the load generator, not the server, was the
    limit (the clients run in one thread).
    """

    def __init__(self, server_pid: int | None) -> None:
        self._pid = server_pid
        self._client = time.process_time()
        self._server = read_cpu_seconds(server_pid) if server_pid is not None else 0.0
        self._wall = time.perf_counter()

    def figures(self, prefix: str) -> dict[str, float]:
        """``{prefix}_client_cpu_pct`` and, with a server PID, ``{prefix}_server_cpu_pct``."""
        wall = time.perf_counter() - self._wall
        out = {f"{prefix}_client_cpu_pct": 100 * (time.process_time() - self._client) / wall}
        if self._pid is not None:
            used = read_cpu_seconds(self._pid) - self._server
            out[f"{prefix}_server_cpu_pct"] = 100 * used / wall
        return out


async def for_each(count: int, concurrency: int, fn: Callable[[int], Awaitable[None]]) -> None:
    """Call ``fn(0) .. fn(count-1)`` with at most ``concurrency`` calls running at once."""
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:  # shared iterator: each index is taken once
            await fn(index)

    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, count)):
            nursery.start_soon(worker)


async def close_all(clients: list[BenchClient]) -> None:
    """Close every client gracefully and concurrently; bounded, shielded from cancellation."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(CLOSE_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(partial(client.aclose, graceful=True))
    clients.clear()


async def open_clients(
    bench: Bench, count: int, concurrency: int, tag: str, *, first: int = 0
) -> list[BenchClient]:
    """Log in ``count`` available clients, connection indices ``first`` onwards (resource
    ``{tag}-{index}``); all closed on failure."""
    slots: list[BenchClient | None] = [None] * count

    async def one(slot: int) -> None:
        index = first + slot
        client = await bench.connect(index, f"{tag}-{index}")
        slots[slot] = client
        await client.send(PRESENCE)

    try:
        await for_each(count, concurrency, one)
    except BaseException:
        await close_all([c for c in slots if c is not None])
        raise
    return [c for c in slots if c is not None]


# -- login rate -----------------------------------------------------------------------------------


async def measure_logins(bench: Bench, *, count: int, concurrency: int) -> dict[str, float]:
    """Run ``count`` login/logout cycles with ``concurrency`` workers; see the module doc."""
    latencies: list[float] = []

    async def cycle(index: int) -> None:
        started = time.perf_counter()
        client = await bench.connect(index, f"login-{index}")
        latencies.append(time.perf_counter() - started)
        try:
            await client.send(PRESENCE)
        finally:
            await client.aclose(graceful=True)

    started = time.perf_counter()
    cpu = CpuMeter(bench.target.pid)
    with collector_paused():
        await for_each(count, concurrency, cycle)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        **cpu.figures("login"),
        "logins": count,
        "logins_per_s": count / elapsed,
        "login_p50_ms": percentile(latencies, 50) * 1e3,
        "login_p99_ms": percentile(latencies, 99) * 1e3,
    }


# -- chat throughput and latency ------------------------------------------------------------------


async def _receive_messages(
    receiver: BenchClient,
    sender_jid: str,
    count: int,
    window: trio.Semaphore,
    latencies: list[int],
    gap_timeout: float,
) -> None:
    """Take ``count`` timestamped messages from ``sender_jid``; free a window slot for each."""
    received = 0
    with trio.CancelScope() as scope:
        watch = GapWatch(scope, gap_timeout)
        while received < count:
            element = await receiver.receive()
            if element.tag != _MESSAGE or element.get("from") != sender_jid:
                continue  # presence, server notices, ...
            if element.get("type") == "error":
                raise XMPPFailure("message", "error message from the sender's address")
            latencies.append(time.perf_counter_ns() - int(element.findtext(_BODY) or 0))
            received += 1
            window.release()
            watch.progress()
    if scope.cancelled_caught:
        raise trio.TooSlowError(f"no message from {sender_jid} for {gap_timeout} s")


async def _watch_bounces(sender: BenchClient) -> None:
    """Read what the sender's server sends it; a bounced message fails the workload."""
    while True:
        element = await sender.receive()
        if element.tag == _MESSAGE and element.get("type") == "error":
            raise XMPPFailure("message", f"bounced: {element.findtext(f'{{{CLIENT_NS}}}error')}")


async def _run_pair(
    sender: BenchClient,
    receiver: BenchClient,
    count: int,
    in_flight: int,
    latencies: list[int],
    gap_timeout: float,
) -> None:
    assert sender.jid is not None and receiver.jid is not None
    head = f"<message to='{escape_attr(receiver.jid)}' type='chat'><body>".encode()
    tail = b"</body></message>"
    window = trio.Semaphore(in_flight)

    async def send_all() -> None:
        for _ in range(count):
            await window.acquire()
            await sender.send(b"%s%d%s" % (head, time.perf_counter_ns(), tail))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_all)
        nursery.start_soon(_watch_bounces, sender)
        await _receive_messages(receiver, sender.jid, count, window, latencies, gap_timeout)
        nursery.cancel_scope.cancel()  # stops the bounce watcher; every message was sent


async def _run_pairs(
    clients: list[BenchClient],
    count: int,
    in_flight: int,
    latencies: list[int],
    gap_timeout: float,
) -> None:
    async with trio.open_nursery() as nursery:
        for sender, receiver in zip(clients[0::2], clients[1::2], strict=True):
            nursery.start_soon(
                _run_pair, sender, receiver, count, in_flight, latencies, gap_timeout
            )


async def measure_chat(
    bench: Bench,
    *,
    pairs: int,
    messages: int,
    in_flight: int,
    warmup: int = 10,
    concurrency: int = 10,
) -> dict[str, float]:
    """Send ``messages`` per pair over ``pairs`` pairs; see the module doc.

    :param warmup: messages per pair exchanged before the clock starts (not counted).
    :param concurrency: logins at a time while the pairs connect (not measured).
    """
    clients = await open_clients(bench, 2 * pairs, concurrency, "chat")
    try:
        if warmup:
            await _run_pairs(clients, warmup, in_flight, [], bench.step_timeout)
        latencies: list[int] = []
        started = time.perf_counter()
        cpu = CpuMeter(bench.target.pid)
        with collector_paused():
            await _run_pairs(clients, messages, in_flight, latencies, bench.step_timeout)
        elapsed = time.perf_counter() - started
        cpu_figures = cpu.figures("chat")
    finally:
        await close_all(clients)
    latencies.sort()
    total = pairs * messages
    return {
        **cpu_figures,
        "messages": total,
        "messages_per_s": total / elapsed,
        "message_p50_ms": percentile(latencies, 50) / 1e6,
        "message_p99_ms": percentile(latencies, 99) / 1e6,
    }


# -- memory per idle connection -------------------------------------------------------------------


async def measure_idle(
    bench: Bench,
    *,
    connections: int,
    concurrency: int = 20,
    settle: float = 1.5,
    warmup: int | None = None,
) -> dict[str, float]:
    """Hold ``connections`` idle, available sessions; see the module doc.

    The RSS growth is measured over ``connections`` opened after ``warmup`` others (default a
    tenth, at least one), so one-off costs of the first connections and memory the server
    freed after earlier workloads (and reuses first) do not count as per-connection memory.

    :param settle: seconds to wait before each RSS reading, so the server finishes the work
        that logins and presence broadcasts caused.
    """
    pid = bench.target.pid
    warm_count = max(1, connections // 10) if warmup is None else warmup
    warm: list[BenchClient] = []
    clients: list[BenchClient] = []
    before = after = None
    try:
        warm = await open_clients(bench, warm_count, concurrency, "warm")
        if pid is not None:
            await trio.sleep(settle)
            before = read_rss_kb(pid)
        clients = await open_clients(bench, connections, concurrency, "idle", first=warm_count)
        if pid is not None:
            await trio.sleep(settle)
            after = read_rss_kb(pid)
    finally:
        await close_all(warm + clients)
    figures: dict[str, float] = {"idle_connections": connections}
    if before is not None and after is not None:
        figures["rss_before_kb"] = before
        figures["rss_after_kb"] = after
        figures["kb_per_idle_connection"] = (after - before) / connections
    return figures


# -- latency at a fixed rate ----------------------------------------------------------------------


async def _receive_count(
    receiver: BenchClient, sender_jid: str, count: int, latencies: list[int], gap_timeout: float
) -> None:
    window = trio.Semaphore(count)  # never waited on: the rate, not a window, paces senders
    await _receive_messages(receiver, sender_jid, count, window, latencies, gap_timeout)


async def measure_rate(
    bench: Bench,
    *,
    pairs: int,
    rate: float,
    seconds: float,
    concurrency: int = 10,
) -> dict[str, float]:
    """Send ``rate`` messages a second for ``seconds``, spread over ``pairs`` pairs; time each.

    Open loop: one task sends each message when it is due, whether or not earlier ones
    have arrived, round-robin over the pairs, so the latency is measured at a load
    the server does not choose. The generator busy-waits meanwhile (:mod:`casper.busywait`)
    so that its own wake-ups from idle do not add to every target's latency. A message's latency runs from its actual send (the body's
    timestamp). Figures: ``rate_p50_ms``/``rate_p99_ms``/``rate_max_ms`` and
    ``rate_achieved_per_s`` (sent per second; below ``rate`` when the bench fell behind).
    """
    clients = await open_clients(bench, 2 * pairs, concurrency, "rate")
    total = max(pairs, round(rate * seconds))
    per_pair = [total // pairs + (1 if i < total % pairs else 0) for i in range(pairs)]
    latencies: list[int] = []
    try:
        senders, receivers = clients[0::2], clients[1::2]
        heads = [
            f"<message to='{escape_attr(r.jid or '')}' type='chat'><body>".encode()
            for r in receivers
        ]
        tail = b"</body></message>"
        with collector_paused():
            async with trio.open_nursery() as nursery:
                for sender in senders:
                    nursery.start_soon(_watch_bounces, sender)
                await nursery.start(BusyWait(GENERATOR_BUSY_WAIT).serve)
                async with trio.open_nursery() as readers:
                    for sender, receiver, count in zip(senders, receivers, per_pair, strict=True):
                        assert sender.jid is not None
                        readers.start_soon(_receive_count, receiver, sender.jid, count, latencies,
                                           bench.step_timeout)  # fmt: skip
                    started = trio.current_time()
                    sent = 0
                    while sent < total:
                        due = min(total, int((trio.current_time() - started) * rate) + 1)
                        while sent < due:
                            pair = sent % pairs
                            body = b"%s%d%s" % (heads[pair], time.perf_counter_ns(), tail)
                            await senders[pair].send(body)
                            sent += 1
                        await trio.sleep_until(started + sent / rate)
                    send_time = trio.current_time() - started
                nursery.cancel_scope.cancel()  # the bounce watchers
    finally:
        await close_all(clients)
    latencies.sort()
    return {
        "rate_target_per_s": rate,
        "rate_achieved_per_s": total / max(send_time, 1e-9),
        "rate_p50_ms": percentile(latencies, 50) / 1e6,
        "rate_p99_ms": percentile(latencies, 99) / 1e6,
        "rate_max_ms": latencies[-1] / 1e6,
    }
