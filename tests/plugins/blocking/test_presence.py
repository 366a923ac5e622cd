"""blocking: what a block does to presence.

Blocking sends unavailable both ways (every resource) and unblocking the current
presence; presence changes do not cross a block either way; a block withdraws directed
presence; a blocked contact's presence gets no answer and its probe the offline one.
Other contacts notice nothing.
"""

from __future__ import annotations

from tests.plugins.blocking.conftest import (
    BALCONY,
    HALL,
    JULIET,
    NURSE,
    ORCHARD,
    ROMEO,
    block,
    cast,
    open_server,
    unblock,
)
from tests.plugins.privacy_lists.privacy_kit import CLIENT, is_presence


async def test_block_sends_unavailable_both_ways_and_unblock_current_presence(plugins):
    async with (
        open_server(plugins) as srv,
        cast(srv, "romeo/orchard", "romeo/hall", "juliet/balcony", "nurse/chamber") as c,
    ):
        await c["orchard"].send(
            "<presence><show>away</show><status>In the orchard</status></presence>"
        )
        for name in ("balcony", "chamber"):
            await c[name].expect(is_presence(ORCHARD, None))
        await block(c["orchard"], JULIET)
        for resource in (ORCHARD, HALL):
            await c["balcony"].expect(is_presence(resource, "unavailable"))
        for name in ("orchard", "hall"):
            await c[name].expect(is_presence(BALCONY, "unavailable"))
        await c["chamber"].expect_nothing(is_presence())
        # while blocked, juliet's presence changes don't reach romeo, nor romeo's her
        await c["balcony"].send("<presence><show>chat</show></presence>")
        await c["hall"].send("<presence><show>dnd</show></presence>")
        await c["chamber"].expect(is_presence(HALL, None))
        await c["orchard"].expect_nothing(is_presence(JULIET))
        await c["balcony"].expect_nothing(is_presence(ROMEO))

        await unblock(c["orchard"], JULIET)
        seen = {}
        for _ in range(2):
            presence = await c["balcony"].expect(is_presence(ROMEO, None))
            seen[presence.get("from")] = presence.findtext(f"{{{CLIENT}}}show")
        assert seen == {ORCHARD: "away", HALL: "dnd"}
        for name in ("orchard", "hall"):
            back = await c[name].expect(is_presence(BALCONY, None))
            assert back.findtext(f"{{{CLIENT}}}show") == "chat"
        await c["chamber"].expect_nothing(is_presence())


async def test_block_withdraws_directed_presence(plugins):
    async with (
        open_server(plugins) as srv,
        cast(srv, "romeo/orchard") as c,
        srv.client("nurse", resource="chamber") as stranger,  # sent no presence
    ):
        await c["orchard"].send(f"<presence to='{NURSE}/chamber'/>")
        await stranger.expect(is_presence(ORCHARD, None))
        await block(c["orchard"], NURSE)
        await stranger.expect(is_presence(ORCHARD, "unavailable"))


async def test_blocked_presence_gets_no_answer_and_a_probe_the_offline_one(plugins):
    async with open_server(plugins) as srv, cast(srv, "romeo/orchard", "juliet/balcony") as c:
        await block(c["orchard"], JULIET)
        await c["balcony"].expect(is_presence(ORCHARD, "unavailable"))
        await c["orchard"].expect(is_presence(BALCONY, "unavailable"))
        await c["balcony"].send(f"<presence to='{ROMEO}' type='subscribe'/>")
        await c["balcony"].send(f"<presence to='{ORCHARD}'/>")
        await c["balcony"].send(f"<presence to='{ORCHARD}' type='unavailable'/>")
        await c["balcony"].expect_nothing(is_presence(ROMEO))
        await c["orchard"].expect_nothing(is_presence(JULIET))
        # the core answers a local client's probe itself, with what an offline account
        # gives: unavailable from the bare JID, nothing about the sessions
        await c["balcony"].send(f"<presence to='{ROMEO}' type='probe'/>")
        answer = await c["balcony"].expect(is_presence(ROMEO))
        assert (answer.get("from"), answer.get("type")) == (ROMEO, "unavailable")
        await c["orchard"].expect_nothing(is_presence(JULIET))
