"""The one visibility decision, proven at every enforcement point.

Each scenario observes the account ``romeo`` from a contact (``juliet``) three ways where it
matters: while romeo is hidden from her, while romeo is truly offline, and — as a control that
the observation can tell the two apart — while nothing hides romeo. A hidden session must be
indistinguishable from an offline account (same stanzas, same error conditions; only
timestamps and ids may differ).

The strategy is a tiny plugin defined here (:class:`HideFrom`), registered like any
third-party plugin; the core must not care which strategy is asking it to hide.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from xml.etree.ElementTree import Element

import pytest
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.session import Session
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import befriend, drain, error_condition, query

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
MERCUTIO = "mercutio@localhost"
BENVOLIO = "benvolio@localhost"
CLIENT = "{jabber:client}"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
LAST_NS = "jabber:iq:last"
AN_HOUR_AGO = 3600.0


class HideFrom:
    """The smallest strategy: hide ``account``'s sessions from some observers or from everyone.

    The sets are mutable so a test can change the strategy's answer at runtime.
    """

    def __init__(
        self, observers: set[str] | None = None, *, everyone: bool = False, account: str = ROMEO
    ) -> None:
        self.account = account
        self.observers = set(observers or ())
        self.everyone = everyone
        self.asked: list[tuple[Session, JID]] = []

    @hookimpl
    def casper_hidden_from(self, session: Session, observer: JID) -> bool | None:
        if str(session.account) != self.account:
            return None
        self.asked.append((session, observer))
        return self.everyone or str(observer.bare) in self.observers


STRATEGIES: dict[str, Callable[[], HideFrom]] = {
    "hidden-from-everyone": lambda: HideFrom(everyone=True),
    "hidden-from-juliet": lambda: HideFrom({JULIET}),
    "not-hidden": lambda: HideFrom(),  # control: the observation does tell online from offline
}
HIDING = [name for name in STRATEGIES if name != "not-hidden"]


# ---------------------------------------------------------------- helpers


def open_server(
    *strategies: HideFrom,
    plugins: tuple[str, ...] = (),
    accounts: tuple[str, ...] = ("romeo", "juliet", "mercutio"),
) -> AbstractAsyncContextManager[TestServer]:
    extra = [(strategy, f"hide-{index}") for index, strategy in enumerate(strategies)]
    return open_test_server(
        default_plugins=False, plugins=plugins, extra_plugins=extra, accounts=accounts
    )


async def seed_last_logoff(srv: TestServer, account: str, seconds_ago: float) -> None:
    """Pretend ``account`` last went offline publicly ``seconds_ago`` (status-less)."""
    await srv.server.db(
        srv.server.storage.set_last_activity, account, time.time() - seconds_ago, None
    )


async def settled(client: TestClient) -> TestClient:
    """Throw away what a fresh login brings (probe answers, reflections); return the client."""
    await drain(client)
    return client


def about(elements: list[Element], account: str) -> list[Element]:
    """The elements that came from ``account`` (any resource)."""
    return [e for e in elements if e.get("from", "").split("/")[0] == account]


def shape(element: Element, ignore: tuple[str, ...] = ("id", "stamp")) -> tuple[object, ...]:
    """What an observer can compare: tags, attributes and text, minus ids and timestamps."""
    attrs = tuple(sorted((k, v) for k, v in element.attrib.items() if k not in ignore))
    children = tuple(shape(child, ignore) for child in element)
    return (element.tag, attrs, (element.text or "").strip(), children)


def shapes(
    elements: list[Element], ignore: tuple[str, ...] = ("id", "stamp")
) -> list[tuple[object, ...]]:
    return [shape(e, ignore) for e in elements]


def is_presence(element: Element, type_: str | None = None) -> bool:
    return element.tag == f"{CLIENT}presence" and element.get("type") == type_


def from_(jid: str) -> Callable[[Element], bool]:
    return lambda e: e.get("from") == jid


# ---------------------------------------------------------------- the hook itself


async def test_hook_hidden_from() -> None:
    """The core asks every strategy with the session and the observer; True hides."""
    hide = HideFrom({JULIET})
    async with open_server(hide) as srv:
        await befriend(srv, "romeo", "juliet", "mercutio")
        async with (
            srv.client("juliet", presence=True, resource="balcony") as juliet,
            srv.client("mercutio", presence=True, resource="street") as mercutio,
        ):
            await drain(juliet)
            async with srv.client("romeo", presence=True, resource="r1"):
                await mercutio.expect(lambda e: is_presence(e) and e.get("from") == f"{ROMEO}/r1")
                assert about(await drain(juliet), ROMEO) == []
    asked = {(str(session.jid), str(observer.bare)) for session, observer in hide.asked}
    assert (f"{ROMEO}/r1", JULIET) in asked
    assert (f"{ROMEO}/r1", MERCUTIO) in asked
    assert all(observer.bare != JID.parse(ROMEO) for _, observer in hide.asked)


class BlockJuliet:
    """A communication block (what XEP-0191 blocking reports): not invisibility."""

    @hookimpl
    def casper_presence_blocked(self, session: Session, observer: JID) -> bool | None:
        return str(observer.bare) == JULIET


@pytest.mark.parametrize(
    ("policy", "juliet_sees"),
    [
        pytest.param({}, False, id="default-policy"),
        pytest.param({"invisibility": False}, False, id="invisibility-disabled"),
        pytest.param({"never_hidden_from": (JULIET,)}, True, id="juliet-never-hidden-from"),
    ],
)
async def test_hook_presence_blocked(policy: dict[str, object], juliet_sees: bool) -> None:
    """A block hides presence even where the policy forbids hiding; only
    ``never_hidden_from`` overrides it. A strategy's hiding obeys the policy instead."""
    async with open_test_server(
        default_plugins=False,
        extra_plugins=[(BlockJuliet(), "block"), (HideFrom({MERCUTIO}), "hide")],
        accounts=("romeo", "juliet", "mercutio"),
        **policy,  # type: ignore[arg-type]
    ) as srv:
        await befriend(srv, "romeo", "juliet", "mercutio")
        async with (
            srv.client("juliet", presence=True) as juliet,
            srv.client("mercutio", presence=True) as mercutio,
        ):
            await drain(juliet)
            await drain(mercutio)
            async with srv.client("romeo", presence=True, resource="r1"):
                juliet_got = about(await drain(juliet), ROMEO)
                mercutio_got = about(await drain(mercutio), ROMEO)
    assert bool(juliet_got) is juliet_sees
    # mercutio is hidden from by a strategy: only where invisibility is allowed
    assert bool(mercutio_got) is (policy.get("invisibility") is False)


