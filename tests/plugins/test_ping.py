"""ping: XEP-0199 pings to the server, and to accounts' bare JIDs."""

from __future__ import annotations

from casper.testing import open_test_server

from tests.helpers import error_condition, make_contacts, query

PING = "<ping xmlns='urn:xmpp:ping'/>"


async def test_ping_to_server_gets_empty_result():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost", PING)
    assert reply.get("type") == "result" and reply.get("from") == "localhost"
    assert len(reply) == 0


async def test_ping_to_own_bare_jid_gets_result():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "romeo@localhost", PING)
    assert reply.get("type") == "result"


def shape(reply):
    """An error reply without its id, for comparing two answers."""
    return (reply.get("type"), reply.get("from"), error_condition(reply))


async def test_ping_to_contact_bare_jid_is_service_unavailable_online_or_offline():
    async with open_test_server() as srv, srv.client("juliet", presence=True) as juliet:
        async with srv.client("romeo", presence=True) as romeo:
            await make_contacts(srv, romeo, juliet)
            online = await query(juliet, "romeo@localhost", PING)
        offline = await query(juliet, "romeo@localhost", PING)
    assert shape(online) == shape(offline) == ("error", "romeo@localhost", "service-unavailable")


async def test_ping_to_unknown_account_is_service_unavailable():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "nobody@localhost", PING)
    assert error_condition(reply) == "service-unavailable"
