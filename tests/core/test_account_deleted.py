"""An account deleted (``casper user delete``) while one of its sessions is online."""

from __future__ import annotations

import logging

import pytest
from casper.testing import TestServer
from casper.testing.client import StreamEnded

from tests.core.conftest import ROSTER, error_condition, iq_reply


async def test_a_write_for_a_deleted_account_ends_its_session_with_not_authorized(
    srv: TestServer,
) -> None:
    async with srv.client("romeo") as romeo:
        await srv.server.db(srv.server.storage.delete_account, str(srv.jid("romeo")))
        await romeo.send(
            f"<iq type='set' id='r1'><query xmlns='{ROSTER}'><item jid='juliet@localhost'/>"
            "</query></iq>"
        )
        reply = await romeo.expect(iq_reply("r1"))
        assert error_condition(reply) == "item-not-found"
        with pytest.raises(StreamEnded) as ended:
            while True:
                await romeo.recv()
        assert ended.value.error == "not-authorized"


async def test_logoff_after_the_account_was_deleted_is_not_an_error(
    srv: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with srv.client("romeo", presence=True) as romeo:
        await srv.server.db(srv.server.storage.delete_account, str(srv.jid("romeo")))
        with caplog.at_level(logging.INFO, logger="casper"):
            await romeo.send("<presence type='unavailable'/>")
            async with srv.client("juliet") as juliet:  # a round trip: the logoff was handled
                await juliet.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
                await juliet.expect(iq_reply("p"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "logged off after its account was deleted" in caplog.text
