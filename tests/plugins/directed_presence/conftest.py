"""Shared actors and steps for the directed-presence tests: Openfire 3.5 "Casper"
invisibility, scripted over real TCP and TLS.

Actors: ``romeo`` is the invisible one (he logs in without broadcast presence, or goes
unavailable later); ``juliet`` is a contact he shows himself to; ``nurse`` is another
contact he does not show himself to; ``tybalt`` is a stranger (no roster relation). The
user stories are the Openfire 3.5 blog post and its comments, and the "Openfire and
RFC3921 compliancy" forum thread (U1/U2 sequence, MUC edge case), with RFC 6121 outcomes.

Every test runs the real server on a loopback TCP socket (``tcp=True``). Absence is
checked without sleeping: ``quiet`` is a round trip to the server after the cause has
been processed (the sender got an answer, or the ending stream was closed by the
server, which happens only after the session's presence cleanup).

Import the helpers with ``from tests.plugins.directed_presence.conftest import ...``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from xml.etree.ElementTree import Element, tostring

from casper.jid import JID
from casper.server import Server
from casper.stanza import Stanza, make_stanza
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import new_id, query, sync

__all__ = [
    "ACTORS",
    "AN_HOUR_AGO",
    "CLIENT",
    "DELAY",
    "DISCO_ITEMS",
    "JULIET",
    "JULIET_IN_ROOM",
    "LAST_NS",
    "LOGOFF_STATUS",
    "NURSE",
    "ROMEO",
    "ROMEO_IN_ROOM",
    "TYBALT",
    "FakeRoom",
    "about",
    "message_id",
    "messages",
    "open_server",
    "presence",
    "present",
    "pushed_jids",
    "quiet",
    "rename",
    "request_roster",
    "room_service",
    "say",
    "say_without_error",
    "seed_last_logoff",
    "serialized",
    "stored",
]

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
NURSE = "nurse@localhost"
TYBALT = "tybalt@localhost"
ACTORS = ("romeo", "juliet", "nurse", "tybalt")

CLIENT = "jabber:client"
MESSAGE = f"{{{CLIENT}}}message"
PRESENCE = f"{{{CLIENT}}}presence"
DELAY = "{urn:xmpp:delay}delay"
ROSTER_NS = "jabber:iq:roster"
LAST_NS = "jabber:iq:last"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"

MUC_DOMAIN = "conference.localhost"
ROOM = f"capulets@{MUC_DOMAIN}"
ROMEO_IN_ROOM = f"{ROOM}/Romeo"
JULIET_IN_ROOM = f"{ROOM}/Juliet"

AN_HOUR_AGO = 3600.0
LOGOFF_STATUS = "Banished to Mantua"

Match = Callable[[Element], bool]


# ---------------------------------------------------------------- server and setup


def open_server(
    *,
    accounts: tuple[str, ...] = ACTORS,
    default_plugins: bool = True,
    settings: dict[str, object] | None = None,
) -> AbstractAsyncContextManager[TestServer]:
    """A server with the directed-presence strategy on a real loopback TCP socket."""
    return open_test_server(
        plugins=["directed-presence"],
        accounts=accounts,
        tcp=True,
        default_plugins=default_plugins,
        plugin_settings={"directed-presence": settings} if settings is not None else None,
    )


async def seed_last_logoff(srv: TestServer, account: str, seconds_ago: float) -> None:
    """Pretend ``account`` last went offline publicly ``seconds_ago``, with a status."""
    server = srv.server
    await server.db(
        server.storage.set_last_activity, account, time.time() - seconds_ago, LOGOFF_STATUS
    )


async def stored(srv: TestServer, account: str) -> int:
    """How many offline messages the offline plugin holds for ``account``."""
    return await srv.server.db(srv.server.storage.count_offline, account)


# ---------------------------------------------------------------- predicates


def presence(sender: str, type_: str | None = None) -> Match:
    """A presence from exactly ``sender`` of type ``type_`` (``None``: available)."""
    return lambda e: e.tag == PRESENCE and e.get("from") == sender and e.get("type") == type_


def about(account: str) -> Match:
    """Any stanza from ``account``'s bare JID or one of its resources."""
    return lambda e: (e.get("from") or "").split("/")[0] == account


def message_id(msg_id: str) -> Match:
    return lambda e: e.tag == MESSAGE and e.get("id") == msg_id


