"""time: XEP-0202 entity time of the server."""

from __future__ import annotations

import datetime

from casper.testing import open_test_server

from tests.helpers import error_condition, query

NS = "urn:xmpp:time"
QUERY = f"<time xmlns='{NS}'/>"


async def test_server_time_is_utc_now_with_zero_offset():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        reply = await query(romeo, "localhost", QUERY)
        after = datetime.datetime.now(datetime.UTC)
    assert reply.get("type") == "result", reply.attrib
    assert reply.findtext(f"{{{NS}}}time/{{{NS}}}tzo") == "+00:00"
    utc = reply.findtext(f"{{{NS}}}time/{{{NS}}}utc")
    assert utc is not None and utc.endswith("Z")
    stamp = datetime.datetime.strptime(utc, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert before <= stamp <= after


async def test_time_of_an_account_is_not_answered_by_the_server():
    async with open_test_server() as srv, srv.client("romeo") as romeo:
        reply = await query(romeo, "juliet@localhost", QUERY)
    assert error_condition(reply) == "service-unavailable"
