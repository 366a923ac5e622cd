"""One run of one scenario against one server: the *subject* world, where the user hides
with a strategy, or the *control* world, where the same account is truly offline.

The control world replays the scenario with every hidden phase replaced by being offline:
``login`` and ``go-visible`` connect visibly, ``go-invisible`` logs out, ``login-invisible``
and ``show-to`` do nothing; ``away``, ``join-room``, ``drop`` and ``logout`` act only on a
connected resource. Observers send exactly the same stimuli in both worlds, so each
observation can be compared stanza for stanza.

Setup is :mod:`casper.compare.provision` (rosters, subscriptions, the room). On a target, whose accounts every world shares, the setup session also goes online for a
moment (``prime``): each world then starts from the same history (a public logoff just
before) with nothing left in offline storage, whichever world ran before it.

Barriers: :meth:`World.settle` runs three rounds of concurrent round trips (every actor to
its server, the room occupant to the MUC service). A server handles each session's
stanzas in order, so after round *n* everything caused *n-1* hops earlier has arrived —
enough for a stimulus, the client's automatic answer, and the answer's delivery.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import trio

from .actor import Actor, Event, bare, error_condition, q
from .catalogue import GROUPS, ROOM_OCCUPANT, Action, Observe, Scenario
from .normalise import Normaliser
from .observations import Observed, run_check
from .provision import MUC_NS, ROSTER_NS, create_room, provision
from .strategies import Combined, NotSupported

log = logging.getLogger("casper.compare")
LAST_ACTIVITY_QUIET = 1.2  # seconds since the last change, so '0 seconds' means 'online now'
DROP_WAIT = 0.3  # for the server to notice a lost connection


@dataclass(frozen=True)
class Endpoint:
    """Where the world's server listens."""

    host: str
    port: int
    domain: str
    ssl_context: ssl.SSLContext | None
    muc: str | None = None  # the MUC service's domain, if rooms can be used


