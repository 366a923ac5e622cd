"""The scenario catalogue: one TOML file per scenario, validated into frozen dataclasses.

A scenario names the user's resources, whether a room exists, and a list of steps. A step
either *does* something as the user (``do = "login-invisible"``) or *observes* (``observe =
"while invisible"``), listing for each observer the channels it checks::

    title = "Log in invisible"
    summary = "The user connects and hides at once."
    order = 1
    resources = ["desk"]          # the user's resources, the first is the default
    room = false                  # a room, occupied by the stranger, exists

    [[step]]
    do = "login-invisible"        # optional: resource = "phone"; contact = "friend"; group = "Friends"

    [[step]]
    observe = "while invisible"
    friend = ["presence", "last-activity", "message-bare"]
    stranger = ["iq-version"]
    user = ["sees-contacts"]

The cast is fixed (:data:`ROLES`): the *user* who hides; *friend*, a mutual contact in
the user's roster group ``Friends``; *colleague*, a mutual contact in group ``Work``; a
*stranger* with no subscription, who also occupies the room. Actions are in
:data:`ACTIONS`, channels in :data:`CHANNELS`; anything else is a :class:`CatalogueError`
naming the file and the step.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

ROLES = ("user", "friend", "colleague", "stranger")
OBSERVERS = ROLES
GROUPS = {"Friends": ("friend",), "Work": ("colleague",)}
ROOM_OCCUPANT = "stranger"

#: action -> what it does (for the user, with the column's strategy)
ACTIONS = {
    "login": "log in and send ordinary available presence (visible)",
    "login-invisible": "log in and go invisible at once, the strategy's way",
    "show-to": "become visible to one contact or one roster group only",
    "go-invisible": "go invisible after having been visible",
    "go-visible": "become visible to everyone again",
    "away": "the client's auto-away: say 'away' to whoever may see the user",
    "join-room": "join the room (directed presence to room/nick)",
    "drop": "lose the connection without closing the stream (network loss)",
    "logout": "close the stream cleanly",
}


@dataclass(frozen=True)
class Channel:
    """An observation channel: ``leak`` channels are compared with the offline control,
    ``usability`` channels must work."""

    id: str
    title: str
    kind: str  # "leak" | "usability"
    observers: tuple[str, ...]


_ANYONE = ("friend", "colleague", "stranger")
CHANNELS = {
    c.id: c
    for c in (
        Channel("presence", "presence received (broadcast)", "leak", _ANYONE),
        Channel("logoff", "unavailable on logoff (ghosts)", "leak", _ANYONE),
        Channel("probe", "presence probe (observer logs in anew)", "leak", _ANYONE),
        Channel("client-probe", "presence probe sent by the client", "leak", _ANYONE),
        Channel("directed", "directed presence to the user", "leak", _ANYONE),
        Channel("last-activity", "last activity on the bare JID", "leak", _ANYONE),
        Channel("disco-items", "disco#items on the bare JID", "leak", _ANYONE),
        Channel("message-bare", "message to the bare JID", "leak", _ANYONE),
        Channel("message-full", "message to the full JID", "leak", _ANYONE),
        Channel("iq-version", "software version of the full JID", "leak", _ANYONE),
        Channel("iq-time", "entity time of the full JID", "leak", _ANYONE),
        Channel("iq-ping", "ping to the full JID", "leak", _ANYONE),
        Channel("iq-disco-info", "disco#info of the full JID", "leak", _ANYONE),
        Channel("chat-states", "chat states the client sends back", "leak", _ANYONE),
        Channel("receipts", "delivery receipts the client sends back", "leak", _ANYONE),
        Channel("room-occupancy", "room occupancy", "leak", (ROOM_OCCUPANT,)),
        Channel("sees-contacts", "user still sees contacts' presence", "usability", ("user",)),
        Channel("in-room", "user can join and stay in the room", "usability", ("user",)),
        Channel("sees-user", "chosen contact sees the user online", "usability", _ANYONE),
        Channel("sees-away", "chosen contact sees the user away", "usability", _ANYONE),
        Channel("receives-messages", "user receives bare-JID messages live", "usability", _ANYONE),
        Channel("chat", "user and contact can chat both ways", "usability", _ANYONE),
    )
}
ROOM_CHANNELS = ("room-occupancy", "in-room")
FULL_JID_CHANNELS = (
    "message-full",
    "iq-version",
    "iq-time",
    "iq-ping",
    "iq-disco-info",
    "chat-states",
    "receipts",
)


class CatalogueError(Exception):
    """A scenario file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class Action:
    action: str
    resource: str
    contact: str | None = None
    group: str | None = None

    @property
    def label(self) -> str:
        target = self.contact or self.group
        return f"{self.action} {target}" if target else self.action


@dataclass(frozen=True)
class Check:
    """One matrix row: ``observer`` checks ``channel`` during an observe step."""

    id: str  # "<scenario>/<step slug>/<channel>/<observer>", unique in the catalogue
    step: str
    channel: str
    observer: str
    resource: str  # the full JID's resource, for full-JID channels

    @property
    def kind(self) -> str:
        return CHANNELS[self.channel].kind

    @property
    def title(self) -> str:
        return CHANNELS[self.channel].title


@dataclass(frozen=True)
class Observe:
    label: str
    checks: tuple[Check, ...]


Step = Action | Observe


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    summary: str
    order: int
    resources: tuple[str, ...]
    room: bool
    steps: tuple[Step, ...]
    source: str

    @property
    def checks(self) -> list[Check]:
        return [c for s in self.steps if isinstance(s, Observe) for c in s.checks]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise CatalogueError(f"{where}: {message}")


