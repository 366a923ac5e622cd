"""The invisibility conformance suite: one set of scenarios for every strategy plugin.

Like trio's ``check_two_way_stream``: a strategy (built-in or third-party) hands the
suite a *driver* that knows how its clients hide, and each scenario checks, over real
loopback TCP and TLS, what everyone else can observe. Where a hidden user must look
offline, the answer is compared with the one the same observer gets while the user is
truly offline: ids aside, identical (delay stamps to the second).

Each scenario runs on a fresh ``open_test_server(tcp=True)`` with the hidden user
``romeo``, his contacts ``juliet`` and ``nurse`` and the stranger ``tybalt``
(:mod:`.scenarios`). Drivers for the built-in strategies are in :mod:`.drivers`.

A driver is any object with these attributes (subclass :class:`InvisibilityDriver` for
the optional ones):

- ``plugins``: names of the plugins to enable (beside the baseline set).
- ``async go_invisible(client)``: the session becomes invisible to everyone. Called on a
  freshly bound session before any presence, or on one made visible by ``go_visible``.
  When it returns the session is online for its user, as far as the strategy allows.
- ``async show_to(client, contact)``: an invisible session becomes visible to the bare
  JID ``contact`` only.
- ``async go_visible(client)``: visible to everyone entitled to its presence.
- ``async change_presence(client, payload)`` (optional): what the client sends when its
  user's status changes (auto-away); default: broadcast ``<presence>payload</presence>``.
- ``hides_full_jid_iqs`` (optional, default false): whether IQs to the session's full JID
  from those it is hidden from get the answer for an offline resource. Claims are checked
  both ways: a strategy must hide what it claims, and claim what it hides.
- ``plugin_settings`` (optional): ``[plugin.NAME]`` tables for the test server.

Each method returns once the server has processed what it sent (:func:`roundtrip`).

Use it from pytest::

    @pytest.mark.parametrize("scenario", SCENARIOS)
    async def test_conformance(scenario):
        await scenario(MyDriver())

or all at once: ``report = await run_conformance(MyDriver()); assert report.passed, report``.

A combination of strategies is checked by enabling the union of their plugins and
driving with each member's driver: ``Xep0018Driver(plugins=("xep0018", "privacy-lists"))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import trio

from casper.testing.conformance.drivers import (
    DirectedPresenceDriver,
    Driver,
    InvisibilityDriver,
    InvisibleCommandDriver,
    PrivacyListsDriver,
    Xep0018Driver,
    request,
    roundtrip,
    send,
)
from casper.testing.conformance.scenarios import SCENARIOS, Scenario

__all__ = [
    "BUILTIN_DRIVERS",
    "SCENARIOS",
    "ConformanceReport",
    "DirectedPresenceDriver",
    "Driver",
    "InvisibilityDriver",
    "InvisibleCommandDriver",
    "PrivacyListsDriver",
    "Scenario",
    "ScenarioOutcome",
    "Xep0018Driver",
    "request",
    "roundtrip",
    "run_conformance",
    "send",
]

BUILTIN_DRIVERS: tuple[type[InvisibilityDriver], ...] = (
    DirectedPresenceDriver,
    Xep0018Driver,
    InvisibleCommandDriver,
    PrivacyListsDriver,
)
"""A driver class for each built-in strategy plugin, in the order they were added."""


@dataclass(frozen=True)
class ScenarioOutcome:
    """One scenario's result: ``error`` is ``None`` when it passed."""

    scenario: str
    error: str | None
    seconds: float

    @property
    def passed(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ConformanceReport:
    """What :func:`run_conformance` found; ``str()`` gives one line per scenario."""

    driver: str
    outcomes: tuple[ScenarioOutcome, ...]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def failures(self) -> tuple[ScenarioOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.passed)

    def __str__(self) -> str:
        passed = len(self.outcomes) - len(self.failures)
        lines = [f"{self.driver}: {passed}/{len(self.outcomes)} scenarios passed"]
        for o in self.outcomes:
            verdict = "ok" if o.passed else f"FAILED: {o.error}"
            lines.append(f"  {o.scenario} ({o.seconds:.2f}s) {verdict}")
        return "\n".join(lines)


def _describe(exc: BaseException) -> str:
    """The failure itself, out of the nurseries' one-exception groups around it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


async def run_conformance(
    driver: Driver, scenarios: Sequence[Scenario] = SCENARIOS
) -> ConformanceReport:
    """Run every scenario against ``driver``, one after the other, each on its own server.

    :param driver: the strategy's driver.
    :param scenarios: the scenarios to run (default: all of :data:`SCENARIOS`).
    :return: one outcome per scenario, in order.

    Error handling: a scenario that fails or raises is recorded with its message and the
    next one runs; cancellation propagates.
    """
    outcomes = []
    for scenario in scenarios:
        started = trio.current_time()
        try:
            await scenario(driver)
        except Exception as exc:  # noqa: BLE001 - the report carries it
            error: str | None = _describe(exc)
        else:
            error = None
        outcomes.append(ScenarioOutcome(scenario.__name__, error, trio.current_time() - started))
    return ConformanceReport(repr(driver), tuple(outcomes))
