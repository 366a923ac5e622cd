"""Helpers for scripted conversation tests, shared by core and plugin tests.

They drive :class:`casper.testing.TestClient` objects through ordinary protocol only:
``sync`` is a round trip to the server, ``make_contacts`` the RFC 6121 subscription
handshake, ``query`` one IQ get and its answer. :class:`BaseCast` keeps named actors logged
in for scripted conversations; ``serve_without_listeners`` checks a plugin set at startup.
``note`` is for test plugins: a server message to a session, so what a hook did is observed.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

import trio
from casper.config import Config
from casper.errors import STANZAS_NS
from casper.server import serve
from casper.stanza import make_stanza, qname
from casper.storage import SQLiteStorage
from casper.testing import TestClient, TestServer

CLIENT = "jabber:client"
# No plugin answers this namespace, so the server always replies with an error.
SYNC_NS = "urn:casper:test:sync"


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def sync(client: TestClient) -> list[Element]:
    """Round-trip to the server; return what ``client`` received before the answer.

    The server handles a client's stanzas in order and delivers to its own outbox
    before answering, so when this returns, everything ``client`` sent earlier has been
    processed and everything queued for it so far has been read. Uses an IQ in a
    namespace nobody handles, so it works with any set of plugins.
    """
    iq_id = new_id("sync")
    await client.send(
        f"<iq type='get' id='{iq_id}' to='{client.domain}'><query xmlns='{SYNC_NS}'/></iq>"
    )
    received: list[Element] = []
    while True:
        element = await client.recv()
        if element.tag == f"{{{CLIENT}}}iq" and element.get("id") == iq_id:
            return received
        received.append(element)


async def make_contacts(srv: TestServer, a: TestClient, b: TestClient) -> None:
    """Give ``a``'s and ``b``'s accounts a mutual (``both``) presence subscription.

    Runs the RFC 6121 handshake in both directions (subscribe, then subscribed), which
    works whether or not either client is available, then reads away the roster pushes,
    presences and requests it caused, so both clients start with nothing pending.
    """
    assert a.jid is not None and b.jid is not None
    for asker, approver in ((a, b), (b, a)):
        assert asker.jid is not None and approver.jid is not None
        await asker.send(f"<presence to='{approver.jid.bare}' type='subscribe'/>")
        await sync(asker)
        await approver.send(f"<presence to='{asker.jid.bare}' type='subscribed'/>")
        await sync(approver)
    for account, contact in ((a.jid.bare, b.jid.bare), (b.jid.bare, a.jid.bare)):
        roster = await srv.server.rosters.get(account)
        assert roster[str(contact)].subscription == "both", roster
    await sync(a)
    await sync(b)


async def befriend(srv: TestServer, user: str, *contacts: str) -> None:
    """Make ``user`` and each of ``contacts`` mutual contacts (``both``), by the RFC 6121
    handshake from throwaway sessions that never send presence (so they leave no trace)."""
    async with srv.client(user, resource="setup") as a:
        for contact in contacts:
            async with srv.client(contact, resource="setup") as b:
                await make_contacts(srv, a, b)


async def query(client: TestClient, to: str, payload: str, type_: str = "get") -> Element:
    """Send an IQ with ``payload`` to ``to`` and return the reply (result or error)."""
    iq_id = new_id("q")
    await client.send(f"<iq type='{type_}' id='{iq_id}' to='{to}'>{payload}</iq>")
    return await client.expect(lambda e: e.tag == f"{{{CLIENT}}}iq" and e.get("id") == iq_id)


def error_condition(element: Element) -> str | None:
    """The defined condition of an error reply (``'forbidden'``), or ``None``."""
    if element.get("type") != "error":
        return None
    error = element.find(f"{{{CLIENT}}}error")
    assert error is not None, "error reply without <error/>"
    for child in error:
        if child.tag.startswith(f"{{{STANZAS_NS}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    raise AssertionError("error without a defined condition")


def is_message_from(element: Element, sender: str) -> bool:
    """Whether ``element`` is a message whose ``from`` is ``sender`` or one of its resources."""
    return (
        element.tag == f"{{{CLIENT}}}message"
        and (element.get("from") or "").split("/")[0] == sender
    )


def with_id(stanza_id: str) -> Callable[[Element], bool]:
    """Any stanza whose ``id`` is ``stanza_id``."""
    return lambda e: e.get("id") == stanza_id


def message(to: str, stanza_id: str, body: str = "hi", extra: str = "") -> str:
    """A chat message with ``body`` (and the raw XML ``extra`` after it)."""
    return f"<message to='{to}' type='chat' id='{stanza_id}'><body>{body}</body>{extra}</message>"


async def drain(client: TestClient, settle: float = 0.3) -> list[Element]:
    """Everything ``client`` receives within ``settle`` seconds."""
    received: list[Element] = []
    with trio.move_on_after(settle):
        while True:
            received.append(await client.recv())
    return received


def note(session: Any, text: str, stanza_id: str) -> None:
    """Deliver a server message to ``session`` (what test plugins use to be observed)."""
    body = Element(qname(CLIENT, "body"))
    body.text = text
    session.deliver_nowait(make_stanza("message", to=session.jid, id=stanza_id, children=[body]))


async def serve_without_listeners(
    plugins: list[tuple[object, str]], configured: tuple[str, ...] = ()
) -> None:
    """Run ``serve`` with ``plugins`` (and the ``configured`` installed ones) and no
    listeners, for at most 5 seconds: startup mistakes raise from here."""
    storage = SQLiteStorage(":memory:")
    try:
        with trio.fail_after(5):
            await serve(
                Config(default_plugins=False, plugins=configured),
                listeners=[],
                storage=storage,
                ssl_context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
                plugins=plugins,
            )
    finally:
        storage.close()


# ---------------------------------------------------------------- scripted conversations

Heard = tuple[object, ...]


@dataclass
class BaseCast:
    """Actors logged in to ``srv`` by name (``user`` or ``user/resource``, default ``r1``),
    each until :meth:`leave` or :meth:`aclose`. Test modules subclass it to say how an
    actor's inbox is read and summarised (:data:`Heard`)."""

    srv: TestServer
    clients: dict[str, TestClient] = field(default_factory=dict)
    _logins: dict[str, AsyncExitStack] = field(default_factory=dict)

    async def log_in(self, name: str, *, presence: bool = False) -> TestClient:
        user, _, resource = name.partition("/")
        login = AsyncExitStack()
        client = await login.enter_async_context(
            self.srv.client(user, resource=resource or "r1", presence=presence)
        )
        self.clients[name], self._logins[name] = client, login
        return client

    async def leave(self, name: str) -> None:
        """Close ``name``'s stream; the server has sent its unavailable presence by then."""
        del self.clients[name]
        await self._logins.pop(name).aclose()

    async def aclose(self) -> None:
        for name in reversed(list(self._logins)):
            await self._logins.pop(name).aclose()


def nobody_else(heard: dict[str, list[Heard]], **expected: list[Heard]) -> dict[str, list[Heard]]:
    """The expectation for ``heard``: ``expected`` for the actors named, nothing for the rest."""
    return {name: expected.get(name, []) for name in heard}
