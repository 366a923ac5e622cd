"""The invisibility conformance suite on a cluster of two workers: romeo lives on one,
juliet and nurse on the other, and every client connects through the worker that is not
its home, so each stream is piped and each stanza between accounts crosses the bus. The
same scenarios as on one server must pass for every strategy that may run on a cluster;
the others are refused at startup (checked last)."""

from __future__ import annotations

import pytest
from casper.cluster.homes import home_of
from casper.cluster.supervisor import check_cluster_config
from casper.config import Config, ConfigError
from casper.jid import JID
from casper.testing import (
    SCENARIOS,
    DirectedPresenceDriver,
    InvisibilityDriver,
    InvisibleCommandDriver,
    PrivacyListsDriver,
    Xep0018Driver,
)
from casper.testing.conformance import Scenario

CLUSTER_READY: dict[str, type[InvisibilityDriver]] = {
    "directed-presence": DirectedPresenceDriver,
    "xep0018": Xep0018Driver,
    "invisible-command": InvisibleCommandDriver,
    "privacy-lists": PrivacyListsDriver,
}


def test_the_cast_is_split_between_the_workers() -> None:
    homes = {name: home_of(JID.make(name, "localhost"), 2) for name in ("romeo", "juliet", "nurse")}
    assert homes["romeo"] != homes["juliet"] == homes["nurse"]


@pytest.mark.parametrize("strategy", list(CLUSTER_READY))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario_passes_on_two_workers(scenario: Scenario, strategy: str) -> None:
    await scenario(CLUSTER_READY[strategy](workers=2))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario_passes_on_two_workers_for_privacy_lists_blocking_iqs(
    scenario: Scenario,
) -> None:
    await scenario(PrivacyListsDriver(block_iqs=True, workers=2))


class KeepsEveryonesSessions:
    """A plugin that does not say it is ready for several workers."""


def test_a_plugin_not_ready_for_a_cluster_is_refused_at_startup() -> None:
    with pytest.raises(ConfigError, match="plugin.s. unready cannot run on several workers"):
        check_cluster_config(Config(workers=2), [(KeepsEveryonesSessions(), "unready")])


def test_every_built_in_plugin_is_accepted() -> None:
    built_in = ("directed-presence", "xep0018", "invisible-command", "privacy-lists",
                "blocking", "muc")  # fmt: skip
    check_cluster_config(Config(workers=2, plugins=built_in))
