"""directed-presence: a directed presence shows the session to its recipient and admits it.

Only the recipient sees the session; bare-JID messages from it (a bare-JID recipient: all
its resources; a full JID: that resource only; compared as whole, normalised JIDs) reach
the invisible session, while everyone else's take the offline path (stored, or bounced
like offline without the offline plugin). A directed unavailable withdraws the admission.
"""

from __future__ import annotations

import pytest

from tests.helpers import befriend, error_condition, sync
from tests.plugins.directed_presence.conftest import (
    ACTORS,
    CLIENT,
    DELAY,
    JULIET,
    ROMEO,
    about,
    message_id,
    messages,
    open_server,
    presence,
    present,
    quiet,
    say,
    say_without_error,
    stored,
)


async def test_directed_presence_shows_the_session_to_its_recipient_only() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            present(srv, "tybalt", "street") as tybalt,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'><status>only for you</status></presence>")
            await sync(romeo)
            shown = await juliet.expect(presence(f"{ROMEO}/orchard"))
            assert shown.findtext(f"{{{CLIENT}}}status") == "only for you"
            await quiet(juliet, about(ROMEO))  # once
            await quiet(nurse, about(ROMEO))
            await quiet(tybalt, about(ROMEO))


async def test_bare_jid_message_from_directed_recipient_reaches_the_invisible_session() -> None:
    """Openfire 3.5's reading: a session can chat with whom it showed itself to."""
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            msg_id = await say_without_error(juliet, ROMEO)
            got = await romeo.expect(message_id(msg_id))
            assert got.get("from") == f"{JULIET}/balcony" and got.find(DELAY) is None
            reply_id = await say_without_error(romeo, JULIET)
            await juliet.expect(message_id(reply_id))
        assert await stored(srv, ROMEO) == 0


async def test_bare_jid_message_from_contact_not_shown_is_stored_until_broadcast_presence() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            present(srv, "nurse", "chamber") as nurse,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            from_juliet = await say_without_error(juliet, ROMEO)
            from_nurse = await say_without_error(nurse, ROMEO)
            await romeo.expect(message_id(from_juliet))
            await quiet(romeo, message_id(from_nurse))
            assert await stored(srv, ROMEO) == 1
            await romeo.send("<presence/>")
            delivered = messages(await sync(romeo))
            assert [m.get("id") for m in delivered] == [from_nurse]  # juliet's: not again
            assert delivered[0].find(DELAY) is not None
        assert await stored(srv, ROMEO) == 0


async def test_bare_jid_message_from_contact_not_shown_bounces_like_offline_unstored() -> None:
    async with open_server(default_plugins=False) as srv:
        await befriend(srv, "romeo", "juliet", "nurse")
        async with present(srv, "nurse", "chamber") as nurse:
            offline_id = await say(nurse, ROMEO)
            offline = await nurse.expect(message_id(offline_id))
            async with (
                present(srv, "juliet", "balcony") as juliet,
                srv.client("romeo", resource="orchard") as romeo,
            ):
                await romeo.send(f"<presence to='{JULIET}'/>")
                await juliet.expect(presence(f"{ROMEO}/orchard"))
                hidden_id = await say(nurse, ROMEO)
                hidden = await nurse.expect(message_id(hidden_id))
                await quiet(romeo, message_id(hidden_id))
                admitted_id = await say_without_error(juliet, ROMEO)  # control
                await romeo.expect(message_id(admitted_id))
    assert error_condition(offline) == error_condition(hidden) == "service-unavailable"
    assert hidden.get("from") == offline.get("from") == ROMEO


async def test_directed_presence_to_full_jid_admits_only_that_resource() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as balcony,
            present(srv, "juliet", "garden") as garden,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await sync(balcony)
            await romeo.send(f"<presence to='{JULIET}/balcony'/>")
            await balcony.expect(presence(f"{ROMEO}/orchard"))
            await quiet(garden, about(ROMEO))
            from_balcony = await say_without_error(balcony, ROMEO)
            from_garden = await say_without_error(garden, ROMEO)
            await romeo.expect(message_id(from_balcony))
            await quiet(romeo, message_id(from_garden))
            assert await stored(srv, ROMEO) == 1  # the garden's took the offline path


async def test_directed_presence_to_bare_jid_admits_every_resource() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as balcony,
            present(srv, "juliet", "garden") as garden,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send(f"<presence to='{JULIET}'/>")
            for juliet in (balcony, garden):
                await juliet.expect(presence(f"{ROMEO}/orchard"))
                msg_id = await say_without_error(juliet, ROMEO)
                await romeo.expect(message_id(msg_id))
        assert await stored(srv, ROMEO) == 0


async def test_directed_presence_matches_the_normalised_jid() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with (
            present(srv, "juliet", "balcony") as juliet,
            srv.client("romeo", resource="orchard") as romeo,
        ):
            await romeo.send("<presence to='JULIET@LocalHost/balcony'/>")
            await juliet.expect(presence(f"{ROMEO}/orchard"))
            msg_id = await say_without_error(juliet, ROMEO)
            await romeo.expect(message_id(msg_id))


@pytest.mark.parametrize(
    ("shown_to", "sender"),
    [("juliet", "juliet2"), ("juliet", "xjuliet"), ("juliet2", "juliet"), ("xjuliet", "juliet")],
)
async def test_jid_merely_containing_the_recipients_name_is_not_admitted(
    shown_to: str, sender: str
) -> None:
    """Admission compares whole JIDs, never substrings (either way round)."""
    async with (
        open_server(accounts=(*ACTORS, "juliet2", "xjuliet")) as srv,
        present(srv, shown_to, "r") as recipient,
        present(srv, sender, "r") as lookalike,
        srv.client("romeo", resource="orchard") as romeo,
    ):
        await romeo.send(f"<presence to='{shown_to}@localhost'/>")
        await recipient.expect(presence(f"{ROMEO}/orchard"))
        await quiet(lookalike, about(ROMEO))
        msg_id = await say_without_error(lookalike, ROMEO)
        await quiet(romeo, message_id(msg_id))
        assert await stored(srv, ROMEO) == 1
        control = await say_without_error(recipient, ROMEO)
        await romeo.expect(message_id(control))


async def test_directed_unavailable_withdraws_the_admission() -> None:
    async with open_server() as srv:
        await befriend(srv, "romeo", "juliet")
        async with present(srv, "juliet", "balcony") as juliet:
            async with srv.client("romeo", resource="orchard") as romeo:
                await romeo.send(f"<presence to='{JULIET}'/>")
                await juliet.expect(presence(f"{ROMEO}/orchard"))
                await romeo.send(f"<presence to='{JULIET}' type='unavailable'/>")
                await juliet.expect(presence(f"{ROMEO}/orchard", "unavailable"))
                msg_id = await say_without_error(juliet, ROMEO)
                await quiet(romeo, message_id(msg_id))
                assert await stored(srv, ROMEO) == 1
            await quiet(juliet, about(ROMEO))  # nothing more at logoff
