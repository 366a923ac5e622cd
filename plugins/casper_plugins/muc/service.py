"""The MUC service: the component the core hands stanzas to, and the task that runs rooms.

The core calls :meth:`MucService.handle` synchronously for every stanza addressed to the
service's domain (presence from the presence service, messages and IQs from the router).
It only queues the stanza on a bounded memory channel and answers ``True``; a full queue
answers ``False``, and the core then treats the service as unreachable. One task started
in ``casper_serve`` loads the stored rooms, then takes stanzas off the queue in order and,
for each: runs the sans-IO room logic, writes the room to storage if its persistent
state changed (before any answer goes out, so an acknowledged change is durable), and
sends what the room said — presence with ``server.presence.deliver_presence`` (it reaches
a session that is connected but unavailable, like an invisible one), messages and IQs with
``server.router.route``, so the recipients' filters (privacy lists, blocking) decide, as
for any sender.

Rooms are kept in the core's service storage (see :mod:`.store`), whoever owns them.
With several workers (``[server] workers``), a room lives on the worker its JID says, as
an account does: the core forwards its stanzas there, and each worker loads only its own
stored rooms. The service's room list also shows the stored rooms of the other workers; a
temporary room is listed only by the worker that runs it.

An occupant the room puts out without its asking (kick, ban, lost membership, an error
from its server, the room destroyed) is told so by the room, so the service has the core
drop the room's JIDs from its session's directed presence and ``seen_by``
(``server.presence.forget``, which sends nothing): the session's later unavailable goes
nowhere near a room it is no longer in.

When a session ends without its unavailable reaching a room (``casper_session_ended``),
its occupants leave: no ghosts.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import trio
from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.plugins import GuardedNursery
from casper.stanza import Stanza, qname

from . import admin, chat, disco, occupancy, store
from .config import Config
from .model import ADMIN_NS, MUC_NS, OWNER_NS, Outcome, Room, RoomConfig, nick_key, normalize_nick
from .stanzas import error_reply

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session

log = logging.getLogger("casper_plugins.muc")

INFO_QUERY = qname(disco.INFO_NS, "query")
ITEMS_QUERY = qname(disco.ITEMS_NS, "query")
PING = qname(disco.PING_NS, "ping")
ADMIN_QUERY = qname(ADMIN_NS, "query")
OWNER_QUERY = qname(OWNER_NS, "query")


class MucService:
    """One MUC service (``conference.<domain>``) of one server."""

    def __init__(self, server: Server, config: Config) -> None:
        self.server = server
        self.config = config
        self.domain = config.service_domain(server.domain)
        self.rooms: dict[JID, Room] = {}
        self._stored: set[JID] = set()  # rooms with a copy in storage
        self._listed_elsewhere: dict[JID, Room] = {}  # stored rooms other workers run
        self._send, self._inbox = trio.open_memory_channel[Stanza | JID](config.queue_size)
        self.ready = trio.Event()  # set once the stored rooms are loaded

    # ------------------------------------------------------------------ hooks, component

    def handle(self, stanza: Stanza) -> bool:
        """The component handler: queue the stanza; never blocks, never touches rooms."""
        try:
            self._send.send_nowait(stanza)
        except trio.WouldBlock:
            log.warning("MUC queue full; refusing %r", stanza)
            return False
        return True

    @hookimpl
    def casper_serve(self, server: Server, nursery: GuardedNursery) -> None:
        nursery.start_soon(self.run)

    @hookimpl
    def casper_session_ended(self, session: Session) -> None:
        self._session_ended(session.jid)

    @hookimpl
    def casper_remote_session_ended(self, jid: JID) -> None:
        self._session_ended(jid)  # its rooms may live here

    def _session_ended(self, jid: JID) -> None:
        try:
            self._send.send_nowait(jid)
        except trio.WouldBlock:
            log.warning("MUC queue full; %s may stay listed in rooms", jid)

    async def run(self) -> None:
        """Load the stored rooms, then process the queue until the server stops."""
        await self.load()
        self.ready.set()
        async for item in self._inbox:
            try:
                if isinstance(item, JID):
                    await self._session_gone(item)
                else:
                    await self.process(item)
            except Exception:
                log.exception("MUC failed on %r", item)

    async def load(self) -> None:
        found = await self.server.db(store.stored_rooms, self.server.storage, self.domain)
        cluster = self.server.cluster
        for jid, text in found:
            if cluster is not None and cluster.elsewhere(jid):
                continue  # that worker runs it
            try:
                room = store.load(jid, text, history_size=self.config.history_size)
            except (ValueError, TypeError) as exc:
                log.error("stored room %s is unreadable and was skipped: %s", jid, exc)
                continue
            self.rooms[jid] = room
            self._stored.add(jid)
        log.info("MUC service %s: %d stored rooms loaded", self.domain, len(self.rooms))

    # ------------------------------------------------------------------ one input

    async def process(self, stanza: Stanza) -> None:
        if self.server.cluster is not None and _lists_rooms(stanza):
            await self._load_listing()
        out = Outcome()
        room: Room | None = None
        try:
            room = self._dispatch(stanza, time.time(), out)
        except StanzaError as exc:
            room = self._room_of(stanza)
            out = Outcome([] if stanza.type == "error" else [error_reply(stanza, exc)])
        await self._finish(room, out)

    async def _session_gone(self, jid: JID) -> None:
        for room in list(self.rooms.values()):
            occupant = room.by_real(jid)
            if occupant is not None:
                out = Outcome()
                occupancy.leave(room, occupant, None, out)
                await self._finish(room, out)

    def _room_of(self, stanza: Stanza) -> Room | None:
        to = stanza.to
        return None if to is None or to.local is None else self.rooms.get(to.bare)

    async def _finish(self, room: Room | None, out: Outcome) -> None:
        if room is not None:
            self._forget(room.jid, out.removed)  # before any await: see _forget
            gone = out.destroyed or (not room.occupants and not room.config.persistent)
            if gone and self.rooms.get(room.jid) is room:
                del self.rooms[room.jid]
            await self._persist(room, out)
        for stanza in out.stanzas:
            try:
                if stanza.kind == "presence":
                    self.server.presence.deliver_presence(stanza)
                else:
                    await self.server.router.route(stanza)
            except Exception:
                log.exception("MUC could not send %r", stanza)

    def _forget(self, room: JID, removed: list[JID]) -> None:
        """Drop ``room``'s JIDs from the presence bookkeeping of the sessions it put out
        (every JID of the room: a session may have sent presence to nicks the room renamed
        or refused). Called with no await since the room logic ran, so a presence the
        session sends the room afterwards is recorded again by the core. With several
        workers, a session living on another one forgets when the message gets there."""
        for real in removed:
            if real.domain != self.server.domain or real.resource is None:
                continue
            self.server.presence.forget_all_of(real, room)  # its session may live elsewhere

    async def _load_listing(self) -> None:
        """With several workers: the stored rooms other workers run, for the service's
        room list (a temporary room is listed by the worker that runs it only)."""
        found = await self.server.db(store.stored_rooms, self.server.storage, self.domain)
        listing = {}
        for jid, text in found:
            if jid in self.rooms:
                continue
            try:
                listing[jid] = store.load(jid, text, history_size=0)
            except (ValueError, TypeError):
                continue  # logged by the worker that runs it
        self._listed_elsewhere = listing

    async def _persist(self, room: Room, out: Outcome) -> None:
        storage, db = self.server.storage, self.server.db
        try:
            if out.destroyed or not room.config.persistent:
                if room.jid in self._stored:
                    await db(store.delete, storage, room.jid)
                    self._stored.discard(room.jid)
            elif out.save:
                await db(store.save, storage, room.jid, store.dump(room))
                self._stored.add(room.jid)
        except Exception:
            log.exception("MUC could not store room %s", room.jid)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, stanza: Stanza, now: float, out: Outcome) -> Room | None:
        to, sender = stanza.to, stanza.from_
        assert to is not None
        if sender is None:
            return None
        if to.local is None:
            if stanza.kind == "iq":
                self._service_iq(stanza, out)
            return None  # presence and messages to the service itself mean nothing
        room = self.rooms.get(to.bare)
        if stanza.kind == "presence":
            created = False
            if room is None:
                if stanza.type is not None:
                    return None
                room, created = self._create(stanza), True
            occupancy.handle_presence(room, stanza, now, out, created=created)
        elif stanza.kind == "message":
            if room is None:
                if stanza.type != "error":
                    raise StanzaError("item-not-found", "no such room")
                return None
            chat.handle_message(room, stanza, now, out)
        else:
            self._room_iq(room, stanza, out)
        return room

    def _create(self, stanza: Stanza) -> Room:
        """A new room, owned by its creator; locked until configured (XEP-0045 §10.1.1)
        unless the creator speaks groupchat 1.0 (no MUC ``<x/>``: an instant room)."""
        assert stanza.to is not None and stanza.from_ is not None
        if not normalize_nick(stanza.to.resource or ""):
            raise StanzaError("jid-malformed", "join the room as room@service/nick")
        config = RoomConfig(max_users=self.config.max_occupants)
        room = Room(stanza.to.bare, config, history_size=self.config.history_size)
        room.set_affiliation(stanza.from_, "owner")
        room.locked = self.config.lock_new_rooms and stanza.find(MUC_NS, "x") is not None
        self.rooms[room.jid] = room
        log.info("room %s created by %s", room.jid, stanza.from_.bare)
        return room

    def _service_iq(self, stanza: Stanza, out: Outcome) -> None:
        assert stanza.to is not None
        if stanza.type not in ("get", "set"):
            return
        tag = _payload_tag(stanza)
        if stanza.to.resource is not None or stanza.type != "get":
            raise StanzaError("service-unavailable")
        if tag == INFO_QUERY:
            payload: Element | None = disco.service_info(self.config.name)
        elif tag == ITEMS_QUERY:
            payload = disco.service_items([*self.rooms.values(), *self._listed_elsewhere.values()])
        elif tag == PING:
            payload = None
        else:
            raise StanzaError("service-unavailable")
        _check_no_node(stanza)
        out.send(stanza.result(payload))

    def _room_iq(self, room: Room | None, stanza: Stanza, out: Outcome) -> None:
        to, requester = stanza.to, stanza.from_
        assert to is not None and requester is not None
        if stanza.type not in ("get", "set"):
            return  # results and errors: the room forwards no IQs, so expects none
        if room is None or (room.locked and room.affiliation(requester) != "owner"):
            raise StanzaError("item-not-found", "no such room")
        tag, get = _payload_tag(stanza), stanza.type == "get"
        if to.resource is not None:
            out.send(stanza.result(_occupant_iq(room, stanza, tag)))
            return
        payload: Element | None
        if get and tag == INFO_QUERY:
            _check_no_node(stanza)
            payload = disco.room_info(room)
        elif get and tag == ITEMS_QUERY:
            _check_no_node(stanza)
            payload = disco.room_items(room, requester)
        elif tag == ADMIN_QUERY:
            payload = admin.handle_admin(room, stanza, out)
        elif tag == OWNER_QUERY:
            payload = admin.handle_owner(room, stanza, out, self.config.max_occupants)
        elif get and tag == PING:
            payload = None
        else:
            raise StanzaError("service-unavailable")
        out.send(stanza.result(payload))


def _occupant_iq(room: Room, stanza: Stanza, tag: str) -> Element | None:
    """IQs to an occupant JID are not forwarded; a ping to one's own occupant JID is
    answered (XEP-0410 self-ping), and a non-occupant learns it is not joined."""
    assert stanza.to is not None and stanza.to.resource is not None
    occupant = room.by_real(stanza.from_)
    if occupant is None:
        raise StanzaError("not-acceptable", "you are not in the room")
    if (
        tag == PING
        and stanza.type == "get"
        and nick_key(stanza.to.resource) == nick_key(occupant.nick)
    ):
        return None
    raise StanzaError("service-unavailable", "IQs are not passed on to occupants")


def _payload_tag(stanza: Stanza) -> str:
    payload = stanza.payload
    return "" if payload is None else payload.tag


def _check_no_node(stanza: Stanza) -> None:
    payload = stanza.payload
    if payload is not None and payload.get("node") is not None:
        raise StanzaError("item-not-found", "no such node")


def _lists_rooms(stanza: Stanza) -> bool:
    """Whether ``stanza`` asks the service itself for its rooms (disco#items)."""
    to = stanza.to
    return (
        stanza.kind == "iq" and stanza.type == "get" and to is not None and to.local is None
        and stanza.element.find(ITEMS_QUERY) is not None
    )  # fmt: skip
