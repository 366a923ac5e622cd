"""The presence workload: one user with many contacts changes presence, the server fans out.

The hub account ``{prefix}hub`` has ``contacts`` contacts ``{prefix}c0 ..`` subscribed to its
presence (hub: ``from``, contact: ``to``). How the rosters get there is the server's
business (:mod:`casper.bench.spawn` writes Casper's storage; :func:`subscribe_contacts`
makes them in band on any server: each contact asks, the online hub approves).

- :func:`measure_presence`: every contact logs in and sends initial presence; the hub logs
  in, sends presence ``u0`` and waits until every contact saw it (the subscriptions work),
  then sends ``updates`` presence changes (``<status>uN</status>``), keeping at most
  ``in_flight`` of them not yet delivered to every contact. Figures:
  ``broadcasts_per_s`` (presence stanzas delivered to contacts per second, first send to
  last receipt), ``broadcast_p50_ms``/``broadcast_p99_ms`` (send to receipt, each
  delivery), ``presence_{client,server}_cpu_pct``.

Error handling and resource handling as in :mod:`casper.bench.workloads`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from xml.etree.ElementTree import Element

import trio

from casper.bench.client import CLIENT_NS, BenchClient
from casper.bench.workloads import (
    Accounts,
    Bench,
    CpuMeter,
    GapWatch,
    close_all,
    collector_paused,
    for_each,
    open_clients,
    percentile,
)
from casper.xml import escape_attr

_PRESENCE = f"{{{CLIENT_NS}}}presence"
_STATUS = f"{{{CLIENT_NS}}}status"
_IQ = f"{{{CLIENT_NS}}}iq"
ROSTER_NS = "jabber:iq:roster"
ROSTER_GET = b"<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>"


def _bare(jid: str | None) -> str:
    return (jid or "").partition("/")[0]


def _approved(element: Element, hub_jid: str) -> bool:
    """Whether ``element`` says the hub approved: ``subscribed`` or a roster push with ``to``."""
    if element.tag == _PRESENCE:
        return element.get("type") == "subscribed" and _bare(element.get("from")) == hub_jid
    if element.tag == _IQ and element.get("type") == "set":  # ejabberd sends only the push
        for item in element.iterfind(f"{{{ROSTER_NS}}}query/{{{ROSTER_NS}}}item"):
            if item.get("jid") == hub_jid and item.get("subscription") in ("to", "both"):
                return True
    return False


async def subscribe_contacts(bench: Bench, hub: str, contacts: Accounts, count: int) -> None:
    """Subscribe ``count`` contacts to ``hub``'s presence in band (RFC 6121 §3.1).

    The hub stays online and approves each request; each contact waits for the approval
    (a ``subscribed`` presence, or only a roster push as ejabberd sends).
    Bounded by ``bench.step_timeout`` per contact; 10 contacts at a time.
    """
    if not count:
        return
    domain = bench.target.domain
    hub_jid = f"{hub}@{domain}"
    pending = {f"{contacts.username(i)}@{domain}" for i in range(count)}
    hub_client = await bench.connect_as(hub, "setup")
    try:
        await hub_client.send(ROSTER_GET + b"<presence/>")

        async def approve() -> None:
            while pending:
                element = await hub_client.receive()
                if element.tag == _PRESENCE and element.get("type") == "subscribe":
                    asker = _bare(element.get("from"))
                    to = escape_attr(asker)
                    await hub_client.send(f"<presence type='subscribed' to='{to}'/>".encode())
                    pending.discard(asker)

        async def ask(index: int) -> None:
            client = await bench.connect_as(contacts.username(index), "setup")
            try:
                request = f"<presence type='subscribe' to='{escape_attr(hub_jid)}'/>"
                await client.send(ROSTER_GET + request.encode())
                with trio.fail_after(bench.step_timeout):
                    while not _approved(await client.receive(), hub_jid):
                        pass
            finally:
                await client.aclose(graceful=True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(approve)
            await for_each(count, 10, ask)
            with trio.fail_after(bench.step_timeout):
                while pending:  # the approvals of the last contacts are on their way
                    await trio.sleep(0.01)
    finally:
        await hub_client.aclose(graceful=True)


async def _contact(
    client: BenchClient,
    hub_jid: str,
    last: int,
    counts: list[int],
    sent_at: list[int],
    latencies: list[int],
    done: list[trio.Event],
    window: trio.Semaphore,
    total: int,
    gap_timeout: float,
) -> None:
    """Read the hub's presences ``u0 .. u{last}``; count and time each."""
    with trio.CancelScope() as scope:
        watch = GapWatch(scope, gap_timeout)
        seen = -1
        while seen < last:
            element = await client.receive()
            if element.tag != _PRESENCE or element.get("type") is not None:
                continue
            if _bare(element.get("from")) != hub_jid:
                continue
            status = element.findtext(_STATUS) or ""
            if not status.startswith("u"):
                continue
            number = int(status[1:])
            if number <= seen:
                continue  # a repeat (e.g. a probe answer)
            seen = number
            if seen:
                latencies.append(time.perf_counter_ns() - sent_at[seen])
            counts[seen] += 1
            if counts[seen] == total:
                done[seen].set()
                if seen:
                    window.release()
            watch.progress()
    if scope.cancelled_caught:
        raise trio.TooSlowError(f"no presence from {hub_jid} for {gap_timeout} s")


async def measure_presence(
    bench: Bench,
    *,
    hub: str,
    contacts: Accounts,
    count: int,
    updates: int,
    in_flight: int,
    concurrency: int = 10,
) -> dict[str, float]:
    """Broadcast ``updates`` presence changes of ``hub`` to ``count`` contacts; see the doc."""
    hub_jid = f"{hub}@{bench.target.domain}"
    clients = await open_clients(replace(bench, accounts=contacts), count, concurrency, "presence")
    counts = [0] * (updates + 1)
    sent_at = [0] * (updates + 1)
    done = [trio.Event() for _ in range(updates + 1)]
    latencies: list[int] = []
    window = trio.Semaphore(in_flight)
    try:
        clients.append(await bench.connect_as(hub, "hub"))
        hub_client = clients[-1]
        async with trio.open_nursery() as nursery:
            for client in clients[:-1]:
                nursery.start_soon(_contact, client, hub_jid, updates, counts, sent_at,
                                   latencies, done, window, count, bench.step_timeout)  # fmt: skip
            await hub_client.send(b"<presence><status>u0</status></presence>")
            with trio.fail_after(bench.step_timeout):
                await done[0].wait()  # every contact is subscribed and online
            started = time.perf_counter()
            cpu = CpuMeter(bench.target.pid)
            with collector_paused():
                for n in range(1, updates + 1):
                    await window.acquire()
                    sent_at[n] = time.perf_counter_ns()
                    await hub_client.send(b"<presence><status>u%d</status></presence>" % n)
                with trio.fail_after(bench.step_timeout):
                    await done[updates].wait()
            elapsed = time.perf_counter() - started
            cpu_figures = cpu.figures("presence")
    finally:
        await close_all(clients)
    latencies.sort()
    return {
        **cpu_figures,
        "broadcasts": updates * count,
        "broadcasts_per_s": updates * count / elapsed,
        "broadcast_p50_ms": percentile(latencies, 50) / 1e6,
        "broadcast_p99_ms": percentile(latencies, 99) / 1e6,
    }
