"""The working-hours strategy: the window (plain functions), the clock, and the plugin on a
server from the casper fixtures, where the background task follows the clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import trio
import trio.lowlevel
from casper.config import ConfigError
from casper.storage.base import RosterItem
from casper_working_hours import Config, ManualClock

UTC = dt.UTC
MONDAY = dt.date(2024, 6, 3)


def at(day: int, hour: int, minute: int = 0, tz: dt.tzinfo = UTC) -> dt.datetime:
    """``day`` days after Monday 3 June 2024, at ``hour:minute``."""
    return dt.datetime.combine(MONDAY + dt.timedelta(days=day), dt.time(hour, minute), tzinfo=tz)


# ---------------------------------------------------------------- the window

DEFAULT = Config.from_mapping({})


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (at(0, 8, 59), False),
        (at(0, 9), True),  # the start is inside
        (at(0, 16, 59), True),
        (at(0, 17), False),  # the end is outside
        (at(4, 12), True),  # Friday
        (at(5, 12), False),  # Saturday
        (at(6, 12), False),  # Sunday
    ],
)
def test_inside_default_window(when: dt.datetime, inside: bool) -> None:
    assert DEFAULT.inside(when) is inside


@pytest.mark.parametrize(
    ("when", "change"),
    [
        (at(0, 8), at(0, 9)),
        (at(0, 9), at(0, 17)),
        (at(0, 12), at(0, 17)),
        (at(0, 17), at(1, 9)),
        (at(4, 17), at(7, 9)),  # Friday evening: Monday morning
        (at(5, 3), at(7, 9)),
    ],
)
def test_next_change(when: dt.datetime, change: dt.datetime) -> None:
    assert DEFAULT.next_change(when) == change


def test_the_window_is_in_the_configured_time_zone() -> None:
    config = Config.from_mapping({"timezone": "Asia/Tokyo", "start": "09:30", "end": "18:00"})
    tokyo = config.timezone
    assert config.inside(at(0, 9, 30, tokyo))
    assert not config.inside(at(0, 9, 30))  # 18:30 in Tokyo
    assert config.next_change(at(0, 0)) == at(0, 9, 30, tokyo)  # it is 09:00 in Tokyo


def test_no_working_day_means_always_outside() -> None:
    config = Config.from_mapping({"days": []})
    assert not config.inside(at(0, 12))
    assert config.next_change(at(0, 12)) == at(7, 12)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"start": "9"}, "start"),
        ({"end": "25:00"}, "end"),
        ({"start": "18:00", "end": "09:00"}, "start"),
        ({"days": ["monday"]}, "days"),
        ({"days": "mon"}, "days"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"accounts": ["not a jid@@"]}, "accounts"),
        ({"clock": "system"}, "clock"),
        ({"hours": 8}, "hours"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"plugin.working-hours.{key}"):
        Config.from_mapping(settings)


# ---------------------------------------------------------------- the manual clock


async def test_manual_clock_set_returns_once_sleepers_acted() -> None:
    clock = ManualClock(at(0, 12))
    acted: list[dt.datetime] = []

    async def follower() -> None:
        while True:
            await clock.sleep_until(clock.now() + dt.timedelta(hours=1))
            await trio.lowlevel.checkpoint()  # acting takes a few checkpoints
            acted.append(clock.now())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        await clock.set(at(0, 18))
        assert acted == [at(0, 18)]
        await clock.set(at(0, 10))  # backwards: woken too, to re-read the time
        assert acted == [at(0, 18), at(0, 10)]
        nursery.cancel_scope.cancel()
    await clock.set(at(0, 20))  # no sleeper left: returns at once


async def test_manual_clock_sleep_until_a_past_time_returns_at_once() -> None:
    clock = ManualClock(at(0, 12))
    with trio.fail_after(1):
        await clock.sleep_until(at(0, 11))


# ---------------------------------------------------------------- on a server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(at(0, 16, 59))


@pytest.fixture
def casper_plugins() -> list[str]:
    return ["working-hours"]


@pytest.fixture
def casper_plugin_settings(clock: ManualClock) -> dict[str, Any]:
    return {"working-hours": {"accounts": ["romeo@localhost"], "clock": clock}}


async def contacts(casper_server: Any, a: str, b: str) -> None:
    for account, contact in ((a, b), (b, a)):
        item = RosterItem(jid=str(casper_server.jid(contact)), subscription="both")
        await casper_server.server.rosters.put(casper_server.jid(account), item, push=False)


def presence_from(jid: object, type_: str | None = None) -> Any:
    return lambda e: (
        e.tag.endswith("presence") and e.get("from") == str(jid) and e.get("type") == type_
    )


async def test_closing_time_sends_unavailable_and_opening_time_presence(
    casper_server: Any, casper_client: Any, clock: ManualClock
) -> None:
    await contacts(casper_server, "romeo", "nurse")
    await contacts(casper_server, "juliet", "nurse")
    nurse = await casper_client("nurse", presence=True)
    romeo = await casper_client("romeo", presence=True)
    juliet = await casper_client("juliet", presence=True)  # not covered: always visible
    await nurse.expect(presence_from(romeo.jid))
    await nurse.expect(presence_from(juliet.jid))

    await clock.set(at(0, 17))  # the background task follows the clock
    await nurse.expect(presence_from(romeo.jid, "unavailable"))
    await nurse.expect_nothing(presence_from(juliet.jid, "unavailable"))

    await nurse.send(
        "<message to='romeo@localhost' type='chat' id='late'><body>hi</body></message>"
    )
    await romeo.expect_nothing("message")  # bare JID: the offline path, stored

    await clock.set(at(1, 9))
    await nurse.expect(presence_from(romeo.jid))
    kept = await romeo.expect("message")  # delivered when he is shown again
    assert kept.get("id") == "late"


async def test_a_session_logging_in_after_hours_is_hidden_from_the_start(
    casper_server: Any, casper_client: Any, clock: ManualClock
) -> None:
    await clock.set(at(0, 20))
    await contacts(casper_server, "romeo", "nurse")
    nurse = await casper_client("nurse", presence=True)
    romeo = await casper_client("romeo", presence=True)
    await nurse.expect_nothing(presence_from(romeo.jid))
    await nurse.send(
        "<iq type='get' to='romeo@localhost' id='items'>"
        "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
    )
    items = await nurse.expect(lambda e: e.get("id") == "items")
    assert list(items.iter("{http://jabber.org/protocol/disco#items}item")) == []


class TestPolicy:
    """The administrator's policy wins over the strategy (a core rule)."""

    @pytest.fixture
    def casper_server_options(self) -> dict[str, Any]:
        return {"invisibility": False}

    async def test_nobody_hides_when_invisibility_is_off(
        self, casper_server: Any, casper_client: Any, clock: ManualClock
    ) -> None:
        await clock.set(at(0, 20))
        await contacts(casper_server, "romeo", "nurse")
        nurse = await casper_client("nurse", presence=True)
        romeo = await casper_client("romeo", presence=True)
        await nurse.expect(presence_from(romeo.jid))
