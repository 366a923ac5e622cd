"""A stanza routes identically whichever transport each party uses.

Three actors, each on another transport (TCP with STARTTLS, WebSocket, BOSH), all mutual
contacts: they log in, see each other's presence, send each other messages, and one logs
out while the others see it go. Every transport takes every role once, and what each actor
receives is compared in one transport-neutral form.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from xml.etree.ElementTree import Element

import pytest
from casper.storage.base import RosterItem
from casper.testing import TestClient

from tests.helpers import sync
from tests.transports.clients import bosh_client, websocket_client
from tests.transports.conftest import HOST, Web

ACTORS = ("romeo", "juliet", "benvolio")
ROTATIONS = [
    ("tcp", "websocket", "bosh"),
    ("websocket", "bosh", "tcp"),
    ("bosh", "tcp", "websocket"),
]


@asynccontextmanager
async def connect(web: Web, transport: str, user: str) -> AsyncIterator[TestClient]:
    if transport == "tcp":
        async with web.srv.client(user, resource=transport) as client:
            yield client
    elif transport == "websocket":
        async with websocket_client(web.ws_url, web.domain, user, resource=transport) as client:
            yield client
    else:
        async with bosh_client(HOST, web.port, web.domain, user, resource=transport) as client:
            yield client


def neutral(element: Element) -> tuple[str, ...]:
    """What a client sees, without the parts that name the transport (resources, ids)."""
    strip = lambda jid: (jid or "").split("/")[0]
    return (element.tag, strip(element.get("from")), strip(element.get("to")),
            element.get("type") or "", element.findtext("{jabber:client}body") or "")  # fmt: skip


@pytest.mark.parametrize("transports", ROTATIONS, ids=["-".join(r) for r in ROTATIONS])
async def test_presence_and_messages_route_the_same_over_every_transport(
    web: Web, transports: tuple[str, ...]
) -> None:
    rosters = web.srv.server.rosters
    for user in ACTORS:
        for contact in ACTORS:
            if user != contact:
                item = RosterItem(jid=str(web.srv.jid(contact)), subscription="both")
                await rosters.put(web.srv.jid(user), item, push=False)
    seen: dict[str, list[tuple[str, ...]]] = {}
    async with AsyncExitStack() as stack:
        clients = {user: await stack.enter_async_context(connect(web, transport, user))
                   for user, transport in zip(ACTORS, transports, strict=True)}  # fmt: skip
        for user, client in clients.items():
            await client.send("<presence/>")
            await client.expect(
                lambda e, c=client: e.tag.endswith("presence") and e.get("from") == str(c.jid)
            )
        for user, client in clients.items():
            for other, peer in clients.items():
                if other != user:
                    found = await client.expect(
                        lambda e, p=peer: (
                            e.tag.endswith("presence")
                            and e.get("from") == str(p.jid)
                            and e.get("type") is None
                        )
                    )
                    assert found.get("to") in (str(client.jid), str(client.jid.bare))
        for user, client in clients.items():
            for other in ACTORS:
                if other != user:
                    await client.send(
                        f"<message to='{other}@localhost' type='chat'><body>{user} to {other}</body></message>"
                    )
        for user, client in clients.items():
            messages = [await client.expect("message") for _ in range(2)]
            assert all(m.get("to") == f"{user}@localhost" for m in messages)
            assert {m.get("from") for m in messages} == {
                str(clients[o].jid) for o in ACTORS if o != user
            }
            seen[user] = sorted(neutral(m) for m in messages)
            await sync(client)
        leaver = clients["benvolio"]
        await leaver.send("<presence type='unavailable'/>")
        for user in ("romeo", "juliet"):
            gone = await clients[user].expect(
                lambda e: e.tag.endswith("presence") and e.get("type") == "unavailable"
            )
            assert gone.get("from") == str(leaver.jid)
    assert seen == {
        user: sorted(("{jabber:client}message", o + "@localhost", user + "@localhost", "chat", f"{o} to {user}")
                     for o in ACTORS if o != user)
        for user in ACTORS
    }  # fmt: skip
