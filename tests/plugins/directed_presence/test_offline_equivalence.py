"""directed-presence: a session without broadcast presence looks offline.

Contacts and strangers are sent nothing, at login or logoff; a probe, a last-activity
query and a disco#items query get exactly the answers an offline account gives (never
online, or last seen an hour ago), with an available session as the control.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element

import pytest
from casper.testing import TestServer

from tests.helpers import befriend, error_condition, query, sync
from tests.plugins.directed_presence.conftest import (
    AN_HOUR_AGO,
    DELAY,
    DISCO_ITEMS,
    LAST_NS,
    LOGOFF_STATUS,
    ROMEO,
    about,
    open_server,
    present,
    quiet,
    request_roster,
    seed_last_logoff,
    serialized,
)


@asynccontextmanager
async def romeo_state(srv: TestServer, state: str) -> AsyncIterator[None]:
    """romeo ``offline`` (no session), ``invisible`` (bound, requested his roster, no
    presence) or ``available`` (initial presence). Observe in that order: an available
    session's logoff is a public one and changes what offline looks like later."""
    if state == "offline":
        yield
        return
    async with srv.client("romeo", resource="orchard", presence=state == "available") as romeo:
        await request_roster(romeo)
        yield


STATES = ("offline", "invisible", "available")


async def juliet_view_of_romeo(srv: TestServer) -> list[Element]:
    """What juliet learns of romeo's presence: her login probe, then an explicit probe."""
    async with srv.client("juliet", resource="balcony", presence=True) as juliet:
        login = [e for e in await sync(juliet) if about(ROMEO)(e)]
        await juliet.send(f"<presence type='probe' to='{ROMEO}'/>")
        probed = [e for e in await sync(juliet) if about(ROMEO)(e)]
    return login + probed


async def test_session_without_presence_sends_contacts_and_strangers_nothing() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            present(srv, "tybalt", "street") as tybalt,
        ):
            async with srv.client("romeo", resource="orchard") as romeo:
                await request_roster(romeo)
                for observer in (juliet, nurse, tybalt):
                    await quiet(observer, about(ROMEO))
            for observer in (juliet, nurse, tybalt):  # nor at logoff
                await quiet(observer, about(ROMEO))


@pytest.mark.parametrize("last_logoff", [None, AN_HOUR_AGO], ids=["never-online", "last-seen-1h"])
async def test_probe_of_session_without_presence_gets_the_offline_answer(
    last_logoff: float | None,
) -> None:
    """juliet logging in (and probing) while romeo is connected without presence gets
    exactly what she gets while he is offline: unavailable, with the same delay stamp."""
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        if last_logoff is not None:
            await seed_last_logoff(srv, ROMEO, last_logoff)
        views = {}
        for state in STATES:
            async with romeo_state(srv, state):
                views[state] = await juliet_view_of_romeo(srv)
    offline = views["offline"]
    assert [(e.get("from"), e.get("type")) for e in offline] == [(ROMEO, "unavailable")] * 2
    assert all((e.find(DELAY) is not None) == (last_logoff is not None) for e in offline)
    assert serialized(views["invisible"]) == serialized(offline)
    # control: the same observation does tell an available session from an offline one
    assert [(e.get("from"), e.get("type")) for e in views["available"]] == [
        (f"{ROMEO}/orchard", None)
    ] * 2


def last_activity_shape(reply: Element) -> tuple[str | None, str | None, str | None]:
    query_el = reply.find(f"{{{LAST_NS}}}query")
    text = query_el.text if query_el is not None and reply.get("type") == "result" else None
    return reply.get("type"), error_condition(reply), text


def seconds(reply: Element) -> int | None:
    query_el = reply.find(f"{{{LAST_NS}}}query")
    if reply.get("type") != "result" or query_el is None:
        return None
    return int(query_el.get("seconds", "-1"))


@pytest.mark.parametrize("last_logoff", [None, AN_HOUR_AGO], ids=["never-online", "last-seen-1h"])
@pytest.mark.parametrize("asker", ["juliet", "tybalt"])
async def test_last_activity_of_session_without_presence_is_the_offline_answer(
    asker: str, last_logoff: float | None
) -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        if last_logoff is not None:
            await seed_last_logoff(srv, ROMEO, last_logoff)
        answers = {}
        async with srv.client(asker, resource="r", presence=True) as observer:
            for state in STATES:
                async with romeo_state(srv, state):
                    answers[state] = await query(observer, ROMEO, f"<query xmlns='{LAST_NS}'/>")
    offline, invisible = answers["offline"], answers["invisible"]
    assert last_activity_shape(invisible) == last_activity_shape(offline)
    if asker == "tybalt":  # no presence subscription: forbidden whatever romeo does
        assert error_condition(offline) == "forbidden"
        assert error_condition(answers["available"]) == "forbidden"
    elif last_logoff is None:
        assert error_condition(offline) == "service-unavailable"
        assert seconds(answers["available"]) == 0  # control
    else:
        offline_seconds, invisible_seconds = seconds(offline), seconds(invisible)
        assert offline_seconds is not None and invisible_seconds is not None
        assert offline_seconds >= AN_HOUR_AGO - 60
        assert abs(invisible_seconds - offline_seconds) <= 5
        assert last_activity_shape(offline) == ("result", None, LOGOFF_STATUS)
        assert seconds(answers["available"]) == 0  # control


@pytest.mark.parametrize("asker", ["juliet", "tybalt"])
async def test_disco_items_of_session_without_presence_are_the_offline_answer(asker: str) -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        answers = {}
        async with srv.client(asker, resource="r", presence=True) as observer:
            for state in STATES:
                async with romeo_state(srv, state):
                    reply = await query(observer, ROMEO, f"<query xmlns='{DISCO_ITEMS}'/>")
                    answers[state] = (
                        reply.get("type"),
                        [i.get("jid") for i in reply.iter(f"{{{DISCO_ITEMS}}}item")],
                    )
    assert answers["invisible"] == answers["offline"] == ("result", [])
    expected_control = [f"{ROMEO}/orchard"] if asker == "juliet" else []
    assert answers["available"] == ("result", expected_control)
