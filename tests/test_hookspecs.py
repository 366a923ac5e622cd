"""The hook contract: every hook is documented, tested, synchronous, and has a full docstring.

The contract tests come first (datasette's pattern: a hook nobody documented or tested fails
the suite); then one behavioural ``test_hook_<name>`` per hook, except ``casper_hidden_from``,
whose test lives with the other visibility tests in ``tests/core/test_visibility.py``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import trio
from casper import hookspecs
from casper.config import ConfigError
from casper.connection import FLUSH_SECONDS
from casper.hookspecs import hookimpl, hookspec
from casper.iq import IqHandler, IqRequest
from casper.jid import JID
from casper.plugins import ENTRY_POINT_GROUP
from casper.stanza import make_stanza, qname
from casper.storage.base import RosterItem
from casper.testing import TestServer, open_test_server
from casper.testing.client import closing
from casper.verdicts import Bounce, Drop, OfflineEquivalent, Verdict

from tests.helpers import drain, error_condition, message, serve_without_listeners, with_id

TESTS = Path(__file__).parent
HOOKS_DOC = TESTS.parent / "docs" / "hooks.md"
ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
CLIENT = "{jabber:client}"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
ROSTER_NS = "jabber:iq:roster"
TEST_NS = "urn:casper:test:hooks"

HOOKSPECS: dict[str, Callable[..., Any]] = {
    name: fn
    for name, fn in vars(hookspecs).items()
    if name.startswith("casper_") and hasattr(fn, "casper_spec")
}
HOOK_HEADING = re.compile(r"^## (\w+)\((.*)\)\s*$", re.MULTILINE)


def short(hook: str) -> str:
    return hook.removeprefix("casper_")


# ---------------------------------------------------------------- the contract


def test_hookspecs_are_found() -> None:
    """Guards the tests below against passing vacuously."""
    assert len(HOOKSPECS) >= 15
    assert "casper_filter_incoming" in HOOKSPECS


def _documented_hooks() -> dict[str, str]:
    text = HOOKS_DOC.read_text(encoding="utf-8")
    assert all(
        line.startswith("## casper_") for line in text.splitlines() if line.startswith("## ")
    )
    return {match[1]: match[2] for match in HOOK_HEADING.finditer(text)}


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_every_hook_is_documented_with_its_arguments(hook: str) -> None:
    documented = _documented_hooks()
    assert hook in documented, f"docs/hooks.md has no '## {hook}(' heading"
    arguments = [a.strip() for a in documented[hook].split(",") if a.strip()]
    assert arguments == list(inspect.signature(HOOKSPECS[hook]).parameters)


def test_every_documented_hook_exists() -> None:
    unknown = sorted(set(_documented_hooks()) - set(HOOKSPECS))
    assert unknown == []


def _test_sources() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in TESTS.rglob("test_*.py"))


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_every_hook_has_a_test(hook: str) -> None:
    pattern = re.compile(
        rf"^\s*async def test_hook_{short(hook)}\(|^\s*def test_hook_{short(hook)}\(", re.MULTILINE
    )
    assert pattern.search(_test_sources()), f"no test named test_hook_{short(hook)} under tests/"


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_every_hookspec_docstring_states_return_and_since(hook: str) -> None:
    doc = inspect.getdoc(HOOKSPECS[hook]) or ""
    assert ":return:" in doc
    assert "Since" in doc


def _hookimpls_in(module: ModuleType) -> list[tuple[str, Callable[..., Any]]]:
    """Module-level hookimpls and those on classes the module defines (state objects)."""
    found: list[tuple[str, Callable[..., Any]]] = []
    candidates: list[tuple[str, Any]] = list(vars(module).items())
    for cls in vars(module).values():
        if inspect.isclass(cls) and cls.__module__ == module.__name__:
            candidates += [(f"{cls.__name__}.{n}", v) for n, v in vars(cls).items()]
    for name, value in candidates:
        if callable(value) and getattr(value, "casper_impl", None) is not None:
            found.append((name, value))
    return found


def test_no_builtin_plugin_implements_a_hook_with_async_def() -> None:
    plugins = list(entry_points(group=ENTRY_POINT_GROUP))
    assert plugins
    impls = []
    for ep in plugins:
        module = ep.load()
        assert isinstance(module, ModuleType)
        impls += [(ep.name, name, fn) for name, fn in _hookimpls_in(module)]
    assert impls
    assert [(p, n) for p, n, fn in impls if inspect.iscoroutinefunction(fn)] == []


async def test_all_builtin_plugins_together_register_only_known_sync_hooks() -> None:
    """Start a server with every installed plugin and walk what actually got registered,
    including state objects plugins register from ``casper_configure``."""
    names = tuple(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    async with open_test_server(default_plugins=False, plugins=names) as srv:
        pm = srv.server.pm
        pm.check_pending()
        hooks = [getattr(pm.hook, name) for name in dir(pm.hook) if name.startswith("casper_")]
        impls = [impl for hook in hooks for impl in hook.get_hookimpls()]
    state_objects = {impl.plugin_name for impl in impls} - set(names) - {"casper.guard"}
    assert state_objects  # the walk reaches objects registered from casper_configure
    assert [impl.plugin_name for impl in impls if inspect.iscoroutinefunction(impl.function)] == []


# ---------------------------------------------------------------- helpers for the hook tests


def note(session: Any, text: str, stanza_id: str) -> None:
    """Deliver a server message to ``session`` (what the plugins below use to be observed)."""
    body = Element(qname("jabber:client", "body"))
    body.text = text
    session.deliver_nowait(make_stanza("message", to=session.jid, id=stanza_id, children=[body]))


async def make_contacts(srv: TestServer, a: str, b: str) -> None:
    """Mutual ``both`` subscription, written straight into the rosters (setup, not a test
    of subscriptions: ``tests/core/test_visibility.py`` does the real handshake)."""
    for account, contact in ((a, b), (b, a)):
        item = RosterItem(jid=str(srv.jid(contact)), subscription="both")
        await srv.server.rosters.put(srv.jid(account), item, push=False)


def presence_from(jid: str) -> Callable[[Element], bool]:
    return lambda e: e.tag == f"{CLIENT}presence" and e.get("from") == jid and e.get("type") is None


# ---------------------------------------------------------------- initialization


class GreeterSpecs:
    @hookspec(firstresult=True)
    def casper_greeter_greeting(self, account: JID) -> str | None:
        """Return the greeting for ``account``. :return: the text. Since: 1."""


class PublishesGreeterHooks:
    @hookimpl
    def casper_addhooks(self, pm: Any) -> None:
        pm.add_hookspecs(GreeterSpecs)


class ImplementsGreeterHook:
    @hookimpl
    def casper_greeter_greeting(self, account: JID) -> str:
        return f"good morrow, {account.local}"


async def test_hook_addhooks() -> None:
    """A plugin publishes a hookspec that another plugin implements, in either order."""
    extra = [(ImplementsGreeterHook(), "greeter-impl"), (PublishesGreeterHooks(), "greeter")]
    async with open_test_server(default_plugins=False, extra_plugins=extra) as srv:
        greeting = srv.server.pm.hook.casper_greeter_greeting(account=JID.parse(ROMEO))
    assert greeting == "good morrow, romeo"


class RecordsConfigure:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    @hookimpl
    def casper_configure(self, server: Any) -> None:
        self.calls.append((server, server.nursery))


async def test_hook_configure() -> None:
    """Called once with the server, before the server's nursery (and any listener) exists."""
    plugin = RecordsConfigure()
    async with open_test_server(default_plugins=False, extra_plugins=[(plugin, "rec")]) as srv:
        async with srv.client("romeo", presence=True):
            pass
        assert [server for server, _ in plugin.calls] == [srv.server]
        assert [nursery for _, nursery in plugin.calls] == [None]


