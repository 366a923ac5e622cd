"""Helpers for scripted conversation tests, shared by core and plugin tests.

They drive :class:`casper.testing.TestClient` objects through ordinary protocol only:
``sync`` is a round trip to the server, ``make_contacts`` the RFC 6121 subscription
handshake, ``query`` one IQ get and its answer.
"""

from __future__ import annotations

import secrets
from xml.etree.ElementTree import Element

from casper.errors import STANZAS_NS
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
