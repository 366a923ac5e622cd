"""blocking: blocking and the administrator's invisibility policy.

Blocking is communication blocking, never refused by the policy, but a blocked
``never_hidden_from`` observer still sees presence; where invisibility is disabled,
blocking still works and a block still hides presence.
"""

from __future__ import annotations

from tests.helpers import query
from tests.plugins.blocking.conftest import (
    JULIET,
    NURSE,
    ORCHARD,
    ROMEO,
    block,
    blocked_error,
    cast,
    get_blocklist,
    open_server,
    replied,
    say,
    unblock,
)
from tests.plugins.privacy_lists.privacy_kit import CLIENT, error_condition, is_presence

# ---------------------------------------------------------------- the administrator's policy

MANAGERS = {"never_hidden_from": ("managers",), "account_groups": {"managers": (JULIET,)}}


async def test_blocking_is_not_refused_by_the_policy_but_never_hidden_from_still_sees(plugins):
    """Blocking is communication blocking, never refused; hiding presence from a blocked
    ``never_hidden_from`` observer is the core's decision, which the policy overrides."""
    async with (
        open_server(plugins, **MANAGERS) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony") as c,
    ):
        await block(c["orchard"], JULIET)
        await c["balcony"].expect_nothing(is_presence(ORCHARD, "unavailable"))
        await say(c["balcony"], ROMEO, "p1")
        assert error_condition(await c["balcony"].expect(replied("p1"))) == "service-unavailable"
        await say(c["orchard"], JULIET, "p2", "normal")
        assert blocked_error(await c["orchard"].expect(replied("p2")))


async def test_blocking_works_where_invisibility_is_disabled(plugins):
    async with (
        open_server(plugins, invisibility=False) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony") as c,
    ):
        await block(c["orchard"], JULIET)
        assert await get_blocklist(c["orchard"]) == [JULIET]
        await say(c["balcony"], ROMEO, "d1")
        assert error_condition(await c["balcony"].expect(replied("d1"))) == "service-unavailable"
        await say(c["orchard"], JULIET, "d2", "normal")
        assert blocked_error(await c["orchard"].expect(replied("d2")))


async def test_a_block_hides_presence_even_where_invisibility_is_disabled(plugins):
    async with (
        open_server(plugins, invisibility=False) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony") as c,
        srv.client("nurse", resource="chamber") as stranger,  # sent no presence
    ):
        await c["orchard"].send(f"<presence to='{NURSE}/chamber'/>")
        await stranger.expect(is_presence(ORCHARD, None))
        await block(c["orchard"], JULIET, NURSE)
        await c["balcony"].expect(is_presence(ORCHARD, "unavailable"))
        await stranger.expect(is_presence(ORCHARD, "unavailable"))  # directed, withdrawn
        await c["orchard"].send("<presence><show>away</show></presence>")
        await c["balcony"].expect_nothing(is_presence(ROMEO))
        reply = await query(c["balcony"], ROMEO, "<query xmlns='jabber:iq:last'/>")
        assert error_condition(reply) == "service-unavailable"
        await unblock(c["orchard"], JULIET)
        back = await c["balcony"].expect(is_presence(ORCHARD, None))
        assert back.findtext(f"{{{CLIENT}}}show") == "away"
