"""privacy-lists and directed presence: joining a room while invisible.

The decision (see the plugin docstring): outbound *directed* presence is the user's own
act. A presence-out deny stops it only when the deciding item is a ``jid`` item; a
fall-through, group or subscription deny does not. Whoever the session sent directed
presence to stays able to see it (a list edit doesn't send the room unavailable), and
their availability presence reaches the session despite a presence-in deny.

The room is a fake component on ``conference.localhost`` (``Server.components``): it
records what it is sent and reflects presence the way a MUC service does (another
occupant's presence, then the joiner's own).
"""

from __future__ import annotations

import pytest
from casper.jid import JID
from casper.stanza import Stanza, make_stanza
from casper.testing import TestServer

from tests.plugins.privacy_lists.privacy_kit import (
    error_condition,
    is_presence,
    link,
    open_privacy_server,
    set_active,
    set_list,
    sync,
)

ROOM = "garden@conference.localhost"
NICK = f"{ROOM}/romeo"
OTHER = f"{ROOM}/mercutio"
ORCHARD = "romeo@localhost/orchard"
INVISIBLE = "<item action='deny' order='1'><presence-out/></item>"


class FakeRoom:
    """A MUC-like component: records stanzas, reflects presence to the joiner."""

    def __init__(self, srv: TestServer) -> None:
        self.server = srv.server
        self.received: list[Stanza] = []
        srv.server.components["conference.localhost"] = self

    def __call__(self, stanza: Stanza) -> bool:
        self.received.append(stanza)
        if stanza.kind != "presence" or stanza.from_ is None or stanza.to is None:
            return True
        occupant = stanza.from_
        if stanza.type is None:
            self._reflect(JID.parse(OTHER), occupant, None)
        self._reflect(stanza.to, occupant, stanza.type)
        return True

    def _reflect(self, from_: JID, to: JID, type_: str | None) -> None:
        self.server.presence.deliver_presence(
            make_stanza("presence", from_=from_, to=to, type=type_)
        )

    def types(self) -> list[str | None]:
        return [s.type for s in self.received if s.kind == "presence"]


async def joined(romeo) -> set[str]:
    """Send the join; return the occupants' JIDs whose presence came back."""
    await romeo.send(f"<presence to='{NICK}'/>")
    return {e.get("from") for e in await sync(romeo) if is_presence(ROOM, None)(e)}


LISTS = {
    "fall-through deny": INVISIBLE,
    "subscription denies": (
        "<item type='subscription' value='none' action='deny' order='1'><presence-out/></item>"
        "<item type='subscription' value='both' action='deny' order='2'><presence-out/></item>"
    ),
    "deny all kinds": "<item action='deny' order='1'/>",
}


