"""version: XEP-0092 software version of the server."""

from __future__ import annotations

import platform
from importlib.metadata import version as dist_version

import pytest
from casper.config import ConfigError
from casper.testing import open_test_server
from casper_plugins.version import Config

from tests.helpers import error_condition, query

NS = "jabber:iq:version"
QUERY = f"<query xmlns='{NS}'/>"


def fields(reply):
    assert reply.get("type") == "result", reply.attrib
    payload = reply.find(f"{{{NS}}}query")
    assert payload is not None
    return {child.tag.split("}")[1]: child.text for child in payload}


async def test_server_version_is_casper_and_installed_version_without_os():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost", QUERY)
    assert fields(reply) == {"name": "Casper", "version": dist_version("casper-xmpp")}


async def test_server_version_shows_os_when_configured():
    settings = {"version": {"show_os": True}}
    async with open_test_server(plugin_settings=settings) as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost", QUERY)
    assert fields(reply)["os"] == f"{platform.system()} {platform.release()}".strip()


async def test_version_of_an_account_is_not_answered_by_the_server():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "juliet@localhost", QUERY)
    assert error_condition(reply) == "service-unavailable"


async def test_server_refuses_to_start_with_bad_version_config():
    with pytest.RaisesGroup(ConfigError, flatten_subgroups=True):
        async with open_test_server(plugin_settings={"version": {"show_os": "yes"}}):
            pass  # pragma: no cover


@pytest.mark.parametrize(
    "settings",
    [{"show_os": "yes"}, {"show_os": 1}, {"show_os": None}, {"shw_os": True}],
)
def test_config_rejects_bad_values_and_unknown_keys(settings):
    with pytest.raises(ConfigError, match=r"plugin\.version"):
        Config.from_mapping(settings)


def test_config_defaults_to_hiding_the_os():
    assert Config.from_mapping({}) == Config(show_os=False)
    assert Config.from_mapping({"show_os": True}).show_os is True
