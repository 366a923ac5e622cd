"""A client that stops reading is cut off after its bounded outbox; nobody else is slowed.

Real loopback TCP and TLS (``open_test_server(tcp=True)``): only real sockets fill up. Mallory
logs in and never reads again. The nurse floods her with large messages until the server
gives up on her (her socket buffers, then her outbox of ``outbox_size`` stanzas, fill up),
while Romeo and Juliet keep chatting the whole time. Every assertion is on delivery: each of
their messages arrives, in order; the nurse's sends never block; Mallory's session is gone.
"""

from __future__ import annotations

import trio
from casper.jid import JID
from casper.testing import TestClient, open_test_server
from casper.testing.client import StreamEnded

from tests.core.conftest import message_with_id
from tests.helpers import sync

ACCOUNTS = ("romeo", "juliet", "nurse", "mallory")
OUTBOX = 16
BIG = "x" * 60_000  # bytes of body per flood message
MAX_FLOOD = 2000  # messages: ~120 MB, far more than loopback buffers hold
CHAT = 100  # messages each way between Romeo and Juliet
DEADLINE = 60.0


async def chat(sender: TestClient, recipient: TestClient, prefix: str, count: int) -> None:
    """``sender`` sends ``count`` messages; ``recipient`` must get each, in order."""
    for i in range(count):
        await sender.send(
            f"<message to='{recipient.jid}' id='{prefix}{i}' type='chat'><body>{i}</body></message>"
        )
        await recipient.expect(message_with_id(f"{prefix}{i}"))


async def test_a_client_that_stops_reading_is_cut_off_without_slowing_anyone_else() -> None:
    server = open_test_server(
        default_plugins=False, tcp=True, accounts=ACCOUNTS, outbox_size=OUTBOX, stanza_rate=None
    )
    with trio.fail_after(DEADLINE):
        async with (
            server as srv,
            srv.client("romeo") as romeo,
            srv.client("juliet") as juliet,
            srv.client("nurse") as nurse,
        ):
            mallory = await srv.connect()
            await mallory.open_stream()
            await mallory.starttls(srv.client_context)
            await mallory.authenticate("mallory", "secret")
            mallory_jid: JID = await mallory.bind("phone")
            await sync(mallory)  # bound and routable; from now on she reads nothing
            router = srv.server.router
            assert router.session_for(mallory_jid) is not None
            flooded = 0

            async def flood() -> None:
                nonlocal flooded
                while router.session_for(mallory_jid) is not None and flooded < MAX_FLOOD:
                    await nurse.send(
                        f"<message to='{mallory_jid}' id='big{flooded}'><body>{BIG}</body></message>"
                    )
                    flooded += 1
                    if flooded % 20 == 0:
                        await sync(nurse)  # the nurse's own round trips never stall

            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood)
                nursery.start_soon(chat, romeo, juliet, "rj", CHAT)
                nursery.start_soon(chat, juliet, romeo, "jr", CHAT)
            assert router.session_for(mallory_jid) is None, "mallory was never cut off"
            assert OUTBOX < flooded < MAX_FLOOD
            # after the cut, the same traffic flows as before
            await chat(romeo, juliet, "after", 10)
            await nurse.send(f"<message to='{mallory_jid}' id='late'><body>x</body></message>")
            await sync(nurse)
            # the server closes mallory's connection too (after a bounded flush time)
            ended = False
            try:
                while True:
                    await mallory.recv(timeout=DEADLINE)
            except (StreamEnded, trio.BrokenResourceError, trio.ClosedResourceError):
                ended = True
            assert ended
            await mallory.stream.aclose()
