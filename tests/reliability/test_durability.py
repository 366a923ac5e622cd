"""Durability: what the server has acknowledged survives ``kill -9`` (SQLite in WAL mode).

``casper serve`` runs as a subprocess. Real clients over loopback TCP create state: a mutual
subscription, a roster item with a name and a group, a pending subscription request to an
offline user, a privacy list made the default, a blocklist, and chat messages to an offline
user. Each client's last step is a round trip: the server handles a client's stanzas in
order, so by then everything it sent before has been processed and stored. Then the server
gets SIGKILL with every client still connected, restarts on the same data directory, and
every piece is checked. A second kill after the offline messages were delivered checks that
they are not delivered again.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import trio
from casper.testing import TestClient

from tests.helpers import sync
from tests.reliability.conftest import casper_process, connect, create_accounts, write_config

C = "{jabber:client}"
ROSTER = "jabber:iq:roster"
PRIVACY = "jabber:iq:privacy"
BLOCKING = "urn:xmpp:blocking"
DELAY = "urn:xmpp:delay"
ACCOUNTS = ("romeo", "juliet", "nurse", "tybalt", "mercutio")
OFFLINE_BODIES = [f"message {i} while you were away" for i in range(5)]
DEADLINE = 90.0


async def iq(client: TestClient, type_: str, payload: str, iq_id: str) -> Element:
    await client.send(f"<iq type='{type_}' id='{iq_id}'>{payload}</iq>")
    reply = await client.expect(lambda e: e.tag == f"{C}iq" and e.get("id") == iq_id)
    assert reply.get("type") == "result", (iq_id, [c.tag for c in reply.iter()])
    return reply


async def subscribe(asker: TestClient, approver: TestClient) -> None:
    """The RFC 6121 handshake: ``asker`` subscribes to ``approver``, who approves."""
    assert asker.jid is not None and approver.jid is not None
    await asker.send(f"<presence to='{approver.jid.bare}' type='subscribe'/>")
    await approver.expect(lambda e: e.tag == f"{C}presence" and e.get("type") == "subscribe")
    await approver.send(f"<presence to='{asker.jid.bare}' type='subscribed'/>")
    await sync(approver)
    await sync(asker)


def roster_items(reply: Element) -> dict[str, Element]:
    return {item.get("jid", ""): item for item in reply.iter(f"{{{ROSTER}}}item")}


async def create_state(proc) -> None:
    romeo = await connect(proc, "romeo", "r1", presence=True)
    juliet = await connect(proc, "juliet", "balcony", presence=True)
    await subscribe(romeo, juliet)
    await subscribe(juliet, romeo)
    await iq(
        romeo,
        "set",
        f"<query xmlns='{ROSTER}'><item jid='juliet@localhost' name='Jules'>"
        "<group>Capulets</group></item></query>",
        "r-name",
    )
    await romeo.send("<presence to='nurse@localhost' type='subscribe'/>")  # nurse is offline
    privacy = (
        f"<query xmlns='{PRIVACY}'><list name='hide-from-tybalt'>"
        "<item type='jid' value='tybalt@localhost' action='deny' order='1'><presence-out/></item>"
        "<item action='allow' order='2'/></list></query>"
    )
    await iq(romeo, "set", privacy, "p-list")
    await iq(
        romeo,
        "set",
        f"<query xmlns='{PRIVACY}'><default name='hide-from-tybalt'/></query>",
        "p-default",
    )
    await iq(
        juliet,
        "set",
        f"<block xmlns='{BLOCKING}'><item jid='mercutio@localhost'/></block>",
        "b-block",
    )
    for i, body in enumerate(OFFLINE_BODIES):
        sender = juliet if i % 2 else romeo
        await sender.send(
            f"<message to='nurse@localhost' id='off{i}' type='chat'><body>{body}</body></message>"
        )
    await sync(romeo)  # every stanza sent before has been handled (and stored)
    await sync(juliet)
    # the clients stay connected: the server is killed under them


async def check_state(proc) -> None:
    romeo = await connect(proc, "romeo", "r1")
    roster = roster_items(await iq(romeo, "get", f"<query xmlns='{ROSTER}'/>", "r-get"))
    juliet_item = roster["juliet@localhost"]
    assert juliet_item.get("subscription") == "both"
    assert juliet_item.get("name") == "Jules"
    assert [g.text for g in juliet_item.iter(f"{{{ROSTER}}}group")] == ["Capulets"]
    nurse_item = roster["nurse@localhost"]
    assert (nurse_item.get("subscription"), nurse_item.get("ask")) == ("none", "subscribe")
    names = await iq(romeo, "get", f"<query xmlns='{PRIVACY}'/>", "p-names")
    default = names.find(f"{{{PRIVACY}}}query/{{{PRIVACY}}}default")
    assert default is not None and default.get("name") == "hide-from-tybalt"
    listed = await iq(
        romeo, "get", f"<query xmlns='{PRIVACY}'><list name='hide-from-tybalt'/></query>", "p-get"
    )
    items = [
        (
            i.get("type"),
            i.get("value"),
            i.get("action"),
            i.get("order"),
            [c.tag.rpartition("}")[2] for c in i],
        )
        for i in listed.iter(f"{{{PRIVACY}}}item")
    ]
    assert items == [
        ("jid", "tybalt@localhost", "deny", "1", ["presence-out"]),
        (None, None, "allow", "2", []),
    ]
    juliet = await connect(proc, "juliet", "balcony")
    roster = roster_items(await iq(juliet, "get", f"<query xmlns='{ROSTER}'/>", "j-get"))
    assert roster["romeo@localhost"].get("subscription") == "both"
    blocked = await iq(juliet, "get", f"<blocklist xmlns='{BLOCKING}'/>", "b-get")
    assert [i.get("jid") for i in blocked.iter(f"{{{BLOCKING}}}item")] == ["mercutio@localhost"]
    # the nurse comes online: every offline message, once, in order, with its delay stamp,
    # and romeo's subscription request
    nurse = await connect(proc, "nurse", "kitchen")
    await nurse.send("<presence/>")
    request = await nurse.expect(lambda e: e.tag == f"{C}presence" and e.get("type") == "subscribe")
    assert request.get("from") == "romeo@localhost"
    messages = [await nurse.expect(f"{C}message") for _ in OFFLINE_BODIES]
    bodies = [m.findtext(f"{C}body") for m in messages]
    # two senders on two connections: the order holds per sender, not across them
    assert sorted(bodies) == sorted(OFFLINE_BODIES)
    for sender in ("romeo@localhost", "juliet@localhost"):
        mine = [m.findtext(f"{C}body") for m in messages if m.get("from", "").startswith(sender)]
        assert mine == sorted(mine)
    assert all(m.find(f"{{{DELAY}}}delay") is not None for m in messages)
    extra = [e for e in await sync(nurse) if e.tag == f"{C}message"]
    assert not extra, "an offline message was delivered twice"


async def test_state_survives_kill_9_and_restart(tmp_path: Path) -> None:
    files = write_config(tmp_path, plugins=("privacy-lists", "blocking"))
    await trio.to_thread.run_sync(create_accounts, files, ACCOUNTS)
    with trio.fail_after(DEADLINE):
        async with casper_process(files, "first") as first:
            await create_state(first)
            first.kill()
            assert await first.process.wait() == -9
        async with casper_process(files, "second") as second:
            await check_state(second)
            second.kill()
            await second.process.wait()
        async with casper_process(files, "third") as third:
            nurse = await connect(third, "nurse", "kitchen")
            await nurse.send("<presence/>")
            received = await sync(nurse)
            assert [e for e in received if e.tag == f"{C}message"] == []  # not again
            third.kill()
            await third.process.wait()
    for name in ("first", "second", "third"):
        log = (tmp_path / f"{name}.log").read_text()
        assert "Traceback" not in log, log
