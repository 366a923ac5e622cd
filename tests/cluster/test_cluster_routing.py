"""Two workers in one process, over the real ZeroMQ bus: accounts live on their home
worker whichever worker the client connected to, and stanzas cross between homes."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
from casper.cluster.homes import home_of
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.storage.base import RosterItem
from casper.testing import open_test_cluster
from casper.testing.client import StreamEnded
from casper.testing.harness import settle

from tests.reliability.sm_client import sm_login, sm_tag, try_resume

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
            await bob.send(
                f"<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"
            )
            answer = await bob.expect(lambda e: e.get("id") == "p1")
            assert answer.get("type") == "result"
        with trio.fail_after(5):
            while w1.server.router.sessions_of(jid.bare):
                await trio.sleep(0.01)  # the home ends the session when the client leaves


async def test_messages_cross_between_homes_both_ways_in_order(tmp_path: Path):
    async with (
        open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1),
        w1.client(ALICE, resource="a", presence=True) as alice,
        w0.client(BOB, resource="b", presence=True) as bob,
    ):
        for n in range(20):
            await alice.send(
                f"<message to='{bob.jid}' type='chat' id='m{n}'><body>{n}</body></message>"
            )
        for n in range(20):
            got = await bob.expect(is_message_from(ALICE))
            assert got.get("id") == f"m{n}"
        await bob.send(
            f"<message to='{alice.jid.bare}' type='chat' id='back'><body>hi</body></message>"
        )
        got = await alice.expect(is_message_from(BOB))
        assert got.get("id") == "back"
        assert got.get("from") == str(bob.jid)


def is_presence(sender, type_=None):
    return lambda e: (
        e.tag.endswith("}presence") and e.get("from") == str(sender) and e.get("type") == type_
    )


def has_id(wanted: str, element) -> bool:
    return element.get("id") == wanted


async def wait_for(condition) -> None:
    with trio.fail_after(5):
        while not condition():
            await trio.sleep(0.01)


async def test_subscription_presence_and_unavailable_cross_between_homes(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        async with w1.client(ALICE, resource="a", presence=True) as alice:
            bob_cm = w0.client(BOB, resource="b", presence=True)
            bob = await bob_cm.__aenter__()
            try:
                # subscription handshake: each side's server is a different worker
                await bob.send(f"<presence to='{alice.jid.bare}' type='subscribe'/>")
                await alice.expect(lambda e: e.get("type") == "subscribe")
                await alice.send(f"<presence to='{bob.jid.bare}' type='subscribed'/>")
                await bob.expect(is_presence(alice.jid))  # alice's presence follows approval
                # a change of presence crosses too
                await alice.send("<presence><show>away</show></presence>")
                await bob.expect(  # after the presences that followed the approval
                    lambda e: (
                        is_presence(alice.jid)(e) and e.findtext("{jabber:client}show") == "away"
                    )
                )
            finally:
                await bob_cm.__aexit__(None, None, None)
        # alice's session ended on her home: bob (logging in again) is answered offline
        async with w1.client(BOB, resource="b2") as bob:
            await bob.send("<presence/>")
            offline = await bob.expect(lambda e: e.tag.endswith("}presence")
                                       and e.get("from", "").startswith(ALICE))  # fmt: skip
            assert offline.get("type") == "unavailable"


async def test_a_client_dropping_its_connection_is_seen_offline_by_contacts_elsewhere(
    tmp_path: Path,
):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        for server in (w0, w1):
            await server.server.rosters.put(
                JID.make(ALICE, DOMAIN), RosterItem(f"{BOB}@{DOMAIN}", subscription="both"),
                push=False)  # fmt: skip
            await server.server.rosters.put(
                JID.make(BOB, DOMAIN), RosterItem(f"{ALICE}@{DOMAIN}", subscription="both"),
                push=False)  # fmt: skip
        async with w0.client(BOB, resource="b", presence=True) as bob:
            alice = await w1.connect()
            await alice.open_stream()
            await alice.starttls(w1.client_context)
            await alice.authenticate(ALICE, "secret")
            await alice.bind("a")
            await alice.send("<presence/>")
            await bob.expect(is_presence(alice.jid))
            await alice.stream.aclose()  # no </stream:stream>: the transport just ends
            await bob.expect(is_presence(alice.jid, "unavailable"))
            await wait_for(lambda: not w0.server.router.sessions_of(JID.make(ALICE, DOMAIN)))


async def test_an_offline_message_is_kept_by_the_home_and_delivered_through_any_worker(
    tmp_path: Path,
):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1):
        async with w0.client(BOB, resource="b") as bob:
            await bob.send(
                f"<message to='{ALICE}@{DOMAIN}' type='chat' id='later'><body>x</body></message>"
            )
            await bob.send(
                f"<iq type='get' id='sync' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"
            )
            await bob.expect(lambda e: e.get("id") == "sync")
            count = w0.server.storage.count_offline
            await wait_for(lambda: count(f"{ALICE}@{DOMAIN}") == 1)
        async with w1.client(ALICE, resource="a", presence=True) as alice:
            got = await alice.expect(lambda e: e.get("id") == "later")
            assert got.get("from") == f"{BOB}@{DOMAIN}/b"


async def test_the_same_resource_from_another_worker_replaces_the_first_session(tmp_path: Path):
    async with (
        open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1),
        w0.client(ALICE, resource="same") as first,
        w1.client(ALICE, resource="same") as second,
    ):
        with pytest.raises(StreamEnded) as ended:
            await first.expect(lambda e: False)
        assert ended.value.error == "conflict"
        (only,) = w0.server.router.sessions_of(JID.make(ALICE, DOMAIN))
        assert only.jid == second.jid


async def test_a_resumable_session_is_resumed_through_either_worker(tmp_path: Path):
    async with (
        open_test_cluster(tmp_path, accounts=[ALICE, BOB]) as (w0, w1),
        w0.client(BOB, resource="b", presence=True) as bob,
    ):
        alice = await sm_login(w1, ALICE, resource="a", presence=True)  # piped to worker 0
        await bob.send(f"<message to='{alice.jid}' id='m1' type='chat'><body>1</body></message>")
        await alice.expect(lambda e: e.get("id") == "m1")
        await alice.close_abruptly()
        await wait_for(lambda: w0.server.resumable.detached == 1)
        await bob.send(f"<message to='{alice.jid}' id='m2' type='chat'><body>2</body></message>")
        for via, waiting in ((w0, "m2"), (w1, "m3")):  # at the home, then piped again
            alice.srv = via
            again, answer = await try_resume(alice)
            assert answer.tag == sm_tag("resumed"), answer.tag
            await again.expect(partial(has_id, waiting))
            await again.close_abruptly()
            await wait_for(lambda: w0.server.resumable.detached == 1)
            await bob.send(
                f"<message to='{alice.jid}' id='m3' type='chat'><body>3</body></message>"
            )
            alice = again


class RecordsRemoteEnds:
    def __init__(self) -> None:
        self.ended: list[JID] = []

    @hookimpl
    def casper_remote_session_ended(self, jid: JID) -> None:
        self.ended.append(jid)


async def test_hook_remote_session_ended(tmp_path: Path):
    """A session that ends on its home is announced to the other workers (and only them)."""
    recorders = [RecordsRemoteEnds(), RecordsRemoteEnds()]
    async with open_test_cluster(
        tmp_path, accounts=[ALICE, BOB],
        extra_plugins=lambda index: [(recorders[index], "recorder")],
    ) as (w0, w1):  # fmt: skip
        async with w1.client(ALICE, resource="gone") as alice:  # lives on worker 0
            jid = alice.jid
        await wait_for(lambda: recorders[1].ended == [jid])
        await settle([w0, w1])
        assert recorders[0].ended == []
