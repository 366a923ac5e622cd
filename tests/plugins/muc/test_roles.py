"""Roles and affiliations (XEP-0045 §8-§10): kick, ban, voice, moderators, member lists,
who may do what — scripted over real TCP, plus the privilege table as pure functions.

Actors: romeo owns ``capulets@conference.localhost``; nurse is made admin; juliet and
tybalt are participants; mercutio an outsider.
"""

from __future__ import annotations

import ast
from pathlib import Path

import casper_plugins.muc
import pytest
from casper.errors import StanzaError
from casper.testing import TestClient, TestServer
from casper_plugins.muc.roles import check_affiliation_change, check_list, check_role_change

from tests.plugins.muc.conftest import (
    ADMIN_NS,
    MESSAGE,
    ROOM,
    codes,
    create_room,
    enter,
    error_condition,
    item,
    join,
    message_from,
    open_muc,
    open_room,
    presence_from,
    quiet,
    room_sync,
    say,
)
from tests.plugins.muc.conftest import admin as admin_iq


def role_item(nick: str, role: str, reason: str = "") -> str:
    inner = f"<reason>{reason}</reason>" if reason else ""
    return f"<item nick='{nick}' role='{role}'>{inner}</item>"


def affiliation_item(jid: str, affiliation: str, reason: str = "") -> str:
    inner = f"<reason>{reason}</reason>" if reason else ""
    return f"<item jid='{jid}' affiliation='{affiliation}'>{inner}</item>"


def room_jids(srv: TestServer, client: TestClient) -> tuple[set[str], set[str]]:
    """The room's JIDs in the client's session's ``directed_to`` and ``seen_by``."""
    assert client.jid is not None
    session = srv.server.router.session_for(client.jid)
    assert session is not None
    directed = {str(j) for j in session.directed_to if str(j.bare) == ROOM}
    seen = {str(j) for j in session.seen_by if str(j.bare) == ROOM}
    return directed, seen


# ---------------------------------------------------------------- kick and ban


async def test_moderator_kicks_a_participant_307_with_actor_and_reason() -> None:
    async with open_room("juliet", "tybalt") as (romeo, juliet, tybalt):
        answer = await admin_iq(romeo, ROOM, role_item("Tybalt", "none", "Brawling"))
        assert answer.get("type") == "result"
        kicked = await tybalt.expect(presence_from(f"{ROOM}/Tybalt", "unavailable"))
        assert codes(kicked) == {110, 307}
        entry = item(kicked)
        assert entry.get("role") == "none"
        assert entry.findtext("{http://jabber.org/protocol/muc#user}reason") == "Brawling"
        actor = entry.find("{http://jabber.org/protocol/muc#user}actor")
        assert actor is not None and actor.get("nick") == "Romeo"
        seen = await juliet.expect(presence_from(f"{ROOM}/Tybalt", "unavailable"))
        assert codes(seen) == {307}
        # kicked is not banned: tybalt may come back
        assert (await join(tybalt, ROOM, "Tybalt")).get("type") is None


async def test_participant_may_not_kick_and_nobody_kicks_an_admin() -> None:
    async with open_room("juliet", later=("nurse",)) as (romeo, juliet, nurse):
        refused = await admin_iq(juliet, ROOM, role_item("Romeo", "none"))
        assert error_condition(refused) == "forbidden"
        await admin_iq(romeo, ROOM, affiliation_item("nurse@localhost", "admin"))
        await enter(nurse, ROOM, "Nurse")
        refused = await admin_iq(romeo, ROOM, role_item("Nurse", "none"))
        assert error_condition(refused) == "not-allowed"
        refused = await admin_iq(nurse, ROOM, role_item("Romeo", "participant"))
        assert error_condition(refused) == "not-allowed"
        await quiet(juliet, presence_from(f"{ROOM}/Nurse", "unavailable"))