class RejectsSettings:
    @hookimpl
    def casper_configure(self, server: Any) -> None:
        raise ConfigError("plugin.picky.level must be an integer")


async def test_hook_configure_config_error_stops_the_server_at_startup() -> None:
    with pytest.raises(ConfigError, match=r"plugin\.picky\.level"):
        await serve_without_listeners([(RejectsSettings(), "picky")])


# ---------------------------------------------------------------- server lifecycle


class BackgroundTask:
    def __init__(self) -> None:
        self.running = trio.Event()
        self.cancelled = False
        self.nursery: Any = None

    @hookimpl
    def casper_serve(self, server: Any, nursery: Any) -> None:
        self.nursery = nursery

        async def task() -> None:
            self.running.set()
            try:
                await trio.sleep_forever()
            finally:
                self.cancelled = True

        nursery.start_soon(task)


async def test_hook_serve() -> None:
    """The task runs in the server's nursery and is cancelled when the server stops."""
    plugin = BackgroundTask()
    async with open_test_server(default_plugins=False, extra_plugins=[(plugin, "bg")]) as srv:
        with trio.fail_after(5):
            await plugin.running.wait()
        assert plugin.nursery.cancel_scope is srv.server.nursery.cancel_scope
        assert not plugin.cancelled
    assert plugin.cancelled


