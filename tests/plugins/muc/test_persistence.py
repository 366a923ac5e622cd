"""Rooms in storage: persistent rooms, their affiliations and subject survive a restart.

Each test runs the server twice on the same SQLite file in ``tmp_path`` (``serve`` with
``storage=SQLiteStorage(path)``; the test harness itself only has in-memory storage),
with clients over loopback TCP. Rooms live in the core's service storage, tied to no
account: a room owned by a remote JID, or whose owner account was deleted, is kept.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio
import trustme
from casper.config import Config
from casper.jid import JID
from casper.server import C2SListener, serve
from casper.storage import SQLiteStorage
from casper.testing import TestServer
from casper_plugins.muc import store
from casper_plugins.muc.model import Room, RoomConfig

from tests.plugins.muc.conftest import (
    ACTORS,
    ADMIN_NS,
    CLIENT,
    INFO_NS,
    MUC,
    OWNER_NS,
    ROOM,
    admin,
    configure,
    create_room,
    enter,
    error_condition,
    item,
    join,
    query,
    room_sync,
)

TEMPORARY = f"tomb@{MUC}"


@asynccontextmanager
async def open_stored_server(path: Path, *, first_run: bool) -> AsyncIterator[TestServer]:
    """A server with ``muc`` whose storage is the SQLite file ``path``, on loopback TCP."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    config = Config(
        domain="localhost", port=0, tls_port=None, data_dir=path.parent, plugins=("muc",)
    )
    storage = SQLiteStorage(path)
    try:
        tcp = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = tcp[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            start = partial(serve, config, listeners=[C2SListener(lst) for lst in tcp],
                            storage=storage, ssl_context=server_ctx)  # fmt: skip
            server = await nursery.start(start)
            test_server = TestServer(server, None, client_ctx, tcp_port=port)
            for user in ACTORS:
                if first_run:
                    await test_server.add_account(user)
                else:
                    test_server.passwords[user] = "secret"
            yield test_server
            nursery.cancel_scope.cancel()
    finally:
        storage.close()


def stored_keys(path: Path) -> list[str]:
    """The rooms stored in the SQLite file ``path`` (service data of plugin ``muc``)."""
    storage = SQLiteStorage(path)
    try:
        return storage.service_keys(store.NAME)
    finally:
        storage.close()


def owners(path: Path, room: str) -> list[str]:
    """The owners of ``room`` as stored in ``path``."""
    storage = SQLiteStorage(path)
    try:
        value = storage.service_get(store.NAME, room)
    finally:
        storage.close()
    assert value is not None, f"{room} is not stored"
    loaded = store.load(JID.parse(room), value, history_size=1)
    return [str(j) for j in loaded.with_affiliation("owner")]


async def test_a_persistent_room_its_affiliations_and_subject_survive_a_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "casper.sqlite"
    async with open_stored_server(db, first_run=True) as srv:
        async with srv.client("romeo") as romeo:
            await create_room(romeo, ROOM, "Romeo", persistent=True, members_only=True,
                              whois="anyone", name="The Capulets")  # fmt: skip
            items = "".join(
                f"<item jid='{user}@localhost' affiliation='{affiliation}'/>"
                for user, affiliation in (
                    ("juliet", "member"),
                    ("nurse", "admin"),
                    ("tybalt", "outcast"),
                )
            )
            assert (await admin(romeo, ROOM, items)).get("type") == "result"
            await romeo.send(
                f"<message to='{ROOM}' type='groupchat'><subject>Feud</subject></message>"
            )
            await room_sync(romeo)
        await room_sync_with(srv)
    assert stored_keys(db) == [ROOM]

    async with open_stored_server(db, first_run=False) as srv:
        async with (
            srv.client("juliet") as juliet,
            srv.client("tybalt") as tybalt,
            srv.client("mercutio") as mercutio,
        ):
            info = await query(mercutio, ROOM, f"<query xmlns='{INFO_NS}'/>")
            features = {f.get("var") for f in info.iter(f"{{{INFO_NS}}}feature")}
            assert {"muc_persistent", "muc_membersonly", "muc_nonanonymous"} <= features
            identity = info.find(f"{{{INFO_NS}}}query/{{{INFO_NS}}}identity")
            assert identity is not None and identity.get("name") == "The Capulets"
            own, received = await enter(juliet, ROOM, "Juliet")
            assert item(own).get("affiliation") == "member"
            assert 201 not in {
                int(s.get("code", 0))
                for s in own.iter("{http://jabber.org/protocol/muc#user}status")
            }
            assert received[-1].findtext(f"{{{CLIENT}}}subject") == "Feud"
            assert error_condition(await join(tybalt, ROOM, "Tybalt")) == "forbidden"
            assert (
                error_condition(await join(mercutio, ROOM, "Mercutio")) == "registration-required"
            )
        async with srv.client("romeo") as romeo, srv.client("nurse") as nurse:
            form = await query(romeo, ROOM, f"<query xmlns='{OWNER_NS}'/>")  # still the owner
            assert form.get("type") == "result"
            own, _ = await enter(nurse, ROOM, "Nurse")
            assert item(own).get("affiliation") == "admin" and item(own).get("role") == "moderator"
            admins = await admin(nurse, ROOM, "<item affiliation='admin'/>", "get")
            assert [i.get("jid") for i in admins.iter(f"{{{ADMIN_NS}}}item")] == ["nurse@localhost"]
            owners = await admin(nurse, ROOM, "<item affiliation='owner'/>", "get")
            assert [i.get("jid") for i in owners.iter(f"{{{ADMIN_NS}}}item")] == ["romeo@localhost"]


async def room_sync_with(srv: TestServer) -> None:
    """One more round trip through the room task, from a fresh session."""
    async with srv.client("mercutio") as mercutio:
        await room_sync(mercutio)


async def test_temporary_and_destroyed_rooms_are_not_kept(tmp_path: Path) -> None:
    db = tmp_path / "casper.sqlite"
    async with open_stored_server(db, first_run=True) as srv:
        async with srv.client("romeo") as romeo:
            await create_room(romeo, TEMPORARY, "Romeo")
            await create_room(romeo, ROOM, "Romeo", persistent=True)
            await room_sync(romeo)
            assert stored_keys(db) == [ROOM]
            answer = await query(
                romeo, ROOM, f"<query xmlns='{OWNER_NS}'><destroy/></query>", "set"
            )
            assert answer.get("type") == "result"
        assert stored_keys(db) == []
    async with open_stored_server(db, first_run=False) as srv, srv.client("juliet") as juliet:
        for room in (ROOM, TEMPORARY):
            info = await query(juliet, room, f"<query xmlns='{INFO_NS}'/>")
            assert error_condition(info) == "item-not-found"


async def test_turning_persistence_off_forgets_the_room_and_an_empty_persistent_room_stays(
    tmp_path: Path,
) -> None:
    db = tmp_path / "casper.sqlite"
    async with open_stored_server(db, first_run=True) as srv:
        async with srv.client("romeo") as romeo:
            await create_room(romeo, ROOM, "Romeo", persistent=True)
            await romeo.send(f"<presence to='{ROOM}/Romeo' type='unavailable'/>")
            await room_sync(romeo)
            service = srv.server.pm.get_plugin("muc.service")
            assert JID.parse(ROOM) in service.rooms  # empty but persistent
            assert (await configure(romeo, ROOM, persistent=False)).get("type") == "result"
            await room_sync(romeo)
            assert JID.parse(ROOM) not in service.rooms  # empty and temporary: gone
        assert stored_keys(db) == []


async def test_an_unreadable_stored_room_is_skipped(tmp_path: Path) -> None:
    db = tmp_path / "casper.sqlite"
    async with open_stored_server(db, first_run=True):
        pass  # accounts
    storage = SQLiteStorage(db)
    storage.service_put(store.NAME, f"broken@{MUC}", "{not json")
    storage.service_put(store.NAME, f"future@{MUC}", '{"version": 99}')
    storage.service_put(store.NAME, "not a room", "{}")
    storage.service_put(store.NAME, MUC, "{}")  # the service, not a room
    good = Room(JID.parse(ROOM), RoomConfig(persistent=True, name="Kept"), history_size=5)
    good.set_affiliation(JID.parse("romeo@localhost"), "owner")
    storage.service_put(store.NAME, ROOM, store.dump(good))
    other = Room(JID.parse("hall@chat.elsewhere.example"), RoomConfig(persistent=True),
                 history_size=5)  # fmt: skip
    storage.service_put(store.NAME, str(other.jid), store.dump(other))  # another service's
    storage.close()
    async with open_stored_server(db, first_run=False) as srv, srv.client("juliet") as juliet:
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert info.get("type") == "result"
        broken = await query(juliet, f"broken@{MUC}", f"<query xmlns='{INFO_NS}'/>")
        assert error_condition(broken) == "item-not-found"
        service = srv.server.pm.get_plugin("muc.service")
        assert set(service.rooms) == {JID.parse(ROOM)}
    assert f"broken@{MUC}" in stored_keys(db)  # skipped, not deleted


def test_dump_and_load_round_trip() -> None:
    room = Room(JID.parse(ROOM), RoomConfig(persistent=True, whois="none", password_protected=True,
                                            password="pw", max_users=9), history_size=5)  # fmt: skip
    room.set_affiliation(JID.parse("romeo@localhost/orchard"), "owner")
    room.set_affiliation(JID.parse("tybalt@localhost"), "outcast")
    room.subject, room.subject_by = "Feud", "Romeo"
    loaded = store.load(room.jid, store.dump(room), history_size=5)
    assert loaded.config == room.config
    assert loaded.affiliations == {
        JID.parse("romeo@localhost"): "owner",
        JID.parse("tybalt@localhost"): "outcast",
    }
    assert (loaded.subject, loaded.subject_by, loaded.occupants, loaded.locked) == (
        "Feud",
        "Romeo",
        {},
        False,
    )


def test_stored_rooms_need_no_account(tmp_path: Path) -> None:
    """Rooms are service data: found with no account in the database at all."""
    storage = SQLiteStorage(tmp_path / "casper.sqlite")
    try:
        room = Room(JID.parse(ROOM), RoomConfig(persistent=True), history_size=5)
        room.set_affiliation(JID.parse("montague@verona.example"), "owner")
        store.save(storage, room.jid, store.dump(room))
        assert storage.list_accounts() == []
        assert store.stored_rooms(storage, MUC) == [(room.jid, store.dump(room))]
        assert store.stored_rooms(storage, "chat.elsewhere.example") == []
        store.delete(storage, room.jid)
        assert store.stored_rooms(storage, MUC) == []
        store.delete(storage, room.jid)  # absent: ignored
    finally:
        storage.close()


async def test_the_stored_room_stays_put_when_its_owners_change(tmp_path: Path) -> None:
    """Ownership moving to someone who is no account (a remote JID, a local JID with no
    account) changes the stored room in place: nothing moves, nothing is lost."""
    db = tmp_path / "casper.sqlite"
    async with (
        open_stored_server(db, first_run=True) as srv,
        srv.client("romeo") as romeo,
    ):
        await create_room(romeo, ROOM, "Romeo", persistent=True)
        await room_sync(romeo)
        assert stored_keys(db) == [ROOM]
        items = "<item jid='ghost@localhost' affiliation='owner'/>" + (
            "<item jid='montague@verona.example' affiliation='owner'/>"
        )
        assert (await admin(romeo, ROOM, items)).get("type") == "result"
        await admin(romeo, ROOM, "<item jid='romeo@localhost' affiliation='member'/>")
        await room_sync(romeo)
        assert stored_keys(db) == [ROOM]
        assert owners(db, ROOM) == ["ghost@localhost", "montague@verona.example"]
    async with open_stored_server(db, first_run=False) as srv, srv.client("romeo") as romeo:
        own, _ = await enter(romeo, ROOM, "Romeo")
        assert item(own).get("affiliation") == "member"


async def test_a_room_owned_by_a_remote_jid_persists(tmp_path: Path) -> None:
    """The owner of a room may be on another server; the room is stored all the same."""
    db = tmp_path / "casper.sqlite"
    async with (
        open_stored_server(db, first_run=True) as srv,
        srv.client("romeo") as romeo,
    ):
        await create_room(romeo, ROOM, "Romeo", persistent=True, name="Verona")
        items = "<item jid='montague@verona.example' affiliation='owner'/>" + (
            "<item jid='juliet@localhost' affiliation='admin'/>"
        )
        assert (await admin(romeo, ROOM, items)).get("type") == "result"
        # romeo steps down: the only owner left is remote
        answer = await admin(romeo, ROOM, "<item jid='romeo@localhost' affiliation='none'/>")
        assert answer.get("type") == "result"
        await romeo.send(f"<presence to='{ROOM}/Romeo' type='unavailable'/>")
        await room_sync(romeo)
    assert owners(db, ROOM) == ["montague@verona.example"]
    async with open_stored_server(db, first_run=False) as srv, srv.client("juliet") as juliet:
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        identity = info.find(f"{{{INFO_NS}}}query/{{{INFO_NS}}}identity")
        assert identity is not None and identity.get("name") == "Verona"
        own, _ = await enter(juliet, ROOM, "Juliet")
        assert item(own).get("affiliation") == "admin"
        listed = await admin(juliet, ROOM, "<item affiliation='owner'/>", "get")
        jids = [i.get("jid") for i in listed.iter(f"{{{ADMIN_NS}}}item")]
        assert jids == ["montague@verona.example"]


async def test_a_room_whose_owner_account_is_deleted_persists(tmp_path: Path) -> None:
    """Deleting the owner's account (``casper user delete``) leaves the room and its
    affiliations alone: a room is not an account's data."""
    db = tmp_path / "casper.sqlite"
    async with (
        open_stored_server(db, first_run=True) as srv,
        srv.client("romeo") as romeo,
    ):
        await create_room(romeo, ROOM, "Romeo", persistent=True, members_only=True)
        items = "<item jid='juliet@localhost' affiliation='admin'/>"
        assert (await admin(romeo, ROOM, items)).get("type") == "result"
        await room_sync(romeo)
    storage = SQLiteStorage(db)
    try:
        storage.delete_account("romeo@localhost")
        assert not storage.account_exists("romeo@localhost")
    finally:
        storage.close()
    assert stored_keys(db) == [ROOM]
    async with (
        open_stored_server(db, first_run=False) as srv,
        srv.client("juliet") as juliet,
        srv.client("mercutio") as mercutio,
    ):
        own, _ = await enter(juliet, ROOM, "Juliet")
        assert item(own).get("affiliation") == "admin"
        listed = await admin(juliet, ROOM, "<item affiliation='owner'/>", "get")
        assert [i.get("jid") for i in listed.iter(f"{{{ADMIN_NS}}}item")] == ["romeo@localhost"]
        refused = await join(mercutio, ROOM, "Mercutio")
        assert error_condition(refused) == "registration-required"  # still members-only
