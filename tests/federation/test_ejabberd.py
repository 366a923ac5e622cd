"""Casper <-> ejabberd: messages, subscriptions, presence, probes, invisibility."""

from __future__ import annotations

import trustme

from tests.core.conftest import message_with_id, send_message
from tests.federation.conftest import RemoteServer, open_casper, remote_client, unique

TIMEOUT = 15


async def test_message_both_ways(ejabberd: RemoteServer, ca: trustme.CA, casper_s2s_port: int) -> None:
    bob = unique("bob")
    ejabberd.add_user(bob)
    async with open_casper(ca, casper_s2s_port, [ejabberd], accounts=("romeo",)) as casper, \
            casper.client("romeo", presence=True) as romeo, \
            remote_client(ejabberd, bob) as remote:  # fmt: skip
        msg = await send_message(romeo, f"{bob}@ejabberd.test/r")
        got = await remote.expect(message_with_id(msg), timeout=TIMEOUT)
        assert got.get("from") == str(romeo.jid)
        reply = await send_message(remote, romeo.jid)
        got = await romeo.expect(message_with_id(reply), timeout=TIMEOUT)
        assert got.get("from") == f"{bob}@ejabberd.test/r"
