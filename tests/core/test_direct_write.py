"""A stanza for a session whose writer waits on an empty outbox is written by the delivering
task (SocketTLSStream.send_now); order, completeness and the writer's part stay as before.

Real loopback TCP and TLS (``open_test_server(tcp=True)``): only a socket stream has the
direct path, and only real sockets fill up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element

import pytest
import trio
import trio.lowlevel
from casper.corks import CORK_LIMIT
from casper.testing import TestClient, TestServer, open_test_server
from casper.testing.client import StreamEnded
from casper.tls_stream import SocketTLSStream

from tests.helpers import sync

_MESSAGE = "{jabber:client}message"


class SendNowLog:
    """Wraps SocketTLSStream.send_now: how often it took a stanza, and left part pending."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = self.pending = 0
        original = SocketTLSStream.send_now

        def send_now(stream: SocketTLSStream, data: bytes) -> bool:
            taken = original(stream, data)
            self.taken += taken
            self.pending += taken and stream.send_pending
            return taken

        monkeypatch.setattr(SocketTLSStream, "send_now", send_now)


@asynccontextmanager
async def romeo_and_juliet(
    **config: object,
) -> AsyncIterator[tuple[TestServer, TestClient, TestClient]]:
    """A server on loopback TCP with Romeo and Juliet logged in over TLS."""
    async with (
        open_test_server(
            default_plugins=False,
            tcp=True,
            accounts=("romeo", "juliet"),
            stanza_rate=None,
            **config,
        ) as srv,  # type: ignore[arg-type]  # fmt: skip
        srv.client("romeo") as romeo,
        srv.client("juliet") as juliet,
    ):
        yield srv, romeo, juliet


def _message(to: object, n: int, body: str) -> str:
    return f"<message to='{to}' id='m{n}' type='chat'><body>{body}</body></message>"


async def _receive_messages(client: TestClient, count: int) -> list[Element]:
    received: list[Element] = []
    while len(received) < count:
        element = await client.recv(timeout=20)
        if element.tag == _MESSAGE:
            received.append(element)
    return received


async def test_direct_and_queued_messages_arrive_complete_and_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = SendNowLog(monkeypatch)
    count = 300
    async with romeo_and_juliet() as (_srv, romeo, juliet):
        await sync(juliet)
        for n in range(count // 2):  # one at a time: juliet's writer is idle for most
            await romeo.send(_message(juliet.jid, n, str(n)))
            await trio.lowlevel.checkpoint()
        burst = "".join(_message(juliet.jid, n, str(n)) for n in range(count // 2, count))
        await romeo.send(burst)  # many in one read: queued behind each other
        received = await _receive_messages(juliet, count)
    assert [m.get("id") for m in received] == [f"m{n}" for n in range(count)]
    assert [m.findtext("{jabber:client}body") for m in received] == [str(n) for n in range(count)]
    assert log.taken > 0


async def test_a_direct_write_the_socket_cannot_take_whole_is_finished_by_the_writer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = SendNowLog(monkeypatch)
    big = "x" * 200_000
    async with romeo_and_juliet(outbox_size=1000) as (_srv, romeo, juliet):
        await sync(juliet)
        sent = 0
        with trio.fail_after(30):
            while not log.pending and sent < 200:  # juliet reads nothing: the socket fills
                await romeo.send(_message(juliet.jid, sent, f"{sent}:{big}"))
                sent += 1
                await trio.sleep(0.005)  # her writer goes idle in between
            # the last message was left in part with OpenSSL, and nothing follows it
            received = await _receive_messages(juliet, sent)
    assert log.pending > 0
    assert [m.findtext("{jabber:client}body") for m in received] == [
        f"{n}:{big}" for n in range(sent)
    ]


async def test_direct_writes_under_stream_management_are_counted_and_acked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = SendNowLog(monkeypatch)
    async with romeo_and_juliet(sm_ack_interval=0.2) as (srv, romeo, juliet):
        await juliet.send("<enable xmlns='urn:xmpp:sm:3'/>")
        await juliet.expect(lambda e: e.tag == "{urn:xmpp:sm:3}enabled")
        handled = 0  # stanzas juliet got since <enabled/>, as she will tell the server
        for n in range(20):
            await romeo.send(_message(juliet.jid, n, str(n)))
            await trio.sleep(0.01)
        received = []
        while len(received) < 20:
            element = await juliet.recv()
            if element.tag.startswith("{jabber:client}"):
                handled += 1
                received.append(element)
        taken_while_chatting = log.taken
        await juliet.expect(lambda e: e.tag == "{urn:xmpp:sm:3}r")  # within the ack interval
        await juliet.send(f"<a xmlns='urn:xmpp:sm:3' h='{handled}'/>")
        session = srv.server.router.session_for(juliet.jid)
        assert session is not None
        with trio.fail_after(5):
            while session.sm.pending:
                await trio.sleep(0.01)
    assert [m.get("id") for m in received] == [f"m{n}" for n in range(20)]
    assert taken_while_chatting > 0


@pytest.mark.parametrize("attempt", range(8))  # the burst is not always read at once
async def test_a_stanza_left_pending_when_the_outbox_overflows_is_delivered_or_bounced_not_both(
    monkeypatch: pytest.MonkeyPatch, attempt: int
) -> None:
    original = SocketTLSStream.send_now

    def send_now_socket_full(stream: SocketTLSStream, data: bytes) -> bool:
        if b"PENDING" in data and not stream.send_pending:
            stream._unfinished = memoryview(data)  # as OpenSSL keeps a write the socket refused
            return True
        return original(stream, data)

    monkeypatch.setattr(SocketTLSStream, "send_now", send_now_socket_full)
    juliet_got: list[tuple[str | None, str | None]] = []
    romeo_got: list[tuple[str | None, str | None]] = []
    async with romeo_and_juliet(outbox_size=16) as (_srv, romeo, juliet):
        await sync(juliet)
        # one read: m0 and those held with it are written at once (and left pending), the
        # rest overflow her outbox
        burst = _message(juliet.jid, 0, "PENDING")
        burst += "".join(_message(juliet.jid, n, "x") for n in range(1, CORK_LIMIT + 60))
        await romeo.send(burst)
        with pytest.raises(StreamEnded, match="resource-constraint"), trio.fail_after(10):
            while True:
                element = await juliet.recv(timeout=10)
                juliet_got.append((element.get("id"), element.get("type")))
        with trio.move_on_after(0.5):
            while True:
                element = await romeo.recv(timeout=1)
                romeo_got.append((element.get("id"), element.get("type")))
    delivered = ("m0", "chat") in juliet_got
    bounced = ("m0", "error") in romeo_got
    assert delivered != bounced, (juliet_got, romeo_got)