# ---------------------------------------------------------------- presence


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_login_with_presence_reaches_no_contact_it_is_hidden_from(strategy: str) -> None:
    async with open_server(STRATEGIES[strategy]()) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            await drain(juliet)
            offline = about(await drain(juliet), ROMEO)  # romeo not connected at all
            async with srv.client("romeo", presence=True, resource="r1"):
                observed = about(await drain(juliet), ROMEO)
    assert offline == []
    if strategy == "not-hidden":
        assert [e.get("type") for e in observed] == [None]
    else:
        assert shapes(observed) == shapes(offline)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_probe_answer_for_hidden_session_is_the_offline_answer(strategy: str) -> None:
    """A contact logging in after the hidden session gets the unavailable-with-delay an
    offline account gives (the stamp may differ)."""
    async with open_server(STRATEGIES[strategy]()) as srv:
        await seed_last_logoff(srv, ROMEO, AN_HOUR_AGO)
        await befriend(srv, "romeo", "juliet")
        async with (
            srv.client("romeo", presence=True, resource="r1"),
            srv.client("juliet", presence=True, resource="balcony") as juliet,
        ):
            observed = about(await drain(juliet), ROMEO)
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            offline = about(await drain(juliet), ROMEO)
    assert [(e.get("type"), e.get("from")) for e in offline] == [("unavailable", ROMEO)]
    assert offline[0].find("{urn:xmpp:delay}delay") is not None
    if strategy == "not-hidden":
        assert [(e.get("type"), e.get("from")) for e in observed] == [(None, f"{ROMEO}/r1")]
    else:
        assert shapes(observed) == shapes(offline)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_logoff_of_session_hidden_all_along_sends_no_unavailable(strategy: str) -> None:
    """No ghost: nobody is told of an offline-to-offline transition."""
    async with open_server(STRATEGIES[strategy]()) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            await drain(juliet)
            offline = about(await drain(juliet), ROMEO)  # an offline account "logging off"
            async with srv.client("romeo", presence=True, resource="r1"):
                await drain(juliet)
            observed = about(await drain(juliet), ROMEO)
    if strategy == "not-hidden":
        assert [e.get("type") for e in observed] == ["unavailable"]
    else:
        assert shapes(observed) == shapes(offline) == []


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_bare_jid_message_to_hidden_session_bounces_like_offline_without_storage(
    strategy: str,
) -> None:
    async with open_server(STRATEGIES[strategy]()) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            message = f"<message to='{ROMEO}' type='chat' id='m1'><body>hi</body></message>"
            async with srv.client("romeo", presence=True, resource="r1") as romeo:
                await drain(juliet)
                await juliet.send(message)
                observed = about(await drain(juliet), ROMEO)
                got = [e for e in await drain(romeo, 0.1) if e.tag == f"{CLIENT}message"]
            await drain(juliet)
            await juliet.send(message)
            offline = about(await drain(juliet), ROMEO)
    assert [error_condition(e) for e in offline] == ["service-unavailable"]
    if strategy == "not-hidden":
        assert observed == [] and len(got) == 1
    else:
        assert got == []
        assert shapes(observed) == shapes(offline)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_bare_jid_message_to_hidden_session_is_stored_like_offline(strategy: str) -> None:
    """With the 'offline' plugin the hidden account's message is kept exactly like an
    offline account's, and delivered at its next initial presence."""
    async with open_server(STRATEGIES[strategy](), plugins=("offline",)) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            async with srv.client("romeo", presence=True, resource="r1") as romeo:
                await drain(juliet)
                await juliet.send(
                    f"<message to='{ROMEO}' type='chat' id='m1'><body>one</body></message>"
                )
                observed = about(await drain(juliet), ROMEO)
                live = [e for e in await drain(romeo, 0.1) if e.tag == f"{CLIENT}message"]
            await drain(juliet)
            await juliet.send(
                f"<message to='{ROMEO}' type='chat' id='m2'><body>two</body></message>"
            )
            offline = about(await drain(juliet), ROMEO)
        async with srv.client("romeo", presence=True, resource="r2") as romeo:
            stored = [e for e in await drain(romeo) if e.tag == f"{CLIENT}message"]
    assert observed == offline == []
    bodies = [e.findtext(f"{CLIENT}body") for e in stored]
    if strategy == "not-hidden":
        assert [e.findtext(f"{CLIENT}body") for e in live] == ["one"]
        assert bodies == ["two"]
    else:
        assert live == []
        assert bodies == ["one", "two"]
        ignore = ("id", "stamp")
        first, second = stored
        assert shape(first, ignore)[1] == shape(second, ignore)[1]  # same addressing and type
        assert [c.tag for c in first] == [c.tag for c in second]  # same delay marking


