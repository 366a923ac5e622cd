"""Federation scenarios written once, run against every kind of remote server.

A scenario takes the Casper server (``casper.test`` or ``a.test``) and a :class:`Side`:
another Casper in the same process, or Prosody or ejabberd (``tests/federation``). The
remote contact is always driven with :class:`casper.testing.TestClient`, over ordinary
protocol, so the scenarios say exactly what a remote user observes.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol
from xml.etree.ElementTree import Element

from casper.testing import InvisibilityDriver, PrivacyListsDriver, TestClient, TestServer

C = "{jabber:client}"
MUC_USER = "http://jabber.org/protocol/muc#user"
TIMEOUT = 15.0  # seconds for one cross-server round trip (dialback included)
SETTLE = 0.5  # seconds a stanza that must not come is given to arrive anyway (after an
# in-order marker stanza proved the stream delivered everything sent before it)


class Side(Protocol):
    """The remote server as the scenarios see it."""

    domain: str
    muc: str | None

    async def add_user(self, local: str) -> str: ...

    def client(
        self, local: str, *, presence: bool = True, resource: str = "r"
    ) -> AbstractAsyncContextManager[TestClient]: ...


class CasperSide:
    """Another Casper (in-process) as the remote side."""

    muc: str | None = None

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.domain = server.domain

    async def add_user(self, local: str) -> str:
        if local not in self.server.passwords:
            await self.server.add_account(local)
        return f"{local}@{self.domain}"

    def client(self, local: str, *, presence: bool = True,
               resource: str = "r") -> AbstractAsyncContextManager[TestClient]:  # fmt: skip
        return local_client(self.server, local, presence=presence, resource=resource)


@asynccontextmanager
async def local_client(server: TestServer, local: str, *, presence: bool = False,
                       resource: str = "r") -> AsyncIterator[TestClient]:  # fmt: skip
    """A Casper client that fetched its roster (so it gets roster pushes, RFC 6121 §2.1.6)."""
    async with server.client(local, resource=resource) as client:
        await client.send("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>")
        await client.expect(lambda e: e.get("id") == "roster1")
        if presence:
            await client.send("<presence/>")
        yield client


# ---------------------------------------------------------------- predicates


def presence(
    sender: str, type_: str | None = None, *, bare: bool = False
) -> Callable[[Element], bool]:
    """Presence of ``type_`` from ``sender`` (with ``bare``, from any of its resources)."""

    def match(e: Element) -> bool:
        source = e.get("from") or ""
        if bare:
            source = source.split("/")[0]
        return e.tag == f"{C}presence" and source == sender and e.get("type") == type_

    return match


def any_available_from(bare_jid: str) -> Callable[[Element], bool]:
    return presence(bare_jid, None, bare=True)


async def absent(
    client: TestClient, match: Callable[[Element], bool], settle: float = SETTLE
) -> None:
    """Fail if anything matching arrives within ``settle`` seconds (cross-server: real time)."""
    await client.expect_nothing(match, settle=settle)


# ---------------------------------------------------------------- building blocks


async def subscribe(
    asker: TestClient, asker_bare: str, approver: TestClient, approver_bare: str
) -> None:
    """``asker`` subscribes to ``approver``'s presence and ``approver`` approves."""
    await asker.send(f"<presence to='{approver_bare}' type='subscribe'/>")
    await approver.expect(presence(asker_bare, "subscribe", bare=True), timeout=TIMEOUT)
    await approver.send(f"<presence to='{asker_bare}' type='subscribed'/>")
    await asker.expect(_roster_push(approver_bare, ("to", "both")), timeout=TIMEOUT)


def _roster_push(contact: str, states: tuple[str, ...]) -> Callable[[Element], bool]:
    def match(e: Element) -> bool:
        item = e.find("{jabber:iq:roster}query/{jabber:iq:roster}item")
        return (e.tag == f"{C}iq" and e.get("type") == "set" and item is not None
                and item.get("jid") == contact and item.get("subscription") in states)  # fmt: skip

    return match


async def make_mutual(
    romeo: TestClient, romeo_bare: str, remote: TestClient, remote_bare: str
) -> None:
    await subscribe(romeo, romeo_bare, remote, remote_bare)
    await subscribe(remote, remote_bare, romeo, romeo_bare)


# ---------------------------------------------------------------- scenarios


