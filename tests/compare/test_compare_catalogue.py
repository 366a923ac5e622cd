"""The scenario catalogue: the shipped files load, and every mistake in a file is named."""

from __future__ import annotations

import pytest
from casper.compare.catalogue import (
    ACTIONS,
    CHANNELS,
    Action,
    CatalogueError,
    Observe,
    load_catalogue,
    parse_scenario,
    select,
)

GOOD = """
title = "t"
summary = "s"
resources = ["desk", "phone"]
room = true

[[step]]
do = "login-invisible"

[[step]]
do = "show-to"
group = "Work"

[[step]]
observe = "while hidden"
friend = ["presence", "iq-version"]
stranger = ["room-occupancy"]
user = ["sees-contacts", "in-room"]

[[step]]
observe = "phone"
resource = "phone"
friend = ["iq-version"]
"""


def test_shipped_catalogue_loads_in_order_with_unique_check_ids() -> None:
    scenarios = load_catalogue()
    assert len(scenarios) >= 9
    assert [s.order for s in scenarios] == sorted(s.order for s in scenarios)
    ids = [c.id for s in scenarios for c in s.checks]
    assert len(ids) == len(set(ids))
    used_actions = {step.action for s in scenarios for step in s.steps if isinstance(step, Action)}
    used_channels = {c.channel for s in scenarios for c in s.checks}
    # the catalogue exercises every step and every observation channel the issue lists
    assert used_actions == set(ACTIONS)
    assert used_channels == set(CHANNELS)


def test_good_scenario_parses_into_checks_with_resources() -> None:
    scenario = parse_scenario("demo", GOOD)
    assert scenario.resources == ("desk", "phone")
    assert isinstance(scenario.steps[1], Action) and scenario.steps[1].group == "Work"
    assert isinstance(scenario.steps[2], Observe)
    ids = [c.id for c in scenario.checks]
    assert ids == [
        "demo/while-hidden/presence/friend",
        "demo/while-hidden/iq-version/friend",
        "demo/while-hidden/room-occupancy/stranger",
        "demo/while-hidden/sees-contacts/user",
        "demo/while-hidden/in-room/user",
        "demo/phone/iq-version@phone/friend",
    ]
    assert scenario.checks[-1].resource == "phone"
    assert scenario.checks[0].kind == "leak" and scenario.checks[3].kind == "usability"


TWICE = "[[step]]\nobserve = 'a'\nfriend = ['presence']\n"
BAD = [
    ("title = 'x'\n[[step]]\ndo = 'login'", "'summary' must be a non-empty string"),
    ("title = 'x'\nsummary = 's'", "no [[step]] tables"),
    ("title = 'x'\nsummary = 's'\ncolour = 1\n[[step]]\ndo = 'login'", "unknown key ['colour']"),
    ("title = 'x'\nsummary = 's'\n[[step]]\ndo = 'fly'", "unknown action 'fly'"),
    ("title = 'x'\nsummary = 's'\n[[step]]\ndo = 'login'\nobserve = 'a'\nfriend = ['presence']",
     "exactly one of 'do' or 'observe'"),
    ("title = 'x'\nsummary = 's'\n[[step]]\ndo = 'login'\nresource = 'tablet'", "resource 'tablet'"),
    ("title = 'x'\nsummary = 's'\n[[step]]\ndo = 'show-to'", "show-to needs a contact or a group"),
    ("title = 'x'\nsummary = 's'\n[[step]]\ndo = 'show-to'\ngroup = 'Family'", "unknown group 'Family'"),
    ("title = 'x'\nsummary = 's'\n[[step]]\ndo = 'logout'\ncontact = 'friend'", "takes no contact"),
    ("title = 'x'\nsummary = 's'\n[[step]]\nobserve = 'a'\nfriend = ['telepathy']", "unknown channel"),
    ("title = 'x'\nsummary = 's'\n[[step]]\nobserve = 'a'\nfriend = ['sees-contacts']",
     "sees-contacts is observed by user"),
    ("title = 'x'\nsummary = 's'\n[[step]]\nobserve = 'a'\nstranger = ['room-occupancy']", "needs room = true"),
    ("title = 'x'\nsummary = 's'\n[[step]]\nobserve = 'a'\nneighbour = ['presence']", "unknown observer"),
    ("title = 'x'\nsummary = 's'\n[[step]]\nobserve = 'a'", "needs at least one observer"),
    ("title = 'x'\nsummary = 's'\n" + TWICE * 2, "appears twice"),
    ("title = 'x\n", "not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_scenario_is_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(CatalogueError, match=None) as info:
        parse_scenario("bad", text, "bad.toml")
    assert str(info.value).startswith("bad.toml")
    assert message in str(info.value)


def test_select_keeps_catalogue_order_and_refuses_unknown_names() -> None:
    scenarios = load_catalogue()
    chosen = select(scenarios, ["come-back", "login-invisible"])
    assert [s.id for s in chosen] == ["login-invisible", "come-back"]
    with pytest.raises(CatalogueError, match="unknown scenario 'nope'"):
        select(scenarios, ["nope"])


def test_catalogue_directory_errors(tmp_path) -> None:
    with pytest.raises(CatalogueError, match="not a directory"):
        load_catalogue(tmp_path / "missing")
    with pytest.raises(CatalogueError, match="no scenarios"):
        load_catalogue(tmp_path)
    (tmp_path / "mine.toml").write_text(GOOD)
    assert [s.id for s in load_catalogue(tmp_path)] == ["mine"]