@pytest.mark.parametrize("strategy", HIDING)
async def test_full_jid_message_still_reaches_hidden_session(strategy: str) -> None:
    """Invisible users can chat: a full-JID message is delivered (RFC 6121 baseline)."""
    async with open_server(STRATEGIES[strategy]()) as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            srv.client("romeo", presence=True, resource="r1") as romeo,
            srv.client("juliet", presence=True, resource="balcony") as juliet,
        ):
            await drain(juliet)
            await juliet.send(
                f"<message to='{ROMEO}/r1' type='chat' id='m1'><body>psst</body></message>"
            )
            message = await romeo.expect("message")
            assert message.findtext(f"{CLIENT}body") == "psst"
            assert about(await drain(juliet), ROMEO) == []


# ---------------------------------------------------------------- answers on the account's behalf


async def _last_activity(client: TestClient) -> Element:
    return await query(client, ROMEO, f"<query xmlns='{LAST_NS}'/>")


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_last_activity_of_hidden_account_is_never_zero_seconds(strategy: str) -> None:
    async with open_server(STRATEGIES[strategy](), plugins=("last-activity",)) as srv:
        await seed_last_logoff(srv, ROMEO, AN_HOUR_AGO)
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            async with srv.client("romeo", presence=True, resource="r1"):
                observed = await _last_activity(juliet)
            offline = await _last_activity(juliet)
    seconds = observed.find(f"{{{LAST_NS}}}query")
    assert offline.get("type") == observed.get("type") == "result"
    assert seconds is not None
    if strategy == "not-hidden":
        assert seconds.get("seconds") == "0"
    else:
        assert int(seconds.get("seconds", "0")) >= AN_HOUR_AGO - 60
        assert shape(observed, ("id", "seconds")) == shape(offline, ("id", "seconds"))


