"""``casper serve --workers 2`` as a user runs it: real processes, real sockets, slixmpp.

The supervisor opens the listeners once and starts two workers that share them; accounts
live on their home worker. Users on different homes log in (over STARTTLS and direct TLS,
landing on whichever worker the kernel picks), subscribe, see each other's presence and
chat; SIGINT stops every process; a worker that dies stops the rest; a plugin that cannot
run on several workers is refused before anything starts (tested in
``tests/cluster/test_cluster_conformance.py``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from casper.bench.workloads import process_tree
from casper.cluster.homes import home_of
from casper.jid import JID

from tests.realnet.conftest import (
    DIRECT_TLS,
    STARTTLS,
    CasperProcess,
    RunningServer,
)

pytestmark = pytest.mark.realnet


def homed_on(index: int, prefix: str) -> str:
    return next(f"{prefix}{n}" for n in range(1000)
                if home_of(JID.make(f"{prefix}{n}", "localhost"), 2) == index)  # fmt: skip


def workers_of(process: CasperProcess) -> list[int]:
    return process_tree(process.proc.pid)[1:]


def two_workers(
    tmp_path: Path, start_casper: Callable[..., CasperProcess]
) -> tuple[CasperProcess, list[int]]:
    """``casper serve --workers 2`` listening, and its workers' PIDs."""
    process = start_casper("serve", "--workers", "2", "--port", "0", "--data-dir",
                           tmp_path / "data", cwd=tmp_path)  # fmt: skip
    process.wait_for_listeners(4)
    pids = workers_of(process)
    assert len(pids) == 2, process.log
    return process, pids


@pytest.fixture
def cluster(tmp_path: Path, start_casper: Callable[..., CasperProcess]) -> Iterator[RunningServer]:
    config_file = tmp_path / "casper.toml"
    config_file.write_text('[server]\ntls_port = 0\nworkers = 2\n\n[log]\nlevel = "info"\n')
    data_dir = tmp_path / "data"
    process = start_casper(
        "serve", "--config", config_file, "--port", "0", "--data-dir", data_dir, cwd=tmp_path
    )
    listeners = {lst.kind: lst for lst in process.wait_for_listeners(4)}  # two per worker
    assert set(listeners) == {STARTTLS, DIRECT_TLS}, process.log
    server = RunningServer(process, data_dir, config_file,
                           port=listeners[STARTTLS].port, tls_port=listeners[DIRECT_TLS].port)  # fmt: skip
    yield server
    process.drain()
    status = process.stop()
    print(f"--- casper serve log ---\n{process.log}")
    assert "Traceback" not in process.log
    assert status == 0


def test_users_on_different_homes_subscribe_see_presence_and_chat(cluster, run_async):
    from tests.realnet.conftest import Peer

    names = [homed_on(0, "ann"), homed_on(1, "ben"), homed_on(0, "cat"), homed_on(1, "dan")]
    for name in names:
        cluster.add_user(name)

    async def scenario() -> None:
        peers = [
            Peer(cluster, name, "secret", direct_tls=i % 2 == 1) for i, name in enumerate(names)
        ]
        for peer in peers:
            await peer.login()
        try:
            first = peers[0]
            for other in peers[1:]:  # ann subscribes to everyone, who approve
                first.xmpp.send_presence(pto=other.jid.bare, ptype="subscribe")
                await other.next("presence_subscribe", sender=first.jid.bare)
                other.xmpp.send_presence(pto=first.jid.bare, ptype="subscribed")
                await first.next("presence_available", sender=other.jid.bare)
            for sender in peers:
                for receiver in peers:
                    if sender is not receiver:
                        sender.xmpp.send_message(mto=receiver.jid, mbody=f"from {sender.jid.user}")
            for receiver in peers:
                got = {(str(m["from"].bare), m["body"])
                       for m in [await receiver.next("message") for _ in peers[1:]]}  # fmt: skip
                assert got == {(str(s.jid.bare), f"from {s.jid.user}")
                               for s in peers if s is not receiver}  # fmt: skip
            await peers[1].close()
            await first.next("presence_unavailable", sender=peers[1].jid.bare)
        finally:
            for peer in peers:
                await peer.close()

    run_async(scenario())


def test_sigint_stops_the_supervisor_and_every_worker(cluster):
    pids = workers_of(cluster.process)
    assert len(pids) == 2
    cluster.process.proc.send_signal(signal.SIGINT)
    assert cluster.process.proc.wait(timeout=15) == 0
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)


def test_a_worker_that_dies_stops_the_others_with_status_1(
    tmp_path: Path, start_casper: Callable[..., CasperProcess]
):
    process, pids = two_workers(tmp_path, start_casper)
    os.kill(pids[0], signal.SIGKILL)
    assert process.proc.wait(timeout=20) == 1
    process.drain()
    assert "exited with status -9: stopping the others" in process.log
    assert not _alive(pids[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_workers_stop_when_the_supervisor_is_killed(
    tmp_path: Path, start_casper: Callable[..., CasperProcess]
):
    process, pids = two_workers(tmp_path, start_casper)
    process.proc.kill()  # SIGKILL: the supervisor cannot pass anything on
    process.proc.wait(timeout=5)
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids), "workers left serving without a supervisor"


def test_workers_outlive_the_threads_that_started_them(
    tmp_path: Path, start_casper: Callable[..., CasperProcess]
):
    """Trio starts processes from a worker thread that it retires after 10 idle seconds:
    nothing tied to that thread may stop the workers (a parent-death signal would)."""
    process, pids = two_workers(tmp_path, start_casper)
    time.sleep(12)
    assert process.proc.poll() is None, process.log
    assert all(_alive(pid) for pid in pids)
    assert process.stop() == 0
