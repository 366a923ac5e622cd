"""Shared actors, fixture and steps for the blocking tests: XEP-0191 over the
privacy-lists store, with and without the privacy-lists plugin.

Actors: romeo keeps the blocklist (``orchard``; ``hall`` a second resource); juliet is
his contact (mutual ``both``), blocked in most tests; nurse is another contact who must
notice nothing. Every scenario takes the ``plugins`` fixture, so it runs with
``blocking`` alone and with ``privacy-lists`` too; the two-protocol agreement needs both.
Real loopback TCP+TLS.

Import the helpers with ``from tests.plugins.blocking.conftest import ...``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import new_id
from tests.plugins.privacy_lists.privacy_kit import CLIENT, error_condition, link, sync

__all__ = [
    "BALCONY",
    "DISCO_INFO",
    "HALL",
    "JULIET",
    "MODES",
    "NS",
    "NURSE",
    "ORCHARD",
    "PRIVACY",
    "ROMEO",
    "VERSION",
    "block",
    "blocked_error",
    "blocking",
    "cast",
    "get_blocklist",
    "is_blocking_push",
    "items",
    "open_server",
    "replied",
    "say",
    "unblock",
]

NS = "urn:xmpp:blocking"
ERRORS = "urn:xmpp:blocking:errors"
PRIVACY = "jabber:iq:privacy"
DISCO_INFO = "<query xmlns='http://jabber.org/protocol/disco#info'/>"
VERSION = "<query xmlns='jabber:iq:version'/>"
ROMEO, ORCHARD, HALL = "romeo@localhost", "romeo@localhost/orchard", "romeo@localhost/hall"
JULIET, BALCONY = "juliet@localhost", "juliet@localhost/balcony"
NURSE = "nurse@localhost"

MODES = {"alone": ("blocking",), "with privacy-lists": ("privacy-lists", "blocking")}


@pytest.fixture(params=list(MODES))
def plugins(request: pytest.FixtureRequest) -> tuple[str, ...]:
    return MODES[request.param]


# ---------------------------------------------------------------- helpers


@asynccontextmanager
async def open_server(plugins: tuple[str, ...], **config: Any) -> AsyncIterator[TestServer]:
    """romeo, juliet, nurse; romeo ⇄ juliet and romeo ⇄ nurse mutual contacts."""
    async with open_test_server(plugins=plugins, accounts=("romeo", "juliet", "nurse"),
                                tcp=True, **config) as srv:  # fmt: skip
        await link(srv, "romeo", "juliet")
        await link(srv, "romeo", "nurse")
        yield srv


@asynccontextmanager
async def cast(srv: TestServer, *logins: str) -> AsyncIterator[dict[str, TestClient]]:
    """Log in ``user/resource`` for each login, all available, then drain everything."""
    async with AsyncExitStack() as stack:
        clients = {}
        for login in logins:
            user, resource = login.split("/")
            clients[resource] = await stack.enter_async_context(
                srv.client(user, resource=resource, presence=True)
            )
        for client in clients.values():
            await sync(client)
        yield clients


async def blocking(client: TestClient, payload: str, type_: str = "set") -> Element:
    """An IQ to the user's own account; return the reply (not a push)."""
    iq_id = new_id("blk")
    await client.send(f"<iq type='{type_}' id='{iq_id}'>{payload}</iq>")
    return await client.expect(
        lambda e: e.tag == f"{{{CLIENT}}}iq" and e.get("id") == iq_id and e.get("type") != "set"
    )


async def get_blocklist(client: TestClient) -> list[str]:
    reply = await blocking(client, f"<blocklist xmlns='{NS}'/>", "get")
    assert reply.get("type") == "result", error_condition(reply)
    element = reply.find(f"{{{NS}}}blocklist")
    assert element is not None
    return [item.get("jid", "") for item in element]


def items(*jids: str) -> str:
    return "".join(f"<item jid='{jid}'/>" for jid in jids)


async def block(client: TestClient, *jids: str) -> None:
    reply = await blocking(client, f"<block xmlns='{NS}'>{items(*jids)}</block>")
    assert reply.get("type") == "result", error_condition(reply)


async def unblock(client: TestClient, *jids: str) -> None:
    reply = await blocking(client, f"<unblock xmlns='{NS}'>{items(*jids)}</unblock>")
    assert reply.get("type") == "result", error_condition(reply)


def is_blocking_push(name: str, jids: list[str] | None = None) -> Callable[[Element], bool]:
    """A blocklist push of ``<block/>`` or ``<unblock/>`` (with exactly ``jids``)."""

    def predicate(element: Element) -> bool:
        if element.tag != f"{{{CLIENT}}}iq" or element.get("type") != "set":
            return False
        payload = element.find(f"{{{NS}}}{name}")
        return payload is not None and (jids is None or [i.get("jid") for i in payload] == jids)

    return predicate


def blocked_error(reply: Element) -> bool:
    """``not-acceptable`` (type cancel) with XEP-0191's ``<blocked/>``."""
    error = reply.find(f"{{{CLIENT}}}error")
    return (
        error_condition(reply) == "not-acceptable"
        and error is not None
        and error.get("type") == "cancel"
        and error.find(f"{{{ERRORS}}}blocked") is not None
    )


async def say(client: TestClient, to: str, stanza_id: str, type_: str = "chat") -> None:
    """A message with a body."""
    body = "<body>x</body>"
    await client.send(f"<message to='{to}' type='{type_}' id='{stanza_id}'>{body}</message>")


def replied(stanza_id: str) -> Callable[[Element], bool]:
    return lambda e: e.get("id") == stanza_id
