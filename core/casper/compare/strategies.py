"""How a client goes invisible with each strategy: small adapters speaking only protocol.

Each adapter says, for one user session (an :class:`~casper.compare.actor.Actor`), what a
client sends to log in invisible, show itself to some contacts, go invisible after being
visible, come back, and go auto-away. They talk to the server over the wire only, so the
same adapter audits a foreign server (``casper compare --target``). A server that refuses
a step (an IQ error, a presence error) raises :class:`NotSupported`, and the rest of that
world is reported as *not supported*.

Several adapters combine with ``+`` (``xep0018+privacy-lists``): each step runs every
adapter's version in order, against a server with all their plugins enabled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from casper.xml import escape_attr

from .actor import error_condition, q

if TYPE_CHECKING:
    from .actor import Actor

PRIVACY_NS = "jabber:iq:privacy"
INVISIBLE_NS = "urn:xmpp:invisible:1"
AWAY = "<presence><show>away</show></presence>"


class NotSupported(Exception):
    """The strategy cannot express a step, or the server refused it."""


async def _iq_set(me: Actor, payload: str, what: str) -> None:
    reply = await me.request(f"<iq type='set' id='{me.new_id('s')}'>{payload}</iq>")
    if reply.get("type") != "result":
        raise NotSupported(f"the server answered {error_condition(reply)} to {what}")


async def _presence(me: Actor, xml: str, what: str) -> None:
    """Send presence; a presence error coming back means the server refused it."""
    start = len(me.log)
    await me.send(xml)
    await me.sync()
    for event in me.log[start:]:
        element = event.element
        if element.tag == q("presence") and element.get("type") == "error":
            raise NotSupported(f"the server answered {error_condition(element)} to {what}")


def _directed(jid: str, inner: str = "") -> str:
    return f"<presence to='{escape_attr(jid)}'>{inner}</presence>"


class ClientStrategy:
    """The visible client: never hides (the reference column ``none``)."""

    name = "none"
    summary = "no strategy: the user simply logs in visible (reference column)"

    async def login_invisible(self, me: Actor) -> None:
        await _presence(me, "<presence/>", "available presence")

    async def show_to(self, me: Actor, jids: Sequence[str], group: str | None) -> None:
        pass  # already visible to all

    async def go_invisible(self, me: Actor) -> None:
        pass  # cannot hide: stays visible

    async def go_visible(self, me: Actor) -> None:
        pass

    async def away(self, me: Actor) -> None:
        await _presence(me, AWAY, "away presence")


class DirectedPresence(ClientStrategy):
    name = "directed-presence"
    summary = "no broadcast presence; directed presence to whom the user shows itself"

    def _shown(self, me: Actor) -> list[str]:
        return me.state.setdefault("shown", [])  # type: ignore[return-value]

    async def login_invisible(self, me: Actor) -> None:
        pass  # connected, no presence: offline to everyone

    async def show_to(self, me: Actor, jids: Sequence[str], group: str | None) -> None:
        for jid in jids:
            await _presence(me, _directed(jid), "directed presence")
            self._shown(me).append(jid)

    async def go_invisible(self, me: Actor) -> None:
        await _presence(me, "<presence type='unavailable'/>", "unavailable presence")
        self._shown(me).clear()

    async def go_visible(self, me: Actor) -> None:
        await _presence(me, "<presence/>", "available presence")

    async def away(self, me: Actor) -> None:
        for jid in self._shown(me):
            await _presence(me, _directed(jid, "<show>away</show>"), "directed away presence")


class Xep0018(ClientStrategy):
    name = "xep0018"
    summary = "<presence type='invisible'/> and 'visible', global and per contact"

    async def login_invisible(self, me: Actor) -> None:
        await _presence(me, "<presence type='invisible'/>", "<presence type='invisible'/>")

    async def show_to(self, me: Actor, jids: Sequence[str], group: str | None) -> None:
        for jid in jids:
            await _presence(
                me,
                f"<presence type='visible' to='{escape_attr(jid)}'/>",
                "<presence type='visible'/> to a contact",
            )

    async def go_invisible(self, me: Actor) -> None:
        await _presence(me, "<presence type='invisible'/>", "<presence type='invisible'/>")

    async def go_visible(self, me: Actor) -> None:
        await _presence(me, "<presence type='visible'/>", "<presence type='visible'/>")


class InvisibleCommand(ClientStrategy):
    name = "invisible-command"
    summary = "XEP-0186 <invisible/> and <visible/> IQs, directed presence to show oneself"

    def _shown(self, me: Actor) -> list[str]:
        return me.state.setdefault("shown", [])  # type: ignore[return-value]

    async def login_invisible(self, me: Actor) -> None:
        # probe='true': the user wants to see its contacts while invisible (the default is false)
        await _iq_set(me, f"<invisible xmlns='{INVISIBLE_NS}' probe='true'/>", "<invisible/>")
        await _presence(me, "<presence/>", "initial presence")

    async def show_to(self, me: Actor, jids: Sequence[str], group: str | None) -> None:
        for jid in jids:
            await _presence(me, _directed(jid), "directed presence")
            self._shown(me).append(jid)

    async def go_invisible(self, me: Actor) -> None:
        await _iq_set(me, f"<invisible xmlns='{INVISIBLE_NS}'/>", "<invisible/>")

    async def go_visible(self, me: Actor) -> None:
        await _iq_set(me, f"<visible xmlns='{INVISIBLE_NS}'/>", "<visible/>")
        await _presence(me, "<presence/>", "available presence")

    async def away(self, me: Actor) -> None:
        await _presence(me, AWAY, "away presence")
        for jid in self._shown(me):
            await _presence(me, _directed(jid, "<show>away</show>"), "directed away presence")


def _privacy_list(name: str, items: str) -> str:
    return f"<query xmlns='{PRIVACY_NS}'><list name='{escape_attr(name)}'>{items}</list></query>"


_DENY_ALL = "<item action='deny' order='{order}'><presence-out/></item>"


class PrivacyLists(ClientStrategy):
    """XEP-0126 as written: active lists denying ``<presence-out/>``."""

    name = "privacy-lists"
    summary = "XEP-0126: an active privacy list that denies outbound presence"

    async def _activate(self, me: Actor, name: str, items: str) -> None:
        await _iq_set(me, _privacy_list(name, items), f"privacy list {name!r}")
        await _iq_set(
            me,
            f"<query xmlns='{PRIVACY_NS}'><active name='{escape_attr(name)}'/></query>",
            f"activating privacy list {name!r}",
        )

    async def login_invisible(self, me: Actor) -> None:  # §3.1
        await self._activate(me, "invisible", _DENY_ALL.format(order=1))
        await _presence(me, "<presence/>", "initial presence")

    async def show_to(self, me: Actor, jids: Sequence[str], group: str | None) -> None:  # §3.2
        if group is not None:
            allow = (
                f"<item type='group' value='{escape_attr(group)}' action='allow' order='1'>"
                "<presence-out/></item>"
            )
            name, order = f"visible-to-{group}", 2
        else:
            allow = "".join(
                f"<item type='jid' value='{escape_attr(jid)}' action='allow' order='{i}'>"
                "<presence-out/></item>"
                for i, jid in enumerate(jids, 1)
            )
            name, order = "visible-to-" + ",".join(jids), len(jids) + 1
        await self._activate(me, name, allow + _DENY_ALL.format(order=order))
        await _presence(me, "<presence/>", "available presence")

    async def go_invisible(self, me: Actor) -> None:  # §3.5
        await _presence(me, "<presence type='unavailable'/>", "unavailable presence")
        await self._activate(me, "invisible", _DENY_ALL.format(order=1))
        await _presence(me, "<presence/>", "available presence")

    async def go_visible(self, me: Actor) -> None:  # §3.3, listing 10
        await _iq_set(
            me, f"<query xmlns='{PRIVACY_NS}'><active/></query>", "declining the active list"
        )
        await _presence(me, "<presence/>", "available presence")


@dataclass(frozen=True)
class Combined:
    """Several adapters, each step run by each in the order given."""

    parts: tuple[ClientStrategy, ...]

    @property
    def name(self) -> str:
        return "+".join(p.name for p in self.parts)

    @property
    def summary(self) -> str:
        return "; ".join(p.summary for p in self.parts)

    async def login_invisible(self, me: Actor) -> None:
        for part in self.parts:
            await part.login_invisible(me)

    async def show_to(self, me: Actor, jids: Sequence[str], group: str | None) -> None:
        for part in self.parts:
            await part.show_to(me, jids, group)

    async def go_invisible(self, me: Actor) -> None:
        for part in self.parts:
            await part.go_invisible(me)

    async def go_visible(self, me: Actor) -> None:
        for part in self.parts:
            await part.go_visible(me)

    async def away(self, me: Actor) -> None:
        for part in self.parts:
            await part.away(me)


#: adapter name -> (adapter, plugins an in-process Casper enables for it)
ADAPTERS: dict[str, tuple[ClientStrategy, tuple[str, ...]]] = {
    "none": (ClientStrategy(), ()),
    "directed-presence": (DirectedPresence(), ("directed-presence",)),
    "xep0018": (Xep0018(), ("xep0018",)),
    "invisible-command": (InvisibleCommand(), ("invisible-command",)),
    "privacy-lists": (PrivacyLists(), ("privacy-lists",)),
}


def resolve(spec: str) -> tuple[Combined, tuple[str, ...]]:
    """``"a+b"`` -> the combined adapter and the plugins to enable; KeyError names the unknown part."""
    names = [n.strip() for n in spec.split("+") if n.strip()]
    if not names:
        raise KeyError(spec)
    parts: list[ClientStrategy] = []
    plugins: list[str] = []
    for name in names:
        adapter, needs = ADAPTERS[name]
        parts.append(adapter)
        plugins.extend(p for p in needs if p not in plugins)
    return Combined(tuple(parts)), tuple(plugins)
