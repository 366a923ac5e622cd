"""Hook API versioning: a plugin written against an older hook set keeps working.

pluggy calls an implementation with only the arguments it names, so a hook that gains an
argument (always appended; ``HOOK_API_VERSION`` goes up) leaves older implementations
working unchanged. The other direction fails loudly at startup: a plugin that asks for an
argument this server's hooks do not have is refused before anything listens.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pluggy
import pytest
from casper import hookspecs
from casper.config import ConfigError
from casper.hookspecs import HOOK_API_VERSION, hookimpl, hookspec
from casper.jid import JID
from casper.stanza import Stanza, make_stanza
from casper.verdicts import Drop

from tests.helpers import serve_without_listeners

ROMEO = JID.parse("romeo@localhost")


class OldFilter:
    """Written when ``casper_filter_incoming`` had one argument: it names only ``stanza``."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    @hookimpl
    def casper_filter_incoming(self, stanza: Stanza) -> Drop | None:
        self.seen.append(stanza.id)
        return Drop("no secrets") if stanza.text_of("body") == "secret" else None


class SpecsV1:
    """The hook as an older Casper declared it."""

    @hookspec(firstresult=True)
    def casper_filter_incoming(self, stanza: Stanza) -> Any:
        """Since: 1."""


class SpecsV2:
    """The same hook after it gained ``recipient`` and then ``session`` (appended)."""

    @hookspec(firstresult=True)
    def casper_filter_incoming(self, stanza: Stanza, recipient: JID, session: Any) -> Any:
        """Since: 1. ``recipient`` since 2, ``session`` since 3."""


def _message(body: str, stanza_id: str) -> Stanza:
    from xml.etree.ElementTree import Element

    element = Element("{jabber:client}body")
    element.text = body
    return make_stanza("message", to=ROMEO, id=stanza_id, children=[element])


@pytest.mark.parametrize("specs", [SpecsV1, SpecsV2], ids=["old-host", "new-host"])
def test_an_implementation_naming_fewer_arguments_works_before_and_after_the_hook_grew(
    specs: type,
) -> None:
    pm = pluggy.PluginManager("casper")
    pm.add_hookspecs(specs)
    plugin = OldFilter()
    pm.register(plugin, "old")
    pm.check_pending()
    names = list(inspect.signature(specs.casper_filter_incoming).parameters)[1:]
    extra = {"recipient": ROMEO, "session": None}
    call = {name: extra[name] for name in names if name != "stanza"}
    hook = pm.hook.casper_filter_incoming
    assert hook(stanza=_message("secret", "s1"), **call) == Drop("no secrets")
    assert hook(stanza=_message("hello", "s2"), **call) is None
    assert plugin.seen == ["s1", "s2"]


async def test_an_old_filter_implementation_runs_in_todays_server(casper_client: Any) -> None:
    """End to end against the real hookspecs: today's ``casper_filter_incoming`` has
    ``(stanza, recipient, session)``; the old one-argument implementation still decides."""
    plugin = OldFilter()
    server = casper_client.server.server
    server.pm.register(plugin, "old-filter")
    try:
        romeo = await casper_client("romeo", resource="orchard", presence=True)
        juliet = await casper_client("juliet", resource="balcony")
        for stanza_id, body in (("m1", "secret"), ("m2", "hello")):
            await juliet.send(
                f"<message to='romeo@localhost/orchard' id='{stanza_id}'><body>{body}</body></message>"
            )
        assert (await romeo.expect("message")).get("id") == "m2"
        await romeo.expect_nothing("message")
        assert {"m1", "m2"} <= set(plugin.seen)
    finally:
        server.pm.unregister(name="old-filter")


def test_the_real_hook_has_more_arguments_than_the_old_implementation_names() -> None:
    """Guards the test above against passing vacuously."""
    spec = inspect.signature(hookspecs.casper_filter_incoming).parameters
    impl = inspect.signature(OldFilter.casper_filter_incoming).parameters
    assert set(impl) - {"self"} < set(spec)


class FromTheFuture:
    """Written against a newer hook set: asks for an argument this server does not pass."""

    @hookimpl
    def casper_filter_incoming(self, stanza: Stanza, hyperspace: object) -> None:
        return None


async def test_a_plugin_needing_a_newer_hook_set_is_refused_at_startup() -> None:
    with pytest.raises((ConfigError, pluggy.PluginValidationError), match="hyperspace"):
        await serve_without_listeners([(FromTheFuture(), "future")])


async def test_a_plugin_needing_a_newer_hook_set_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="future"):
        await serve_without_listeners([(FromTheFuture(), "future")])


def test_hook_api_version_is_at_least_every_since() -> None:
    """``HOOK_API_VERSION`` names the newest hook set; no hook claims a later one."""
    assert isinstance(HOOK_API_VERSION, int) and HOOK_API_VERSION >= 1
    for name, spec in vars(hookspecs).items():
        if not name.startswith("casper_") or not hasattr(spec, "casper_spec"):
            continue
        since = re.findall(r"Since:?\s*(\d+)", inspect.getdoc(spec) or "")
        assert since, f"{name} has no 'Since: N'"
        assert all(int(v) <= HOOK_API_VERSION for v in since), name
