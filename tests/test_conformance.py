"""The invisibility conformance suite against every built-in strategy and combination.

Each scenario of ``casper.testing.SCENARIOS`` runs against each built-in strategy's
driver alone, and on servers enabling several strategies together (every combination a
server may enable, since they compose: any deny wins), driven by each member's driver in
turn. Over real loopback TCP and TLS; a fresh server per scenario.

The last tests check the suite itself: it fails a driver that hides nothing, and one that
claims more than its strategy hides.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from casper.testing import (
    BUILTIN_DRIVERS,
    SCENARIOS,
    DirectedPresenceDriver,
    InvisibilityDriver,
    InvisibleCommandDriver,
    PrivacyListsDriver,
    TestClient,
    Xep0018Driver,
    run_conformance,
)
from casper.testing.conformance import Scenario, send

STRATEGIES: dict[str, type[InvisibilityDriver]] = {
    "directed-presence": DirectedPresenceDriver,
    "xep0018": Xep0018Driver,
    "invisible-command": InvisibleCommandDriver,
    "privacy-lists": PrivacyListsDriver,
}


# Known bugs, by (scenario name, driving member): those cases fail until it is fixed.
def cases() -> Iterator[object]:
    """(scenario, enabled strategies, the member whose driver drives) for every scenario
    and every non-empty set of strategies."""
    for scenario in SCENARIOS:
        for size in range(1, len(STRATEGIES) + 1):
            for enabled in itertools.combinations(STRATEGIES, size):
                for member in enabled:
                    case_id = f"{scenario.__name__}-{'+'.join(enabled)}:{member}"
                    yield pytest.param(scenario, enabled, member, id=case_id)


def test_every_builtin_driver_is_in_the_matrix() -> None:
    assert set(STRATEGIES.values()) == set(BUILTIN_DRIVERS)
    assert {plugin for cls in BUILTIN_DRIVERS for plugin in cls.plugins} == set(STRATEGIES)


@pytest.mark.parametrize(("scenario", "enabled", "member"), list(cases()))
async def test_scenario_passes_for_strategy_alone_and_in_every_combination(
    scenario: Scenario, enabled: tuple[str, ...], member: str
) -> None:
    await scenario(STRATEGIES[member](plugins=enabled))


@pytest.mark.parametrize("enabled", [("privacy-lists",), tuple(STRATEGIES)], ids=["alone", "all"])
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_scenario_passes_for_privacy_lists_that_also_block_iqs(
    scenario: Scenario, enabled: tuple[str, ...]
) -> None:
    await scenario(PrivacyListsDriver(block_iqs=True, plugins=enabled))


# ---------------------------------------------------------------- the suite itself


class HidesNothing(InvisibilityDriver):
    """'Invisible' means available: every scenario must catch it."""

    async def go_invisible(self, client: TestClient) -> None:
        await send(client, "<presence/>")

    async def show_to(self, client: TestClient, contact: str) -> None:
        await send(client, f"<presence to='{contact}'/>")

    async def go_visible(self, client: TestClient) -> None:
        await send(client, "<presence/>")


class ClaimsIqHiding(Xep0018Driver):
    hides_full_jid_iqs = True


async def test_suite_fails_every_scenario_for_a_driver_that_hides_nothing() -> None:
    report = await run_conformance(HidesNothing())
    assert not report.passed
    assert [o.scenario for o in report.failures] == [s.__name__ for s in SCENARIOS], str(report)
    # the report names the failed expectation itself, not the nursery around it
    assert all(o.error and o.error.startswith("AssertionError") for o in report.failures), str(
        report
    )


async def test_suite_fails_a_driver_claiming_iq_hiding_its_strategy_lacks() -> None:
    report = await run_conformance(ClaimsIqHiding())
    assert [o.scenario for o in report.failures] == ["full_jid_iqs_are_hidden_exactly_as_claimed"]
    assert str(report).startswith("ClaimsIqHiding(plugins=('xep0018',)): 12/13 scenarios passed")


async def test_suite_passes_a_builtin_driver_and_reports_each_scenario() -> None:
    report = await run_conformance(Xep0018Driver())
    assert report.passed, str(report)
    assert [o.scenario for o in report.outcomes] == [s.__name__ for s in SCENARIOS]