def is_roster_push(e: Element) -> bool:
    return (
        e.get("type") == "set" and e.find(f"{{{ROSTER_NS}}}query/{{{ROSTER_NS}}}item") is not None
    )


def pushed_jids(elements: list[Element]) -> list[str]:
    return [
        item.get("jid", "")
        for e in elements
        if is_roster_push(e)
        for item in e.iter(f"{{{ROSTER_NS}}}item")
    ]


def everything(_e: Element) -> bool:
    return True


# ---------------------------------------------------------------- conversation helpers


@asynccontextmanager
async def present(srv: TestServer, user: str, resource: str) -> AsyncIterator[TestClient]:
    """``user`` logged in with initial presence, what that login brought in read away."""
    async with srv.client(user, resource=resource, presence=True) as client:
        await sync(client)
        yield client


async def quiet(client: TestClient, match: Match = everything) -> list[Element]:
    """Assert that nothing matching ``match`` was queued for ``client`` so far; return
    the elements read on the way that did not match."""
    received = await sync(client)
    unexpected = [e for e in received if match(e)]
    assert not unexpected, [(e.tag, e.attrib) for e in unexpected]
    return received


async def say(sender: TestClient, to: str, body: str = "hello") -> str:
    """Send a chat message with a fresh id to ``to``; return the id."""
    msg_id = new_id("m")
    await sender.send(f"<message to='{to}' id='{msg_id}' type='chat'><body>{body}</body></message>")
    return msg_id


async def say_without_error(sender: TestClient, to: str) -> str:
    """``say``, then check the sender got no error back (delivered or stored silently)."""
    msg_id = await say(sender, to)
    await quiet(sender, message_id(msg_id))
    return msg_id


async def request_roster(client: TestClient) -> None:
    """A roster get: from now on the session is an interested resource (RFC 6121)."""
    assert client.jid is not None
    reply = await query(client, str(client.jid.bare), f"<query xmlns='{ROSTER_NS}'/>")
    assert reply.get("type") == "result", reply.attrib


async def rename(client: TestClient, contact: str, name: str) -> None:
    """A roster set from ``client`` (pushed to every interested resource)."""
    assert client.jid is not None
    payload = f"<query xmlns='{ROSTER_NS}'><item jid='{contact}' name='{name}'/></query>"
    reply = await query(client, str(client.jid.bare), payload, "set")
    assert reply.get("type") == "result", reply.attrib


def serialized(elements: list[Element]) -> list[bytes]:
    return [tostring(e) for e in elements]


def messages(elements: list[Element]) -> list[Element]:
    return [e for e in elements if e.tag == MESSAGE]


# ---------------------------------------------------------------- a tiny MUC service


class FakeRoom:
    """The room ``capulets@conference.localhost`` as a component handler.

    Available presence to ``room/nick`` joins: the newcomer gets every other occupant,
    then every occupant (the newcomer included: the reflection) gets the newcomer.
    Unavailable leaves: every occupant, the leaver included, gets it from the occupant
    JID. Everything it receives is kept in ``received``.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.occupants: dict[JID, JID] = {}  # occupant JID (room/nick) -> real full JID
        self.received: list[Stanza] = []

    def __call__(self, stanza: Stanza) -> bool:
        to, real = stanza.to, stanza.from_
        if stanza.kind != "presence" or to is None or to.resource is None or real is None:
            return False
        self.received.append(stanza)
        if stanza.type is None:
            for occupant, occupant_real in self.occupants.items():
                if occupant != to:
                    self._send(occupant, real)
            self.occupants[to] = real
            for occupant_real in self.occupants.values():
                self._send(to, occupant_real)
            return True
        if stanza.type == "unavailable" and to in self.occupants:
            for occupant_real in self.occupants.values():
                self._send(to, occupant_real, "unavailable")
            del self.occupants[to]
            return True
        return False

    def _send(self, from_: JID, to: JID, type_: str | None = None) -> None:
        self.server.presence.deliver_presence(
            make_stanza("presence", from_=from_, to=to, type=type_)
        )

    def presences(self) -> list[tuple[str, str, str | None]]:
        return [(str(s.from_), str(s.to), s.type) for s in self.received]


@contextmanager
def room_service(srv: TestServer) -> Iterator[FakeRoom]:
    """Serve ``conference.localhost`` with a :class:`FakeRoom` for one test."""
    room = FakeRoom(srv.server)
    srv.server.components[MUC_DOMAIN] = room
    try:
        yield room
    finally:
        del srv.server.components[MUC_DOMAIN]