@pytest.mark.parametrize("items", LISTS.values(), ids=LISTS)
async def test_invisible_user_can_join_a_room_and_stays_in_it(items):
    async with open_privacy_server() as srv:
        await link(srv, "romeo", "juliet", "both")
        room = FakeRoom(srv)
        async with (
            srv.client("juliet", presence=True) as juliet,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await set_list(romeo, "invisible", items)
            await set_active(romeo, "invisible")
            await romeo.send("<presence/>")
            await sync(romeo)
            assert await joined(romeo) == {OTHER, NICK}
            assert room.types() == [None]
            assert not any(is_presence(ORCHARD)(e) for e in await sync(juliet))
            # editing the list re-asks the visibility decision: the room keeps the user
            await set_list(romeo, "invisible", items)
            await sync(romeo)
            assert room.types() == [None]
            # leaving is directed too
            await romeo.send(f"<presence to='{NICK}' type='unavailable'/>")
            await sync(romeo)
            assert room.types() == [None, "unavailable"]
            assert not any(is_presence(ORCHARD)(e) for e in await sync(juliet))


async def test_an_explicit_jid_deny_stops_directed_presence():
    async with open_privacy_server() as srv:
        room = FakeRoom(srv)
        async with srv.client("romeo", resource="orchard", presence=True) as romeo:
            await set_list(romeo, "no-garden",
                           f"<item type='jid' value='{ROOM}' action='deny' order='1'><presence-out/></item>"
                           "<item action='deny' order='2'><presence-out/></item>")  # fmt: skip
            await set_active(romeo, "no-garden")
            await romeo.send(f"<presence to='{NICK}' id='join'/>")
            (error,) = [e for e in await sync(romeo) if e.get("id") == "join"]
            assert error.get("type") == "error" and error_condition(error) == "not-acceptable"
            assert room.received == []


async def test_room_presence_passes_a_presence_in_deny_but_contacts_do_not():
    async with open_privacy_server() as srv:
        await link(srv, "romeo", "juliet", "both")
        FakeRoom(srv)
        async with (
            srv.client("juliet", resource="balcony", presence=True) as juliet,
            srv.client("romeo", resource="orchard", presence=True) as romeo,
        ):
            await sync(romeo)
            await set_list(
                romeo,
                "hermit",
                "<item action='deny' order='1'><presence-in/><presence-out/></item>",
            )
            await set_active(romeo, "hermit")
            await sync(romeo)
            assert await joined(romeo) == {OTHER, NICK}
            await juliet.send("<presence><show>chat</show></presence>")
            await sync(juliet)
            assert not any(is_presence("juliet@localhost")(e) for e in await sync(romeo))


async def test_directed_presence_to_a_contact_while_invisible_shows_only_to_that_contact():
    async with open_privacy_server(("romeo", "juliet", "nurse")) as srv:
        await link(srv, "romeo", "juliet", "both")
        await link(srv, "romeo", "nurse", "both")
        async with (
            srv.client("juliet", resource="balcony", presence=True) as juliet,
            srv.client("nurse", presence=True) as nurse,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await sync(juliet)
            await sync(nurse)
            await set_list(romeo, "invisible", INVISIBLE)
            await set_active(romeo, "invisible")
            await romeo.send("<presence/>")
            await romeo.send("<presence to='juliet@localhost'><status>only you</status></presence>")
            await sync(romeo)
            assert any(is_presence(ORCHARD, None)(e) for e in await sync(juliet))
            assert not any(is_presence(ORCHARD)(e) for e in await sync(nurse))
            await set_list(romeo, "invisible", INVISIBLE)  # re-asked: juliet keeps seeing
            assert not any(is_presence(ORCHARD)(e) for e in await sync(juliet))
            # an explicit jid deny does hide from her
            await set_list(romeo, "invisible",
                           "<item type='jid' value='juliet@localhost' action='deny' order='1'><presence-out/></item>"
                           "<item action='deny' order='2'><presence-out/></item>")  # fmt: skip
            assert any(is_presence(ORCHARD, "unavailable")(e) for e in await sync(juliet))


# ---------------------------------------------------------------- with the real MUC service

MUC_NS = "http://jabber.org/protocol/muc"
USER_NS = f"{MUC_NS}#user"
SERVICE = "conference.localhost"


async def room_sync(client) -> list:
    """Ping the MUC service: its room task answers after what it had to send before."""
    await client.send(
        f"<iq type='get' id='muc-sync' to='{SERVICE}'><ping xmlns='urn:xmpp:ping'/></iq>"
    )
    received = []
    while True:
        element = await client.recv()
        if element.get("id") == "muc-sync":
            return received
        received.append(element)


async def enter(client, nick: str) -> None:
    await client.send(f"<presence to='{ROOM}/{nick}'><x xmlns='{MUC_NS}'/></presence>")
    await client.expect(
        lambda e: (
            e.get("from") == f"{ROOM}/{nick}"
            and any(s.get("code") == "110" for s in e.iter(f"{{{USER_NS}}}status"))
        )
    )
    await room_sync(client)


def groupchat(body: str):
    return lambda e: e.get("type") == "groupchat" and e.findtext("{jabber:client}body") == body


async def test_invisible_user_in_a_real_room_and_a_blocked_occupant_is_dropped_not_bounced():
    """With the muc plugin: romeo joins while invisible to his contacts, and blocks one
    occupant's messages. The blocked groupchat is dropped (an error back would get him
    kicked, status 333), so he stays in the room and hears the others."""
    settings = {"muc": {"lock_new_rooms": False}}
    async with open_privacy_server(
        ("romeo", "juliet", "nurse", "benvolio"), plugins=("muc",), plugin_settings=settings
    ) as srv:
        await link(srv, "romeo", "benvolio", "both")
        async with (
            srv.client("benvolio", presence=True) as benvolio,
            srv.client("juliet", presence=True) as juliet,
            srv.client("nurse", presence=True) as nurse,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await sync(benvolio)
            await enter(juliet, "juliet")
            await enter(nurse, "nurse")
            await set_list(romeo, "invisible",
                           f"<item type='jid' value='{ROOM}/nurse' action='deny' order='1'><message/></item>"
                           "<item action='deny' order='2'><presence-out/></item>")  # fmt: skip
            await set_active(romeo, "invisible")
            await romeo.send("<presence/>")
            await enter(romeo, "romeo")
            assert any(e.get("from") == NICK for e in await room_sync(juliet))
            await juliet.send(
                f"<message to='{ROOM}' type='groupchat'><body>from juliet</body></message>"
            )
            await nurse.send(
                f"<message to='{ROOM}' type='groupchat'><body>from nurse</body></message>"
            )
            await juliet.send(
                f"<message to='{ROOM}' type='groupchat'><body>juliet again</body></message>"
            )
            await room_sync(juliet)
            got = await room_sync(romeo)
            assert any(groupchat("from juliet")(e) for e in got)
            assert any(groupchat("juliet again")(e) for e in got)
            assert not any(groupchat("from nurse")(e) for e in got)
            assert not any(e.get("type") == "unavailable" and e.get("from") == NICK for e in got)
            assert not any(is_presence(ORCHARD)(e) for e in await sync(benvolio))
