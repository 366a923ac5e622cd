"""directed-presence: roster pushes to invisible sessions, and the ``roster_pushes`` setting.

``requested`` (the default): an invisible session that requested the roster gets pushes;
``available``: only while it is available, with no replay; never a session that did not
request the roster. Bad values of the setting stop the server at startup.
"""

from __future__ import annotations

import pytest
from casper.config import ConfigError

from tests.helpers import sync
from tests.plugins.directed_presence.conftest import (
    JULIET,
    NURSE,
    TYBALT,
    open_server,
    pushed_jids,
    rename,
    request_roster,
)


@pytest.mark.parametrize("settings", [None, {}, {"roster_pushes": "requested"}],
                         ids=["no-table", "empty-table", "requested"])  # fmt: skip
async def test_invisible_session_that_requested_the_roster_gets_pushes_by_default(
    settings: dict[str, object] | None,
) -> None:
    async with (
        open_server(settings=settings) as srv,
        srv.client("romeo", resource="orchard") as invisible,
        srv.client("romeo", resource="study", presence=True) as available,
    ):
        for romeo in (invisible, available):
            await request_roster(romeo)
        await sync(invisible)
        await rename(available, NURSE, "Angelica")
        assert pushed_jids(await sync(invisible)) == [NURSE]
        assert pushed_jids(await sync(available)) == [NURSE]


async def test_roster_pushes_available_waits_until_the_session_is_available() -> None:
    async with (
        open_server(settings={"roster_pushes": "available"}) as srv,
        srv.client("romeo", resource="orchard") as invisible,
        srv.client("romeo", resource="study", presence=True) as available,
    ):
        for romeo in (invisible, available):
            await request_roster(romeo)
        await sync(invisible)
        await rename(available, NURSE, "Angelica")
        assert pushed_jids(await sync(invisible)) == []
        assert pushed_jids(await sync(available)) == [NURSE]  # control
        await invisible.send("<presence/>")
        await sync(invisible)
        await rename(available, TYBALT, "Prince of Cats")
        assert pushed_jids(await sync(invisible)) == [TYBALT]  # no replay of the first
        await invisible.send("<presence type='unavailable'/>")
        await sync(invisible)
        await rename(available, JULIET, "Juliet")
        assert pushed_jids(await sync(invisible)) == []
        assert pushed_jids(await sync(available)) == [TYBALT, JULIET]


@pytest.mark.parametrize("mode", ["requested", "available"])
async def test_session_that_never_requested_the_roster_gets_no_pushes(mode: str) -> None:
    async with (
        open_server(settings={"roster_pushes": mode}) as srv,
        srv.client("romeo", resource="orchard") as invisible,
        srv.client("romeo", resource="hall", presence=True) as visible,
        srv.client("romeo", resource="study", presence=True) as editor,
    ):
        await request_roster(editor)
        for romeo in (invisible, visible):
            await sync(romeo)
        await rename(editor, NURSE, "Angelica")
        assert pushed_jids(await sync(editor)) == [NURSE]  # control
        for romeo in (invisible, visible):
            assert pushed_jids(await sync(romeo)) == []


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "settings",
    [
        {"roster_push": "available"},  # misspelt key
        {"roster_pushes": "requested", "invisible": True},  # unknown key beside a good one
        {"roster_pushes": "always"},
        {"roster_pushes": "Available"},
        {"roster_pushes": ""},
        {"roster_pushes": True},
        {"roster_pushes": 1},
        {"roster_pushes": ["available"]},
    ],
)
async def test_bad_settings_are_a_config_error_at_startup(settings: dict[str, object]) -> None:
    with pytest.RaisesGroup(
        pytest.RaisesExc(ConfigError, match=r"plugin\.directed-presence"), flatten_subgroups=True
    ):
        async with open_server(settings=settings):
            pass  # pragma: no cover


@pytest.mark.parametrize("mode", ["requested", "available"])
async def test_good_settings_start_the_server_with_that_mode(mode: str) -> None:
    async with open_server(settings={"roster_pushes": mode}) as srv:
        state = srv.server.pm.get_plugin("directed-presence.state")
        assert state.config.roster_pushes == mode
