"""The invisibility scenarios: each takes a driver and runs on a fresh server.

Cast, on ``open_test_server(tcp=True)``: the hidden user ``romeo`` (resource ``r1``); his
contacts ``juliet`` and ``nurse`` (mutual subscriptions, seeded into the rosters); the
stranger ``tybalt``. Romeo last logged off an hour ago saying "Gone fishing", so offline
answers carry a stamp and a status worth comparing.

One actor acts, then every inbox is read with a round trip to the server (romeo's first,
so what he sent has been handled): "heard nothing" is checked without sleeping. What an
actor heard is compared as :func:`summary` tuples, so an unexpected stanza shows up whole
in the assertion message.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from casper.cluster.homes import home_of
from casper.storage.base import RosterItem
from casper.testing.client import TestClient
from casper.testing.conformance.drivers import C, Driver, condition, request, roundtrip, send
from casper.testing.harness import TestServer, open_test_cluster, open_test_server, settle

ROMEO, JULIET, NURSE, TYBALT = "romeo", "juliet", "nurse", "tybalt"
ACCOUNTS = (ROMEO, JULIET, NURSE, TYBALT)
CONTACTS = (JULIET, NURSE)
OTHERS = (JULIET, NURSE, TYBALT)
LAST_STATUS = "Gone fishing"
AN_HOUR = 3600.0
LEGACY_TYPES = ("invisible", "visible")

Heard = tuple[object, ...]
Scenario = Callable[[Driver], Awaitable[None]]


# ---------------------------------------------------------------- the stage


def summary(element: Element) -> Heard:
    """What an observer noticed, for assertions: ``(from, type, show, status)`` for
    presence, ``(from, 'message/TYPE', body)``, ``(from, 'iq/TYPE', payload tag)``."""
    kind, frm = element.tag.removeprefix(C), element.get("from")
    if kind == "presence":
        show, status = element.findtext(f"{C}show"), element.findtext(f"{C}status")
        return (frm, element.get("type") or "available", show, status)
    if kind == "message":
        return (frm, f"message/{element.get('type') or 'normal'}", element.findtext(f"{C}body"))
    payload = next(iter(element), None)
    return (frm, f"{kind}/{element.get('type')}", None if payload is None else payload.tag)


def shape(element: Element) -> tuple[object, ...]:
    """An element as an observer can compare it: ``id`` left out, delay stamps to the second."""
    attrs = tuple(
        sorted((k, v[:19] if k == "stamp" else v) for k, v in element.attrib.items() if k != "id")
    )
    return (element.tag, attrs, (element.text or "").strip(), tuple(shape(c) for c in element))


class _Stage:
    """The cast on one server: log in and off, and what each one heard since last asked."""

    def __init__(self, srv: TestServer, cluster: Sequence[TestServer] = ()) -> None:
        self.srv = srv
        self.cluster = list(cluster)  # the workers, if the server is several
        self.clients: dict[str, TestClient] = {}
        self.transcript: dict[str, list[Element]] = {}
        self._logins: dict[str, AsyncExitStack] = {}

    def bare(self, name: str) -> str:
        return str(self.srv.jid(name))

    def full(self, name: str) -> str:
        user, _, resource = name.partition("/")
        return str(self.srv.jid(user, resource or "r1"))

    async def log_in(self, name: str, *, presence: bool = False) -> TestClient:
        """Log ``name`` (``user`` or ``user/resource``; default resource ``r1``) in."""
        user, _, resource = name.partition("/")
        login = AsyncExitStack()
        client = await login.enter_async_context(
            self._via(user).client(user, resource=resource or "r1", presence=presence)
        )
        self.clients[name], self._logins[name] = client, login
        # what the login brought (probe answers, reflections) goes to the transcript only
        self.transcript.setdefault(name, []).extend(await self.sync(client))
        return client

    def _via(self, user: str) -> TestServer:
        """The server to connect through: on a cluster, a worker that is not the account's
        home, so that every stream is piped and every stanza between homes crosses."""
        if not self.cluster:
            return self.srv
        home = home_of(self.srv.jid(user), len(self.cluster))
        return self.cluster[(home + 1) % len(self.cluster)]

    async def sync(self, client: TestClient) -> list[Element]:
        """What ``client`` received until a round trip; on a cluster, also everything that
        what was sent before caused on the other workers."""
        received = await roundtrip(client)
        if self.cluster:
            await settle(self.cluster)
            received += await roundtrip(client)
        return received

    async def log_in_others(self) -> None:
        """juliet, nurse and tybalt come online; their inboxes are then emptied."""
        for name in OTHERS:
            await self.log_in(name, presence=True)
        await self.heard()

    async def log_off(self, name: str) -> None:
        """Close ``name``'s stream; the server has sent its unavailable presence by then."""
        del self.clients[name]
        await self._logins.pop(name).aclose()

    async def heard(self) -> dict[str, list[Heard]]:
        """Round-trip every client (romeo's resources first); return what each but romeo
        received since last asked (romeo's goes to the transcript only)."""
        names = sorted(self.clients, key=lambda n: not n.startswith(ROMEO))
        news: dict[str, list[Heard]] = {}
        arrived = {name: await roundtrip(self.clients[name]) for name in names}
        if self.cluster:  # what those stanzas caused on other workers arrives too
            await settle(self.cluster)
            for name in names:
                arrived[name] += await roundtrip(self.clients[name])
        for name in names:
            received = arrived[name]
            self.transcript[name].extend(received)
            if not name.startswith(ROMEO):
                news[name] = [summary(e) for e in received]
        return news

    async def aclose(self) -> None:
        for name in reversed(list(self._logins)):
            await self._logins.pop(name).aclose()