async def test_ban_removes_every_session_301_and_keeps_them_out() -> None:
    async with (
        open_muc() as srv,
        srv.client("romeo") as romeo,
        srv.client("tybalt", resource="a") as tybalt_a,
        srv.client("tybalt", resource="b") as tybalt_b,
    ):
        await create_room(romeo, ROOM, "Romeo")
        await enter(tybalt_a, ROOM, "Tybalt")
        await enter(tybalt_b, ROOM, "Prince of Cats")
        answer = await admin_iq(
            romeo, ROOM, affiliation_item("tybalt@localhost", "outcast", "Murder")
        )
        assert answer.get("type") == "result"
        for client, nick in ((tybalt_a, "Tybalt"), (tybalt_b, "Prince of Cats")):
            banned = await client.expect(presence_from(f"{ROOM}/{nick}", "unavailable"))
            assert codes(banned) == {110, 301}
            assert item(banned).get("affiliation") == "outcast"
            seen = await romeo.expect(presence_from(f"{ROOM}/{nick}", "unavailable"))
            assert codes(seen) == {301}
        refused = await join(tybalt_a, ROOM, "Tybalt")
        assert error_condition(refused) == "forbidden"
        outcasts = await admin_iq(romeo, ROOM, "<item affiliation='outcast'/>", "get")
        listed = [
            (i.get("jid"), i.get("affiliation")) for i in outcasts.iter(f"{{{ADMIN_NS}}}item")
        ]
        assert listed == [("tybalt@localhost", "outcast")]
        await admin_iq(romeo, ROOM, affiliation_item("tybalt@localhost", "none"))
        assert (await join(tybalt_a, ROOM, "Tybalt")).get("type") is None


async def test_a_kicked_session_forgets_the_room_and_may_come_back() -> None:
    """The room told the kicked user it is out, so the core drops every room JID from the
    session's directed presence and seen_by (old nicks too): its later unavailable is not
    sent to the room. Other occupants keep theirs."""
    async with (
        open_muc() as srv,
        srv.client("romeo") as romeo,
        srv.client("juliet") as juliet,
        srv.client("tybalt") as tybalt,
    ):
        await create_room(romeo, ROOM, "Romeo")
        await enter(juliet, ROOM, "Juliet")
        await enter(tybalt, ROOM, "Tybalt")
        await tybalt.send(f"<presence to='{ROOM}/Prince'/>")
        await tybalt.expect(presence_from(f"{ROOM}/Prince"))
        before = {f"{ROOM}/Tybalt", f"{ROOM}/Prince"}
        assert room_jids(srv, tybalt) == (before, before)
        answer = await admin_iq(romeo, ROOM, role_item("Prince", "none"))
        assert answer.get("type") == "result"
        kicked = await tybalt.expect(presence_from(f"{ROOM}/Prince", "unavailable"))
        assert codes(kicked) == {110, 307}
        await room_sync(tybalt)
        assert room_jids(srv, tybalt) == (set(), set())
        assert room_jids(srv, juliet) == ({f"{ROOM}/Juliet"}, {f"{ROOM}/Juliet"})
        # a kick is not a ban: the session rejoins, and the core records the room again
        assert (await join(tybalt, ROOM, "Tybalt")).get("type") is None
        assert room_jids(srv, tybalt) == ({f"{ROOM}/Tybalt"}, {f"{ROOM}/Tybalt"})


async def test_every_banned_session_forgets_the_room() -> None:
    async with (
        open_muc() as srv,
        srv.client("romeo") as romeo,
        srv.client("tybalt", resource="a") as tybalt_a,
        srv.client("tybalt", resource="b") as tybalt_b,
    ):
        await create_room(romeo, ROOM, "Romeo")
        await enter(tybalt_a, ROOM, "Tybalt")
        await enter(tybalt_b, ROOM, "Prince of Cats")
        await admin_iq(romeo, ROOM, affiliation_item("tybalt@localhost", "outcast"))
        for client, nick in ((tybalt_a, "Tybalt"), (tybalt_b, "Prince of Cats")):
            banned = await client.expect(presence_from(f"{ROOM}/{nick}", "unavailable"))
            assert codes(banned) == {110, 301}
            await room_sync(client)
            assert room_jids(srv, client) == (set(), set())
        assert room_jids(srv, romeo) == ({f"{ROOM}/Romeo"}, {f"{ROOM}/Romeo"})
        refused = await join(tybalt_a, ROOM, "Tybalt")
        assert error_condition(refused) == "forbidden"


