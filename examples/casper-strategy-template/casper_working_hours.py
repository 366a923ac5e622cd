"""Working hours: invisible to everyone outside working hours (a strategy template).

The smallest complete invisibility strategy for Casper, written to be copied. It decides
nothing itself but one answer to the core's visibility decision: ``casper_hidden_from``
says "hidden" for the configured accounts while the clock is outside the working window.
Everything else follows from the core, which asks that decision at every point that could
reveal a session:

- outside the window, contacts get no presence; probes, last activity and disco#items
  answer as for an offline account; bare-JID messages take the offline path (stored);
- when the window opens or closes, a background task started in ``casper_serve`` calls
  ``server.visibility_inputs_changed(account)`` for every connected account it covers, so
  contacts who saw the user get unavailable at closing time and current presence at
  opening time (and messages kept meanwhile are delivered);
- directed presence shows the user to its recipient (the hook never hides a session from
  whom it sent directed presence), and the administrator's ``[invisibility]`` policy
  still wins (a core rule, applied before any strategy is asked).

What it cannot hide: full-JID messages and IQs (version, time, disco#info) reach the client
and the client answers them. Use ``privacy-lists`` to block those.

Hooks: ``casper_configure``, ``casper_hidden_from``, ``casper_serve``.
Config keys (``[plugin.working-hours]``): ``start`` and ``end`` (``"HH:MM"``, default
09:00-17:00, start before end), ``days`` (default ``["mon", "tue", "wed", "thu", "fri"]``),
``timezone`` (IANA name, default ``"UTC"``), ``accounts`` (bare JIDs for every session of
an account, full JIDs for one resource; default ``["*"]`` = everyone); from Python only (tests, embedding): ``clock``, an object with ``now()`` and
``async sleep_until(when)`` such as :class:`ManualClock`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import trio
from casper.config import ConfigError
from casper.hookspecs import hookimpl
from casper.jid import JID, InvalidJID

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session

NAME = "working-hours"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERYONE = "*"
log = logging.getLogger("casper_working_hours")


# ---------------------------------------------------------------- clocks


class Clock(Protocol):
    """Wall-clock time, injectable so tests decide what time it is.

    ``sleep_until`` may return early (a wall clock can be set back or forward): callers
    read ``now()`` again and decide afresh.
    """

    def now(self) -> dt.datetime: ...

    async def sleep_until(self, when: dt.datetime) -> None: ...


class SystemClock:
    """The real clock: aware UTC datetimes; sleeps with ``trio.sleep``."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep_until(self, when: dt.datetime) -> None:
        await trio.sleep(max(0.0, (when - self.now()).total_seconds()))


class ManualClock:
    """A clock for tests: time moves only when :meth:`set` is awaited.

    :meth:`set` wakes every task sleeping in :meth:`sleep_until` (whether or not its time
    has come: it must re-read :meth:`now`) and returns once each has acted and is asleep
    again, or gone. When it returns, the strategy has applied the new time: contacts have
    been sent what the change implies.
    """

    def __init__(self, now: dt.datetime) -> None:
        self._now = now
        self._sleeping: dict[object, trio.Event] = {}
        self._woken: set[object] = set()
        self._settled = trio.Event()

    def now(self) -> dt.datetime:
        return self._now

    async def sleep_until(self, when: dt.datetime) -> None:
        task = trio.lowlevel.current_task()
        if self._now >= when:
            return
        self._sleeping[task] = wake = trio.Event()
        self._done_acting(task)  # asleep again: whatever it had to do is done
        try:
            await wake.wait()
        except BaseException:
            self._done_acting(task)  # cancelled: it will not act
            raise
        finally:
            del self._sleeping[task]

    def _done_acting(self, task: object) -> None:
        self._woken.discard(task)
        if not self._woken:
            self._settled.set()

    async def set(self, now: dt.datetime) -> None:
        """Move to ``now`` (forwards or backwards) and wait until sleepers have acted."""
        self._now = now
        self._woken = set(self._sleeping)
        self._settled = trio.Event()
        for wake in self._sleeping.values():
            wake.set()
        if self._woken:
            await self._settled.wait()


# ---------------------------------------------------------------- the window (no I/O)