async def test_last_activity_of_account_only_ever_online_hidden_is_that_of_a_new_account() -> None:
    """No public logoff to report: hidden-since-creation answers like never-logged-in."""
    async with open_server(HideFrom(everyone=True), plugins=("last-activity",)) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            never = await _last_activity(juliet)
            async with srv.client("romeo", presence=True, resource="r1"):
                observed = await _last_activity(juliet)
            offline = await _last_activity(juliet)
    assert error_condition(never) == "service-unavailable"
    assert shape(observed) == shape(offline) == shape(never)


async def _disco_items(client: TestClient) -> Element:
    return await query(client, ROMEO, f"<query xmlns='{DISCO_ITEMS}'/>")


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_disco_items_of_hidden_account_are_empty_like_offline(strategy: str) -> None:
    async with open_server(STRATEGIES[strategy](), plugins=("disco",)) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            async with srv.client("romeo", presence=True, resource="r1"):
                observed = await _disco_items(juliet)
            offline = await _disco_items(juliet)
    offline_items = [i.get("jid") for i in offline.iter(f"{{{DISCO_ITEMS}}}item")]
    assert offline.get("type") == "result" and offline_items == []
    if strategy == "not-hidden":
        assert [i.get("jid") for i in observed.iter(f"{{{DISCO_ITEMS}}}item")] == [f"{ROMEO}/r1"]
    else:
        assert shape(observed, ("id",)) == shape(offline, ("id",))


# ---------------------------------------------------------------- visibility changes at runtime


async def test_contact_gets_unavailable_once_when_strategy_starts_hiding_from_them() -> None:
    hide = HideFrom()
    async with open_server(hide) as srv:
        await befriend(srv, "romeo", "juliet", "mercutio")
        async with (
            srv.client("juliet", presence=True, resource="balcony") as juliet,
            srv.client("mercutio", presence=True, resource="street") as mercutio,
        ):
            await settled(juliet)
            await settled(mercutio)
            async with srv.client("romeo", presence=True, resource="r1"):
                await juliet.expect(lambda e: is_presence(e) and e.get("from") == f"{ROMEO}/r1")
                await mercutio.expect(lambda e: is_presence(e) and e.get("from") == f"{ROMEO}/r1")
                hide.observers.add(JULIET)
                await srv.server.visibility_inputs_changed(JID.parse(ROMEO))
                gone = about(await drain(juliet), ROMEO)
                assert about(await drain(mercutio, 0.1), ROMEO) == []
            after_logoff = about(await drain(juliet), ROMEO)
            assert [e.get("type") for e in about(await drain(mercutio), ROMEO)] == ["unavailable"]
    assert [(e.get("type"), e.get("from")) for e in gone] == [("unavailable", f"{ROMEO}/r1")]
    assert after_logoff == []  # already told; no second unavailable


async def test_contact_gets_current_presence_when_strategy_stops_hiding_from_them() -> None:
    hide = HideFrom({JULIET})
    async with open_server(hide) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            await settled(juliet)
            async with srv.client("romeo", resource="r1") as romeo:
                await romeo.send("<presence><show>away</show><status>plotting</status></presence>")
                await romeo.expect(from_(f"{ROMEO}/r1"))
                assert about(await drain(juliet), ROMEO) == []
                hide.observers.clear()
                await srv.server.visibility_inputs_changed(JID.parse(ROMEO))
                shown = about(await drain(juliet), ROMEO)
            logoff = about(await drain(juliet), ROMEO)
    assert [(e.get("type"), e.get("from")) for e in shown] == [(None, f"{ROMEO}/r1")]
    assert shown[0].findtext(f"{CLIENT}show") == "away"
    assert shown[0].findtext(f"{CLIENT}status") == "plotting"
    assert [e.get("type") for e in logoff] == ["unavailable"]


