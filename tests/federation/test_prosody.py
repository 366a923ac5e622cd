"""Casper <-> Prosody: messages, subscriptions, presence, probes, invisibility, MUC."""

from __future__ import annotations

import pytest
import trustme

from tests.core.conftest import message_with_id, send_message
from tests.federation.conftest import RemoteServer, open_casper, remote_client, unique

C = "{jabber:client}"
TIMEOUT = 15


async def test_message_both_ways(prosody: RemoteServer, ca: trustme.CA, casper_s2s_port: int) -> None:
    alice = unique("alice")
    prosody.add_user(alice)
    async with open_casper(ca, casper_s2s_port, [prosody], accounts=("romeo",)) as casper, \
            casper.client("romeo", presence=True) as romeo, \
            remote_client(prosody, alice) as remote:  # fmt: skip
        msg = await send_message(romeo, f"{alice}@prosody.test/r")
        got = await remote.expect(message_with_id(msg), timeout=TIMEOUT)
        assert got.get("from") == str(romeo.jid)
        reply = await send_message(remote, romeo.jid)
        got = await romeo.expect(message_with_id(reply), timeout=TIMEOUT)
        assert got.get("from") == f"{alice}@prosody.test/r"
