"""Shared helpers for the MUC plugin's tests (XEP-0045), and a ``casper serve`` with MUC.

Actors: ``romeo`` usually creates and owns the room; ``juliet``, ``nurse``, ``tybalt`` and
``mercutio`` join it. Every scripted test runs the real server on a loopback TCP socket
(``tcp=True``) with scripted :class:`casper.testing.TestClient` occupants.

The room runs in its own task, behind a queue: a round trip to the *server*
(``tests.helpers.sync``) does not wait for the room. :func:`room_sync` pings the MUC
service instead: the room handles its queue in order and sends in order, so once the
answer is here, everything the room had to say to this client before has arrived.

Import the helpers with ``from tests.plugins.muc.conftest import ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import error_condition, new_id, query
from tests.realnet.conftest import DIRECT_TLS, STARTTLS, CasperProcess, Peer, RunningServer

__all__ = [
    "ACTORS",
    "ADMIN_NS",
    "CLIENT",
    "DATA_NS",
    "DELAY",
    "INFO_NS",
    "IQ",
    "ITEMS_NS",
    "MESSAGE",
    "MUC",
    "MUC_NS",
    "OWNER_NS",
    "PRESENCE",
    "ROOM",
    "USER_NS",
    "Match",
    "admin",
    "codes",
    "configure",
    "create_room",
    "enter",
    "error_condition",
    "everything",
    "item",
    "join",
    "message_from",
    "new_id",
    "open_muc",
    "open_room",
    "presence_from",
    "query",
    "quiet",
    "room_sync",
    "say",
    "subject_message",
]  # fmt: skip

MUC = "conference.localhost"
ROOM = f"capulets@{MUC}"
ACTORS = ("romeo", "juliet", "nurse", "tybalt", "mercutio")
CLIENT = "jabber:client"
PRESENCE = f"{{{CLIENT}}}presence"
MESSAGE = f"{{{CLIENT}}}message"
IQ = f"{{{CLIENT}}}iq"
MUC_NS = "http://jabber.org/protocol/muc"
USER_NS = f"{MUC_NS}#user"
ADMIN_NS = f"{MUC_NS}#admin"
OWNER_NS = f"{MUC_NS}#owner"
DATA_NS = "jabber:x:data"
INFO_NS = "http://jabber.org/protocol/disco#info"
ITEMS_NS = "http://jabber.org/protocol/disco#items"
DELAY = "{urn:xmpp:delay}delay"
PING_NS = "urn:xmpp:ping"

Match = Callable[[Element], bool]


def everything(_: Element) -> bool:
    return True


def open_muc(*, plugins: tuple[str, ...] = (), accounts: tuple[str, ...] = ACTORS,
             settings: dict[str, object] | None = None,
             **kwargs: Any) -> AbstractAsyncContextManager[TestServer]:  # fmt: skip
    """A server with the ``muc`` plugin (and ``plugins``) on a loopback TCP socket."""
    return open_test_server(plugins=["muc", *plugins], accounts=accounts, tcp=True,
                            plugin_settings={"muc": settings} if settings else None,
                            **kwargs)  # fmt: skip


# ---------------------------------------------------------------- matching


def codes(element: Element) -> set[int]:
    """The muc#user status codes of a stanza."""
    return {
        int(s.get("code", "0")) for s in element.iterfind(f"{{{USER_NS}}}x/{{{USER_NS}}}status")
    }


def item(element: Element) -> Element:
    found = element.find(f"{{{USER_NS}}}x/{{{USER_NS}}}item")
    assert found is not None, element.attrib
    return found


def presence_from(sender: str, type_: str | None = None) -> Match:
    return lambda e: e.tag == PRESENCE and e.get("from") == sender and e.get("type") == type_


def message_from(sender: str, type_: str | None = "groupchat") -> Match:
    return lambda e: e.tag == MESSAGE and e.get("from") == sender and e.get("type") == type_


