"""Casper <-> Casper federation: messages, subscriptions, presence and probes across servers."""

from __future__ import annotations

from tests.core.conftest import (
    any_presence_from,
    is_error,
    message_with_id,
    presence_from,
    quiet,
    send_message,
    sync,
)
from tests.s2s.conftest import Federation

C = "{jabber:client}"


async def test_message_both_ways(fed: Federation) -> None:
    async with fed.a.client("romeo", presence=True) as romeo, \
            fed.b.client("juliet", presence=True) as juliet:  # fmt: skip
        msg = await send_message(romeo, juliet.jid)
        got = await juliet.expect(message_with_id(msg), timeout=10)
        assert got.get("from") == str(romeo.jid)
        assert got.findtext(f"{C}body") == "hello"
        reply = await send_message(juliet, romeo.jid)
        got = await romeo.expect(message_with_id(reply), timeout=10)
        assert got.get("from") == str(juliet.jid)
    stats = fed.a.server.s2s.statistics()
    assert stats["outgoing"] == ["a.test->b.test"]
    assert stats["incoming"] == ["b.test->a.test"]
