"""SocketTLSStream on real loopback sockets: data both ways, ends, errors, cancellation."""

from __future__ import annotations

import gc
import os
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from casper.tls import channel_bindings, ensure_certificate, server_ssl_context
from casper.tls_stream import SocketTLSStream, client_tls_stream, server_tls_stream


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = ensure_certificate(tmp_path_factory.mktemp("tls"), "localhost")
    client = ssl.create_default_context(cafile=str(cert))
    return server_ssl_context(cert, key), client


async def _tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    try:
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listeners[0].accept()
    finally:
        await listeners[0].aclose()
    return server, client  # type: ignore[return-value]


@asynccontextmanager
async def tls_pair(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> AsyncIterator[tuple[SocketTLSStream, SocketTLSStream]]:
    server_tcp, client_tcp = await _tcp_pair()
    server = SocketTLSStream.wrap(server_tcp, contexts[0], server_side=True)
    client = SocketTLSStream.wrap(client_tcp, contexts[1], server_side=False,
                                  server_hostname="localhost")  # fmt: skip
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.do_handshake)
            nursery.start_soon(client.do_handshake)
        yield server, client
    finally:
        await server.aclose()
        await client.aclose()


async def _receive_exactly(stream: trio.abc.Stream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(65536)
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


async def test_small_records_pass_both_ways(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        await client.send_all(b"<presence/>")
        assert await server.receive_some(100) == b"<presence/>"
        await server.send_all(b"<message/>")
        assert await client.receive_some(100) == b"<message/>"
        assert server.version() == "TLSv1.3"


async def test_large_transfers_both_ways_at_once_neither_deadlock_nor_lose_bytes(contexts) -> None:
    payload = os.urandom(4 * 1024 * 1024)  # far beyond the socket buffers: sends must wait
    async with tls_pair(contexts) as (server, client):
        received: dict[str, bytes] = {}

        async def send_and_receive(name: str, stream: trio.abc.Stream) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.send_all, payload)
                received[name] = await _receive_exactly(stream, len(payload))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_and_receive, "server", server)
                nursery.start_soon(send_and_receive, "client", client)
        assert received == {"server": payload, "client": payload}


