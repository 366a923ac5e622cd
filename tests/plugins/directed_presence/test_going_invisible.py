"""directed-presence: going unavailable (invisible) keeps the session, and unavailable
goes to exactly whom the session was shown.

Broadcast unavailable on a live stream keeps the stream and its full-JID route, sends
bare-JID messages the offline path until the next available presence, and reaches only
the observers that saw the session (broadcast or directed); so does the logoff, with
the room it joined told too. Nobody gets "offline to offline".
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from tests.helpers import befriend, sync
from tests.plugins.directed_presence.conftest import (
    CLIENT,
    JULIET,
    ROMEO,
    ROMEO_IN_ROOM,
    TYBALT,
    about,
    message_id,
    messages,
    open_server,
    presence,
    present,
    quiet,
    room_service,
    say_without_error,
    stored,
)


async def test_unavailable_presence_keeps_the_stream_and_its_routes() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            srv.client("romeo", resource="orchard", presence=True) as romeo,
        ):
            for contact in (juliet, nurse):
                await contact.expect(presence(f"{ROMEO}/orchard"))
            # romeo goes invisible on the same stream
            await romeo.send("<presence type='unavailable'><status>away</status></presence>")
            for contact in (juliet, nurse):
                gone = await contact.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                assert gone.findtext(f"{{{CLIENT}}}status") == "away"
            await sync(romeo)  # the stream is still open and answering
            # full-JID messages still reach him; bare-JID ones take the offline path
            full_id = await say_without_error(juliet, f"{ROMEO}/orchard")
            await romeo.expect(message_id(full_id))
            bare_id = await say_without_error(nurse, ROMEO)
            await quiet(romeo, message_id(bare_id))
            assert await stored(srv, ROMEO) == 1
            # directed presence again: juliet only
            await romeo.send(f"<presence to='{JULIET}'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            await quiet(nurse, about(ROMEO))
            admitted = await say_without_error(juliet, ROMEO)
            await romeo.expect(message_id(admitted))
            # and publicly available again, still on the same stream
            await romeo.send("<presence><show>chat</show></presence>")
            for contact in (juliet, nurse):
                back = await contact.expect(presence(f"{ROMEO}/orchard"))
                assert back.findtext(f"{{{CLIENT}}}show") == "chat"
            live = await say_without_error(nurse, ROMEO)
            await romeo.expect(message_id(live))


async def test_message_stored_while_gone_invisible_arrives_when_available_again() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "nurse")
        async with (
            present(srv, "nurse", "chamber") as nurse,
            srv.client("romeo", resource="orchard", presence=True) as romeo,
        ):
            await romeo.send("<presence type='unavailable'/>")
            await nurse.expect(presence(f"{ROMEO}/orchard", "unavailable"))
            msg_id = await say_without_error(nurse, ROMEO)
            await quiet(romeo, message_id(msg_id))
            assert await stored(srv, ROMEO) == 1
            await romeo.send("<presence/>")
            arrived = messages(await sync(romeo))
            assert [m.get("id") for m in arrived] == [msg_id]
            assert await stored(srv, ROMEO) == 0


# ---------------------------------------------------------------- unavailable to exactly who saw


@pytest.mark.parametrize("shown_to", ["juliet", "tybalt"], ids=["contact", "stranger"])
async def test_logoff_sends_unavailable_only_to_whom_the_session_was_shown(shown_to: str) -> None:
    """No "offline to offline": nurse, a contact who logged in after romeo and never saw
    him, gets nothing at his logoff; nor does whichever of juliet and tybalt was not
    shown. The room he joined is told."""
    async with open_server() as srv, AsyncExitStack() as observers:
        await befriend(srv, "romeo", "juliet", "nurse")
        with room_service(srv) as room:
            juliet = await observers.enter_async_context(present(srv, "juliet", "balcony"))
            tybalt = await observers.enter_async_context(present(srv, "tybalt", "street"))
            shown = {"juliet": juliet, "tybalt": tybalt}[shown_to]
            async with srv.client("romeo", resource="orchard") as romeo:
                await romeo.send(f"<presence to='{shown_to}@localhost'/>")
                await romeo.send(f"<presence to='{ROMEO_IN_ROOM}'/>")
                await romeo.expect(presence(ROMEO_IN_ROOM))
                await shown.expect(presence(f"{ROMEO}/orchard"))
                nurse = await observers.enter_async_context(
                    srv.client("nurse", resource="chamber", presence=True)
                )
                offline_answer = [e for e in await sync(nurse) if about(ROMEO)(e)]
                assert [(e.get("from"), e.get("type")) for e in offline_answer] == [
                    (ROMEO, "unavailable")
                ]
            # romeo has logged off: the server closed his stream after the presence cleanup
            await shown.expect(presence(f"{ROMEO}/orchard", "unavailable"))
            for observer in (juliet, tybalt, nurse):
                await quiet(observer, about(ROMEO))
            assert room.presences()[-1] == (f"{ROMEO}/orchard", ROMEO_IN_ROOM, "unavailable")


@pytest.mark.parametrize("tybalt_shown", [False, True], ids=["tybalt-never-shown", "tybalt-shown"])
async def test_going_invisible_sends_unavailable_only_to_whom_the_session_was_shown(
    tybalt_shown: bool,
) -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            present(srv, "tybalt", "street") as tybalt,
        ):
            async with srv.client("romeo", resource="orchard", presence=True) as romeo:
                for contact in (juliet, nurse):
                    await contact.expect(presence(f"{ROMEO}/orchard"))
                if tybalt_shown:
                    await romeo.send(f"<presence to='{TYBALT}'/>")
                    await tybalt.expect(presence(f"{ROMEO}/orchard"))
                await quiet(tybalt, about(ROMEO))
                await romeo.send("<presence type='unavailable'/>")
                saw = [juliet, nurse, tybalt] if tybalt_shown else [juliet, nurse]
                for observer in saw:
                    await observer.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                for observer in (juliet, nurse, tybalt):
                    await quiet(observer, about(ROMEO))
            for observer in (juliet, nurse, tybalt):  # logoff while invisible: nothing more
                await quiet(observer, about(ROMEO))