async def subscription_and_presence(casper: TestServer, side: Side, remote_user: str) -> None:
    """Mutual subscription across servers; available and unavailable presence both ways."""
    remote_bare = await side.add_user(remote_user)
    romeo_bare = str(casper.jid("romeo"))
    async with side.client(remote_user) as remote:
        async with local_client(casper, "romeo", presence=True) as romeo:
            await make_mutual(romeo, romeo_bare, remote, remote_bare)
            await remote.expect(presence(str(romeo.jid)), timeout=TIMEOUT)
            await romeo.expect(any_available_from(remote_bare), timeout=TIMEOUT)
            await remote.send("<presence><status>away for lunch</status></presence>")
            changed = await romeo.expect(any_available_from(remote_bare), timeout=TIMEOUT)
            assert changed.findtext(f"{C}status") == "away for lunch"
            romeo_full = str(romeo.jid)
        await remote.expect(presence(romeo_full, "unavailable"), timeout=TIMEOUT)


async def probe_on_login(casper: TestServer, side: Side, remote_user: str) -> None:
    """Contacts already; the remote contact is online when romeo logs in: Casper's probe
    brings its presence, and the remote server's probe of romeo gets romeo's."""
    remote_bare = await side.add_user(remote_user)
    romeo_bare = str(casper.jid("romeo"))
    async with side.client(remote_user) as remote:
        async with local_client(casper, "romeo", presence=True) as romeo:
            await make_mutual(romeo, romeo_bare, remote, remote_bare)
        async with local_client(casper, "romeo", resource="again") as romeo:
            await romeo.send("<presence/>")
            await romeo.expect(any_available_from(remote_bare), timeout=TIMEOUT)
            await remote.expect(presence(str(romeo.jid)), timeout=TIMEOUT)
        async with (
            side.client(remote_user, presence=False, resource="again") as remote_again,
            local_client(casper, "romeo", resource="third", presence=True) as romeo,
        ):
            await remote_again.send("<presence/>")  # the remote server probes romeo
            await remote_again.expect(presence(str(romeo.jid)), timeout=TIMEOUT)


async def invisible_to_remote_contact(casper: TestServer, side: Side, remote_user: str,
                                      driver: InvisibilityDriver) -> None:  # fmt: skip
    """Romeo hides with ``driver``'s strategy: the remote contact gets no presence from
    him, and when its server probes (the contact logs in again) it gets the offline answer,
    exactly as if romeo had no session."""
    remote_bare = await side.add_user(remote_user)
    romeo_bare = str(casper.jid("romeo"))
    async with side.client(remote_user) as remote:
        async with local_client(casper, "romeo", presence=True) as romeo:
            await make_mutual(romeo, romeo_bare, remote, remote_bare)
        await remote.expect(presence(romeo_bare, "unavailable", bare=True), timeout=TIMEOUT)
        hidden = f"{romeo_bare}/hidden"
        async with local_client(casper, "romeo", resource="hidden") as romeo:
            await driver.go_invisible(romeo)
            # the route works (one stream, in order): presence would have come first
            await romeo.send(f"<message to='{remote_bare}' id='ping1'><body>psst</body></message>")
            await remote.expect(lambda e: e.get("id") == "ping1", timeout=TIMEOUT)
            await absent(remote, presence(hidden))
            async with side.client(remote_user, presence=False, resource="again") as remote_again:
                await remote_again.send("<presence/>")  # its server probes romeo now
                offline = await remote_again.expect(
                    _presence_from_bare(romeo_bare), timeout=TIMEOUT
                )
                assert offline.get("type") == "unavailable", offline.attrib  # the offline answer
                await absent(remote_again, presence(hidden))
            await absent(remote, presence(hidden), settle=0.1)


def _presence_from_bare(bare_jid: str) -> Callable[[Element], bool]:
    return lambda e: e.tag == f"{C}presence" and (e.get("from") or "").split("/")[0] == bare_jid


async def room_join_and_leave_while_invisible(casper: TestServer, side: Side,
                                              driver: InvisibilityDriver) -> None:  # fmt: skip
    """Romeo, invisible, joins a room on the remote server's MUC service and leaves it:
    the room's own unavailable presence for him comes back (RFC 3921's lost unavailable)."""
    assert side.muc is not None
    room = f"lobby-{secrets.token_hex(4)}@{side.muc}"
    occupant = f"{room}/romeo"
    async with local_client(casper, "romeo") as romeo:
        await driver.go_invisible(romeo)
        if isinstance(driver, PrivacyListsDriver):
            await driver.show_to(romeo, room)  # XEP-0126 §3.5: allow presence-out to the room
        await romeo.send(
            f"<presence to='{occupant}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        )
        joined = await romeo.expect(presence(occupant), timeout=TIMEOUT)
        assert _has_status(joined, "110"), "the room's self-presence"
        await romeo.send(f"<presence to='{occupant}' type='unavailable'/>")
        left = await romeo.expect(presence(occupant, "unavailable"), timeout=TIMEOUT)
        assert _has_status(left, "110"), "the room's unavailable self-presence"


def _has_status(element: Element, code: str) -> bool:
    return any(s.get("code") == code for s in element.iter(f"{{{MUC_USER}}}status"))
