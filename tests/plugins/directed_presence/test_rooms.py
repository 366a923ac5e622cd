"""directed-presence: group chat while invisible, against a tiny MUC service.

Joining a room (directed presence to ``room/nick``) works and shows romeo as an occupant
only, never to his contacts; the forum's MUC edge case: a broadcast unavailable leaves
the room and the room's reflection of it still reaches him.
"""

from __future__ import annotations

import pytest
from casper.jid import JID

from tests.helpers import befriend, sync
from tests.plugins.directed_presence.conftest import (
    JULIET_IN_ROOM,
    ROMEO,
    ROMEO_IN_ROOM,
    about,
    open_server,
    presence,
    present,
    quiet,
    room_service,
)


async def test_joining_a_room_while_invisible_works_and_reveals_nothing_to_contacts() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        with room_service(srv) as room:
            async with (
                present(srv, "juliet", "balcony") as juliet,
                present(srv, "nurse", "chamber") as nurse,
                srv.client("romeo", resource="orchard") as romeo,
            ):
                await juliet.send(f"<presence to='{JULIET_IN_ROOM}'/>")
                await juliet.expect(presence(JULIET_IN_ROOM))
                await romeo.send(f"<presence to='{ROMEO_IN_ROOM}'/>")
                await romeo.expect(presence(JULIET_IN_ROOM))  # the occupant list
                await romeo.expect(presence(ROMEO_IN_ROOM))  # the room's reflection
                await juliet.expect(presence(ROMEO_IN_ROOM))  # as an occupant, in the room
                await quiet(juliet, about(ROMEO))  # but romeo@localhost stays offline
                await quiet(nurse, about(ROMEO))
                assert room.occupants[JID.parse(ROMEO_IN_ROOM)] == JID.parse(f"{ROMEO}/orchard")
                assert (f"{ROMEO}/orchard", ROMEO_IN_ROOM, None) in room.presences()


@pytest.mark.parametrize("before", ["invisible", "available"])
async def test_broadcast_unavailable_leaves_the_room_and_its_reflection_still_arrives(
    before: str,
) -> None:
    """The forum's MUC edge case: unavailable must not destroy the route, so the room's
    unavailable for romeo's own occupant reaches him."""
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        with room_service(srv) as room:
            async with (
                present(srv, "juliet", "balcony") as juliet,
                srv.client("romeo", resource="orchard", presence=before == "available") as romeo,
            ):
                await juliet.send(f"<presence to='{JULIET_IN_ROOM}'/>")
                await juliet.expect(presence(JULIET_IN_ROOM))
                if before == "available":
                    await juliet.expect(presence(f"{ROMEO}/orchard"))
                await romeo.send(f"<presence to='{ROMEO_IN_ROOM}'/>")
                await romeo.expect(presence(ROMEO_IN_ROOM))
                await juliet.expect(presence(ROMEO_IN_ROOM))
                await quiet(juliet, about(ROMEO))
                await romeo.send("<presence type='unavailable'/>")
                await romeo.expect(presence(ROMEO_IN_ROOM, "unavailable"))  # the reflection
                await juliet.expect(presence(ROMEO_IN_ROOM, "unavailable"))
                if before == "available":
                    await juliet.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                await quiet(juliet, about(ROMEO))
                assert room.presences()[-1] == (f"{ROMEO}/orchard", ROMEO_IN_ROOM, "unavailable")
                assert JID.parse(ROMEO_IN_ROOM) not in room.occupants
                await sync(romeo)  # still connected
