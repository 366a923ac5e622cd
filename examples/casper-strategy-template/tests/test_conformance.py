"""The working-hours strategy against Casper's invisibility conformance suite.

The driver tells the suite how a client hides with this strategy: the clock leaves working
hours (``ManualClock.set`` returns once the strategy has acted), and the client sends its
presence as usual; directed presence shows it to one contact; the clock entering working
hours makes it visible again.
"""

from __future__ import annotations

import datetime as dt
import weakref

import pytest
from casper.testing import SCENARIOS, InvisibilityDriver, TestClient
from casper.testing.conformance import Scenario, roundtrip
from casper_working_hours import ManualClock

MONDAY_NOON = dt.datetime(2024, 6, 3, 12, 0, tzinfo=dt.UTC)
MONDAY_NIGHT = dt.datetime(2024, 6, 3, 22, 0, tzinfo=dt.UTC)


class WorkingHoursDriver(InvisibilityDriver):
    """Invisible = after hours; shown = directed presence; visible = back in the office."""

    plugins = ("working-hours",)
    hides_full_jid_iqs = False  # full-JID IQs reach the client, which answers them

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(MONDAY_NOON)
        self.plugin_settings = {
            # the suite's romeo hides his resource r1; his other resources stay visible
            "working-hours": {"accounts": ["romeo@localhost/r1"], "clock": self.clock}
        }
        self._announced: weakref.WeakSet[TestClient] = weakref.WeakSet()

    async def _announce(self, client: TestClient) -> None:
        """The client's initial presence, once: the strategy decides who sees it."""
        if client not in self._announced:
            self._announced.add(client)
            await client.send("<presence/>")
            await roundtrip(client)

    async def go_invisible(self, client: TestClient) -> None:
        await self.clock.set(MONDAY_NIGHT)
        await self._announce(client)

    async def show_to(self, client: TestClient, contact: str) -> None:
        await client.send(f"<presence to='{contact}'/>")
        await roundtrip(client)

    async def go_visible(self, client: TestClient) -> None:
        await self.clock.set(MONDAY_NOON)
        await self._announce(client)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_conformance(scenario: Scenario) -> None:
    await scenario(WorkingHoursDriver())


def test_the_suite_is_not_empty() -> None:
    assert len(SCENARIOS) >= 10