def _str(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    _require(isinstance(value, str) and bool(value), where, f"'{key}' must be a non-empty string")
    return value  # type: ignore[return-value]


def _action(table: dict[str, Any], resources: tuple[str, ...], where: str) -> Action:
    unknown = sorted(set(table) - {"do", "resource", "contact", "group"})
    _require(not unknown, where, f"unknown key {unknown[:1]}")
    name = _str(table, "do", where)
    _require(name in ACTIONS, where, f"unknown action {name!r}; known: {', '.join(ACTIONS)}")
    resource = _str(table, "resource", where, resources[0])
    _require(resource in resources, where, f"resource {resource!r} is not in 'resources'")
    contact, group = table.get("contact"), table.get("group")
    if name == "show-to":
        _require((contact is None) != (group is None), where, "show-to needs a contact or a group")
        _require(contact is None or contact in _ANYONE, where, f"unknown contact {contact!r}")
        _require(
            group is None or group in GROUPS,
            where,
            f"unknown group {group!r}; known: {', '.join(GROUPS)}",
        )
    else:
        _require(contact is None and group is None, where, f"{name} takes no contact or group")
    return Action(name, resource, contact, group)


def _observe(
    table: dict[str, Any], scenario: str, resources: tuple[str, ...], room: bool, where: str
) -> Observe:
    label = _str(table, "observe", where)
    resource = _str(table, "resource", where, resources[0])
    _require(resource in resources, where, f"resource {resource!r} is not in 'resources'")
    checks = []
    for observer, channels in table.items():
        if observer in ("observe", "resource"):
            continue
        _require(
            observer in OBSERVERS,
            where,
            f"unknown observer {observer!r}; known: {', '.join(OBSERVERS)}",
        )
        _require(isinstance(channels, list), where, f"'{observer}' must be a list of channels")
        for channel in channels:
            _require(channel in CHANNELS, where, f"unknown channel {channel!r}")
            allowed = CHANNELS[channel].observers
            _require(observer in allowed, where, f"{channel} is observed by {', '.join(allowed)}")
            _require(room or channel not in ROOM_CHANNELS, where, f"{channel} needs room = true")
            suffix = (
                f"@{resource}" if channel in FULL_JID_CHANNELS and resource != resources[0] else ""
            )
            check_id = f"{scenario}/{slug(label)}/{channel}{suffix}/{observer}"
            checks.append(Check(check_id, label, channel, observer, resource))
    _require(bool(checks), where, "an observe step needs at least one observer")
    return Observe(label, tuple(checks))


def parse_scenario(scenario_id: str, text: str, source: str = "<string>") -> Scenario:
    """Parse and validate one scenario written in TOML."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - {"title", "summary", "order", "resources", "room", "step"})
    _require(not unknown, source, f"unknown key {unknown[:1]}")
    resources = doc.get("resources", ["desk"])
    _require(
        isinstance(resources, list)
        and bool(resources)
        and all(isinstance(r, str) and re.fullmatch(r"[a-z0-9-]+", r) for r in resources),
        source,
        "'resources' must be a list of lowercase names",
    )
    _require(len(set(resources)) == len(resources), source, "'resources' has duplicates")
    room = doc.get("room", False)
    _require(isinstance(room, bool), source, "'room' must be true or false")
    order = doc.get("order", 100)
    _require(
        isinstance(order, int) and not isinstance(order, bool), source, "'order' must be an integer"
    )
    raw_steps = doc.get("step", [])
    _require(isinstance(raw_steps, list) and bool(raw_steps), source, "no [[step]] tables")
    steps: list[Step] = []
    for index, table in enumerate(raw_steps, 1):
        where = f"{source}: step {index}"
        _require(isinstance(table, dict), where, "must be a table")
        _require(
            ("do" in table) != ("observe" in table), where, "needs exactly one of 'do' or 'observe'"
        )
        if "do" in table:
            steps.append(_action(table, tuple(resources), where))
        else:
            steps.append(_observe(table, scenario_id, tuple(resources), room, where))
    ids = [c.id for s in steps if isinstance(s, Observe) for c in s.checks]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    _require(duplicate is None, source, f"check {duplicate} appears twice (rename an observe step)")
    return Scenario(
        scenario_id,
        _str(doc, "title", source),
        _str(doc, "summary", source).strip(),
        order,
        tuple(resources),
        room,
        tuple(steps),
        source,
    )


def load_catalogue(directory: Path | None = None) -> list[Scenario]:
    """Load every ``*.toml`` scenario (the shipped catalogue if ``directory`` is None),
    sorted by ``order`` then id."""
    if directory is None:
        base = importlib_resources.files("casper.compare") / "scenarios"
        files = [
            (p.name, p.read_text(encoding="utf-8"))
            for p in base.iterdir()
            if p.name.endswith(".toml")
        ]
    else:
        if not directory.is_dir():
            raise CatalogueError(f"{directory}: not a directory")
        files = [(p.name, p.read_text(encoding="utf-8")) for p in directory.glob("*.toml")]
    scenarios = [parse_scenario(name.removesuffix(".toml"), text, name) for name, text in files]
    if not scenarios:
        raise CatalogueError(f"{directory or 'the shipped catalogue'}: no scenarios")
    return sorted(scenarios, key=lambda s: (s.order, s.id))


def select(scenarios: list[Scenario], wanted: list[str] | None) -> list[Scenario]:
    """The scenarios named in ``wanted`` (all if None), in catalogue order."""
    if not wanted:
        return scenarios
    known = {s.id for s in scenarios}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise CatalogueError(f"unknown scenario {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return [s for s in scenarios if s.id in wanted]
