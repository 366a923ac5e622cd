"""slixmpp's MUC plugin (xep_0045) as a real client against a ``casper serve`` subprocess.

The server is the ``casper`` command with ``[plugins] enable = ["muc"]`` (fixture
``muc_casper``); the clients are slixmpp peers over real TCP and TLS. The tests are plain
sync functions that run asyncio themselves, so pytest-trio leaves them alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
from slixmpp.exceptions import PresenceError

pytestmark = pytest.mark.realnet

ROOM = "capulets@conference.localhost"
TIMEOUT = 10.0


def run(coro: Coroutine[Any, Any, None], timeout: float = 45.0) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, timeout)

    asyncio.run(bounded())


async def create_room(peer: Any, nick: str, **values: object) -> set[int]:
    """Join (creating the room), then submit the owner's form with ``values``."""
    presence, *_ = await peer.muc.join_muc_wait(ROOM, nick, maxstanzas=0, timeout=TIMEOUT)
    form = await peer.muc.get_room_config(ROOM, timeout=TIMEOUT)
    form.set_values({f"muc#roomconfig_{name}": value for name, value in values.items()})
    await peer.muc.set_room_config(ROOM, form, timeout=TIMEOUT)
    return presence["muc"]["status_codes"]


def test_slixmpp_creates_configures_chats_kicks_and_bans(muc_casper, open_muc_peer) -> None:
    async def scenario() -> None:
        async with open_muc_peer("romeo") as romeo, open_muc_peer("juliet") as juliet:
            created = await create_room(romeo, "Romeo", roomname="The Capulets",
                                        persistentroom=True, whois="anyone")  # fmt: skip
            assert created >= {110, 201}

            info = await romeo.xmpp.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
            features = set(info["disco_info"]["features"])
            assert {
                "http://jabber.org/protocol/muc",
                "muc_nonanonymous",
                "muc_persistent",
            } <= features

            romeo.muc.set_subject(ROOM, "The feud")
            await romeo.next("groupchat_subject", sender=ROOM)
            romeo.xmpp.send_message(mto=ROOM, mbody="Gregory, on my word", mtype="groupchat")
            await romeo.next("groupchat_message", sender=ROOM)

            presence, subject, occupants, history = await juliet.muc.join_muc_wait(
                ROOM, "Juliet", maxstanzas=10, timeout=TIMEOUT
            )
            assert presence["muc"]["status_codes"] == {100, 110}  # non-anonymous: warned
            assert subject["subject"] == "The feud"
            # slixmpp lists every occupant that came online, itself last
            assert [o["from"].resource for o in occupants] == ["Romeo", "Juliet"]
            assert occupants[0]["muc"]["jid"] == romeo.jid  # real JIDs for all
            assert [m["body"] for m in history] == ["Gregory, on my word"]
            assert juliet.muc.get_roster(ROOM) is not None

            juliet.xmpp.send_message(mto=ROOM, mbody="Wherefore?", mtype="groupchat")
            said = await romeo.next("groupchat_message", where=lambda m: m["body"] == "Wherefore?")
            assert said["from"].resource == "Juliet"

            romeo.xmpp.send_message(mto=f"{ROOM}/Juliet", mbody="psst", mtype="chat")
            private = await juliet.next("message", where=lambda m: m["body"] == "psst")
            assert private["from"] == f"{ROOM}/Romeo"

            await romeo.muc.set_role(ROOM, "Juliet", "none", reason="Enough", timeout=TIMEOUT)
            kicked = await juliet.next(
                "groupchat_presence", where=lambda p: p["type"] == "unavailable"
            )
            assert kicked["muc"]["status_codes"] == {110, 307}

            await romeo.muc.set_affiliation(ROOM, "outcast", jid=juliet.jid.bare, timeout=TIMEOUT)
            outcasts = await romeo.muc.get_affiliation_list(ROOM, "outcast", timeout=TIMEOUT)
            assert [str(j) for j in outcasts] == [juliet.jid.bare]
            with pytest.raises(PresenceError) as refused:
                await juliet.muc.join_muc_wait(ROOM, "Juliet", maxstanzas=0, timeout=TIMEOUT)
            assert refused.value.presence["error"]["condition"] == "forbidden"

    run(scenario())


def test_slixmpp_joins_while_invisible_and_gets_its_unavailable_back(
    muc_casper, open_muc_peer
) -> None:
    """The forum thread's MUC edge case with a real client: romeo never sends broadcast
    presence, joins, then sends unavailable; the room's reply reaches him."""

    async def scenario() -> None:
        async with (
            open_muc_peer("juliet") as juliet,
            open_muc_peer("romeo", presence=False) as romeo,
        ):
            await create_room(juliet, "Juliet")
            presence, *_ = await romeo.muc.join_muc_wait(
                ROOM, "Romeo", maxstanzas=0, timeout=TIMEOUT
            )
            assert presence["muc"]["status_codes"] == {110}
            seen = await juliet.next(
                "groupchat_presence", where=lambda p: p["from"].resource == "Romeo"
            )
            assert seen["muc"]["jid"] == romeo.jid  # juliet is the room's moderator

            romeo.xmpp.send_presence(ptype="unavailable")
            reflection = await romeo.next(
                "groupchat_presence", where=lambda p: p["type"] == "unavailable"
            )
            assert reflection["from"] == f"{ROOM}/Romeo"
            assert 110 in reflection["muc"]["status_codes"]
            gone = await juliet.next(
                "groupchat_presence",
                where=lambda p: p["type"] == "unavailable" and p["from"].resource == "Romeo",
            )
            assert 110 not in gone["muc"]["status_codes"]
            await romeo.sync()  # still connected
            from_room = [p for p in romeo.queued("presence_available") if p["from"].bare == ROOM]
            assert all(p["muc"]["jid"] == "" for p in from_room)  # semi-anonymous: no real JIDs

    run(scenario())


def test_slixmpp_mediated_invitation(muc_casper, open_muc_peer) -> None:
    async def scenario() -> None:
        async with open_muc_peer("romeo") as romeo, open_muc_peer("nurse") as nurse:
            await create_room(romeo, "Romeo")
            romeo.muc.invite(ROOM, nurse.jid.bare, reason="Fetch Juliet")
            invitation = await nurse.next("groupchat_invite")
            assert invitation["from"] == ROOM
            assert invitation["muc"]["invite"]["from"] == romeo.jid.bare
            assert invitation["muc"]["invite"]["reason"] == "Fetch Juliet"
            presence, *_ = await nurse.muc.join_muc_wait(
                ROOM, "Nurse", maxstanzas=0, timeout=TIMEOUT
            )
            assert presence["type"] != "error"

    run(scenario())