def subject_message(room: str) -> Match:
    def match(e: Element) -> bool:
        return (
            e.tag == MESSAGE
            and (e.get("from") or "").split("/")[0] == room
            and e.find(f"{{{CLIENT}}}subject") is not None
            and e.find(f"{{{CLIENT}}}body") is None
        )

    return match


# ---------------------------------------------------------------- conversation


async def room_sync(client: TestClient) -> list[Element]:
    """Ping the MUC service; return what ``client`` received before the answer."""
    ping_id = new_id("mucsync")
    await client.send(f"<iq type='get' id='{ping_id}' to='{MUC}'><ping xmlns='{PING_NS}'/></iq>")
    received: list[Element] = []
    while True:
        element = await client.recv()
        if element.tag == IQ and element.get("id") == ping_id:
            assert element.get("type") == "result", element.attrib
            return received
        received.append(element)


async def quiet(client: TestClient, match: Match = everything) -> list[Element]:
    """Assert that nothing matching ``match`` reached ``client`` (after a room round trip);
    return what did arrive."""
    received = await room_sync(client)
    unexpected = [e for e in received if match(e)]
    assert not unexpected, [(e.tag, e.attrib) for e in unexpected]
    return received


async def join(client: TestClient, room: str, nick: str, *, password: str | None = None,
               history: str = "", muc: bool = True) -> Element:  # fmt: skip
    """Send join presence; return the self-presence (status 110) or the presence error."""
    inner = (f"<password>{password}</password>" if password is not None else "") + history
    x = f"<x xmlns='{MUC_NS}'>{inner}</x>" if muc else ""
    await client.send(f"<presence to='{room}/{nick}'>{x}</presence>")

    def answer(e: Element) -> bool:
        from_room = (e.get("from") or "").split("/")[0] == room
        return e.tag == PRESENCE and from_room and (e.get("type") == "error" or 110 in codes(e))

    return await client.expect(answer)


async def enter(
    client: TestClient, room: str, nick: str, **kwargs: Any
) -> tuple[Element, list[Element]]:
    """Join successfully; return the self-presence and everything up to the subject
    (which always comes last: XEP-0045 §7.2.15)."""
    own = await join(client, room, nick, **kwargs)
    assert own.get("type") is None, (error_condition(own), own.attrib)
    received: list[Element] = []
    while True:
        element = await client.recv()
        received.append(element)
        if subject_message(room)(element):
            return own, received


FIELDS = {
    "name": "roomname", "description": "roomdesc", "persistent": "persistentroom",
    "public": "publicroom", "members_only": "membersonly", "moderated": "moderatedroom",
    "password_protected": "passwordprotectedroom", "password": "roomsecret", "whois": "whois",
    "change_subject": "changesubject", "allow_invites": "allowinvites", "allow_pm": "allowpm",
    "max_users": "maxusers",
}  # fmt: skip


def form(**fields: object) -> str:
    parts = [f"<field var='FORM_TYPE'><value>{MUC_NS}#roomconfig</value></field>"]
    for name, value in fields.items():
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        parts.append(f"<field var='muc#roomconfig_{FIELDS[name]}'><value>{text}</value></field>")
    return f"<x xmlns='{DATA_NS}' type='submit'>{''.join(parts)}</x>"


async def configure(client: TestClient, room: str, **fields: object) -> Element:
    """Submit the configuration form with ``fields``; return the IQ answer."""
    return await query(client, room, f"<query xmlns='{OWNER_NS}'>{form(**fields)}</query>", "set")


async def create_room(client: TestClient, room: str, nick: str, **fields: object) -> Element:
    """Create ``room`` as its owner, configured with ``fields`` (an instant room without);
    return the self-presence."""
    own, _ = await enter(client, room, nick)
    assert codes(own) >= {110, 201}, codes(own)
    answer = await configure(client, room, **fields)
    assert answer.get("type") == "result", error_condition(answer)
    return own


