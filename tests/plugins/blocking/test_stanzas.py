"""blocking: what a block does to stanzas, outbound and inbound.

Anything romeo sends to a blocked JID is refused with ``not-acceptable`` and
``<blocked/>``; whatever a blocked JID sends him looks like an offline account (errors
as offline, nothing stored, nothing for types an offline account ignores). The block
holds while romeo is offline and across sessions; a full-JID block stops only that
resource.
"""

from __future__ import annotations

import pytest
from casper.testing import TestServer

from tests.helpers import new_id, query
from tests.plugins.blocking.conftest import (
    BALCONY,
    JULIET,
    ORCHARD,
    ROMEO,
    VERSION,
    block,
    blocked_error,
    cast,
    get_blocklist,
    open_server,
    replied,
    say,
)
from tests.plugins.privacy_lists.privacy_kit import error_condition, is_presence, sync


async def offline_count(srv: TestServer, account: str) -> int:
    return await srv.server.db(srv.server.storage.count_offline, account)


@pytest.mark.parametrize(
    "stanza",
    [
        "<message to='{to}' type='chat' id='{id}'><body>hi</body></message>",
        "<message to='{to}' id='{id}'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<iq to='{to}' type='get' id='{id}'><query xmlns='jabber:iq:version'/></iq>",
        "<presence to='{to}' type='subscribe' id='{id}'/>",
        "<presence to='{to}' id='{id}'/>",
    ],
    ids=["message", "chat state", "iq", "subscribe", "directed presence"],
)
@pytest.mark.parametrize("to", [JULIET, BALCONY])
async def test_outbound_to_a_blocked_jid_is_not_acceptable_blocked(plugins, stanza, to):
    async with open_server(plugins) as srv, cast(srv, "romeo/orchard", "juliet/balcony") as c:
        await block(c["orchard"], JULIET)
        await c["balcony"].expect(is_presence(ORCHARD, "unavailable"))
        stanza_id = new_id("out")
        await c["orchard"].send(stanza.format(to=to, id=stanza_id))
        reply = await c["orchard"].expect(replied(stanza_id))
        assert reply.get("type") == "error" and blocked_error(reply)
        await c["balcony"].expect_nothing()


async def test_inbound_from_a_blocked_jid_looks_offline(plugins):
    async with open_server(plugins) as srv, cast(srv, "romeo/orchard", "juliet/balcony") as c:
        orchard, balcony = c["orchard"], c["balcony"]
        await block(orchard, JULIET)
        await balcony.expect(is_presence(ORCHARD, "unavailable"))
        await orchard.expect(is_presence(BALCONY, "unavailable"))
        for to in (ROMEO, ORCHARD):
            for kind in ("chat", "normal"):
                stanza_id = new_id("in")
                await say(balcony, to, stanza_id, kind)
                reply = await balcony.expect(replied(stanza_id))
                assert error_condition(reply) == "service-unavailable"
            for query_payload in (VERSION, "<query xmlns='jabber:iq:last'/>"):
                reply = await query(balcony, to, query_payload)
                assert error_condition(reply) == "service-unavailable"
        for type_ in ("groupchat", "headline"):
            await say(balcony, ORCHARD, "gc", type_)
        await balcony.send(f"<iq to='{ORCHARD}' type='result' id='stray'/>")
        await balcony.expect_nothing(lambda e: e.get("id") in ("gc", "stray"))
        await orchard.expect_nothing(lambda e: (e.get("from") or "").startswith(JULIET))
        assert await offline_count(srv, ROMEO) == 0


async def test_block_holds_while_offline_and_across_sessions(plugins):
    async with open_server(plugins) as srv:
        async with srv.client("romeo", resource="orchard") as romeo:
            await block(romeo, JULIET)
        async with srv.client("juliet", resource="balcony", presence=True) as juliet:
            for sender_id in ("m1", "m2"):
                await say(juliet, ROMEO, sender_id)
                assert (
                    error_condition(await juliet.expect(replied(sender_id)))
                    == "service-unavailable"
                )
            assert error_condition(await query(juliet, ROMEO, VERSION)) == "service-unavailable"
        async with srv.client("nurse", resource="chamber") as nurse:
            await say(nurse, ROMEO, "n1")
            await sync(nurse)
        assert await offline_count(srv, ROMEO) == 1  # the nurse's, never juliet's
        async with srv.client("romeo", resource="hall") as romeo:
            assert await get_blocklist(romeo) == [JULIET]


async def test_full_jid_block_stops_only_that_resource(plugins):
    async with (
        open_server(plugins) as srv,
        cast(srv, "romeo/orchard", "juliet/balcony", "juliet/tomb") as c,
    ):
        await block(c["orchard"], BALCONY)
        for name, ok in (("balcony", False), ("tomb", True)):
            stanza_id = new_id(name)
            await say(c[name], ORCHARD, stanza_id)
            if ok:
                await c["orchard"].expect(replied(stanza_id))
            else:
                assert (
                    error_condition(await c[name].expect(replied(stanza_id)))
                    == "service-unavailable"
                )
        stanza_id = new_id("out")
        await say(c["orchard"], BALCONY, stanza_id, "normal")
        assert blocked_error(await c["orchard"].expect(replied(stanza_id)))