# ---------------------------------------------------------------- negotiation


class OffersFeature:
    @hookimpl
    def casper_stream_features(self, server: Any) -> list[Element]:
        return [Element(qname(TEST_NS, "shiny"))]


async def test_hook_stream_features() -> None:
    """A contributed feature is offered after authentication, beside bind, and not before."""
    async with open_test_server(
        default_plugins=False, extra_plugins=[(OffersFeature(), "shiny")]
    ) as srv:
        client = await srv.connect()
        async with closing(client):
            before_auth = await client.open_stream()
            await client.starttls(srv.client_context)
            await client.authenticate("romeo", "secret")
            after_auth = client.features
            assert after_auth is not None
            await client.bind("r1")
    tags = [child.tag for child in after_auth]
    assert qname(TEST_NS, "shiny") in tags
    assert "{urn:ietf:params:xml:ns:xmpp-bind}bind" in tags
    assert qname(TEST_NS, "shiny") not in [child.tag for child in before_auth]


# ---------------------------------------------------------------- routing filters


class TakesOver:
    """Owns messages carrying ``<takeover xmlns=TEST_NS/>``: answers them itself."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.taken: list[str | None] = []

    @hookimpl
    def casper_handle_outgoing(
        self, stanza: Any, session: Any
    ) -> bool | Callable[[], Awaitable[None]] | None:
        if stanza.find(TEST_NS, "takeover") is None:
            return None
        self.taken.append(stanza.id)
        if self.how == "true":
            return True

        async def answer() -> None:
            await trio.lowlevel.checkpoint()
            note(session, "taken", f"{stanza.id}-taken")

        return answer


@pytest.mark.parametrize("how", ["true", "async-callable"])
async def test_hook_handle_outgoing(how: str) -> None:
    plugin = TakesOver(how)
    marker = f"<takeover xmlns='{TEST_NS}'/>"
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "owner")]) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(f"{ROMEO}/r1", "t1", extra=marker))
        await juliet.send(message(f"{ROMEO}/r1", "plain"))
        assert (await romeo.expect("message")).get("id") == "plain"  # the core routed this one
        got = await drain(juliet)
        assert [e.get("id") for e in await drain(romeo, 0.1) if e.tag == f"{CLIENT}message"] == []
    assert plugin.taken == ["t1"]
    taken = [e.get("id") for e in got if e.tag == f"{CLIENT}message"]
    assert taken == (["t1-taken"] if how == "async-callable" else [])


class FiltersOutgoing:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.seen: list[tuple[str | None, str]] = []

    @hookimpl
    def casper_filter_outgoing(self, stanza: Any, session: Any) -> Verdict | None:
        self.seen.append((stanza.id, str(session.jid)))
        return self.verdict if stanza.text_of("body") == "forbidden" else None


@pytest.mark.parametrize("verdict", [Drop("test"), Bounce("not-allowed")], ids=["drop", "bounce"])
async def test_hook_filter_outgoing(verdict: Verdict) -> None:
    plugin = FiltersOutgoing(verdict)
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "out")]) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(f"{ROMEO}/r1", "f1", "forbidden"))
        await juliet.send(message(f"{ROMEO}/r1", "f2", "allowed"))
        assert (await romeo.expect("message")).get("id") == "f2"
        answers = [e for e in await drain(juliet) if e.get("id") == "f1"]
    assert ("f1", f"{JULIET}/balcony") in plugin.seen  # from stamped, sending session passed
    if isinstance(verdict, Bounce):
        assert [(e.get("type"), error_condition(e)) for e in answers] == [("error", "not-allowed")]
    else:
        assert answers == []


class FiltersIncoming:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.asked: list[tuple[str | None, str, str | None]] = []

    @hookimpl
    def casper_filter_incoming(self, stanza: Any, recipient: JID, session: Any) -> Verdict | None:
        if stanza.kind != "message" or stanza.type == "error":
            return None  # let the error reply (which echoes the body) back to the sender
        self.asked.append(
            (stanza.id, str(recipient), None if session is None else str(session.jid))
        )
        return self.verdict if stanza.text_of("body") == "unwelcome" else None


@pytest.mark.parametrize(
    ("verdict", "sender_gets"),
    [
        (Drop("test"), []),
        (Bounce("policy-violation", type="modify"), ["policy-violation"]),
        (OfflineEquivalent("test"), ["service-unavailable"]),  # what an offline romeo answers
    ],
    ids=["drop", "bounce", "offline-equivalent"],
)
async def test_hook_filter_incoming(verdict: Verdict, sender_gets: list[str]) -> None:
    plugin = FiltersIncoming(verdict)
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "in")]) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(ROMEO, "i1", "unwelcome"))
        await juliet.send(message(ROMEO, "i2", "welcome"))
        assert (await romeo.expect("message")).get("id") == "i2"
        answers = [error_condition(e) for e in await drain(juliet) if e.get("id") == "i1"]
        assert [e for e in await drain(romeo, 0.1) if e.get("id") == "i1"] == []
    assert answers == sender_gets
    assert ("i1", ROMEO, f"{ROMEO}/r1") in plugin.asked
    if isinstance(verdict, OfflineEquivalent):
        assert ("i1", ROMEO, None) in plugin.asked  # asked again on the offline path


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


# ---------------------------------------------------------------- handlers


async def _whoami(request: IqRequest) -> Element:
    return Element(
        qname(TEST_NS, "whoami"),
        {
            "target": str(request.target),
            "requester": str(request.requester),
            "session": "" if request.session is None else str(request.session.jid),
        },
    )


class DeclaresIqHandlers:
    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return [
            IqHandler("get", TEST_NS, "whoami", _whoami, target="server"),
            IqHandler("get", TEST_NS, "whoami", _whoami, target="account"),
        ]


@pytest.mark.parametrize(
    ("to", "target"), [("localhost", "localhost"), (ROMEO, ROMEO)], ids=["server", "account"]
)
async def test_hook_iq_handlers(to: str, target: str) -> None:
    async with (
        open_test_server(
            default_plugins=False, extra_plugins=[(DeclaresIqHandlers(), "iq")]
        ) as srv,
        srv.client("juliet", resource="balcony") as juliet,
    ):
        await juliet.send(f"<iq type='get' to='{to}' id='w1'><whoami xmlns='{TEST_NS}'/></iq>")
        reply = await juliet.expect(with_id("w1"))
        await juliet.send(f"<iq type='set' to='{to}' id='w2'><whoami xmlns='{TEST_NS}'/></iq>")
        unhandled = await juliet.expect(with_id("w2"))
    payload = reply.find(qname(TEST_NS, "whoami"))
    assert reply.get("type") == "result" and payload is not None
    assert dict(payload.attrib) == {
        "target": target,
        "requester": f"{JULIET}/balcony",
        "session": f"{JULIET}/balcony",
    }
    assert error_condition(unhandled) == "service-unavailable"  # only 'get' was declared


class KeepsOfflineMessages:
    def __init__(self) -> None:
        self.offered: list[tuple[str | None, str]] = []
        self.kept: list[str | None] = []

    @hookimpl
    def casper_offline_message(self, stanza: Any, account: JID) -> Callable[[], Awaitable[None]]:
        self.offered.append((stanza.id, str(account)))

        async def keep() -> None:
            await trio.lowlevel.checkpoint()
            self.kept.append(stanza.text_of("body"))

        return keep


async def test_hook_offline_message() -> None:
    """Offered normal/chat messages for an account without sessions; keeping one means the
    sender gets no error. Other message types are never offered."""
    plugin = KeepsOfflineMessages()
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "keeper")]) as srv,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(ROMEO, "o1", "while you were out"))
        await juliet.send(
            f"<message to='{ROMEO}' type='headline' id='o2'><body>news</body></message>"
        )
        answers = [e for e in await drain(juliet) if e.get("id") in ("o1", "o2")]
    assert plugin.offered == [("o1", ROMEO)]
    assert plugin.kept == ["while you were out"]
    assert answers == []


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


# ---------------------------------------------------------------- discovery


class ContributesFeatures:
    @hookimpl
    def casper_disco_features(self, target: str) -> list[str]:
        return [f"{TEST_NS}:{target}"]


@pytest.mark.parametrize("target", ["server", "account"])
async def test_hook_disco_features(target: str) -> None:
    to = "localhost" if target == "server" else ROMEO
    other = "account" if target == "server" else "server"
    async with (
        open_test_server(
            default_plugins=False,
            plugins=("disco",),
            extra_plugins=[(ContributesFeatures(), "features")],
        ) as srv,
        srv.client("romeo", resource="r1") as romeo,
    ):
        await romeo.send(f"<iq type='get' to='{to}' id='i1'><query xmlns='{DISCO_INFO}'/></iq>")
        reply = await romeo.expect(with_id("i1"))
    features = {f.get("var") for f in reply.iter(qname(DISCO_INFO, "feature"))}
    assert f"{TEST_NS}:{target}" in features
    assert f"{TEST_NS}:{other}" not in features
