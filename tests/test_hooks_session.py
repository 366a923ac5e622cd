"""Behavioural tests of the session-lifecycle hooks.

``casper_session_bound`` runs once the resource is bound, before any presence;
``casper_session_available`` on initial presence only; ``casper_session_shown`` when a
strategy stops hiding an available session; ``casper_session_ended`` once per session,
promptly, after it left the routing table and went unavailable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from casper.connection import FLUSH_SECONDS
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.testing import open_test_server

from tests.core.conftest import make_contacts, presence_from
from tests.helpers import note, with_id

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
CLIENT = "{jabber:client}"

# ---------------------------------------------------------------- session lifecycle


class Lifecycle:
    def __init__(self) -> None:
        self.bound: list[str] = []
        self.available: list[str] = []
        self.ended: list[tuple[str, bool, bool]] = []

    @hookimpl
    def casper_session_bound(self, session: Any) -> Callable[[], Awaitable[None]]:
        self.bound.append(str(session.jid))

        async def greet() -> None:
            note(session, "bound", "bound-note")

        return greet

    @hookimpl
    def casper_session_available(self, session: Any) -> Callable[[], Awaitable[None]]:
        self.available.append(str(session.jid))

        async def greet() -> None:
            note(session, "available", "available-note")

        return greet

    @hookimpl
    def casper_session_ended(self, session: Any) -> None:
        still_routed = session in session.server.router.sessions_of(session.account)
        self.ended.append((str(session.jid), still_routed, session.available))


async def test_hook_session_bound() -> None:
    """Called once the resource is bound, before any presence; its callable runs then."""
    plugin = Lifecycle()
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "life")]) as srv,
        srv.client("romeo", resource="r1") as romeo,
    ):
        greeting = await romeo.expect(with_id("bound-note"))
        assert plugin.bound == [f"{ROMEO}/r1"]
        assert plugin.available == []
    assert greeting.get("to") == f"{ROMEO}/r1"


async def test_hook_session_available() -> None:
    """Called on initial presence only: not at login, not on later presence updates."""
    plugin = Lifecycle()
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "life")]) as srv,
        srv.client("romeo", resource="r1") as romeo,
    ):
        assert plugin.available == []
        await romeo.send("<presence/>")
        greeting = await romeo.expect(with_id("available-note"))
        await romeo.send("<presence><show>away</show></presence>")
        await romeo.expect(lambda e: e.findtext(f"{CLIENT}show") == "away")
        await romeo.expect_nothing(with_id("available-note"))
    assert plugin.available == [f"{ROMEO}/r1"]
    assert greeting.findtext(f"{CLIENT}body") == "available"


class ShowsLater:
    """A strategy hiding romeo from juliet until told otherwise, recording who is shown."""

    def __init__(self) -> None:
        self.hiding = True
        self.shown: list[str] = []

    @hookimpl
    def casper_hidden_from(self, session: Any, observer: JID) -> bool:
        return self.hiding and str(observer.bare) == JULIET

    @hookimpl
    def casper_session_shown(self, session: Any) -> Callable[[], Awaitable[None]]:
        self.shown.append(str(session.jid))

        async def greet() -> None:
            note(session, "shown", "shown-note")

        return greet


async def test_hook_session_shown() -> None:
    """Not called at login (that is session_available); called when a strategy stops
    hiding an available session, and its callable runs then."""
    plugin = ShowsLater()
    async with open_test_server(default_plugins=False, extra_plugins=[(plugin, "shows")]) as srv:
        await make_contacts(srv, "romeo", "juliet")
        async with (
            srv.client("juliet", presence=True, resource="balcony") as juliet,
            srv.client("romeo", presence=True, resource="r1") as romeo,
        ):
            await juliet.expect_nothing(presence_from(f"{ROMEO}/r1"))
            assert plugin.shown == []
            plugin.hiding = False
            await srv.server.visibility_inputs_changed(srv.jid("romeo"))
            await juliet.expect(presence_from(f"{ROMEO}/r1"))
            greeting = await romeo.expect(with_id("shown-note"))
            await srv.server.visibility_inputs_changed(srv.jid("romeo"))  # nothing new shown
            await romeo.expect_nothing(with_id("shown-note"))
    assert plugin.shown == [f"{ROMEO}/r1"]
    assert greeting.findtext(f"{CLIENT}body") == "shown"


async def _logout_and_wait_for_session_ended(within: float) -> list[tuple[str, bool, bool]]:
    plugin = Lifecycle()
    async with open_test_server(default_plugins=False, extra_plugins=[(plugin, "life")]) as srv:
        async with srv.client("romeo", presence=True, resource="r1"):
            assert plugin.ended == []
        with trio.move_on_after(within):
            while not plugin.ended:
                await trio.sleep(0.01)
        return list(plugin.ended)  # before the server's shutdown ends every session


async def test_hook_session_ended() -> None:
    """Called once per session, after it left the routing table and went unavailable."""
    ended = await _logout_and_wait_for_session_ended(within=FLUSH_SECONDS + 2)
    assert ended == [(f"{ROMEO}/r1", False, False)]


async def test_session_ended_is_called_promptly_after_a_clean_logout() -> None:
    assert await _logout_and_wait_for_session_ended(within=1) == [(f"{ROMEO}/r1", False, False)]
