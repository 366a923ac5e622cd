"""The client side of XEP-0198 for tests: a :class:`casper.testing.TestClient` that counts
the stanzas it handles, answers ``<r/>``, and can die in the ways real connections die.

``SMClient.recv`` is the only way an SM test reads: every stanza it returns counts as
handled (``h``), and ``<r/>`` requests are answered on the way. Ways to die:

- :meth:`SMClient.close_abruptly`: TLS close_notify, then the transport closes, no
  ``</stream:stream>`` (a client killed by the OS);
- :meth:`SMClient.drop_transport`: the transport closes under TLS (ragged EOF);
- :meth:`SMClient.reset`: a TCP reset (SO_LINGER 0), for servers on real sockets;
- :meth:`SMClient.go_silent`: nothing more is read or written (a half-open connection).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from xml.etree.ElementTree import Element

import trio
from casper.stream_management import MODULUS
from casper.testing import TestClient, TestServer

from tests.helpers import new_id

SM = "urn:xmpp:sm:3"
CLIENT = "jabber:client"
STANZAS = {f"{{{CLIENT}}}{name}" for name in ("message", "presence", "iq")}


def sm_tag(name: str) -> str:
    return f"{{{SM}}}{name}"


class SMClient:
    """One stream-managed connection of ``user``; see the module docstring."""

    __test__ = False

    def __init__(self, srv: TestServer, user: str, client: TestClient) -> None:
        self.srv, self.user, self.client = srv, user, client
        self.h = 0  # stanzas handled since <enabled/> or <resumed/>, mod 2**32
        self.counting = False
        self.sm_id: str | None = None
        self.requests = 0  # <r/> answered
        self.handled: list[Element] = []  # every stanza handled, all streams of this object
        self.early: list[Element] = []  # stanzas read before <enabled/> (not counted)

    @property
    def jid(self) -> str:
        assert self.client.jid is not None
        return str(self.client.jid)

    async def send(self, xml: str) -> None:
        await self.client.send(xml)

    async def recv(self, timeout: float = 5) -> Element:
        """The next stanza (or non-SM element), handled; ``<r/>`` is answered on the way."""
        while True:
            element = await self.client.recv(timeout)
            if element.tag == sm_tag("r"):
                self.requests += 1
                await self.ack()
                continue
            if element.tag in STANZAS:
                if self.counting:
                    self.h = (self.h + 1) % MODULUS
                self.handled.append(element)
            return element

    async def ack(self) -> None:
        await self.client.send(f"<a xmlns='{SM}' h='{self.h}'/>")

    async def enable(self, resume: bool = True) -> Element:
        """Send ``<enable/>`` and return ``<enabled/>`` (stanzas before it are kept aside)."""
        attr = " resume='true'" if resume else ""
        await self.client.send(f"<enable xmlns='{SM}'{attr}/>")
        while True:
            element = await self.client.recv()
            if element.tag == sm_tag("enabled"):
                self.counting, self.h, self.sm_id = True, 0, element.get("id")
                return element
            assert element.tag in STANZAS, element.tag
            self.early.append(element)

    async def expect(self, match: Callable[[Element], bool], timeout: float = 5) -> Element:
        """The next element matching ``match``; the ones skipped are handled too."""
        with trio.fail_after(timeout):
            while True:
                element = await self.recv(timeout)
                if match(element):
                    return element

    async def sync(self) -> list[Element]:
        """Round trip to the server; return what was handled before the answer."""
        iq_id = new_id("sync")
        await self.send(
            f"<iq type='get' id='{iq_id}' to='{self.srv.domain}'><query xmlns='urn:casper:test:sync'/></iq>"
        )
        received = []
        while True:
            element = await self.recv()
            if element.tag == f"{{{CLIENT}}}iq" and element.get("id") == iq_id:
                return received
            received.append(element)

    # -------------------------------------------------------------- ways to die

    async def close_abruptly(self) -> None:
        await self.client.stream.aclose()

    async def drop_transport(self) -> None:
        stream = self.client.stream
        assert isinstance(stream, trio.SSLStream)
        await stream.transport_stream.aclose()

    async def reset(self) -> None:
        stream = self.client.stream
        assert isinstance(stream, trio.SSLStream)
        transport = stream.transport_stream
        assert isinstance(transport, trio.SocketStream)
        transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.socket.close()

    async def close(self) -> None:
        """A clean end: ``</stream:stream>``."""
        await self.client.close()


async def authenticated(srv: TestServer, user: str) -> TestClient:
    client = await srv.connect()
    await client.open_stream()
    await client.starttls(srv.client_context)
    await client.authenticate(user, srv.passwords[user])
    return client


async def sm_login(srv: TestServer, user: str, *, resource: str | None = None,
                   presence: bool = False, resume: bool = True) -> SMClient:  # fmt: skip
    """Log in, bind, enable stream management (resumable by default)."""
    client = await authenticated(srv, user)
    await client.bind(resource)
    smc = SMClient(srv, user, client)
    await smc.enable(resume)
    if presence:
        await smc.send("<presence/>")
        await smc.expect(lambda e: e.tag.endswith("presence") and e.get("from") == smc.jid)
    return smc


async def try_resume(old: SMClient, *, h: int | None = None, previd: str | None = None,
                     user: str | None = None) -> tuple[SMClient, Element]:  # fmt: skip
    """Authenticate again and send ``<resume/>`` for ``old``'s session.

    :return: the new client (resumed: it goes on counting from the server's view) and the
        server's answer (``<resumed/>`` or ``<failed/>``).
    """
    user = user or old.user
    client = await authenticated(old.srv, user)
    previd = old.sm_id if previd is None else previd
    h = old.h if h is None else h
    await client.send(f"<resume xmlns='{SM}' previd='{previd}' h='{h}'/>")
    answer = await client.recv()
    new = SMClient(old.srv, user, client)
    if answer.tag == sm_tag("resumed"):
        client.jid = old.client.jid
        new.counting, new.h, new.sm_id = True, h, old.sm_id
        new.handled = old.handled  # one conversation across the streams
    return new, answer