async def test_removal_for_lost_membership_or_an_error_forgets_the_room_too() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo", members_only=True)
        await admin_iq(romeo, ROOM, affiliation_item("juliet@localhost", "member"))
        await enter(juliet, ROOM, "Juliet")
        await admin_iq(romeo, ROOM, affiliation_item("juliet@localhost", "none"))
        removed = await juliet.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        assert 321 in codes(removed)
        await room_sync(juliet)
        assert room_jids(srv, juliet) == (set(), set())
        await romeo.send(
            f"<message to='{ROOM}/Romeo' type='error'><error type='cancel'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        )
        gone = await romeo.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
        assert codes(gone) >= {307, 333}
        await room_sync(romeo)
        assert room_jids(srv, romeo) == (set(), set())


# ---------------------------------------------------------------- voice and moderators


async def test_moderated_room_visitors_need_voice() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo", moderated=True)
        own, _ = await enter(juliet, ROOM, "Juliet")
        assert item(own).get("role") == "visitor"
        await say(juliet, ROOM, "may I?")
        refused = await juliet.expect(lambda e: e.tag == MESSAGE and e.get("type") == "error")
        assert error_condition(refused) == "forbidden"
        await quiet(romeo, message_from(f"{ROOM}/Juliet"))
        await admin_iq(romeo, ROOM, role_item("Juliet", "participant"))
        voiced = await juliet.expect(presence_from(f"{ROOM}/Juliet"))
        assert item(voiced).get("role") == "participant" and 110 in codes(voiced)
        await say(juliet, ROOM, "thank you")
        await romeo.expect(message_from(f"{ROOM}/Juliet"))
        await admin_iq(romeo, ROOM, role_item("Juliet", "visitor"))
        muted = await juliet.expect(presence_from(f"{ROOM}/Juliet"))
        assert item(muted).get("role") == "visitor"


async def test_only_admins_grant_moderation_and_a_new_moderator_sees_real_jids() -> None:
    async with open_room("juliet", "nurse") as (romeo, juliet, nurse):  # semi-anonymous
        await juliet.expect(presence_from(f"{ROOM}/Nurse"))
        await room_sync(juliet)
        refused = await admin_iq(juliet, ROOM, role_item("Nurse", "moderator"))
        assert error_condition(refused) == "forbidden"
        await admin_iq(romeo, ROOM, role_item("Juliet", "moderator"))
        promoted = await juliet.expect(presence_from(f"{ROOM}/Juliet"))
        assert item(promoted).get("role") == "moderator"
        shown = await juliet.expect(presence_from(f"{ROOM}/Nurse"))
        assert item(shown).get("jid") == str(nurse.jid)
        roles = await admin_iq(juliet, ROOM, "<item role='moderator'/>", "get")
        nicks = sorted(i.get("nick") or "" for i in roles.iter(f"{{{ADMIN_NS}}}item"))
        assert nicks == ["Juliet", "Romeo"]
        refused = await admin_iq(nurse, ROOM, "<item role='moderator'/>", "get")
        assert error_condition(refused) == "forbidden"


# ---------------------------------------------------------------- affiliations


async def test_admins_manage_members_and_only_owners_manage_admins() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("nurse") as nurse:
        await create_room(romeo, ROOM, "Romeo")
        await admin_iq(romeo, ROOM, affiliation_item("nurse@localhost", "admin"))
        await enter(nurse, ROOM, "Nurse")
        answer = await admin_iq(nurse, ROOM, affiliation_item("juliet@localhost", "member"))
        assert answer.get("type") == "result"
        refused = await admin_iq(nurse, ROOM, affiliation_item("tybalt@localhost", "admin"))
        assert error_condition(refused) == "forbidden"
        refused = await admin_iq(nurse, ROOM, affiliation_item("romeo@localhost", "outcast"))
        assert error_condition(refused) == "forbidden"
        members = await admin_iq(nurse, ROOM, "<item affiliation='member'/>", "get")
        assert [i.get("jid") for i in members.iter(f"{{{ADMIN_NS}}}item")] == ["juliet@localhost"]
        # all or nothing: one forbidden item refuses the whole set
        refused = await admin_iq(
            nurse,
            ROOM,
            affiliation_item("mercutio@localhost", "member")
            + affiliation_item("tybalt@localhost", "owner"),
        )
        assert error_condition(refused) == "forbidden"
        members = await admin_iq(nurse, ROOM, "<item affiliation='member'/>", "get")
        assert [i.get("jid") for i in members.iter(f"{{{ADMIN_NS}}}item")] == ["juliet@localhost"]


async def test_the_last_owner_cannot_step_down() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo:
        await create_room(romeo, ROOM, "Romeo")
        refused = await admin_iq(romeo, ROOM, affiliation_item("romeo@localhost", "admin"))
        assert error_condition(refused) == "conflict"
        await admin_iq(romeo, ROOM, affiliation_item("juliet@localhost", "owner"))
        answer = await admin_iq(romeo, ROOM, affiliation_item("romeo@localhost", "member"))
        assert answer.get("type") == "result"
        demoted = await romeo.expect(presence_from(f"{ROOM}/Romeo"))
        assert item(demoted).get("affiliation") == "member"
        assert item(demoted).get("role") == "participant"


async def test_losing_membership_of_a_members_only_room_removes_you_321() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo", members_only=True)
        await admin_iq(romeo, ROOM, affiliation_item("juliet@localhost", "member"))
        own, _ = await enter(juliet, ROOM, "Juliet")
        assert item(own).get("affiliation") == "member"
        await admin_iq(romeo, ROOM, affiliation_item("juliet@localhost", "none"))
        removed = await juliet.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        assert codes(removed) == {110, 321}
        refused = await join(juliet, ROOM, "Juliet")
        assert error_condition(refused) == "registration-required"


async def test_an_error_from_an_occupant_that_is_gone_removes_it_333() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        await enter(juliet, ROOM, "Juliet")
        await juliet.send(
            f"<message to='{ROOM}/Romeo' type='error'><error type='cancel'>"
            "<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        )
        await quiet(romeo, presence_from(f"{ROOM}/Juliet", "unavailable"))  # not a "gone" error
        await juliet.send(
            f"<message to='{ROOM}/Romeo' type='error'><error type='cancel'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        )
        removed = await romeo.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        assert codes(removed) == {307, 333}


# ---------------------------------------------------------------- the privilege table


@pytest.mark.parametrize(
    ("actor_role", "actor_aff", "target_role", "target_aff", "new_role", "error"),
    [
        ("moderator", "none", "participant", "none", "none", None),
        ("moderator", "none", "participant", "member", "visitor", None),
        ("participant", "member", "participant", "none", "none", "forbidden"),
        ("moderator", "none", "participant", "none", "moderator", "forbidden"),
        ("moderator", "admin", "participant", "none", "moderator", None),
        ("moderator", "member", "moderator", "none", "participant", "forbidden"),
        ("moderator", "owner", "moderator", "admin", "none", "not-allowed"),
        ("moderator", "owner", "moderator", "owner", "participant", "not-allowed"),
        ("moderator", "owner", "participant", "none", "king", "bad-request"),
    ],
)
def test_role_change_table(actor_role, actor_aff, target_role, target_aff, new_role, error) -> None:
    if error is None:
        check_role_change(actor_role, actor_aff, target_role, target_aff, new_role)
    else:
        with pytest.raises(StanzaError) as exc:
            check_role_change(actor_role, actor_aff, target_role, target_aff, new_role)
        assert exc.value.condition == error


@pytest.mark.parametrize(
    ("actor", "current", "new", "error"),
    [
        ("owner", "none", "owner", None),
        ("owner", "admin", "outcast", None),
        ("admin", "none", "member", None),
        ("admin", "member", "outcast", None),
        ("admin", "none", "admin", "forbidden"),
        ("admin", "owner", "none", "forbidden"),
        ("member", "none", "member", "forbidden"),
        ("none", "none", "outcast", "forbidden"),
        ("owner", "none", "emperor", "bad-request"),
    ],
)
def test_affiliation_change_table(actor, current, new, error) -> None:
    if error is None:
        check_affiliation_change(actor, current, new)
    else:
        with pytest.raises(StanzaError) as exc:
            check_affiliation_change(actor, current, new)
        assert exc.value.condition == error


@pytest.mark.parametrize(
    ("role", "affiliation", "kwargs", "error"),
    [
        ("moderator", "admin", {"affiliation": "outcast"}, None),
        ("participant", "member", {"affiliation": "member"}, "forbidden"),
        ("moderator", "none", {"role": "participant"}, None),
        ("participant", "owner", {"role": "participant"}, "forbidden"),
        ("moderator", "owner", {"affiliation": "none"}, "bad-request"),
        ("moderator", "owner", {}, "bad-request"),
    ],
)
def test_list_access_table(role, affiliation, kwargs, error) -> None:
    if error is None:
        check_list(role, affiliation, **kwargs)
    else:
        with pytest.raises(StanzaError) as exc:
            check_list(role, affiliation, **kwargs)
        assert exc.value.condition == error


SANS_IO = ("model", "stanzas", "roles", "forms", "occupancy", "chat", "admin", "disco", "store")


@pytest.mark.parametrize("module", SANS_IO)
def test_room_logic_modules_are_sans_io(module: str) -> None:
    """Only the service module touches trio; the room logic is plain functions on data."""
    path = Path(casper_plugins.muc.__file__).with_name(f"{module}.py")
    tree = ast.parse(path.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}  # fmt: skip
    assert not imported & {"trio", "asyncio", "socket"}
    assert len(path.read_text().splitlines()) < 400