async def test_directed_presence_while_hidden_is_delivered_and_retracted_on_logoff() -> None:
    """Hidden from everyone, a directed presence is the user's explicit choice: delivered."""
    async with open_server(HideFrom(everyone=True)) as srv:
        await befriend(srv, "romeo", "juliet", "mercutio")
        async with (
            srv.client("juliet", presence=True, resource="balcony") as juliet,
            srv.client("mercutio", presence=True, resource="street") as mercutio,
        ):
            await settled(juliet)
            await settled(mercutio)
            async with srv.client("romeo", presence=True, resource="r1") as romeo:
                assert about(await drain(juliet), ROMEO) == []
                await romeo.send(f"<presence to='{JULIET}'><status>only you</status></presence>")
                directed = about(await drain(juliet), ROMEO)
            logoff = about(await drain(juliet), ROMEO)
            assert about(await drain(mercutio, 0.1), ROMEO) == []
    assert [(e.get("type"), e.findtext(f"{CLIENT}status")) for e in directed] == [
        (None, "only you")
    ]
    assert [(e.get("type"), e.get("from")) for e in logoff] == [("unavailable", f"{ROMEO}/r1")]


async def test_directed_presence_while_hidden_survives_a_broadcast_presence_update() -> None:
    async with open_server(HideFrom(everyone=True)) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            await settled(juliet)
            async with srv.client("romeo", presence=True, resource="r1") as romeo:
                await romeo.send(f"<presence to='{JULIET}'/>")
                assert [e.get("type") for e in about(await drain(juliet), ROMEO)] == [None]
                await romeo.send("<presence><show>away</show></presence>")
                update = about(await drain(juliet), ROMEO)
            logoff = about(await drain(juliet), ROMEO)
    assert "unavailable" not in [e.get("type") for e in update]
    assert [e.get("type") for e in logoff] == ["unavailable"]


# ---------------------------------------------------------------- composition and own resources


async def test_strategies_compose_any_hiding_plugin_wins() -> None:
    """One strategy hides from juliet, another from mercutio (and says False for juliet):
    both stay hidden; benvolio, whom nobody hides from, sees romeo."""
    async with open_server(
        HideFrom({JULIET}),
        HideFrom({MERCUTIO}),
        accounts=("romeo", "juliet", "mercutio", "benvolio"),
    ) as srv:
        for contact in ("juliet", "mercutio", "benvolio"):
            await befriend(srv, "romeo", contact)
        async with (
            srv.client("juliet", presence=True, resource="a") as juliet,
            srv.client("mercutio", presence=True, resource="b") as mercutio,
            srv.client("benvolio", presence=True, resource="c") as benvolio,
        ):
            await settled(juliet)
            await settled(mercutio)
            async with srv.client("romeo", presence=True, resource="r1"):
                await benvolio.expect(lambda e: is_presence(e) and e.get("from") == f"{ROMEO}/r1")
                assert about(await drain(juliet), ROMEO) == []
                assert about(await drain(mercutio, 0.1), ROMEO) == []


async def test_own_resources_always_see_a_session_hidden_from_everyone() -> None:
    async with open_server(HideFrom(everyone=True), plugins=("disco",)) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            await settled(juliet)
            async with (
                srv.client("romeo", presence=True, resource="r1") as r1,
                srv.client("romeo", presence=True, resource="r2") as r2,
            ):
                await r2.expect(lambda e: is_presence(e) and e.get("from") == f"{ROMEO}/r1")
                await r1.expect(lambda e: is_presence(e) and e.get("from") == f"{ROMEO}/r2")
                items = await _disco_items(r2)
                assert about(await drain(juliet), ROMEO) == []
    assert sorted(i.get("jid", "") for i in items.iter(f"{{{DISCO_ITEMS}}}item")) == [
        f"{ROMEO}/r1",
        f"{ROMEO}/r2",
    ]