@dataclass(frozen=True)
class Config:
    """``[plugin.working-hours]``, validated."""

    start: dt.time = dt.time(9)
    end: dt.time = dt.time(17)
    days: frozenset[int] = frozenset(range(5))  # Monday = 0
    timezone: dt.tzinfo = dt.UTC
    accounts: frozenset[str] = frozenset({EVERYONE})
    clock: Clock = field(default_factory=SystemClock, compare=False)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> Config:
        """Validate the settings; raise ConfigError naming the bad key."""
        unknown = set(settings) - {"start", "end", "days", "timezone", "accounts", "clock"}
        if unknown:
            raise ConfigError(f"unknown config key plugin.{NAME}.{min(unknown)}")
        start = _time(settings, "start", "09:00")
        end = _time(settings, "end", "17:00")
        if not start < end:
            raise ConfigError(f"plugin.{NAME}.start must be before plugin.{NAME}.end")
        days = _names(settings, "days", DAYS[:5])
        if not set(days) <= set(DAYS):
            raise ConfigError(f"plugin.{NAME}.days must name days among {', '.join(DAYS)}")
        zone_name = settings.get("timezone", "UTC")
        try:
            zone = dt.UTC if zone_name == "UTC" else ZoneInfo(str(zone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"plugin.{NAME}.timezone: unknown time zone {zone_name!r}") from None
        accounts = set()
        for entry in _names(settings, "accounts", (EVERYONE,)):
            try:
                accounts.add(entry if entry == EVERYONE else str(JID.parse(entry)))
            except InvalidJID:
                raise ConfigError(f"plugin.{NAME}.accounts: {entry!r} is not a JID") from None
        clock: Clock = settings.get("clock") or SystemClock()  # type: ignore[assignment]
        if not (
            callable(getattr(clock, "now", None)) and callable(getattr(clock, "sleep_until", None))
        ):
            raise ConfigError(f"plugin.{NAME}.clock must have now() and sleep_until()")
        weekdays = frozenset(DAYS.index(d) for d in days)
        return cls(start, end, weekdays, zone, frozenset(accounts), clock)

    def covers(self, session: Session) -> bool:
        """Whether the window applies to ``session`` (its account, or its full JID)."""
        jids = self.accounts
        return EVERYONE in jids or str(session.account) in jids or str(session.jid) in jids

    def inside(self, when: dt.datetime) -> bool:
        """Whether ``when`` (an aware datetime) is within working hours."""
        local = when.astimezone(self.timezone)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_change(self, when: dt.datetime) -> dt.datetime:
        """The first moment after ``when`` at which :meth:`inside` changes."""
        now_inside = self.inside(when)
        day = when.astimezone(self.timezone).date()
        for offset in range(8):  # every window boundary in the coming week, in order
            date = day + dt.timedelta(days=offset)
            for moment in (self.start, self.end):
                candidate = dt.datetime.combine(date, moment, tzinfo=self.timezone)
                if candidate > when and self.inside(candidate) != now_inside:
                    return candidate
        return when + dt.timedelta(days=7)  # no working day at all: check again next week


def _time(settings: Mapping[str, object], key: str, default: str) -> dt.time:
    value = settings.get(key, default)
    try:
        hours, minutes = str(value).split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f'plugin.{NAME}.{key} must be a time as "HH:MM", got {value!r}') from None


def _names(settings: Mapping[str, object], key: str, default: Sequence[str]) -> list[str]:
    value = settings.get(key, default)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"plugin.{NAME}.{key} must be a list of strings, got {value!r}")
    return [v.lower() for v in value]


# ---------------------------------------------------------------- the strategy


class WorkingHours:
    """The plugin's state: its config and the window's current state, read by the hook."""

    def __init__(self, server: Server, config: Config) -> None:
        self.server = server
        self.config = config
        self.inside = config.inside(config.clock.now())

    @hookimpl
    def casper_hidden_from(self, session: Session, observer: JID) -> bool | None:
        """Hidden while outside working hours (a cached answer: cheap), except from those
        the session sent directed presence to: the user showed itself to them."""
        if self.inside or not self.config.covers(session):
            return None
        return not (observer in session.directed_to or observer.bare in session.directed_to)

    @hookimpl
    def casper_serve(self, nursery: object) -> None:
        nursery.start_soon(self.follow_the_clock)  # type: ignore[attr-defined]

    async def follow_the_clock(self) -> None:
        """Sleep until the window opens or closes, then apply the change; forever."""
        clock = self.config.clock
        await self.refresh()  # the clock may have moved since casper_configure
        while True:
            await clock.sleep_until(self.config.next_change(clock.now()))
            await self.refresh()

    async def refresh(self) -> None:
        """Re-read the clock; if the window flipped, update every covered account."""
        inside = self.config.inside(self.config.clock.now())
        if inside == self.inside:
            return
        self.inside = inside
        log.info("working hours %s", "began" if inside else "ended")
        covered = {s.account for s in self.server.router.all_sessions() if self.config.covers(s)}
        for account in sorted(covered, key=str):
            await self.server.visibility_inputs_changed(account)


@hookimpl
def casper_configure(server: Server) -> None:
    config = Config.from_mapping(server.plugin_config(NAME))
    server.pm.register(WorkingHours(server, config), f"{NAME}.state")
