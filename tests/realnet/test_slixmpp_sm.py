"""slixmpp's XEP-0198 plugin (``xep_0198``) against a real ``casper serve`` subprocess.

romeo enables stream management with resumption, his TCP connection is reset under him
(SO_LINGER 0, then abort: the kernel sends RST), juliet writes to him meanwhile, and he
reconnects and resumes: he gets what was sent while he was away exactly once, and nothing
he had already handled comes again.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest

pytestmark = pytest.mark.realnet

HOST = "127.0.0.1"
STEP = 10.0


def test_slixmpp_resumes_after_a_tcp_reset(casper_server, open_peer, run_async):
    casper_server.add_user("romeo")
    casper_server.add_user("juliet")

    async def scenario() -> None:
        async with open_peer("juliet") as juliet, open_peer("romeo", login=False) as romeo:
            xmpp = romeo.xmpp
            xmpp.register_plugin("xep_0198", pconfig={"window": 1})
            sm = xmpp.plugin["xep_0198"]
            loop = asyncio.get_running_loop()
            enabled: asyncio.Future[Any] = loop.create_future()
            resumed: asyncio.Future[Any] = loop.create_future()
            xmpp.add_event_handler("sm_enabled", lambda s: enabled.done() or enabled.set_result(s))
            xmpp.add_event_handler(
                "session_resumed", lambda s: resumed.done() or resumed.set_result(s)
            )
            await romeo.login()
            answer = await asyncio.wait_for(enabled, STEP)
            assert answer["resume"] and sm.sm_id  # <enabled id=... resume='true'/>

            juliet.xmpp.send_message(mto=romeo.jid, mbody="before", mtype="chat")
            first = await romeo.next("message", sender=juliet.jid.bare)
            assert first["body"] == "before"
            await romeo.sync()  # acknowledged: window 1 asks after each stanza sent

            sock = xmpp.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            xmpp.transport.abort()  # RST: no </stream:stream>, no TLS close_notify
            await romeo.next("disconnected")

            for body in ("while away 1", "while away 2"):
                juliet.xmpp.send_message(mto=romeo.jid, mbody=body, mtype="chat")
            await juliet.sync()
            assert not juliet.queued("message")  # no error came back: the session waits

            xmpp.connect(HOST, romeo.port)
            await asyncio.wait_for(resumed, STEP)
            got = [await romeo.next("message", sender=juliet.jid.bare) for _ in range(2)]
            assert [m["body"] for m in got] == ["while away 1", "while away 2"]
            await romeo.sync()
            assert not romeo.queued("message")  # "before" did not come again
            assert str(romeo.jid) == "romeo@localhost/peer"  # the same session

            romeo.xmpp.send_message(mto=juliet.jid, mbody="back", mtype="chat")
            reply = await juliet.next("message", sender=romeo.jid.bare)
            assert reply["body"] == "back"

    run_async(scenario())