@contextlib.asynccontextmanager
async def open_room(
    *occupants: str, later: tuple[str, ...] = (), **fields: object
) -> AsyncIterator[list[TestClient]]:
    """``open_muc()`` with romeo, ``occupants`` and ``later`` logged in, in that order; romeo
    creates :data:`ROOM` as "Romeo" (configured with ``fields``), then each of ``occupants``
    enters it nicknamed after the account ("Juliet"). Yields the clients, romeo's first:
    ``async with open_room("juliet", later=("nurse",)) as (romeo, juliet, nurse):``."""
    async with open_muc() as srv, AsyncExitStack() as logins:
        names = ("romeo", *occupants, *later)
        clients = [await logins.enter_async_context(srv.client(name)) for name in names]
        await create_room(clients[0], ROOM, "Romeo", **fields)
        for name, client in zip(occupants, clients[1:]):
            await enter(client, ROOM, name.capitalize())
        yield clients


async def say(client: TestClient, room: str, body: str, *, type_: str = "groupchat") -> str:
    msg_id = new_id("m")
    await client.send(
        f"<message to='{room}' id='{msg_id}' type='{type_}'><body>{body}</body></message>"
    )
    return msg_id


async def admin(client: TestClient, room: str, items: str, type_: str = "set") -> Element:
    return await query(client, room, f"<query xmlns='{ADMIN_NS}'>{items}</query>", type_)


# ---------------------------------------------------------------- `casper serve` and slixmpp


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnet: runs `casper` subprocesses and talks to them over real sockets"
    )


class MucPeer(Peer):
    """A slixmpp peer with the MUC plugin (xep_0045) and queues of its events."""

    EVENTS = (*Peer.EVENTS, "groupchat_message", "groupchat_subject", "groupchat_presence",
              "groupchat_invite", "groupchat_config_status")  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.xmpp.register_plugin("xep_0045")
        self.xmpp.register_plugin("xep_0004")

    @property
    def muc(self) -> Any:
        return self.xmpp.plugin["xep_0045"]


@pytest.fixture
def muc_casper(tmp_path: Path) -> Iterator[RunningServer]:
    """``casper serve`` with ``[plugins] enable = ["muc"]``, ports chosen by the kernel;
    romeo, juliet and nurse exist; checked for a clean exit like the realnet fixture."""
    config_file = tmp_path / "casper.toml"
    config_file.write_text(
        '[server]\ntls_port = 0\n\n[plugins]\nenable = ["muc"]\n\n[log]\nlevel = "info"\n'
    )
    data_dir = tmp_path / "data"
    process = CasperProcess(
        ["serve", "--config", config_file, "--port", "0", "--data-dir", data_dir], tmp_path
    )
    try:
        listeners = {lst.kind: lst for lst in process.wait_for_listeners(2)}
        if set(listeners) != {STARTTLS, DIRECT_TLS}:
            pytest.fail(f"casper serve did not start:\n{process.log}")
        server = RunningServer(process, data_dir, config_file, port=listeners[STARTTLS].port,
                               tls_port=listeners[DIRECT_TLS].port)  # fmt: skip
        for user in ("romeo", "juliet", "nurse"):
            server.add_user(user)
        yield server
        process.drain()
        crashed = process.proc.poll()
    finally:
        status = process.stop()
        print(f"--- casper serve log ---\n{process.log}")
    assert crashed is None, f"casper serve died during the test with status {crashed}"
    assert "Traceback" not in process.log, "casper serve logged a traceback"
    assert status == 0, f"casper serve exited with status {status} on SIGINT"


@pytest.fixture
def open_muc_peer(
    muc_casper: RunningServer,
) -> Callable[..., contextlib.AbstractAsyncContextManager[MucPeer]]:
    """``open_muc_peer(local, *, presence=True)``: a logged-in :class:`MucPeer`, closed on exit."""

    @contextlib.asynccontextmanager
    async def open_(local: str, *, presence: bool = True, **options: Any) -> AsyncIterator[MucPeer]:
        peer = MucPeer(muc_casper, local, "secret", **options)
        try:
            await peer.login(initial_presence=presence)
            yield peer
        finally:
            await peer.close()

    return open_
