"""directed-presence: full-JID messages flow between sessions that never sent presence.

The "Openfire and RFC3921 compliancy" forum thread's U1/U2 sequence, with a contact and
with a stranger: full-JID messages are delivered both ways at once; bare-JID messages to
a never-available account are stored and arrive, in order, with its first presence.
"""

from __future__ import annotations

import pytest

from tests.helpers import befriend, sync
from tests.plugins.directed_presence.conftest import (
    DELAY,
    ROMEO,
    message_id,
    messages,
    open_server,
    quiet,
    say_without_error,
    stored,
)


@pytest.mark.parametrize("peer", ["juliet", "tybalt"], ids=["contact", "stranger"])
async def test_forum_sequence_full_jid_messages_flow_and_bare_ones_wait_for_presence(
    peer: str,
) -> None:
    """The forum thread's U1/U2 sequence with RFC 6121 outcomes: full-JID messages are
    delivered both ways between sessions that never sent presence; bare-JID messages to
    a never-available account go offline and arrive with its first available presence."""
    u2_account = f"{peer}@localhost"
    async with open_server() as srv:
        if peer == "juliet":
            await befriend(srv, "romeo", "juliet")
        # U1 and U2 connect and authenticate but send no initial presence
        async with (
            srv.client("romeo", resource="orchard") as u1,
            srv.client(peer, resource="home") as u2,
        ):
            u1_full, u2_full = f"{ROMEO}/orchard", f"{u2_account}/home"
            # U1 -> U2: the full-JID message is delivered, the bare-JID one stored
            full_1 = await say_without_error(u1, u2_full)
            bare_1 = await say_without_error(u1, u2_account)
            await u2.expect(message_id(full_1))
            await quiet(u2, message_id(bare_1))
            # U2 -> U1: the same
            full_2 = await say_without_error(u2, u1_full)
            bare_2 = await say_without_error(u2, ROMEO)
            await u1.expect(message_id(full_2))
            await quiet(u1, message_id(bare_2))
            assert (await stored(srv, ROMEO), await stored(srv, u2_account)) == (1, 1)
            # U1 sends initial presence: only now the bare-JID message from U2 arrives
            await u1.send("<presence/>")
            arrived = messages(await sync(u1))
            assert [m.get("id") for m in arrived] == [bare_2]
            assert arrived[0].find(DELAY) is not None
            # U1 -> U2 again: full delivered, bare stored; U2 -> U1: both delivered live
            full_3 = await say_without_error(u1, u2_full)
            bare_3 = await say_without_error(u1, u2_account)
            await u2.expect(message_id(full_3))
            await quiet(u2, message_id(bare_3))
            full_4 = await say_without_error(u2, u1_full)
            bare_4 = await say_without_error(u2, ROMEO)
            live = [await u1.expect(message_id(i)) for i in (full_4, bare_4)]
            assert all(m.find(DELAY) is None for m in live)
            # U2 sends initial presence: it gets U1's two bare-JID messages, in order
            await u2.send("<presence/>")
            arrived = messages(await sync(u2))
            assert [m.get("id") for m in arrived] == [bare_1, bare_3]
            assert all(m.find(DELAY) is not None for m in arrived)
            assert (await stored(srv, ROMEO), await stored(srv, u2_account)) == (0, 0)
            # U1 and U2 now communicate without trouble, bare or full
            for sender, receiver, to in ((u1, u2, u2_account), (u2, u1, ROMEO)):
                msg_id = await say_without_error(sender, to)
                assert (await receiver.expect(message_id(msg_id))).find(DELAY) is None
