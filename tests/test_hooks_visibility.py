"""Behavioural tests of the hooks that decide what a session sees and is sent.

``casper_bare_route_while_unavailable`` admits bare-JID messages to a session without
broadcast presence; ``casper_initial_probes_wanted`` silences a new session's probes;
``casper_roster_push_wanted`` overrides the RFC rule for roster pushes;
``casper_roster_changed`` reports every roster write, also for an offline account.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.testing import open_test_server

from tests.core.conftest import make_contacts, presence_from
from tests.helpers import drain, error_condition, message, with_id

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
CLIENT = "{jabber:client}"
ROSTER_NS = "jabber:iq:roster"

# ---------------------------------------------------------------- visibility


class AdmitsBareMessages:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str]] = []

    @hookimpl
    def casper_bare_route_while_unavailable(self, session: Any, sender: JID) -> bool | None:
        self.asked.append((str(session.jid), str(sender)))
        return self.answer


@pytest.mark.parametrize("answer", [True, None], ids=["allow", "rfc-rule"])
async def test_hook_bare_route_while_unavailable(answer: bool | None) -> None:
    """A session without broadcast presence gets bare-JID messages only if a plugin allows."""
    plugin = AdmitsBareMessages(answer)
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "bare")]) as srv,
        srv.client("romeo", resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(ROMEO, "b1"))
        to_juliet = [error_condition(e) for e in await drain(juliet) if e.get("id") == "b1"]
        to_romeo = [e.get("id") for e in await drain(romeo, 0.1) if e.tag == f"{CLIENT}message"]
    assert plugin.asked == [(f"{ROMEO}/r1", f"{JULIET}/balcony")]
    if answer:
        assert (to_romeo, to_juliet) == (["b1"], [])
    else:
        assert (to_romeo, to_juliet) == ([], ["service-unavailable"])


class ProbePolicy:
    """No initial probes from the resource 'quiet'; the core's rule for the others."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def casper_initial_probes_wanted(self, session: Any) -> bool | None:
        self.asked.append(str(session.jid))
        return False if session.jid.resource == "quiet" else None


async def test_hook_initial_probes_wanted() -> None:
    """False: the new session learns nothing of its contacts; None: it is told (probe)."""
    plugin = ProbePolicy()
    async with open_test_server(default_plugins=False, extra_plugins=[(plugin, "probes")]) as srv:
        await make_contacts(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony"):
            async with srv.client("romeo", presence=True, resource="quiet") as quiet:
                await quiet.expect_nothing(presence_from(f"{JULIET}/balcony"))
            async with srv.client("romeo", presence=True, resource="r1") as r1:
                await r1.expect(presence_from(f"{JULIET}/balcony"))
    assert plugin.asked == [f"{JULIET}/balcony", f"{ROMEO}/quiet", f"{ROMEO}/r1"]  # once each


class PushPolicy:
    """Silences the resource 'quiet' and subscribes 'eager'; no opinion on the others."""

    @hookimpl
    def casper_roster_push_wanted(self, session: Any) -> bool | None:
        return {"quiet": False, "eager": True}.get(session.jid.resource)


def is_roster_push(element: Element) -> bool:
    return element.get("type") == "set" and element.find(f"{{{ROSTER_NS}}}query") is not None


async def test_hook_roster_push_wanted() -> None:
    """True pushes to a session that never asked; False silences one that did; None keeps
    the RFC rule (pushes to whoever requested the roster)."""
    roster_get = f"<iq type='get' id='rg'><query xmlns='{ROSTER_NS}'/></iq>"
    roster_set = (
        f"<iq type='set' id='rs'><query xmlns='{ROSTER_NS}'><item jid='{JULIET}'/></query></iq>"
    )
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(PushPolicy(), "pushes")]) as srv,
        srv.client("romeo", resource="r1") as r1,
        srv.client("romeo", resource="quiet") as quiet,
        srv.client("romeo", resource="eager") as eager,
    ):
        for client in (r1, quiet):
            await client.send(roster_get)
            await client.expect(with_id("rg"))
        await r1.send(roster_set)
        assert (await r1.expect(with_id("rs"))).get("type") == "result"
        pushed = await r1.expect(is_roster_push)
        await eager.expect(is_roster_push)
        await quiet.expect_nothing(is_roster_push)
    item = pushed.find(f"{{{ROSTER_NS}}}query/{{{ROSTER_NS}}}item")
    assert item is not None and item.get("jid") == JULIET


class RosterWatcher:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str | None]] = []

    @hookimpl
    def casper_roster_changed(self, account, contact, item):  # type: ignore[no-untyped-def]
        self.changes.append((str(account), contact, None if item is None else item.subscription))


async def test_hook_roster_changed() -> None:
    """Every roster write is reported, also for an account that is offline: the roster IQ,
    the subscription state machine on both sides, and removal."""
    watcher = RosterWatcher()
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(watcher, "watcher")]) as srv,
        srv.client("romeo", presence=True) as romeo,
    ):
        await romeo.send(
            f"<iq type='set' id='rs'><query xmlns='{ROSTER_NS}'><item jid='{JULIET}'/></query></iq>"
        )
        await romeo.expect(with_id("rs"))
        await romeo.send(f"<presence to='{JULIET}' type='subscribe'/>")  # juliet is offline
        await romeo.send(
            f"<iq type='set' id='rm'><query xmlns='{ROSTER_NS}'>"
            f"<item jid='{JULIET}' subscription='remove'/></query></iq>"
        )
        await romeo.expect(with_id("rm"))
    # set, then ask=subscribe on the subscription request, then removal; nothing for
    # juliet, whose roster an inbound request leaves alone (RFC 6121 §3.1.3)
    assert watcher.changes == [
        (ROMEO, JULIET, "none"),
        (ROMEO, JULIET, "none"),
        (ROMEO, JULIET, None),
    ]