def _expect(heard: dict[str, list[Heard]], after: str, **expected: Sequence[Heard]) -> None:
    """``heard`` must be ``expected`` for the names given and nothing for the others."""
    wanted = {name: list(expected.get(name, [])) for name in heard}
    assert heard == wanted, f"after {after}: heard {heard}, expected {wanted}"


def _romeo(type_: str = "available", show: str | None = None, status: str | None = None) -> Heard:
    return ("romeo@localhost/r1", type_, show, status)


AVAILABLE, UNAVAILABLE = _romeo(), _romeo("unavailable")


@asynccontextmanager
async def _open_stage(driver: Driver) -> AsyncIterator[_Stage]:
    settings: Any = getattr(driver, "plugin_settings", None) or {}
    workers = getattr(driver, "workers", 1)
    async with AsyncExitStack() as stack:
        if workers > 1:
            run_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            cluster = await stack.enter_async_context(open_test_cluster(
                run_dir, workers=workers, plugins=tuple(driver.plugins), accounts=ACCOUNTS,
                plugin_settings=settings))  # fmt: skip
            srv = cluster[0]
        else:
            cluster = []
            srv = await stack.enter_async_context(open_test_server(
                plugins=tuple(driver.plugins), accounts=ACCOUNTS, tcp=True,
                plugin_settings=settings))  # fmt: skip
        server, romeo = srv.server, srv.jid(ROMEO)
        for name in CONTACTS:
            contact = srv.jid(name)
            await server.rosters.put(
                romeo, RosterItem(str(contact), subscription="both"), push=False
            )
            await server.rosters.put(
                contact, RosterItem(str(romeo), subscription="both"), push=False
            )
        stamp = time.time() - AN_HOUR
        await server.db(server.storage.set_last_activity, str(romeo), stamp, LAST_STATUS)
        stage = _Stage(srv, cluster)
        try:
            yield stage
        finally:
            await stage.aclose()


async def _hide(stage: _Stage, driver: Driver) -> TestClient:
    """romeo logs in and goes invisible; nobody notices."""
    romeo = await stage.log_in(ROMEO)
    await driver.go_invisible(romeo)
    _expect(await stage.heard(), "romeo went invisible at login")
    return romeo


async def _probe_answer(stage: _Stage, name: str) -> list[Element]:
    """``name`` logs in (initial presence probes romeo), then off; what it learnt of romeo."""
    seen = len(stage.transcript.get(name, []))
    await stage.log_in(name, presence=True)
    received = stage.transcript[name][seen:]
    await stage.log_off(name)
    await stage.heard()
    return [e for e in received if (e.get("from") or "").split("/")[0] == stage.bare(ROMEO)]


async def _last_activity(client: TestClient, to: str) -> tuple[str | None, float, str | None]:
    """(reply type or error condition, when romeo was last seen (posix), status)."""
    reply = await request(
        client, "<query xmlns='jabber:iq:last'/>", to=to, type_="get", check=False
    )
    query = reply.find("{jabber:iq:last}query")
    if query is None:
        return (condition(reply), 0.0, None)
    seconds = int(query.get("seconds", "-1"))
    assert seconds != 0, "last activity says romeo is online now"
    return (reply.get("type"), time.time() - seconds, query.text)


