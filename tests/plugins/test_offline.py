"""offline: XEP-0160 offline messages, delivered on initial presence with XEP-0203 delay."""

from __future__ import annotations

import datetime

import pytest
from casper.config import ConfigError
from casper.hookspecs import hookimpl
from casper.testing import open_test_server
from casper.verdicts import Drop
from casper_plugins.offline import Config

from tests.helpers import error_condition, is_message_from, sync

DELAY = "{urn:xmpp:delay}delay"
BODY = "{jabber:client}body"


def from_romeo(element):
    return is_message_from(element, "romeo@localhost")


async def stored_count(srv, user):
    return await srv.server.db(srv.server.storage.count_offline, f"{user}@localhost")


async def test_message_to_offline_account_is_delivered_with_delay_on_initial_presence():
    async with open_test_server() as srv:
        async with srv.client("romeo") as romeo:
            before = datetime.datetime.now(datetime.UTC)
            await romeo.send(
                "<message to='juliet@localhost' type='chat' id='m1'><body>Wherefore?</body></message>"
            )
            assert await sync(romeo) == []  # no error came back
        assert await stored_count(srv, "juliet") == 1
        async with srv.client("juliet") as juliet:
            await juliet.expect_nothing(from_romeo)  # bound, no presence yet
            await juliet.send("<presence/>")
            message = await juliet.expect(from_romeo)
        assert await stored_count(srv, "juliet") == 0
    assert message.get("id") == "m1" and message.findtext(BODY) == "Wherefore?"
    delay = message.find(DELAY)
    assert delay is not None and delay.get("from") == "localhost"
    stamp = datetime.datetime.strptime(delay.get("stamp", ""), "%Y-%m-%dT%H:%M:%S.%fZ")
    assert stamp.replace(tzinfo=datetime.UTC) >= before.replace(microsecond=0)


async def test_message_to_connected_but_unavailable_account_waits_for_presence():
    async with open_test_server() as srv, srv.client("juliet") as juliet:
        async with srv.client("romeo") as romeo:
            await romeo.send("<message to='juliet@localhost'><body>hi</body></message>")
            await sync(romeo)
        await juliet.expect_nothing(from_romeo)
        await juliet.send("<presence/>")
        message = await juliet.expect(from_romeo)
        assert message.find(DELAY) is not None


async def test_offline_messages_arrive_in_order_and_only_once():
    async with open_test_server() as srv:
        async with srv.client("romeo") as romeo:
            for n in range(3):
                await romeo.send(
                    f"<message to='juliet@localhost' id='m{n}'><body>{n}</body></message>"
                )
            await sync(romeo)
        async with srv.client("juliet", presence=True) as juliet:
            ids = [(await juliet.expect(from_romeo)).get("id") for _ in range(3)]
        assert ids == ["m0", "m1", "m2"]
        async with srv.client("juliet", presence=True) as juliet:
            await juliet.expect_nothing(from_romeo)


async def test_long_queue_is_delivered_through_a_small_outbox():
    async with open_test_server(outbox_size=16) as srv:
        async with srv.client("romeo") as romeo:
            for n in range(60):
                await romeo.send(
                    f"<message to='juliet@localhost' id='m{n}'><body>{n}</body></message>"
                )
            assert await sync(romeo) == []
        async with srv.client("juliet", presence=True) as juliet:
            ids = [(await juliet.expect(from_romeo)).get("id") for _ in range(60)]
            assert await sync(juliet) == []  # the session survived
        assert ids == [f"m{n}" for n in range(60)]
        assert await stored_count(srv, "juliet") == 0


async def test_message_without_body_is_neither_stored_nor_bounced():
    async with open_test_server() as srv:
        async with srv.client("romeo") as romeo:
            await romeo.send(
                "<message to='juliet@localhost' type='chat'>"
                "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
            )
            assert await sync(romeo) == []
        assert await stored_count(srv, "juliet") == 0


async def test_message_over_the_per_account_limit_is_bounced():
    settings = {"offline": {"max_per_account": 1}}
    async with open_test_server(plugin_settings=settings) as srv, srv.client("romeo") as romeo:
        await romeo.send("<message to='juliet@localhost' id='kept'><body>1</body></message>")
        await romeo.send("<message to='juliet@localhost' id='over'><body>2</body></message>")
        bounced = await romeo.expect(lambda e: e.get("id") == "over")
        assert error_condition(bounced) == "service-unavailable"
        assert await sync(romeo) == []  # the first one was kept silently
        assert await stored_count(srv, "juliet") == 1


async def test_limit_zero_bounces_every_offline_message():
    settings = {"offline": {"max_per_account": 0}}
    async with open_test_server(plugin_settings=settings) as srv, srv.client("romeo") as romeo:
        await romeo.send("<message to='juliet@localhost' id='m'><body>1</body></message>")
        bounced = await romeo.expect(lambda e: e.get("id") == "m")
        assert error_condition(bounced) == "service-unavailable"


async def test_offline_message_is_not_delivered_to_negative_priority_session():
    async with open_test_server() as srv:
        async with srv.client("romeo") as romeo:
            await romeo.send("<message to='juliet@localhost'><body>hi</body></message>")
            await sync(romeo)
        async with srv.client("juliet") as juliet:
            await juliet.send("<presence><priority>-1</priority></presence>")
            await juliet.expect_nothing(from_romeo)
        async with srv.client("juliet", presence=True) as juliet:
            await juliet.expect(from_romeo)


class DropFromRomeo:
    """A one-test filter: juliet's sessions refuse everything from romeo."""

    def __init__(self) -> None:
        self.on = False

    @hookimpl
    def casper_filter_incoming(self, stanza, recipient, session):
        if self.on and session is not None and str(stanza.from_ or "").startswith("romeo@"):
            return Drop("test")
        return None


async def test_stored_message_goes_through_incoming_filters_on_delivery():
    dropper = DropFromRomeo()
    async with open_test_server(extra_plugins=[(dropper, "t")]) as srv:
        async with srv.client("romeo") as romeo:
            await romeo.send("<message to='juliet@localhost'><body>hi</body></message>")
            await sync(romeo)
        dropper.on = True  # e.g. juliet blocked romeo in the meantime
        async with srv.client("juliet", presence=True) as juliet:
            await juliet.expect_nothing(from_romeo)
        assert await stored_count(srv, "juliet") == 0


async def test_server_refuses_to_start_with_out_of_range_limit():
    with pytest.RaisesGroup(ConfigError, flatten_subgroups=True):
        async with open_test_server(plugin_settings={"offline": {"max_per_account": 10001}}):
            pass  # pragma: no cover


@pytest.mark.parametrize(
    "settings",
    [
        {"max_per_account": -1},
        {"max_per_account": 10001},
        {"max_per_account": "5"},
        {"max_per_account": True},
        {"max_per_account": 1.5},
        {"max": 5},
    ],
)
def test_config_rejects_bad_values_and_unknown_keys(settings):
    with pytest.raises(ConfigError, match=r"plugin\.offline"):
        Config.from_mapping(settings)


@pytest.mark.parametrize("limit", [0, 1, 10000])
def test_config_accepts_limits_in_range(limit):
    assert Config.from_mapping({"max_per_account": limit}).max_per_account == limit


def test_config_default_limit_is_100():
    assert Config.from_mapping({}).max_per_account == 100
