"""A misbehaving plugin must not take the server down, and privacy hooks fail closed.

Runtime crashes are logged with the plugin's name (and the stanza id where there is one) and
the server keeps serving; mistakes a plugin makes in its declarations (``async def`` hooks,
misspelled hook names, duplicate IQ handlers, unknown plugin names) stop the server at
startup instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from xml.etree.ElementTree import Element

import pytest
import trio
from casper.config import Config, ConfigError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.jid import JID
from casper.plugins import call_guarded, installed_plugins, make_plugin_manager
from casper.server import Server
from casper.session import Session
from casper.stanza import Stanza, qname
from casper.testing import open_test_server
from casper.verdicts import Bounce, Drop, Verdict

from tests.helpers import (
    befriend,
    drain,
    error_condition,
    message,
    serve_without_listeners,
    with_id,
)

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
ROSTER_NS = "jabber:iq:roster"
TEST_NS = "urn:casper:test:robustness"


class Boom(Exception):
    """What the misbehaving plugins raise."""


# ---------------------------------------------------------------- helpers


def crash_logs(caplog: pytest.LogCaptureFixture, hook: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"crashed in {hook}" in r.getMessage()]


# ---------------------------------------------------------------- filters fail closed


class CrashingIncomingFilter:
    @hookimpl
    def casper_filter_incoming(self, stanza: Stanza) -> Verdict | None:
        if stanza.id == "boom":
            raise Boom("incoming filter bug")
        return None


async def test_crashing_incoming_filter_drops_the_stanza_and_logs_plugin_and_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="casper")
    async with (
        open_test_server(
            default_plugins=False, extra_plugins=[(CrashingIncomingFilter(), "crashy")]
        ) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(f"{ROMEO}/r1", "boom"))
        await romeo.expect_nothing("message", settle=0.3)
        assert [e for e in await drain(juliet, 0.1) if e.get("id") == "boom"] == []
        await juliet.send(message(f"{ROMEO}/r1", "after"))
        assert (await romeo.expect("message")).get("id") == "after"
    [logged] = crash_logs(caplog, "casper_filter_incoming")
    assert "'crashy'" in logged and "stanza id boom" in logged


class CrashingOutgoingFilter:
    @hookimpl
    def casper_filter_outgoing(self, stanza: Stanza) -> Verdict | None:
        if stanza.id == "boom":
            raise Boom("outgoing filter bug")
        return None


async def test_crashing_outgoing_filter_bounces_internal_server_error_and_delivers_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="casper")
    async with (
        open_test_server(
            default_plugins=False, extra_plugins=[(CrashingOutgoingFilter(), "crashy")]
        ) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(f"{ROMEO}/r1", "boom"))
        error = await juliet.expect(with_id("boom"))
        await romeo.expect_nothing("message")
        await juliet.send(message(f"{ROMEO}/r1", "after"))
        assert (await romeo.expect("message")).get("id") == "after"
    assert error.get("type") == "error"
    assert error_condition(error) == "internal-server-error"
    [logged] = crash_logs(caplog, "casper_filter_outgoing")
    assert "'crashy'" in logged and "stanza id boom" in logged


class CrashingStrategy:
    @hookimpl
    def casper_hidden_from(self, session: Session, observer: JID) -> bool:
        raise Boom("strategy bug")


async def test_crashing_visibility_hook_hides_the_session(caplog: pytest.LogCaptureFixture) -> None:
    """No presence leaks and bare-JID messages take the offline path while it crashes."""
    caplog.set_level(logging.ERROR, logger="casper")
    async with open_test_server(
        default_plugins=False, extra_plugins=[(CrashingStrategy(), "crashy")]
    ) as srv:
        await befriend(srv, "romeo", "juliet")
        async with srv.client("juliet", presence=True, resource="balcony") as juliet:
            await drain(juliet)
            async with srv.client("romeo", presence=True, resource="r1") as romeo:
                seen = [e for e in await drain(juliet) if e.get("from", "").startswith(ROMEO)]
                await juliet.send(message(ROMEO, "bare"))
                bounce = await juliet.expect(with_id("bare"))
                await romeo.expect_nothing("message")
            seen += [e for e in await drain(juliet) if e.get("from", "").startswith(ROMEO)]
    assert seen == []
    assert error_condition(bounce) == "service-unavailable"
    logged = crash_logs(caplog, "casper_hidden_from")
    assert logged and all("'crashy'" in line for line in logged)


# ---------------------------------------------------------------- handlers and lifecycle hooks


async def _crash(request: IqRequest) -> Element | None:
    raise Boom("handler bug")


async def _echo(request: IqRequest) -> Element | None:
    return Element(qname(TEST_NS, "fine"))


class CrashingIqPlugin:
    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return [
            IqHandler("get", TEST_NS, "crash", _crash),
            IqHandler("get", TEST_NS, "fine", _echo),
        ]


async def test_crashing_iq_handler_answers_internal_server_error_and_server_keeps_working(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="casper")
    async with (
        open_test_server(
            default_plugins=False, extra_plugins=[(CrashingIqPlugin(), "crashy")]
        ) as srv,
        srv.client("romeo", resource="r1") as romeo,
    ):
        await romeo.send(f"<iq type='get' to='localhost' id='c1'><crash xmlns='{TEST_NS}'/></iq>")
        error = await romeo.expect(with_id("c1"))
        await romeo.send(f"<iq type='get' to='localhost' id='c2'><fine xmlns='{TEST_NS}'/></iq>")
        result = await romeo.expect(with_id("c2"))
    assert (error.get("type"), error_condition(error)) == ("error", "internal-server-error")
    assert result.get("type") == "result"
    assert any(
        "'crashy' crashed" in r.getMessage() and "stanza id c1" in r.getMessage()
        for r in caplog.records
    )


class CrashingSessionBound:
    def __init__(self, how: str) -> None:
        self.how = how

    @hookimpl
    def casper_session_bound(self, session: Session) -> Callable[[], Awaitable[None]] | None:
        if self.how == "raises":
            raise Boom("session_bound bug")

        async def later() -> None:
            raise Boom("session_bound callable bug")

        return later


@pytest.mark.parametrize("how", ["raises", "returns-failing-callable"])
async def test_crashing_session_bound_leaves_the_session_working(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="casper")
    async with (
        open_test_server(
            default_plugins=False, extra_plugins=[(CrashingSessionBound(how), "crashy")]
        ) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(f"{ROMEO}/r1", "m1"))
        assert (await romeo.expect("message")).get("id") == "m1"
    messages = [r.getMessage() for r in caplog.records]
    if how == "raises":
        assert any("'crashy' crashed in casper_session_bound" in m for m in messages)
    else:
        assert any("casper_session_bound failed" in m for m in messages)


class CrashingTakeover:
    @hookimpl
    def casper_handle_outgoing(self, stanza: Stanza) -> Callable[[], Awaitable[None]] | None:
        if stanza.id != "boom":
            return None

        async def take_over() -> None:
            raise Boom("takeover bug")

        return take_over


class CrashingBareRoute:
    @hookimpl
    def casper_bare_route_while_unavailable(self, session: Session, sender: JID) -> bool | None:
        raise Boom("bare-route bug")


class CrashingOfflineStore:
    @hookimpl
    def casper_offline_message(self, stanza: Stanza, account: JID) -> None:
        raise Boom("offline-store bug")


@pytest.mark.parametrize(
    ("plugin", "romeo_available", "sender_gets"),
    [
        # a failed takeover answers like a crashing outgoing filter
        pytest.param(
            CrashingTakeover(), True, "internal-server-error", id="handle_outgoing-callable"
        ),
        # the other two fall back to the RFC rule / no storage: the offline answer
        pytest.param(CrashingBareRoute(), False, "service-unavailable", id="bare_route"),
        pytest.param(CrashingOfflineStore(), False, "service-unavailable", id="offline_message"),
    ],
)
async def test_crash_in_routing_hook_leaves_the_sender_connected(
    plugin: object, romeo_available: bool, sender_gets: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="casper")
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "crashy")]) as srv,
        srv.client("romeo", presence=romeo_available, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(ROMEO, "boom"))
        answer = await juliet.expect(with_id("boom"))
        await romeo.expect_nothing(with_id("boom"))
        await juliet.send(message(f"{ROMEO}/r1", "after"))
        assert (await romeo.expect("message")).get("id") == "after"
    assert (answer.get("type"), error_condition(answer)) == ("error", sender_gets)
    assert any("'crashy'" in r.getMessage() for r in caplog.records)


class CrashingBackgroundTask:
    @hookimpl
    def casper_serve(self, nursery: trio.Nursery) -> None:
        async def task() -> None:
            raise Boom("background task bug")

        nursery.start_soon(task)


async def test_crashing_background_task_does_not_take_the_server_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="casper")
    async with open_test_server(
        default_plugins=False, extra_plugins=[(CrashingBackgroundTask(), "crashy")]
    ) as srv:
        await trio.sleep(0.1)
        async with srv.client("romeo", presence=True, resource="r1") as romeo:
            await romeo.send(
                f"<iq type='get' to='{ROMEO}' id='r'><query xmlns='{ROSTER_NS}'/></iq>"
            )
            assert (await romeo.expect(with_id("r"))).get("type") == "result"
    assert any("'crashy'" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- declaration mistakes fail at startup


class AsyncHookPlugin:
    @hookimpl
    async def casper_session_ended(self, session: Session) -> None:
        pass


def test_async_hook_implementation_is_rejected_at_startup() -> None:
    with pytest.raises(ConfigError, match=r"'bad'.*casper_session_ended.*must not be async"):
        make_plugin_manager(Config(default_plugins=False), extra=[(AsyncHookPlugin(), "bad")])


class MisspelledHookPlugin:
    @hookimpl
    def casper_filter_incomming(self, stanza: Stanza) -> None:
        return None


def test_misspelled_hook_name_is_rejected_at_startup() -> None:
    with pytest.raises(ConfigError, match="casper_filter_incomming"):
        make_plugin_manager(Config(default_plugins=False), extra=[(MisspelledHookPlugin(), "bad")])


class RegistersStateInConfigure:
    """A stateful plugin that registers its state object from casper_configure."""

    def __init__(self, state: object) -> None:
        self.state = state

    @hookimpl
    def casper_configure(self, server: Server) -> None:
        server.pm.register(self.state, "bad.state")


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(AsyncHookPlugin(), id="async"),
        pytest.param(MisspelledHookPlugin(), id="misspelled"),
    ],
)
async def test_bad_hook_on_object_registered_in_configure_is_rejected_at_startup(
    state: object,
) -> None:
    with pytest.raises(ConfigError, match="bad.state"):
        await serve_without_listeners([(RegistersStateInConfigure(state), "bad")])


class DuplicateIqPlugin:
    def __init__(self, ns: str, target: str = "server") -> None:
        self.ns = ns
        self.target = target

    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return [IqHandler("get", self.ns, "query", _echo, target=self.target)]


@pytest.mark.parametrize(
    "plugins",
    [
        pytest.param([DuplicateIqPlugin(TEST_NS), DuplicateIqPlugin(TEST_NS)], id="two-plugins"),
        pytest.param([DuplicateIqPlugin(ROSTER_NS, "account")], id="plugin-and-core"),
    ],
)
async def test_duplicate_iq_handler_is_an_error_at_startup(
    plugins: list[DuplicateIqPlugin],
) -> None:
    """The table is built before anything listens, so ``serve`` itself raises."""
    extra = [(plugin, f"dup-{index}") for index, plugin in enumerate(plugins)]
    with pytest.raises(ConfigError, match=r"plugins '.+' and 'dup-\d' both handle"):
        await serve_without_listeners(extra)


async def test_duplicate_iq_handler_error_names_the_plugin_as_configured() -> None:
    """``version`` registers its object as ``version.state``: the operator knows ``version``."""
    extra = [(DuplicateIqPlugin("jabber:iq:version"), "my-plugin")]
    with pytest.raises(ConfigError) as info:
        await serve_without_listeners(extra, configured=("version",))
    names = {"'version'", "'my-plugin'"}
    assert any(str(info.value).startswith(f"plugins {a} and {b} both handle") for a in names
               for b in names - {a}), info.value  # fmt: skip


def test_unknown_plugin_name_is_a_config_error_naming_the_installed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        make_plugin_manager(Config(default_plugins=False, plugins=("no-such-plugin",)))
    text = str(info.value)
    assert "unknown plugin 'no-such-plugin'" in text
    assert installed_plugins()
    assert all(name in text for name in installed_plugins())


GUARDED = ["casper_filter_incoming", "casper_filter_outgoing", "casper_presence_blocked",
           "casper_hidden_from"]  # fmt: skip


def _guarded_manager(*plugins: object):
    pm = make_plugin_manager(Config(domain="localhost", default_plugins=False))
    for number, plugin in enumerate(plugins):
        pm.register(plugin, f"p{number}")
    return pm


def _call_both(pm, hook: str) -> tuple[object, object]:
    """``call_guarded`` and pluggy itself, on the same arguments."""
    caller = getattr(pm.hook, hook)
    kwargs = {name: Stanza.from_element(Element("{jabber:client}message", id="x"))
              for name in caller.spec.argnames}  # fmt: skip
    return call_guarded(pm, hook, **kwargs), caller(**kwargs)


class Answers:
    """Implements every guarded hook, answering ``answer`` (tryfirst/trylast as asked)."""

    def __init__(self, answer: object, order: str = "") -> None:
        marker = hookimpl(tryfirst=order == "first", trylast=order == "last")
        for hook in GUARDED:
            setattr(self, hook, marker(lambda answer=answer, **_: answer))


class Crashes:
    def __init__(self) -> None:
        for hook in GUARDED:
            setattr(self, hook, hookimpl(lambda **_: 1 / 0))


class ExtraWrapper:
    def __init__(self) -> None:
        for hook in GUARDED:
            setattr(self, hook, hookimpl(wrapper=True)(self._wrap))

    @staticmethod
    def _wrap(**_):  # type: ignore[no-untyped-def]
        return (yield)


@pytest.mark.parametrize("hook", GUARDED)
@pytest.mark.parametrize(
    "plugins",
    [
        pytest.param((), id="none"),
        pytest.param((Answers(None),), id="no-answer"),
        pytest.param((Answers(None), Answers(True, "last"), Answers(False, "first")), id="order"),
        pytest.param((Answers(True), Answers(False)), id="registration-order"),
    ],
)
def test_guarded_hook_answers_exactly_as_pluggy_would(hook: str, plugins: tuple) -> None:
    fast, pluggy_answer = _call_both(_guarded_manager(*plugins), hook)
    assert fast == pluggy_answer


@pytest.mark.parametrize("hook", GUARDED)
@pytest.mark.parametrize("extra", [(), (ExtraWrapper(),)], ids=["guard-only", "extra-wrapper"])
def test_guarded_hook_that_crashes_fails_closed_either_way(
    hook: str, extra: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="casper")
    fast, pluggy_answer = _call_both(_guarded_manager(Answers(None), Crashes(), *extra), hook)
    assert repr(fast) == repr(pluggy_answer)
    safe = {"casper_filter_incoming": Drop, "casper_filter_outgoing": Bounce}.get(hook)
    assert isinstance(fast, safe) if safe else fast == [True]
    assert len(crash_logs(caplog, hook)) == 2


def _overriding_wrapper(answer: object):  # type: ignore[no-untyped-def]
    def wrap(**_):  # type: ignore[no-untyped-def]
        yield
        return answer

    return wrap


class OverridingWrapper:
    """A plugin's own wrapper, which answers for every guarded hook."""

    def __init__(self, answer: object) -> None:
        for hook in GUARDED:
            setattr(self, hook, hookimpl(wrapper=True)(_overriding_wrapper(answer)))


@pytest.mark.parametrize("hook", GUARDED)
def test_guarded_hook_runs_a_plugins_wrapper_that_stands_in_for_the_guard(hook: str) -> None:
    """Only the guard itself is answered without pluggy: one other wrapper, in place of
    the guard (unregistered, or disabled by an embedding config), still runs."""
    pm = _guarded_manager(Answers(None), OverridingWrapper(Drop("wrapped")))
    pm.unregister(name="casper.guard")
    fast, pluggy_answer = _call_both(pm, hook)
    assert fast == pluggy_answer == Drop("wrapped")