async def _disco_items(client: TestClient, to: str) -> list[str | None]:
    reply = await request(client, "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                          to=to, type_="get")  # fmt: skip
    return [item.get("jid") for item in reply.iter("{http://jabber.org/protocol/disco#items}item")]


def _messages(elements: list[Element]) -> list[Heard]:
    return [summary(e) for e in elements if e.tag == f"{C}message"]


async def _stored(stage: _Stage) -> int:
    server = stage.srv.server
    return await server.db(server.storage.count_offline, stage.bare(ROMEO))


async def _bare_message_outcome(stage: _Stage, sender: str, id_: str) -> tuple[object, ...]:
    """``sender`` chats romeo's bare JID: (what came back, what the others heard, how many
    messages were stored for romeo)."""
    before = await _stored(stage)
    chat = f"<message to='{stage.bare(ROMEO)}' type='chat' id='{id_}'><body>hi</body></message>"
    await stage.clients[sender].send(chat)
    back = [summary(e) for e in await stage.sync(stage.clients[sender])]
    heard = await stage.heard()
    heard.pop(sender, None)
    romeo = [summary(e) for e in stage.transcript.get(ROMEO, []) if e.get("id") == id_]
    return back, heard, romeo, await _stored(stage) - before


# ---------------------------------------------------------------- the scenarios


async def no_broadcast_presence_reaches_contacts_while_invisible(driver: Driver) -> None:
    """Invisible from login: contacts and strangers online meanwhile get nothing."""
    async with _open_stage(driver) as stage:
        await stage.log_in_others()
        await _hide(stage, driver)


async def contact_logging_in_gets_the_offline_probe_answer(driver: Driver) -> None:
    """A contact logging in while romeo hides gets exactly the probe answer for romeo
    truly offline: unavailable, the last logoff's status and stamp."""
    async with _open_stage(driver) as stage:
        offline = await _probe_answer(stage, JULIET)
        await _hide(stage, driver)
        hidden = await _probe_answer(stage, JULIET)
    expected = [("romeo@localhost", "unavailable", None, LAST_STATUS)]
    assert [summary(e) for e in offline] == expected, f"offline answer: {offline}"
    assert [shape(e) for e in hidden] == [shape(e) for e in offline], (
        f"probe answer while hidden {[shape(e) for e in hidden]}, "
        f"while offline {[shape(e) for e in offline]}"
    )


async def logoff_while_invisible_sends_nothing_to_anyone(driver: Driver) -> None:
    """No ghost: nobody who never saw romeo online hears him go offline."""
    async with _open_stage(driver) as stage:
        await stage.log_in_others()
        await _hide(stage, driver)
        await stage.log_off(ROMEO)
        _expect(await stage.heard(), "romeo logged off while invisible")


async def going_invisible_sends_unavailable_to_exactly_those_who_saw_him(driver: Driver) -> None:
    """juliet saw romeo online and sees him leave; nurse (connected, not available) and
    tybalt never saw him and hear nothing, then or at logoff."""
    async with _open_stage(driver) as stage:
        for name in (JULIET, TYBALT):
            await stage.log_in(name, presence=True)
        await stage.log_in(NURSE)
        await stage.heard()
        romeo = await stage.log_in(ROMEO)
        await driver.go_visible(romeo)
        heard = await stage.heard()
        got = heard.pop(JULIET)
        assert got and set(got) == {AVAILABLE}, f"juliet heard {got} when romeo went visible"
        _expect(heard, "romeo went visible (control)")
        await driver.go_invisible(romeo)
        _expect(await stage.heard(), "romeo went invisible", juliet=[UNAVAILABLE])
        await stage.log_off(ROMEO)
        _expect(await stage.heard(), "romeo logged off while invisible")


async def bare_jid_message_from_hidden_from_contact_takes_the_offline_path(driver: Driver) -> None:
    """juliet chats romeo's bare JID: no error, nothing to romeo, stored — as offline."""
    async with _open_stage(driver) as stage:
        await stage.log_in(JULIET, presence=True)
        offline = await _bare_message_outcome(stage, JULIET, "while-offline")
        await _hide(stage, driver)
        hidden = await _bare_message_outcome(stage, JULIET, "while-hidden")
    assert offline == ([], {}, [], 1), f"offline: {offline}"
    assert hidden == offline, f"while hidden {hidden}, while offline {offline}"


async def full_jid_chat_works_both_ways_while_invisible(driver: Driver) -> None:
    """Usability: a hidden session still chats with whoever knows its full JID."""
    async with _open_stage(driver) as stage:
        await stage.log_in_others()
        romeo = await _hide(stage, driver)
        juliet = stage.clients[JULIET]
        await send(
            juliet, f"<message to='{stage.full(ROMEO)}' type='chat'><body>hi</body></message>"
        )
        got = _messages(await stage.sync(romeo))
        assert got == [(stage.full(JULIET), "message/chat", "hi")], f"romeo got {got}"
        await send(
            romeo, f"<message to='{stage.full(JULIET)}' type='chat'><body>hello</body></message>"
        )
        expected = [(stage.full(ROMEO), "message/chat", "hello")]
        _expect(await stage.heard(), "romeo chatted juliet's full JID", juliet=expected)


async def last_activity_for_hidden_from_contact_equals_the_offline_answer(driver: Driver) -> None:
    """XEP-0012 on the bare JID: the last logoff the contact saw, never '0 seconds'."""
    async with _open_stage(driver) as stage:
        juliet = await stage.log_in(JULIET, presence=True)
        offline = await _last_activity(juliet, stage.bare(ROMEO))
        await _hide(stage, driver)
        hidden = await _last_activity(juliet, stage.bare(ROMEO))
    assert offline[0] == "result" and offline[2] == LAST_STATUS, offline
    assert (hidden[0], hidden[2]) == (offline[0], offline[2]), hidden
    assert abs(hidden[1] - offline[1]) <= 2, f"last seen {hidden[1]}, offline said {offline[1]}"


async def disco_items_for_hidden_from_contact_are_empty_like_offline(driver: Driver) -> None:
    """XEP-0030 items on the bare JID list no hidden resource."""
    async with _open_stage(driver) as stage:
        juliet = await stage.log_in(JULIET, presence=True)
        offline = await _disco_items(juliet, stage.bare(ROMEO))
        await _hide(stage, driver)
        hidden = await _disco_items(juliet, stage.bare(ROMEO))
    assert offline == hidden == [], f"disco#items offline {offline}, while hidden {hidden}"


async def show_to_one_contact_lets_her_see_and_chat_the_other_sees_nothing(driver: Driver) -> None:
    """Shown to juliet: she sees romeo, reaches him by bare JID, lists his resource and
    sees him leave; nurse keeps the offline answers and hears nothing throughout."""
    async with _open_stage(driver) as stage:
        await stage.log_in_others()
        romeo = await _hide(stage, driver)
        await driver.show_to(romeo, stage.bare(JULIET))
        _expect(await stage.heard(), "romeo showed himself to juliet", juliet=[AVAILABLE])
        juliet, nurse = stage.clients[JULIET], stage.clients[NURSE]
        items = [await _disco_items(c, stage.bare(ROMEO)) for c in (juliet, nurse)]
        assert items == [[stage.full(ROMEO)], []], f"disco#items for juliet, nurse: {items}"
        await send(
            juliet,
            f"<message to='{stage.bare(ROMEO)}' type='chat' id='j1'><body>hi</body></message>",
        )
        got = _messages(await stage.sync(romeo))
        assert got == [(stage.full(JULIET), "message/chat", "hi")], f"romeo got {got}"
        nurse_outcome = await _bare_message_outcome(stage, NURSE, "n1")
        assert nurse_outcome == ([], {JULIET: [], TYBALT: []}, [], 1), nurse_outcome
        await stage.log_off(ROMEO)
        _expect(await stage.heard(), "romeo logged off", juliet=[UNAVAILABLE])


async def presence_changes_while_invisible_reach_nobody_hidden_from(driver: Driver) -> None:
    """Auto-away and status changes while invisible: nobody hears them, and once juliet
    is shown, still nobody but (perhaps) her."""
    change = getattr(driver, "change_presence", None)
    away = "<show>away</show><status>Auto away</status>"
    async with _open_stage(driver) as stage:
        await stage.log_in_others()
        romeo = await _hide(stage, driver)
        if change is None:
            await send(romeo, f"<presence>{away}</presence>")
        else:
            await change(romeo, away)
        _expect(await stage.heard(), "an auto-away while invisible")
        await driver.show_to(romeo, stage.bare(JULIET))
        await stage.heard()
        for payload in ("<show>xa</show>", "<status>On the phone</status>", ""):
            if change is None:
                await send(romeo, f"<presence>{payload}</presence>")
            else:
                await change(romeo, payload)
            heard = await stage.heard()
            assert all(h[1] == "available" for h in heard.pop(JULIET)), (
                "juliet was sent unavailable"
            )
            _expect(heard, f"presence change {payload!r} while shown to juliet only")


async def going_visible_again_shows_him_to_his_contacts_only(driver: Driver) -> None:
    """The way back: contacts see romeo available; the stranger still hears nothing."""
    async with _open_stage(driver) as stage:
        await stage.log_in_others()
        romeo = await _hide(stage, driver)
        await driver.go_visible(romeo)
        heard = await stage.heard()
        for name in CONTACTS:
            got = heard.pop(name)
            assert got and set(got) == {AVAILABLE}, f"{name} heard {got}"
        _expect(heard, "romeo went visible")


async def full_jid_iqs_are_hidden_exactly_as_claimed(driver: Driver) -> None:
    """``hides_full_jid_iqs``: juliet's IQ to romeo's full JID gets the answer for an
    offline resource. Otherwise it reaches romeo, who answers: what the strategy does not
    hide, it must not claim to."""
    claimed = bool(getattr(driver, "hides_full_jid_iqs", False))
    version = "<query xmlns='jabber:iq:version'/>"
    async with _open_stage(driver) as stage:
        juliet = await stage.log_in(JULIET, presence=True)
        offline = await request(juliet, version, to=stage.full(ROMEO), type_="get", check=False)
        assert condition(offline) == "service-unavailable", summary(offline)
        romeo = await _hide(stage, driver)
        await juliet.send(f"<iq type='get' id='v2' to='{stage.full(ROMEO)}'>{version}</iq>")
        back = [e for e in await stage.sync(juliet) if e.get("id") == "v2"]
        received = await stage.sync(romeo)
        if claimed:
            assert [shape(e) for e in back] == [shape(offline)], "not the answer offline gets"
            leaked = [summary(e) for e in received if e.tag == f"{C}iq"]
            assert leaked == [], f"the IQ reached romeo: {leaked}"
        else:
            got = [e for e in received if e.tag == f"{C}iq" and e.get("id") == "v2"]
            assert got, "the IQ did not reach romeo: set hides_full_jid_iqs"
            await romeo.send(f"<iq type='result' id='v2' to='{stage.full(JULIET)}'/>")
            assert (await juliet.expect(lambda e: e.get("id") == "v2")).get("type") == "result"


async def xep0018_presence_types_never_leave_the_server(driver: Driver) -> None:
    """Whatever is enabled, no presence of type 'invisible' or 'visible' reaches anyone:
    consumed by ``xep0018``, refused by the core without it."""
    async with _open_stage(driver) as stage:
        await stage.log_in_others()
        await stage.log_in("romeo/r2", presence=True)  # catches reflections to own resources
        await stage.heard()
        romeo = await _hide(stage, driver)
        await driver.show_to(romeo, stage.bare(JULIET))
        targets = [stage.bare(n) for n in OTHERS] + [stage.full(n) for n in OTHERS]
        for to in (*targets, stage.full("romeo/r2"), stage.bare(ROMEO), None):
            for kind in LEGACY_TYPES:
                address = f" to='{to}'" if to else ""
                await romeo.send(f"<presence{address} type='{kind}'><status>x</status></presence>")
            await stage.heard()
        await driver.go_visible(romeo)
        await stage.log_off(ROMEO)
        await stage.heard()
    leaked = [(name, summary(e)) for name, got in stage.transcript.items() for e in got
              if e.tag == f"{C}presence" and e.get("type") in LEGACY_TYPES]  # fmt: skip
    assert leaked == [], f"legacy presence left the server: {leaked}"
    assert any(e.get("from") == stage.full(ROMEO) for e in stage.transcript[JULIET])  # not vacuous


SCENARIOS: list[Scenario] = [
    no_broadcast_presence_reaches_contacts_while_invisible,
    contact_logging_in_gets_the_offline_probe_answer,
    logoff_while_invisible_sends_nothing_to_anyone,
    going_invisible_sends_unavailable_to_exactly_those_who_saw_him,
    bare_jid_message_from_hidden_from_contact_takes_the_offline_path,
    full_jid_chat_works_both_ways_while_invisible,
    last_activity_for_hidden_from_contact_equals_the_offline_answer,
    disco_items_for_hidden_from_contact_are_empty_like_offline,
    show_to_one_contact_lets_her_see_and_chat_the_other_sees_nothing,
    presence_changes_while_invisible_reach_nobody_hidden_from,
    going_visible_again_shows_him_to_his_contacts_only,
    full_jid_iqs_are_hidden_exactly_as_claimed,
    xep0018_presence_types_never_leave_the_server,
]
"""Every scenario, in a stable order: ``@pytest.mark.parametrize("scenario", SCENARIOS)``."""
