"""How a piped client stream ends: every way the accepting worker's relay can stop ends the
session on the home and forgets the pipe on both workers, and the client hears what a
client of a single server would (its last answers, ``system-shutdown``, a framing error).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio
import trio.testing
from casper.connection import handle_connection
from casper.errors import StreamError
from casper.jid import JID
from casper.testing import TestServer, open_test_cluster
from casper.testing.client import StreamEnded, TestClient

from tests.cluster.test_cluster_routing import ALICE, BOB, DOMAIN

PING_THEN_END = (
    f"<iq type='get' id='last' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"
)


class FailingStream(trio.abc.Stream):
    """A client stream that refuses its input once told to, as a WebSocket connection
    refuses an oversized message (``StreamError``)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner, self.fail = inner, trio.Event()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        result: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                result.append(await self.inner.receive_some(max_bytes))
                nursery.cancel_scope.cancel()

            async def refuse() -> None:
                await self.fail.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(read)
            nursery.start_soon(refuse)
        if not result:
            raise StreamError("policy-violation", "message too large")
        return result[0]

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def bound_bob(stream: trio.abc.Stream) -> TestClient:
    """BOB's client right after SASL (the restarted stream is the home's to read)."""
    client = TestClient(stream, DOMAIN)
    await client.open_stream()
    await client.bind("r")
    return client


async def ended_everywhere(w0: TestServer, w1: TestServer) -> None:
    with trio.fail_after(5):
        while w1.server.router.sessions_of(JID.make(BOB, DOMAIN)):
            await trio.sleep(0.01)
        while len(w0.server.cluster._pipes) or len(w1.server.cluster._pipes):
            await trio.sleep(0.01)


async def read_to_the_end(client: TestClient) -> list[str | None]:
    ids = []
    with trio.fail_after(10):
        try:
            while True:
                ids.append((await client._next_element()).get("id"))
        except StreamEnded:
            return ids


async def test_a_cancelled_relay_ends_the_session_on_the_home(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        near, far = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def relay() -> None:
                with scope:
                    await w0.server.cluster.hand_off(far, BOB, b"")

            nursery.start_soon(relay)
            await bound_bob(near)
            assert w1.server.router.sessions_of(JID.make(BOB, DOMAIN))
            scope.cancel()  # as the WebSocket heartbeat does when the peer stops answering
        await ended_everywhere(w0, w1)


async def test_input_the_transport_refuses_gets_its_stream_error_and_ends_the_session(
    tmp_path: Path,
):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        near, far = trio.testing.memory_stream_pair()
        failing = FailingStream(far)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(w0.server.cluster.hand_off, failing, BOB, b"")
            bob = await bound_bob(near)
            failing.fail.set()
            try:
                while True:
                    await bob._next_element()
            except StreamEnded as ended:
                assert ended.error == "policy-violation"
        await ended_everywhere(w0, w1)


async def test_answers_the_home_sends_after_the_clients_end_still_reach_it(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        near, far = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(w0.server.cluster.hand_off, far, BOB, b"")
            bob = await bound_bob(near)
            await bob.send_raw(PING_THEN_END)
            await near.send_eof()  # and the client half-closes its transport
            assert await read_to_the_end(bob) == ["last"]
        await ended_everywhere(w0, w1)


async def test_the_same_answers_as_from_a_single_server(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (_, w1):
        near, far = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(handle_connection, w1.server, far, secure=True,
                                       ssl_context=None, authenticated=(BOB, b"")))  # fmt: skip
            bob = await bound_bob(near)
            await bob.send_raw(PING_THEN_END)
            await near.send_eof()
            assert await read_to_the_end(bob) == ["last"]


async def shutdown_error(tmp_path: Path, via: int) -> str | None:
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as workers:
        bob = await workers[via].connect()  # BOB lives on worker 1
        await bob.open_stream()
        await bob.starttls(workers[via].client_context)
        await bob.authenticate(BOB, "secret")
        await bob.bind("r")
        for worker in workers:  # SIGTERM reaches every worker at once
            worker.server.shut_down()
        try:
            while True:
                await bob.recv(timeout=5)
        except StreamEnded as ended:
            return ended.error
    raise AssertionError("unreachable")


async def test_a_piped_client_gets_system_shutdown(tmp_path: Path):
    assert await shutdown_error(tmp_path, via=0) == "system-shutdown"


async def test_a_client_at_its_home_gets_system_shutdown(tmp_path: Path):
    assert await shutdown_error(tmp_path, via=1) == "system-shutdown"
