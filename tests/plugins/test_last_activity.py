"""last-activity: XEP-0012 server uptime and accounts' last activity.

The answer to a contact comes from the core's visibility decision: while romeo is hidden
from juliet, juliet gets exactly what she would get if romeo were offline.
"""

from __future__ import annotations

import time

from casper.hookspecs import hookimpl
from casper.testing import open_test_server

from tests.helpers import error_condition, make_contacts, query, sync

NS = "jabber:iq:last"
QUERY = f"<query xmlns='{NS}'/>"


def last(reply):
    """``(seconds, text)`` of a result."""
    assert reply.get("type") == "result", (reply.attrib, error_condition(reply))
    payload = reply.find(f"{{{NS}}}query")
    assert payload is not None
    return int(payload.get("seconds", "")), payload.text


async def log_off(client, status):
    await client.send(f"<presence type='unavailable'><status>{status}</status></presence>")
    await sync(client)


async def test_server_last_activity_is_uptime():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "localhost", QUERY)
        elapsed = time.time() - srv.server.started_at
    seconds, text = last(reply)
    assert 0 <= seconds <= elapsed and text is None


async def test_account_asking_about_itself_gets_zero():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        assert last(await query(romeo, "romeo@localhost", QUERY)) == (0, None)


async def test_contact_gets_zero_while_account_is_available():
    async with (
        open_test_server() as srv,
        srv.client("juliet", presence=True) as juliet,
        srv.client("romeo", presence=True) as romeo,
    ):
        await make_contacts(srv, romeo, juliet)
        assert last(await query(juliet, "romeo@localhost", QUERY)) == (0, None)


async def test_contact_gets_time_since_logoff_and_its_status():
    async with open_test_server() as srv, srv.client("juliet", presence=True) as juliet:
        async with srv.client("romeo", presence=True) as romeo:
            await make_contacts(srv, romeo, juliet)
            await log_off(romeo, "Heading home")
            logged_off = time.time()
        reply = await query(juliet, "romeo@localhost", QUERY)
        seconds, text = last(reply)
        stamp, status = await srv.server.last_public_activity(srv.jid("romeo"))
    assert status == text == "Heading home"
    assert 0 <= seconds <= time.time() - stamp
    assert stamp <= logged_off


async def test_non_contact_is_forbidden_whether_account_is_online_or_not():
    async with (
        open_test_server(accounts=("romeo", "tybalt")) as srv,
        srv.client("tybalt") as tybalt,
    ):
        offline = await query(tybalt, "romeo@localhost", QUERY)
        async with srv.client("romeo", presence=True):
            online = await query(tybalt, "romeo@localhost", QUERY)
    assert error_condition(offline) == error_condition(online) == "forbidden"


async def test_contact_asking_about_never_seen_account_gets_service_unavailable():
    async with open_test_server() as srv, srv.client("juliet", presence=True) as juliet:
        async with srv.client("romeo") as romeo:  # bound, never available
            await make_contacts(srv, romeo, juliet)
        reply = await query(juliet, "romeo@localhost", QUERY)
    assert error_condition(reply) == "service-unavailable"


class Hider:
    """A one-test invisibility strategy: romeo's sessions hide from everyone while on."""

    def __init__(self) -> None:
        self.on = False

    @hookimpl
    def casper_hidden_from(self, session, observer):
        return self.on and session.account.local == "romeo"


async def test_hidden_account_shows_last_public_logoff_never_zero():
    hider = Hider()
    async with (
        open_test_server(extra_plugins=[(hider, "t")]) as srv,
        srv.client("juliet", presence=True) as juliet,
    ):
        async with srv.client("romeo", presence=True) as romeo:
            await make_contacts(srv, romeo, juliet)
            await log_off(romeo, "Gone to Mantua")
        offline_seconds, offline_text = last(await query(juliet, "romeo@localhost", QUERY))
        hider.on = True
        async with srv.client("romeo", presence=True) as romeo:
            hidden_seconds, hidden_text = last(await query(juliet, "romeo@localhost", QUERY))
            await log_off(romeo, "secret")
        after_seconds, after_text = last(await query(juliet, "romeo@localhost", QUERY))
    assert offline_text == hidden_text == after_text == "Gone to Mantua"
    assert offline_seconds <= hidden_seconds <= after_seconds


async def test_hidden_since_creation_answers_like_never_seen():
    hider = Hider()
    hider.on = True
    async with (
        open_test_server(extra_plugins=[(hider, "t")]) as srv,
        srv.client("juliet", presence=True) as juliet,
    ):
        async with srv.client("romeo", presence=True) as romeo:
            await make_contacts(srv, romeo, juliet)
            hidden = await query(juliet, "romeo@localhost", QUERY)
        gone = await query(juliet, "romeo@localhost", QUERY)
    assert error_condition(hidden) == error_condition(gone) == "service-unavailable"
