"""Invisibility survives faults: a hidden session that dies tells nobody it hid from.

Romeo hides (XEP-0018 ``<presence type='invisible'/>``, or XEP-0186 ``<invisible/>``),
sometimes showing himself to one contact, then his connection dies without a goodbye: a
TCP reset (``SO_LINGER`` 0, so the kernel sends RST) or a bare close (FIN, no
``</stream:stream>``, no TLS close_notify). Real loopback TCP: memory streams cannot reset.

Once the server has finished with his session (``casper_session_ended``, after the
presence cleanup), every contact's inbox is read with a round trip: those he was shown to
got exactly one unavailable, those he hid from got nothing from him at all, then or before,
and his last activity as seen by a contact he hid from did not become "just now".
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import pytest
import trio
from casper.hookspecs import hookimpl
from casper.testing import TestClient, TestServer, open_test_server

from tests.core.conftest import make_contacts
from tests.helpers import sync

C = "{jabber:client}"
INVISIBLE_NS = "urn:xmpp:invisible:1"
ACCOUNTS = ("romeo", "juliet", "nurse")
ROMEO = "romeo@localhost/r1"
LAST = "<query xmlns='jabber:iq:last'/>"
DEADLINE = 30.0


@dataclass
class EndWatcher:
    """A test plugin: learn when the server is done with a session."""

    ended: list[str] = field(default_factory=list)
    event: trio.Event = field(default_factory=trio.Event)

    @hookimpl
    def casper_session_ended(self, session) -> None:
        self.ended.append(str(session.jid))
        self.event.set()


async def reset(client: TestClient) -> None:
    """Abort the TCP connection: the kernel sends RST, nothing else is said."""
    transport = client.stream.transport_stream  # SSLStream -> SocketStream
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.socket.close()


async def drop(client: TestClient) -> None:
    """Close the TCP connection under TLS: FIN, no close_notify, no ``</stream:stream>``."""
    await client.stream.transport_stream.aclose()


KILLS: dict[str, Callable[[TestClient], object]] = {"reset": reset, "close": drop}


def from_romeo(element: Element) -> bool:
    return (element.get("from") or "").split("/")[0] == "romeo@localhost"


def heard(elements: list[Element]) -> list[tuple[str, str]]:
    """What an observer learned about Romeo: ``(kind, type)`` of each stanza from him."""
    return [
        (e.tag.removeprefix(C), e.get("type") or "available") for e in elements if from_romeo(e)
    ]


@dataclass
class Stage:
    srv: TestServer
    watcher: EndWatcher
    romeo: TestClient
    juliet: TestClient
    nurse: TestClient
    log: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    async def settle(self) -> None:
        """Round trips for everyone: what they heard about Romeo so far is in ``log``."""
        for name in ("juliet", "nurse"):
            client = getattr(self, name)
            self.log.setdefault(name, []).extend(heard(await sync(client)))

    async def kill_romeo(self, how: str) -> None:
        await sync(self.romeo)  # everything he sent has been handled
        await self.settle()
        for name in self.log:
            self.log[name].append(("--", "killed"))
        await KILLS[how](self.romeo)
        await self.watcher.event.wait()
        assert self.watcher.ended == [ROMEO]
        await self.settle()

    async def last_seconds(self, observer: TestClient, iq_id: str) -> int | None:
        await observer.send(f"<iq to='romeo@localhost' type='get' id='{iq_id}'>{LAST}</iq>")
        reply = await observer.expect(lambda e: e.get("id") == iq_id)
        query = reply.find("{jabber:iq:last}query")
        return None if query is None else int(query.get("seconds", "-1"))


@asynccontextmanager
async def stage(plugins: tuple[str, ...]) -> AsyncIterator[Stage]:
    watcher = EndWatcher()
    server = open_test_server(
        plugins=plugins, tcp=True, accounts=ACCOUNTS, extra_plugins=[(watcher, "test-end-watcher")]
    )
    with trio.fail_after(DEADLINE):
        async with server as srv:
            await make_contacts(srv, "romeo", "juliet")
            await make_contacts(srv, "romeo", "nurse")
            async with (
                srv.client("juliet", resource="balcony", presence=True) as juliet,
                srv.client("nurse", resource="kitchen", presence=True) as nurse,
            ):
                romeo = await srv.connect()
                try:
                    await romeo.open_stream()
                    await romeo.starttls(srv.client_context)
                    await romeo.authenticate("romeo", "secret")
                    await romeo.bind("r1")
                    staged = Stage(srv, watcher, romeo, juliet, nurse)
                    await staged.settle()  # the answers to their own probes of offline romeo
                    staged.log.clear()
                    yield staged
                finally:
                    with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                        await romeo.stream.aclose()


# ---------------------------------------------------------------- XEP-0018


@pytest.mark.parametrize("how", KILLS)
async def test_xep0018_invisible_from_login_then_killed_tells_nobody(how: str) -> None:
    async with stage(("xep0018",)) as s:
        before = await s.last_seconds(s.juliet, "last1")
        await s.romeo.send("<presence type='invisible'/>")
        await s.romeo.send("<presence><show>away</show></presence>")  # still hidden
        await s.kill_romeo(how)
        assert s.log == {"juliet": [("--", "killed")], "nurse": [("--", "killed")]}
        after = await s.last_seconds(s.juliet, "last2")
        assert (before is None) == (after is None)
        assert after is None or after >= before  # no fresh "went offline just now"


@pytest.mark.parametrize("how", KILLS)
async def test_xep0018_invisible_to_one_contact_then_killed_tells_only_the_others(
    how: str,
) -> None:
    async with stage(("xep0018",)) as s:
        await s.romeo.send("<presence/>")
        await s.romeo.send("<presence to='nurse@localhost' type='invisible'/>")
        await s.kill_romeo(how)
        assert s.log == {
            "juliet": [("presence", "available"), ("--", "killed"), ("presence", "unavailable")],
            "nurse": [("presence", "available"), ("presence", "unavailable"), ("--", "killed")],
        }


@pytest.mark.parametrize("how", KILLS)
async def test_xep0018_visible_to_one_contact_then_killed_tells_only_that_one(how: str) -> None:
    async with stage(("xep0018",)) as s:
        await s.romeo.send("<presence type='invisible'/>")
        await s.romeo.send("<presence to='juliet@localhost' type='visible'/>")
        await s.kill_romeo(how)
        assert s.log == {
            "juliet": [("presence", "available"), ("--", "killed"), ("presence", "unavailable")],
            "nurse": [("--", "killed")],
        }


# ---------------------------------------------------------------- XEP-0186


async def invisible_command(romeo: TestClient) -> None:
    await romeo.send(f"<iq type='set' id='inv'><invisible xmlns='{INVISIBLE_NS}'/></iq>")
    reply = await romeo.expect(lambda e: e.get("id") == "inv")
    assert reply.get("type") == "result"


@pytest.mark.parametrize("how", KILLS)
async def test_invisible_command_with_directed_presence_then_killed_tells_only_its_target(
    how: str,
) -> None:
    async with stage(("invisible-command",)) as s:
        await invisible_command(s.romeo)
        await s.romeo.send("<presence/>")
        await s.romeo.send("<presence to='nurse@localhost'/>")
        await s.kill_romeo(how)
        assert s.log == {
            "juliet": [("--", "killed")],
            "nurse": [("presence", "available"), ("--", "killed"), ("presence", "unavailable")],
        }


@pytest.mark.parametrize("how", KILLS)
async def test_invisible_command_after_being_seen_then_killed_says_nothing_more(how: str) -> None:
    async with stage(("invisible-command",)) as s:
        await s.romeo.send("<presence/>")
        await sync(s.romeo)
        await invisible_command(s.romeo)
        await s.romeo.send("<presence><show>dnd</show></presence>")
        await s.kill_romeo(how)
        seen_then_hidden = [
            ("presence", "available"),
            ("presence", "unavailable"),
            ("--", "killed"),
        ]
        assert s.log == {"juliet": seen_then_hidden, "nurse": seen_then_hidden}
