"""The s2s TLS stream (:class:`~casper.s2s.tlsstream.PyOpenSSLStream`) between two of
itself: big transfers both ways at once over small socket buffers, cancellation (a send
cut short breaks the stream, a receive loses no data), clean close and abrupt EOF, and the
verification record kept per connection."""

from __future__ import annotations

import gc
import socket
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing
from casper.s2s.tlsstream import PyOpenSSLStream
from casper.s2s.trust import S2STLS
from OpenSSL import SSL

from tests.s2s.pki import CA, Issued, self_signed

MIB = 1 << 20


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def tls_pair(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[S2STLS, S2STLS]:
    directory = tmp_path_factory.mktemp("tls")
    return _tls(directory, ca, ca.issue("server.test"), "server"), _tls(
        directory, ca, ca.issue("client.test"), "client"
    )


def _tls(directory: Path, ca: CA, issued: Issued, name: str) -> S2STLS:
    cert, key = issued.write(directory, name)
    return S2STLS(cert, key, ca_file=ca.write(directory))


def _socket_pair(buffer: int | None = 4096) -> tuple[trio.SocketStream, trio.SocketStream]:
    """Loopback sockets; small kernel buffers make a peer that stops reading felt soon."""
    a, b = trio.socket.socketpair()
    if buffer is not None:
        for sock in (a, b):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)
    return trio.SocketStream(a), trio.SocketStream(b)


async def _connect(server: S2STLS, client: S2STLS, left: trio.abc.Stream,
                   right: trio.abc.Stream) -> tuple[PyOpenSSLStream, PyOpenSSLStream]:  # fmt: skip
    server_side = PyOpenSSLStream(left, server.server_context, server_side=True)
    client_side = PyOpenSSLStream(right, client.client_context, server_side=False,
                                  server_hostname="server.test")  # fmt: skip
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server_side.do_handshake)
            nursery.start_soon(client_side.do_handshake)
    return server_side, client_side