class World:
    """Runs :attr:`scenario` once; results end up in :attr:`results`."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        strategy: Combined | None,
        endpoint: Endpoint,
        accounts: Mapping[str, tuple[str, str]],
        nursery: trio.Nursery,
        timeout: float = 10.0,
        grace: float = 0.0,
        room_name: str = "lobby",
        prime: bool = False,
    ) -> None:
        self.scenario = scenario
        self.strategy = strategy
        self.mode = "control" if strategy is None else "subject"
        self.endpoint = endpoint
        self.accounts = dict(accounts)
        self.jids = {
            role: f"{user}@{endpoint.domain}".lower() for role, (user, _) in accounts.items()
        }
        self.nursery = nursery
        self.timeout = timeout
        self.grace = grace
        self.prime = prime
        self.room: str | None = (
            f"{room_name}@{endpoint.muc}" if scenario.room and endpoint.muc else None
        )
        self.room_problem = (
            None if self.room else "no MUC service to make a room in (a target needs --muc)"
        )
        self.norm = Normaliser({j: r for r, j in self.jids.items()}, endpoint.domain, self.room)
        self.events: list[Event] = []
        self.step = -1
        self.actors: dict[str, Actor] = {}  # live connections by name
        self.every_actor: list[Actor] = []
        self.results: dict[str, Observed] = {}
        self.halted: tuple[str, str] | None = None
        self.last_change = -math.inf
        self.cursors: dict[tuple[str, str], int] = {}
        self._probes = 0

    # ------------------------------------------------------------------ bookkeeping

    def record(
        self,
        actor: Actor,
        direction: str,
        element: Element,
        *,
        auto: bool = False,
        sync: bool = False,
    ) -> Event:
        event = Event(
            len(self.events),
            trio.current_time(),
            actor.name,
            direction,
            element,
            self.step,
            auto=auto,
            sync=sync,
        )
        self.events.append(event)
        actor.log.append(event)
        return event

    def observer(self, role: str) -> Actor:
        return self.actors["user" if role == "user" else role]

    def user_actors(self) -> list[Actor]:
        return [a for a in self.actors.values() if a.role == "user" and not a.closed]

    def user_session(self, resource: str) -> Actor | None:
        actor = self.actors.get(f"user/{resource}")
        return actor if actor is not None and not actor.closed else None

    def is_from_user(self, element: Element) -> bool:
        return bare(element.get("from")).lower() == self.jids["user"]

    def full_jid(self, resource: str) -> str:
        return f"{self.jids['user']}/{resource}"

    async def connect(self, role: str, resource: str) -> Actor:
        actor = await Actor.connect(self, role, resource)
        self.actors[actor.name] = actor
        self.every_actor.append(actor)
        return actor

    async def settle(self) -> None:
        """Wait until everything already caused has arrived (see the module docstring)."""
        for _ in range(3):
            async with trio.open_nursery() as nursery:
                for actor in list(self.actors.values()):
                    if not actor.closed:
                        nursery.start_soon(actor.sync)
                occupant = self.actors.get(ROOM_OCCUPANT)
                if self.room and self.room_problem is None and occupant is not None:
                    nursery.start_soon(occupant.sync, self.endpoint.muc)
        if self.grace:
            await trio.sleep(self.grace)

    async def quiet_since_change(self, seconds: float = LAST_ACTIVITY_QUIET) -> None:
        await trio.sleep_until(max(trio.current_time(), self.last_change + seconds))

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Set up, play every step, clean up; failures end up in :attr:`halted`."""
        try:
            await self._setup()
            for index, step in enumerate(self.scenario.steps):
                self.step = index
                if isinstance(step, Action):
                    await self._act(step)
                else:
                    await self._observe(step)
        except NotSupported as exc:
            self.halted = ("not-supported", str(exc))
        except Exception as exc:  # noqa: BLE001 - reported in the matrix, never fatal to the run
            self.halted = ("error", f"{type(exc).__name__}: {exc}".strip())
        for check in self.scenario.checks:
            if check.id not in self.results and self.halted is not None:
                self.results[check.id] = Observed(status=self.halted[0], detail=self.halted[1])
        with trio.CancelScope(shield=True):
            await self._finish()

    async def _setup(self) -> None:
        observers = await provision(self)
        if self.room is not None:
            await create_room(self, self.actors[ROOM_OCCUPANT])
        await self.settle()
        for actor in observers:
            self.cursors[(actor.name, "presence")] = len(actor.log)
            self.cursors[(actor.name, "room")] = len(actor.log)

    async def _connect_user(self, resource: str, *, visible: bool) -> Actor:
        actor = await self.connect("user", resource)
        await actor.request(
            f"<iq type='get' id='{actor.new_id('r')}'><query xmlns='{ROSTER_NS}'/></iq>"
        )
        if visible:
            await actor.send("<presence/>")
        return actor

    async def _act(self, action: Action) -> None:
        me = self.user_session(action.resource)
        name = action.action
        if self.strategy is None:
            await self._act_offline(action, me)
        elif name in ("login", "login-invisible"):
            me = await self._connect_user(action.resource, visible=name == "login")
            if name == "login-invisible":
                await self.strategy.login_invisible(me)
        elif me is None:
            raise RuntimeError(f"scenario error: {name} while user/{action.resource} is offline")
        elif name == "show-to":
            roles = [action.contact] if action.contact else list(GROUPS[action.group or ""])
            await self.strategy.show_to(me, [self.jids[r] for r in roles], action.group)
        elif name == "go-invisible":
            await self.strategy.go_invisible(me)
        elif name == "go-visible":
            await self.strategy.go_visible(me)
        elif name == "away":
            await self.strategy.away(me)
        else:
            await self._plain(name, me)
        await self.settle()
        self.last_change = trio.current_time()

    async def _act_offline(self, action: Action, me: Actor | None) -> None:
        """The control world: hidden is offline."""
        name = action.action
        if name in ("login", "go-visible") and me is None:
            await self._connect_user(action.resource, visible=True)
        elif name == "go-invisible" and me is not None:
            await me.logout()
        elif name == "away" and me is not None:
            await me.send("<presence><show>away</show></presence>")
        elif name in ("join-room", "drop", "logout") and me is not None:
            await self._plain(name, me)

    async def _plain(self, name: str, me: Actor) -> None:
        if name == "join-room":
            if self.room is None or self.room_problem:
                return  # no room: the room checks say "not supported", the rest goes on
            await me.send(f"<presence to='{self.room}/user'><x xmlns='{MUC_NS}'/></presence>")
        elif name == "drop":
            await me.drop()
            await trio.sleep(DROP_WAIT)
        elif name == "logout":
            await me.logout()

    async def _observe(self, step: Observe) -> None:
        for check in step.checks:
            if check.channel in ("room-occupancy", "in-room") and self.room_problem:
                self.results[check.id] = Observed(status="not-supported", detail=self.room_problem)
                continue
            self.results[check.id] = await run_check(self, check)

    def next_probe(self) -> int:
        self._probes += 1
        return self._probes

    # ------------------------------------------------------------------ the end

    async def _finish(self) -> None:
        """Log out, collect what was stored offline, and give each message its fate."""
        self.step = len(self.scenario.steps)
        collected = False
        with trio.move_on_after(self.timeout * 3):
            try:
                for actor in self.user_actors():
                    await actor.logout()
                check = await self._connect_user("check", visible=True)
                await self.settle()
                await check.logout()
                collected = True
            except Exception as exc:  # noqa: BLE001 - the results are in; only the fates suffer
                log.warning("%s: collecting offline messages failed: %s", self.scenario.id, exc)
        for actor in list(self.actors.values()):
            if not actor.closed:
                with trio.move_on_after(self.timeout):
                    await actor.logout()
        for observed in self.results.values():
            if observed.token is not None:
                fate = self.fate(observed) if collected else "fate unknown"
                observed.detail = f"{fate}; {observed.detail}" if observed.detail else fate

    def fate(self, observed: Observed) -> str:
        """Where a test message ended up: delivered live, stored offline, bounced or lost."""
        live = stored = False
        for event in self.events:
            element = event.element
            if (
                event.direction == "in"
                and element.tag == q("message")
                and event.actor.startswith("user/")
                and element.findtext(q("body")) == observed.token
            ):
                stored, live = (True, live) if event.actor == "user/check" else (stored, True)
        bounced = [
            error_condition(e.element)
            for e in self.events
            if e.seq in set(observed.seqs)
            and e.element.tag == q("message")
            and e.element.get("type") == "error"
        ]
        if live:
            return "delivered live"
        if stored:
            return "stored offline"
        return f"bounced: {bounced[0]}" if bounced else "dropped silently"
