"""Behavioural tests of the initialization and server-lifecycle hooks.

``casper_addhooks`` publishes hookspecs other plugins implement, in either order;
``casper_configure`` is called once, before the server's nursery exists, and its
``ConfigError`` stops the server at startup; ``casper_serve`` runs background tasks in the
server's nursery, cancelled when the server stops.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from casper.config import ConfigError
from casper.hookspecs import hookimpl, hookspec
from casper.jid import JID
from casper.testing import open_test_server

from tests.helpers import serve_without_listeners

ROMEO = "romeo@localhost"

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