def _payload(tag: int, size: int) -> bytes:
    """Bytes whose order shows: a lost, doubled or reordered piece would not match."""
    return bytes((tag + i * 7 + i // 251) % 256 for i in range(size))


async def _receive_exactly(stream: trio.abc.Stream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some()
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------- big transfers


@pytest.mark.parametrize("chunk", [16384, 65536, MIB])
async def test_big_transfers_both_ways_at_once_do_not_deadlock(
    tls_pair: tuple[S2STLS, S2STLS], chunk: int
) -> None:
    """One writer and one reader per side, as the s2s connections run them; the writers
    yield between writes (they wait for the next stanza). A reader must never end up
    sending its writer's records: if both readers block on sends nobody reads."""
    server_side, client_side = await _connect(*tls_pair, *_socket_pair())
    up, down = _payload(1, MIB), _payload(2, MIB)
    received: dict[str, bytes] = {}

    async def write(stream: PyOpenSSLStream, data: bytes) -> None:
        for start in range(0, len(data), chunk):
            await stream.send_all(data[start : start + chunk])
            await trio.lowlevel.checkpoint()

    async def read(stream: PyOpenSSLStream, name: str) -> None:
        received[name] = await _receive_exactly(stream, MIB)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, client_side, up)
            nursery.start_soon(write, server_side, down)
            nursery.start_soon(read, server_side, "up")
            nursery.start_soon(read, client_side, "down")
    assert received["up"] == up and received["down"] == down


async def test_one_large_write_each_way_over_memory_streams(
    tls_pair: tuple[S2STLS, S2STLS],
) -> None:
    server_side, client_side = await _connect(*tls_pair, *trio.testing.memory_stream_pair())
    up, down = _payload(3, MIB), _payload(4, MIB)
    received: dict[str, bytes] = {}

    async def read(stream: PyOpenSSLStream, name: str) -> None:
        received[name] = await _receive_exactly(stream, MIB)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_side.send_all, up)
            nursery.start_soon(server_side.send_all, down)
            nursery.start_soon(read, server_side, "up")
            nursery.start_soon(read, client_side, "down")
    assert received["up"] == up and received["down"] == down


# ---------------------------------------------------------------- cancellation


async def test_a_send_cut_short_breaks_the_stream_instead_of_corrupting_it(
    tls_pair: tuple[S2STLS, S2STLS],
) -> None:
    server_side, client_side = await _connect(*tls_pair, *_socket_pair())
    payload = _payload(5, MIB)
    with trio.move_on_after(0.2) as scope:
        await client_side.send_all(payload)  # the server reads nothing: blocks, then cut
    assert scope.cancelled_caught
    # part of a record may be on the wire: going on would send garbage after it
    with trio.fail_after(2):
        with pytest.raises(trio.BrokenResourceError):
            await client_side.send_all(b"<presence/>")
        with trio.fail_after(0.5):  # no close_notify to push through a blocked socket
            await client_side.aclose()
    # the server gets a prefix of what was sent, then a broken stream; never other bytes
    received = bytearray()
    with trio.fail_after(5), pytest.raises(trio.BrokenResourceError):
        while chunk := await server_side.receive_some():
            received += chunk
    assert received == payload[: len(received)]
    await server_side.aclose()


class _CancelOnData(trio.abc.Stream):
    """A transport whose next read that returns data also cancels ``scope``: the cancel
    arrives just as the bytes do (an idle deadline expiring at that moment)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.scope: trio.CancelScope | None = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self.inner.receive_some(max_bytes)
        if data and self.scope is not None:
            self.scope.cancel()
            self.scope = None
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_receive_cancelled_as_data_arrives_loses_nothing(
    tls_pair: tuple[S2STLS, S2STLS],
) -> None:
    left, right = trio.testing.memory_stream_pair()
    transport = _CancelOnData(left)
    server_side, client_side = await _connect(*tls_pair, transport, right)
    await client_side.send_all(b"<message>one</message>")
    received = b""
    with trio.CancelScope() as scope:
        transport.scope = scope
        received += await server_side.receive_some()
    await client_side.send_all(b"<message>two</message>")
    with trio.fail_after(2):
        while len(received) < 44:
            received += await server_side.receive_some()
    assert received == b"<message>one</message><message>two</message>"


async def test_a_receive_waiting_for_data_keeps_no_exception_alive(
    tls_pair: tuple[S2STLS, S2STLS],
) -> None:
    server_side, client_side = await _connect(*tls_pair, *_socket_pair(None))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server_side.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()  # an idle s2s stream's whole life: a traceback would hold the frames
        assert [obj for obj in gc.get_objects() if isinstance(obj, SSL.WantReadError)] == []
        nursery.cancel_scope.cancel()
    await server_side.aclose()
    await client_side.aclose()


# ---------------------------------------------------------------- closing


async def test_close_notify_reads_as_eof_after_the_data(tls_pair: tuple[S2STLS, S2STLS]) -> None:
    server_side, client_side = await _connect(*tls_pair, *_socket_pair(None))
    payload = _payload(6, 100_000)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def send_and_close() -> None:
                await client_side.send_all(payload)
                await client_side.aclose()

            nursery.start_soon(send_and_close)
            assert await _receive_exactly(server_side, len(payload)) == payload
            assert await server_side.receive_some() == b""
            assert await server_side.receive_some() == b""  # and stays at EOF
    await server_side.aclose()


async def test_eof_without_close_notify_is_a_broken_stream(
    tls_pair: tuple[S2STLS, S2STLS],
) -> None:
    server_side, client_side = await _connect(*tls_pair, *_socket_pair(None))
    await client_side.send_all(b"<iq/>")
    await client_side.transport.aclose()  # the TCP connection ends, TLS does not
    with trio.fail_after(5):
        assert await server_side.receive_some() == b"<iq/>"
        with pytest.raises(trio.BrokenResourceError):
            await server_side.receive_some()
    await server_side.aclose()


async def test_aclose_is_bounded_when_the_peer_stops_reading(
    tls_pair: tuple[S2STLS, S2STLS],
) -> None:
    server_side, client_side = await _connect(*tls_pair, *_socket_pair())

    async def send() -> None:
        with pytest.raises(trio.ClosedResourceError):  # closed under it, by another task
            await client_side.send_all(_payload(7, MIB))  # blocks: nobody reads

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await trio.sleep(0.1)
        with trio.fail_after(3):
            await client_side.aclose()
    await server_side.aclose()


# ---------------------------------------------------------------- verification record


async def test_verification_is_recorded_per_connection_not_per_context(
    tmp_path: Path, ca: CA, tls_pair: tuple[S2STLS, S2STLS]
) -> None:
    server, trusted = tls_pair
    untrusted = _tls(tmp_path, ca, self_signed("client.test"), "self")
    first, _ = await _connect(server, untrusted, *trio.testing.memory_stream_pair())
    second, _ = await _connect(server, trusted, *trio.testing.memory_stream_pair())
    third, _ = await _connect(server, untrusted, *trio.testing.memory_stream_pair())
    seen = [s.peer_certificate() for s in (first, second, third)]
    assert [c is not None and c.verified for c in seen] == [False, True, False]
