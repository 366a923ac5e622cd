"""What one task step delivers to a client whose writer is idle is written in one send at
the end of the step (casper.corks), in order, and before anything the session does next.

Real loopback TCP and TLS: only a socket stream is written by the delivering task.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from casper.corks import CORK_LIMIT, Corks
from casper.errors import StreamError
from casper.session import Session
from casper.stanza import make_stanza
from casper.testing import TestClient, open_test_server
from casper.testing.client import StreamEnded
from casper.tls_stream import SocketTLSStream

from tests.helpers import note, sync

_MESSAGE = "{jabber:client}message"


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The data of every SocketTLSStream.send_now that carried messages."""
    sent: list[bytes] = []
    original = SocketTLSStream.send_now

    def send_now(stream: SocketTLSStream, data: bytes) -> bool:
        if b"<message" in data:
            sent.append(data)
        return original(stream, data)

    monkeypatch.setattr(SocketTLSStream, "send_now", send_now)
    return sent


@asynccontextmanager
async def juliet_idle() -> AsyncIterator[tuple[Session, TestClient]]:
    """Juliet logged in over loopback TLS, her writer waiting on an empty outbox."""
    async with (
        open_test_server(default_plugins=False, tcp=True, accounts=("juliet",)) as srv,
        srv.client("juliet") as juliet,
    ):
        await sync(juliet)
        session = srv.server.router.session_for(juliet.jid)
        assert session is not None and session.writer_idle
        yield session, juliet


async def _ids(client: TestClient, count: int) -> list[str | None]:
    ids: list[str | None] = []
    while len(ids) < count:
        element = await client.recv(timeout=10)
        if element.tag == _MESSAGE:
            ids.append(element.get("id"))
    return ids


async def test_what_one_step_delivers_to_a_client_goes_out_in_one_send(sends: list[bytes]) -> None:
    async with juliet_idle() as (session, juliet):
        for n in range(10):
            note(session, str(n), f"m{n}")
        assert sends == []  # held until this step ends
        await trio.lowlevel.checkpoint()
        assert len(sends) == 1 and sends[0].count(b"<message") == 10
        assert await _ids(juliet, 10) == [f"m{n}" for n in range(10)]


async def test_a_step_delivering_more_than_the_limit_writes_them_all_in_order(
    sends: list[bytes],
) -> None:
    count = 2 * CORK_LIMIT + 3
    async with juliet_idle() as (session, juliet):
        for n in range(count):
            note(session, str(n), f"m{n}")
        # each CORK_LIMIT held went at once; the last 3 wait for the step's end
        assert [data.count(b"<message") for data in sends] == [CORK_LIMIT, CORK_LIMIT]
        assert await _ids(juliet, count) == [f"m{n}" for n in range(count)]


async def test_held_stanzas_go_out_before_the_stream_error_of_a_close_in_the_same_step() -> None:
    async with juliet_idle() as (session, juliet):
        for n in range(3):
            note(session, str(n), f"m{n}")
        session.close(StreamError("policy-violation", "closed by the test"))
        received = []
        with pytest.raises(StreamEnded, match="policy-violation"):
            while True:
                received.append((await juliet.recv(timeout=10)).get("id"))
    assert received == ["m0", "m1", "m2"]


async def test_held_stanzas_go_out_before_bytes_queued_after_them() -> None:
    async with juliet_idle() as (session, juliet):
        note(session, "first", "m0")
        session.deliver_nowait_bytes(b"<message id='raw'/>")  # wakes the writer
        note(session, "last", "m1")
        assert await _ids(juliet, 3) == ["m0", "raw", "m1"]


async def test_a_failing_write_of_held_stanzas_leaves_them_to_the_writer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_write_now(stanzas: object) -> bool:
        raise RuntimeError("a bug in the direct write")

    async with juliet_idle() as (session, juliet):
        session.write_now = broken_write_now
        with caplog.at_level(logging.ERROR, logger="casper.session"):
            for n in range(3):
                note(session, str(n), f"m{n}")
            assert await _ids(juliet, 3) == ["m0", "m1", "m2"]
    assert "writing 3 stanzas at once failed" in caplog.text


class _SessionFailingToFlush:
    jid = "broken@localhost/x"
    flushed = 0

    def flush_corked(self) -> None:
        type(self).flushed += 1
        raise RuntimeError("a bug")


async def test_a_session_failing_to_flush_neither_stops_the_others_nor_the_instrument() -> None:
    corks = Corks()
    flushed: list[str] = []

    class Healthy:
        jid = "ok@localhost/x"

        def flush_corked(self) -> None:
            flushed.append(self.jid)

    async with trio.open_nursery() as nursery:
        await nursery.start(corks.serve)
        assert corks.active
        for _ in range(2):  # the instrument is still installed the second time
            corks.hold(_SessionFailingToFlush())  # type: ignore[arg-type]
            corks.hold(Healthy())  # type: ignore[arg-type]
            await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    assert flushed == ["ok@localhost/x", "ok@localhost/x"]
    assert _SessionFailingToFlush.flushed == 2
    assert not corks.active


async def test_held_stanzas_are_written_before_the_session_gives_up_its_transport() -> None:
    async with juliet_idle() as (session, juliet):
        note(session, "first", "m0")
        note(session, "second", "m1")
        session.transport_gone()  # as when a write failed: nothing more is written
        assert await _ids(juliet, 2) == ["m0", "m1"]


async def test_a_stanza_delivered_after_one_handed_to_the_idle_writer_follows_it() -> None:
    async with juliet_idle() as (session, juliet):
        for n in range(30):  # the writer may or may not have run before the second one
            assert session.writer_idle
            await session.outbox.send(make_stanza("message", to=session.jid, id=f"a{n}"))
            note(session, "live", f"b{n}")  # e.g. a live message after an offline one
            assert await _ids(juliet, 2) == [f"a{n}", f"b{n}"]
            await sync(juliet)
