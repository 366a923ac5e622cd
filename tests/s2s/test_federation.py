"""Casper <-> Casper federation (two servers in one process, s2s over loopback TCP):
the shared scenarios (``tests/s2s/scenarios.py``), then what only this setup can show."""

from __future__ import annotations

import pytest
from casper.testing import BUILTIN_DRIVERS, InvisibilityDriver

from tests.core.conftest import message_with_id, send_message
from tests.s2s import scenarios
from tests.s2s.conftest import Federation, open_federation


async def test_message_both_ways(fed: Federation) -> None:
    async with fed.a.client("romeo", presence=True) as romeo, \
            fed.b.client("juliet", presence=True) as juliet:  # fmt: skip
        msg = await send_message(romeo, juliet.jid)
        got = await juliet.expect(message_with_id(msg), timeout=10)
        assert got.get("from") == str(romeo.jid)
        assert got.findtext("{jabber:client}body") == "hello"
        reply = await send_message(juliet, romeo.jid)
        got = await romeo.expect(message_with_id(reply), timeout=10)
        assert got.get("from") == str(juliet.jid)
    stats = fed.a.server.s2s.statistics()
    assert stats["outgoing"] == ["a.test->b.test"]
    assert stats["incoming"] == ["b.test->a.test"]


async def test_subscription_and_presence(fed: Federation) -> None:
    await scenarios.subscription_and_presence(fed.a, scenarios.CasperSide(fed.b), "juliet")


async def test_probe_on_login(fed: Federation) -> None:
    await scenarios.probe_on_login(fed.a, scenarios.CasperSide(fed.b), "juliet")


DRIVERS = [pytest.param(cls(), id=cls.__name__) for cls in BUILTIN_DRIVERS]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_invisible_to_remote_contact(driver: InvisibilityDriver) -> None:
    async with open_federation(a={"plugins": driver.plugins}) as fed:
        await scenarios.invisible_to_remote_contact(
            fed.a, scenarios.CasperSide(fed.b), "juliet", driver
        )