async def test_close_notify_reads_as_eof(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        await client.send_all(b"last")
        await client.aclose()
        assert await _receive_exactly(server, 4) == b"last"
        assert await server.receive_some(100) == b""


async def test_a_tcp_close_without_close_notify_reads_as_eof(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        client.socket.shutdown(socket.SHUT_RDWR)  # no TLS alert, as many XMPP clients end
        assert await server.receive_some(100) == b""


async def test_garbage_instead_of_a_handshake_is_a_broken_resource(contexts) -> None:
    server_tcp, client_tcp = await _tcp_pair()
    server = SocketTLSStream.wrap(server_tcp, contexts[0], server_side=True)
    await client_tcp.send_all(b"<stream:stream to='localhost'>" * 4)
    with pytest.raises(trio.BrokenResourceError):
        await server.do_handshake()
    await server.aclose()
    await client_tcp.aclose()


async def test_a_send_cancelled_halfway_breaks_the_stream_for_later_sends(contexts) -> None:
    async with tls_pair(contexts) as (server, _client):
        with trio.move_on_after(0.2) as waited:  # nobody reads: the send must block
            await server.send_all(os.urandom(16 * 1024 * 1024))
        assert waited.cancelled_caught
        with pytest.raises(trio.BrokenResourceError, match="cut short"):
            await server.send_all(b"<message/>")


async def test_a_send_cancelled_before_it_starts_leaves_the_stream_usable(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        with trio.CancelScope() as scope:
            scope.cancel()
            await server.send_all(b"never sent")
        await server.send_all(b"sent")
        assert await client.receive_some(100) == b"sent"


async def test_a_cancelled_receive_loses_nothing(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        with trio.move_on_after(0.05):
            await server.receive_some(100)
        await client.send_all(b"after")
        assert await server.receive_some(100) == b"after"


async def test_two_receivers_at_once_are_refused(contexts) -> None:
    async with tls_pair(contexts) as (server, _client), trio.open_nursery() as nursery:
        nursery.start_soon(server.receive_some, 100)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await server.receive_some(100)
        nursery.cancel_scope.cancel()


async def test_closing_wakes_a_waiting_receiver_and_later_calls_fail(contexts) -> None:
    async with tls_pair(contexts) as (server, _client):

        async def receive() -> None:
            with pytest.raises(trio.ClosedResourceError):
                await server.receive_some(100)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            await trio.testing.wait_all_tasks_blocked()
            await server.aclose()
        await server.aclose()  # twice is fine
        with pytest.raises(trio.ClosedResourceError):
            await server.send_all(b"x")


async def test_closing_sends_close_notify(contexts) -> None:
    server_tcp, client_tcp = await _tcp_pair()
    server = SocketTLSStream.wrap(server_tcp, contexts[0], server_side=True)
    strict_client = trio.SSLStream(client_tcp, contexts[1], server_hostname="localhost")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        nursery.start_soon(strict_client.do_handshake)
    await server.aclose()
    assert await strict_client.receive_some(100) == b""  # a bare TCP close would raise
    await strict_client.aclose()


async def test_tls_over_a_tcp_socket_uses_the_socket_stream_and_others_fall_back(contexts) -> None:
    server_tcp, client_tcp = await _tcp_pair()
    server = server_tls_stream(server_tcp, contexts[0])
    client = client_tls_stream(client_tcp, contexts[1], "localhost")
    assert isinstance(server, SocketTLSStream) and isinstance(client, SocketTLSStream)
    await server.aclose()
    await client.aclose()
    memory_server, memory_client = trio.testing.memory_stream_pair()
    assert isinstance(server_tls_stream(memory_server, contexts[0]), trio.SSLStream)
    assert isinstance(client_tls_stream(memory_client, contexts[1], "localhost"), trio.SSLStream)


async def test_the_server_side_tells_tls_server_end_point(contexts) -> None:
    async with tls_pair(contexts) as (server, _client):
        bindings = channel_bindings(server)
    assert bindings["tls-server-end-point"] == contexts[0].tls_server_end_point  # type: ignore[attr-defined]
    assert "tls-unique" not in bindings  # TLS 1.3


async def test_send_now_writes_at_once_and_leaves_nothing_pending(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        assert server.send_now(b"<message/>") and not server.send_pending
        assert await client.receive_some(100) == b"<message/>"


async def test_what_send_now_leaves_with_openssl_the_next_send_all_writes_first(contexts) -> None:
    chunk = os.urandom(256 * 1024)
    async with tls_pair(contexts) as (server, client):
        taken = 0
        while not server.send_pending:  # nobody reads: the socket fills, OpenSSL keeps a part
            assert server.send_now(chunk)
            taken += 1
        assert not server.send_now(b"refused while a part is pending")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.send_all, b"after")
            data = await _receive_exactly(client, taken * len(chunk) + len(b"after"))
        assert data == chunk * taken + b"after"


async def test_send_now_is_refused_while_a_send_waits(contexts) -> None:
    async with tls_pair(contexts) as (server, _client), trio.open_nursery() as nursery:
        nursery.start_soon(server.send_all, os.urandom(16 * 1024 * 1024))
        await trio.testing.wait_all_tasks_blocked()
        assert not server.send_now(b"<message/>")
        nursery.cancel_scope.cancel()


async def test_bytes_send_now_left_survive_a_send_all_cancelled_before_it_starts(contexts) -> None:
    chunk = os.urandom(256 * 1024)
    async with tls_pair(contexts) as (server, client):
        taken = 0
        while not server.send_pending:
            assert server.send_now(chunk)
            taken += 1
        with trio.CancelScope() as scope:
            scope.cancel()
            await server.send_all(b"")  # the writer, woken for them, cancelled at once
        assert server.send_pending
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.send_all, b"after")
            data = await _receive_exactly(client, taken * len(chunk) + len(b"after"))
        assert data == chunk * taken + b"after"  # OpenSSL's pending record, then the rest


async def test_abandoned_pending_bytes_break_the_stream(contexts) -> None:
    async with tls_pair(contexts) as (server, _client):
        while not server.send_pending:
            assert server.send_now(os.urandom(256 * 1024))
        server.abandon_pending()
        assert not server.send_pending
        with pytest.raises(trio.BrokenResourceError):
            await server.send_all(b"<message/>")


async def _records_waiting(stream: SocketTLSStream) -> None:
    """Return once the peer's records are at ``stream``'s socket (a receive won't wait)."""
    await trio.lowlevel.wait_readable(stream.socket)


async def test_a_receive_takes_every_record_already_waiting(contexts) -> None:
    records = [f"<message id='{n}'/>".encode() for n in range(5)]
    async with tls_pair(contexts) as (server, client):
        for record in records:
            await client.send_all(record)  # one TLS record each
        await _records_waiting(server)
        assert await server.receive_some(65536) == b"".join(records)


async def test_a_receive_takes_no_more_than_max_bytes_and_the_rest_follows(contexts) -> None:
    records = [bytes([65 + n]) * 100 for n in range(5)]
    async with tls_pair(contexts) as (server, client):
        for record in records:
            await client.send_all(record)
        await _records_waiting(server)
        first = await server.receive_some(250)
        assert 100 <= len(first) <= 250
        rest = await _receive_exactly(server, 500 - len(first))
        assert first + rest == b"".join(records)


async def test_close_notify_behind_waiting_records_reads_as_eof_after_them(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        await client.send_all(b"<a/>")
        await client.send_all(b"<b/>")
        await client.aclose()  # close_notify follows the two records
        await _records_waiting(server)
        assert await server.receive_some(65536) == b"<a/><b/>"
        assert await server.receive_some(65536) == b""
        assert await server.receive_some(65536) == b""


class _SocketFailingAfter:
    """Stands for an SSLSocket whose next reads return ``chunks``, then fail."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def recv(self, size: int) -> bytes:
        if not self.chunks:
            raise ConnectionResetError(104, "Connection reset by peer")
        return self.chunks.pop(0)

    def pending(self) -> int:
        return 0


async def test_an_error_behind_waiting_records_is_raised_after_they_are_delivered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = SocketTLSStream(_SocketFailingAfter(b"<a/>", b"<b/>"))  # type: ignore[arg-type]
    stream._handshaken = True
    assert await stream.receive_some(65536) == b"<a/><b/>"
    with pytest.raises(trio.BrokenResourceError, match="reset"):
        await stream.receive_some(65536)


class _StepCounter(trio.abc.Instrument):
    """Counts the steps each task takes: a schedule point ends one."""

    def __init__(self) -> None:
        self.steps: dict[trio.lowlevel.Task, int] = {}

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task] = self.steps.get(task, 0) + 1


async def _steps_of(operation: object) -> int:
    """How many steps a fresh task takes to run ``operation()`` to its end."""
    counter = _StepCounter()
    tasks: list[trio.lowlevel.Task] = []

    async def run() -> None:
        tasks.append(trio.lowlevel.current_task())
        await operation()  # type: ignore[operator]

    trio.lowlevel.add_instrument(counter)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
    finally:
        trio.lowlevel.remove_instrument(counter)
    return counter.steps[tasks[0]]


async def test_a_receive_that_waited_has_no_second_schedule_point(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        got: list[bytes] = []

        async def receive() -> None:
            got.append(await server.receive_some(100))

        async def send_later() -> None:
            await trio.sleep(0.05)  # the receive waits first
            await client.send_all(b"<presence/>")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_later)
            steps = await _steps_of(receive)
        assert got == [b"<presence/>"]
        assert steps == 2  # up to the wait, then from the wake-up to the end


async def test_a_receive_that_did_not_wait_still_has_a_schedule_point(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        await client.send_all(b"<presence/>")
        await trio.sleep(0.05)  # at the server's socket before it reads
        got: list[bytes] = []

        async def receive() -> None:
            got.append(await server.receive_some(100))

        assert await _steps_of(receive) == 2
        assert got == [b"<presence/>"]


async def test_a_send_that_did_not_wait_has_one_schedule_point(contexts) -> None:
    async with tls_pair(contexts) as (server, client):
        assert await _steps_of(lambda: server.send_all(b"<message/>")) == 2
        assert await client.receive_some(100) == b"<message/>"


async def test_a_second_handshake_call_only_checkpoints(contexts) -> None:
    async with tls_pair(contexts) as (server, _client):
        assert await _steps_of(server.do_handshake) == 2
        assert not server._handshake_lock.locked()


def _live(kind: type[BaseException]) -> list[BaseException]:
    gc.collect()
    return [obj for obj in gc.get_objects() if isinstance(obj, kind)]


async def test_a_receive_waiting_for_data_keeps_no_exception_alive(contexts) -> None:
    async with tls_pair(contexts) as (server, _client), trio.open_nursery() as nursery:
        nursery.start_soon(server.receive_some, 100)
        await trio.testing.wait_all_tasks_blocked()
        # an idle connection's whole life: its traceback would hold the frames too
        assert _live(ssl.SSLWantReadError) == []
        nursery.cancel_scope.cancel()


async def test_a_send_waiting_for_the_socket_keeps_no_exception_alive(contexts) -> None:
    async with tls_pair(contexts) as (server, _client), trio.open_nursery() as nursery:
        nursery.start_soon(server.send_all, os.urandom(4 * 1024 * 1024))  # nobody reads
        await trio.testing.wait_all_tasks_blocked()
        assert _live(ssl.SSLWantWriteError) == []
        nursery.cancel_scope.cancel()
