"""Two workers in one process, over the real ZeroMQ bus: accounts live on their home
worker whichever worker the client connected to, and stanzas cross between homes."""

from __future__ import annotations

from pathlib import Path

import trio

from casper.cluster.homes import home_of
from casper.jid import JID
from casper.testing import open_test_cluster

DOMAIN = "localhost"


def homed_on(index: int, prefix: str, workers: int = 2) -> str:
    """The first account name ``prefix<n>`` whose home is worker ``index``."""
    for n in range(1000):
        if home_of(JID.make(f"{prefix}{n}", DOMAIN), workers) == index:
            return f"{prefix}{n}"
    raise AssertionError("no such name")


ALICE = homed_on(0, "alice")  # lives on worker 0
BOB = homed_on(1, "bob")  # lives on worker 1


def is_message_from(sender: str):
    return lambda e: e.tag.endswith("}message") and e.get("from", "").startswith(sender + "@")


async def test_a_session_lives_on_its_accounts_home_whichever_worker_accepted_it(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        async with w0.client(BOB, resource="r") as bob:  # accepted by worker 0, home is 1
            jid = bob.jid
            assert w1.server.router.session_for(jid) is not None
            assert w0.server.router.session_for(jid) is None
            await bob.send(f"<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
            answer = await bob.expect(lambda e: e.get("id") == "p1")
            assert answer.get("type") == "result"
        with trio.fail_after(5):
            while w1.server.router.sessions_of(jid.bare):
                await trio.sleep(0.01)  # the home ends the session when the client leaves


async def test_messages_cross_between_homes_both_ways_in_order(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        async with w1.client(ALICE, resource="a", presence=True) as alice, \
                w0.client(BOB, resource="b", presence=True) as bob:
            for n in range(20):
                await alice.send(f"<message to='{bob.jid}' type='chat' id='m{n}'><body>{n}</body></message>")
            for n in range(20):
                got = await bob.expect(is_message_from(ALICE))
                assert got.get("id") == f"m{n}"
            await bob.send(f"<message to='{alice.jid.bare}' type='chat' id='back'><body>hi</body></message>")
            got = await alice.expect(is_message_from(BOB))
            assert got.get("id") == "back"
            assert got.get("from") == str(bob.jid)
