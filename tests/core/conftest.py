"""Shared fixtures and helpers for the core's end-to-end protocol tests (RFC 6120/6121).

Every test runs a real server over memory streams (``casper.testing``), without the
baseline plugins unless it needs one. Absence is checked without sleeping: ``quiet`` makes
a round trip to the server (``tests.helpers.sync``), after which everything that was
queued for the client has been read, and fails if any of it matches.

Import the helpers with ``from tests.core.conftest import ...``.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element

import pytest
from casper.jid import JID
from casper.sasl import ScramClient
from casper.storage.base import RosterItem
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import error_condition, new_id, sync

__all__ = [
    "CLIENT",
    "DELAY",
    "ROSTER",
    "SASL",
    "TLS",
    "Match",
    "any_presence_from",
    "contacts_online",
    "error_condition",
    "iq_reply",
    "is_error",
    "login",
    "make_contacts",
    "message_with_id",
    "new_id",
    "presence_from",
    "quiet",
    "roster_items",
    "roster_push",
    "sasl_attempt",
    "send_message",
    "set_subscription",
    "sync",
    "tls_client",
]

CLIENT = "jabber:client"
ROSTER = "jabber:iq:roster"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
DELAY = "urn:xmpp:delay"

Match = Callable[[Element], bool]
MIRROR = {"none": "none", "to": "from", "from": "to", "both": "both"}


@pytest.fixture
async def srv() -> AsyncIterator[TestServer]:
    """A core-only server (no plugins) with the accounts romeo and juliet."""
    async with open_test_server(default_plugins=False) as server:
        yield server


# -------------------------------------------------------------------- predicates


def _tag(kind: str) -> str:
    return f"{{{CLIENT}}}{kind}"


def presence_from(sender: JID | str, type_: str | None = None) -> Match:
    """A presence whose ``from`` is exactly ``sender`` and whose type is ``type_``
    (``None``: available)."""
    return lambda e: (
        e.tag == _tag("presence") and e.get("from") == str(sender) and e.get("type") == type_
    )


def any_presence_from(sender: JID | str) -> Match:
    """Any presence (of any type) from ``sender``; a bare JID also matches its resources."""

    def match(e: Element) -> bool:
        source = e.get("from") or ""
        return e.tag == _tag("presence") and (
            source == str(sender) or source.split("/")[0] == str(sender)
        )

    return match


def iq_reply(iq_id: str) -> Match:
    """The result or error answering the IQ ``iq_id``."""
    return lambda e: (
        e.tag == _tag("iq") and e.get("id") == iq_id and e.get("type") in ("result", "error")
    )


def message_with_id(msg_id: str) -> Match:
    return lambda e: e.tag == _tag("message") and e.get("id") == msg_id


def roster_push(contact: JID | str | None = None) -> Match:
    """A roster push (an iq set with a roster query), about ``contact`` if given."""

    def match(e: Element) -> bool:
        if e.tag != _tag("iq") or e.get("type") != "set":
            return False
        item = e.find(f"{{{ROSTER}}}query/{{{ROSTER}}}item")
        return item is not None and (contact is None or item.get("jid") == str(contact))

    return match


def is_error(kind: str, condition: str) -> Match:
    """A ``kind`` stanza of type error carrying ``condition``."""
    return lambda e: e.tag == _tag(kind) and error_condition(e) == condition


def everything(_e: Element) -> bool:
    return True


# -------------------------------------------------------------------- conversation helpers


async def quiet(client: TestClient, match: Match = everything) -> list[Element]:
    """Assert that nothing matching ``match`` was queued for ``client`` so far.

    Call it once the stanza that must not arrive would already have been delivered
    (the sender got its answer, or the stream carrying the cause has ended). Returns
    the elements read on the way that did not match.
    """
    received = await sync(client)
    unexpected = [e for e in received if match(e)]
    assert not unexpected, [(e.tag, e.attrib) for e in unexpected]
    return received


async def send_message(sender: TestClient, to: JID | str, type_: str = "chat") -> str:
    """Send a message with a body and a fresh id to ``to``; return the id."""
    msg_id = new_id("m")
    await sender.send(
        f"<message to='{to}' id='{msg_id}' type='{type_}'><body>hello</body></message>"
    )
    return msg_id


def roster_items(result: Element) -> dict[str, Element]:
    """The items of a roster result or push, keyed by contact JID."""
    assert result.get("type") in ("result", "set"), result.attrib
    return {i.get("jid", ""): i for i in result.iter(f"{{{ROSTER}}}item")}


async def set_subscription(srv: TestServer, user: str, contact: str, state: str) -> None:
    """Set ``user``'s roster item for ``contact`` to ``state`` and the contact's to the
    mirror state, directly in the server's rosters (no pushes).

    For setting up a scenario before the accounts log in; the subscription handshake
    itself is tested in ``test_subscriptions.py``.
    """
    rosters = srv.server.rosters
    await rosters.put(
        srv.jid(user), RosterItem(jid=str(srv.jid(contact)), subscription=state), push=False
    )
    mirror = RosterItem(jid=str(srv.jid(user)), subscription=MIRROR[state])
    await rosters.put(srv.jid(contact), mirror, push=False)


async def make_contacts(srv: TestServer, a: str, b: str) -> None:
    """Make the accounts ``a`` and ``b`` mutual contacts (``both``), before they log in."""
    await set_subscription(srv, a, b, "both")


@asynccontextmanager
async def contacts_online(srv: TestServer) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """romeo and juliet, mutual contacts, each logged in with initial presence (romeo first)."""
    await make_contacts(srv, "romeo", "juliet")
    async with (
        srv.client("romeo", presence=True) as romeo,
        srv.client("juliet", presence=True) as juliet,
    ):
        yield romeo, juliet


# -------------------------------------------------------------------- negotiation helpers


async def tls_client(srv: TestServer) -> TestClient:
    """A raw connection with the stream opened and TLS up, ready for SASL."""
    client = await srv.connect()
    await client.open_stream()
    await client.starttls(srv.client_context)
    return client


async def login(srv: TestServer, user: str, resource: str | None = None) -> TestClient:
    """A logged-in, bound raw client that the caller closes (unlike ``srv.client``)."""
    client = await tls_client(srv)
    await client.authenticate(user, srv.passwords[user])
    await client.bind(resource)
    return client


async def sasl_attempt(client: TestClient, user: str, password: str, mechanism: str) -> Element:
    """Run one SASL exchange and return the server's last element (success or failure)."""

    async def send(name: str, data: bytes, mech: str | None = None) -> None:
        attr = f" mechanism='{mech}'" if mech else ""
        payload = base64.b64encode(data).decode() or "="
        await client.send_raw(f"<{name} xmlns='{SASL}'{attr}>{payload}</{name}>")

    if mechanism == "PLAIN":
        await send("auth", f"\0{user}\0{password}".encode(), mechanism)
        return await client.recv()
    scram = ScramClient(mechanism, user, password)
    await send("auth", scram.first(), mechanism)
    reply = await client.recv()
    if reply.tag != f"{{{SASL}}}challenge":
        return reply
    await send("response", scram.final(base64.b64decode(reply.text or "")))
    return await client.recv()
