"""MUC rooms (XEP-0045): create, join, leave, nicks, groupchat, history, subject, private
messages, invitations, discovery — several occupants over real TCP sockets.

Actors: romeo creates ``capulets@conference.localhost``; juliet, nurse and tybalt join it.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from casper.jid import JID

from tests.plugins.muc.conftest import (
    CLIENT,
    DELAY,
    INFO_NS,
    ITEMS_NS,
    MESSAGE,
    MUC,
    MUC_NS,
    OWNER_NS,
    PRESENCE,
    ROOM,
    USER_NS,
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
    query,
    quiet,
    room_sync,
    say,
    subject_message,
)

# ---------------------------------------------------------------- create, join, leave


async def test_first_joiner_creates_a_locked_room_and_owns_it() -> None:
    async with (
        open_muc() as srv,
        srv.client("romeo", presence=True) as romeo,
        srv.client("juliet") as juliet,
    ):
        own, received = await enter(romeo, ROOM, "Romeo")
        assert codes(own) == {110, 201}
        assert item(own).attrib == {"affiliation": "owner", "role": "moderator"} | {
            "jid": str(romeo.jid)
        }
        assert received[-1].find(f"{{{CLIENT}}}subject") is not None  # empty subject, last
        # locked until configured: others are told it does not exist (§10.1.1)
        refused = await join(juliet, ROOM, "Juliet")
        assert error_condition(refused) == "item-not-found"
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert error_condition(info) == "item-not-found"
        # the owner asks for an instant room: an empty submitted form
        answer = await query(
            romeo,
            ROOM,
            f"<query xmlns='{OWNER_NS}'><x xmlns='jabber:x:data' type='submit'/></query>",
            "set",
        )
        assert answer.get("type") == "result"
        own, _ = await enter(juliet, ROOM, "Juliet")
        assert codes(own) == {110}
        assert item(own).get("affiliation") == "none" and item(own).get("role") == "participant"


async def test_groupchat_1_0_join_without_muc_x_makes_an_instant_room() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        own = await join(romeo, ROOM, "Romeo", muc=False)
        assert codes(own) == {110, 201}
        own = await join(juliet, ROOM, "Juliet")
        assert own.get("type") is None


async def test_join_order_presences_then_self_then_history_then_subject() -> None:
    async with open_room("juliet", later=("nurse",)) as (romeo, juliet, nurse):
        await say(romeo, ROOM, "Good morrow")
        _, received = await enter(nurse, ROOM, "Nurse")
        kinds = []
        for e in received:
            if e.tag == PRESENCE:
                kinds.append(("presence", e.get("from")))
            elif subject_message(ROOM)(e):
                kinds.append(("subject", e.get("from")))
            else:
                kinds.append(("history", e.get("from")))
        assert kinds == [
            ("presence", f"{ROOM}/Romeo"),
            ("presence", f"{ROOM}/Juliet"),
            ("history", f"{ROOM}/Romeo"),
            ("subject", ROOM),
        ]
        # the others learn of the newcomer; semi-anonymous: only the moderator sees the JID
        at_romeo = await romeo.expect(presence_from(f"{ROOM}/Nurse"))
        at_juliet = await juliet.expect(presence_from(f"{ROOM}/Nurse"))
        assert item(at_romeo).get("jid") == str(nurse.jid)
        assert item(at_juliet).get("jid") is None


async def test_leave_tells_everyone_and_the_leaver_last_one_out_ends_a_temporary_room() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        await enter(juliet, ROOM, "Juliet")
        await romeo.expect(presence_from(f"{ROOM}/Juliet"))
        await juliet.send(
            f"<presence to='{ROOM}/Juliet' type='unavailable'><status>Adieu</status></presence>"
        )
        own = await juliet.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        assert codes(own) == {110}
        assert own.findtext(f"{{{CLIENT}}}status") == "Adieu"
        seen = await romeo.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        assert item(seen).get("role") == "none" and codes(seen) == set()
        await romeo.send(f"<presence to='{ROOM}/Romeo' type='unavailable'/>")
        await romeo.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
        await room_sync(romeo)
        assert JID.parse(ROOM) not in srv.server.pm.get_plugin("muc.service").rooms
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert error_condition(info) == "item-not-found"


async def test_logoff_removes_the_occupant() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo:
        await create_room(romeo, ROOM, "Romeo")
        async with srv.client("juliet") as juliet:
            await enter(juliet, ROOM, "Juliet")
            await romeo.expect(presence_from(f"{ROOM}/Juliet"))
        gone = await romeo.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        assert item(gone).get("role") == "none"


async def test_presence_errors_for_bad_joins() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await juliet.send(f"<presence to='{ROOM}'/>")  # no nick
        refused = await juliet.expect(PRESENCE)
        assert error_condition(refused) == "jid-malformed"
        await create_room(romeo, ROOM, "Romeo")
        refused = await join(juliet, ROOM, "   ")
        assert error_condition(refused) == "jid-malformed"


# ---------------------------------------------------------------- nicks


async def test_nick_conflict_is_409_case_insensitively() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        refused = await join(juliet, ROOM, "romeo")
        assert refused.get("type") == "error"
        assert refused.get("from") == f"{ROOM}/romeo"
        assert error_condition(refused) == "conflict"
        error = refused.find(f"{{{CLIENT}}}error")
        assert error is not None and error.get("type") == "cancel"
        assert refused.find(f"{{{MUC_NS}}}x") is not None
        await quiet(romeo, presence_from(f"{ROOM}/romeo"))


async def test_nick_change_303_then_new_presence_and_conflict() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        await enter(juliet, ROOM, "Juliet")
        await romeo.expect(presence_from(f"{ROOM}/Juliet"))
        await juliet.send(f"<presence to='{ROOM}/Romeo'/>")
        refused = await juliet.expect(presence_from(f"{ROOM}/Romeo", "error"))
        assert error_condition(refused) == "conflict"
        await juliet.send(f"<presence to='{ROOM}/Jules'/>")
        for client in (romeo, juliet):
            old = await client.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
            assert 303 in codes(old) and item(old).get("nick") == "Jules"
            new = await client.expect(presence_from(f"{ROOM}/Jules"))
            assert (110 in codes(new)) == (client is juliet)
        await say(romeo, ROOM, "Jules?")
        await juliet.expect(message_from(f"{ROOM}/Romeo"))
        # juliet still leaves by her real JID, whatever nick the core addresses
        await juliet.send(f"<presence to='{ROOM}/Juliet' type='unavailable'/>")
        await romeo.expect(presence_from(f"{ROOM}/Jules", "unavailable"))


async def test_the_room_tidies_a_nick_and_says_so_with_210() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        own = await join(juliet, ROOM, "  Juliet   Capulet ")
        assert own.get("from") == f"{ROOM}/Juliet Capulet"
        assert codes(own) == {110, 210}
        await romeo.expect(presence_from(f"{ROOM}/Juliet Capulet"))
        # the core sends unavailable to the nick juliet asked for: she still leaves
        await juliet.send("<presence type='unavailable'/>")
        await romeo.expect(presence_from(f"{ROOM}/Juliet Capulet", "unavailable"))


# ---------------------------------------------------------------- messages


async def test_groupchat_is_reflected_to_every_occupant_with_the_same_id() -> None:
    async with (
        open_muc() as srv,
        srv.client("romeo") as romeo,
        srv.client("juliet") as juliet,
        srv.client("nurse") as nurse,
        srv.client("tybalt") as tybalt,
    ):
        await create_room(romeo, ROOM, "Romeo")
        for client, nick in ((juliet, "Juliet"), (nurse, "Nurse"), (tybalt, "Tybalt")):
            await enter(client, ROOM, nick)
        msg_id = await say(juliet, ROOM, "O Romeo")
        for client in (romeo, juliet, nurse, tybalt):
            got = await client.expect(message_from(f"{ROOM}/Juliet"))
            assert got.get("id") == msg_id
            assert got.get("to") == str(client.jid)
            assert got.findtext(f"{{{CLIENT}}}body") == "O Romeo"
        async with srv.client("mercutio") as mercutio:  # not an occupant
            await say(mercutio, ROOM, "A plague")
            refused = await mercutio.expect(MESSAGE)
            assert error_condition(refused) == "not-acceptable"
            await say(mercutio, f"nowhere@{MUC}", "hello?")
            refused = await mercutio.expect(MESSAGE)
            assert error_condition(refused) == "item-not-found"
        await quiet(romeo, message_from(f"{ROOM}/Mercutio"))


async def test_history_on_join_with_delay_and_maxstanzas() -> None:
    async with open_muc(settings={"history_size": 3}) as srv, srv.client("romeo") as romeo:
        await create_room(romeo, ROOM, "Romeo")
        for n in range(5):
            await say(romeo, ROOM, f"line {n}")
        await room_sync(romeo)
        async with srv.client("juliet") as juliet:
            _, received = await enter(juliet, ROOM, "Juliet")
            history = [e for e in received if e.find(DELAY) is not None]
            assert [e.findtext(f"{{{CLIENT}}}body") for e in history] == [
                "line 2",
                "line 3",
                "line 4",
            ]
            delay = history[0].find(DELAY)
            assert delay is not None and delay.get("from") == ROOM and delay.get("stamp")
            assert history[0].get("from") == f"{ROOM}/Romeo"
        async with srv.client("nurse") as nurse:
            _, received = await enter(nurse, ROOM, "Nurse", history="<history maxstanzas='1'/>")
            bodies = [
                e.findtext(f"{{{CLIENT}}}body") for e in received if e.find(DELAY) is not None
            ]
            assert bodies == ["line 4"]
        async with srv.client("tybalt") as tybalt:
            _, received = await enter(tybalt, ROOM, "Tybalt", history="<history maxchars='0'/>")
            assert [e for e in received if e.find(DELAY) is not None] == []


async def test_subject_set_by_a_moderator_is_sent_on_join_and_participants_may_not_change_it() -> (
    None
):
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        await enter(juliet, ROOM, "Juliet")
        await romeo.send(
            f"<message to='{ROOM}' type='groupchat'><subject>Verona</subject></message>"
        )
        change = await juliet.expect(subject_message(ROOM))
        assert change.get("from") == f"{ROOM}/Romeo"
        assert change.findtext(f"{{{CLIENT}}}subject") == "Verona"
        await juliet.send(
            f"<message to='{ROOM}' type='groupchat'><subject>Mantua</subject></message>"
        )
        refused = await juliet.expect(lambda e: e.get("type") == "error")
        assert error_condition(refused) == "forbidden"
        async with srv.client("nurse") as nurse:
            _, received = await enter(nurse, ROOM, "Nurse")
            assert received[-1].findtext(f"{{{CLIENT}}}subject") == "Verona"
            assert received[-1].get("from") == f"{ROOM}/Romeo"


async def test_private_messages_go_to_the_occupant_only() -> None:
    async with open_room("juliet", "nurse") as (romeo, juliet, nurse):
        msg_id = await say(romeo, f"{ROOM}/Juliet", "psst", type_="chat")
        got = await juliet.expect(message_from(f"{ROOM}/Romeo", "chat"))
        assert got.get("id") == msg_id and got.findtext(f"{{{CLIENT}}}body") == "psst"
        assert got.find(f"{{{USER_NS}}}x") is not None
        await quiet(nurse, message_from(f"{ROOM}/Romeo", "chat"))
        await say(romeo, f"{ROOM}/Benvolio", "anyone?", type_="chat")
        refused = await romeo.expect(lambda e: e.get("type") == "error")
        assert error_condition(refused) == "item-not-found"
        await say(romeo, f"{ROOM}/Juliet", "wrong type")
        refused = await romeo.expect(lambda e: e.get("type") == "error")
        assert error_condition(refused) == "bad-request"


async def test_mediated_invitation_and_decline() -> None:
    async with (
        open_muc() as srv,
        srv.client("romeo") as romeo,
        srv.client("juliet", presence=True) as juliet,
    ):
        await create_room(romeo, ROOM, "Romeo")
        await romeo.send(
            f"<message to='{ROOM}'><x xmlns='{USER_NS}'><invite to='juliet@localhost'>"
            "<reason>Come to the feast</reason></invite></x></message>"
        )
        invitation = await juliet.expect(MESSAGE)
        assert invitation.get("from") == ROOM
        invite = invitation.find(f"{{{USER_NS}}}x/{{{USER_NS}}}invite")
        assert invite is not None and invite.get("from") == "romeo@localhost"  # bare: no resource
        assert invite.findtext(f"{{{USER_NS}}}reason") == "Come to the feast"
        assert "Come to the feast" in (invitation.findtext(f"{{{CLIENT}}}body") or "")
        await juliet.send(
            f"<message to='{ROOM}'><x xmlns='{USER_NS}'><decline to='romeo@localhost'>"
            "<reason>Not tonight</reason></decline></x></message>"
        )
        declined = await romeo.expect(MESSAGE)
        decline = declined.find(f"{{{USER_NS}}}x/{{{USER_NS}}}decline")
        assert decline is not None and decline.get("from") == "juliet@localhost"
        assert decline.findtext(f"{{{USER_NS}}}reason") == "Not tonight"
        # a decline with no invitation behind it is not relayed
        await juliet.send(
            f"<message to='{ROOM}'><x xmlns='{USER_NS}'><decline to='nurse@localhost'/></x></message>"
        )
        await room_sync(juliet)
        await quiet(romeo, lambda e: e.tag == MESSAGE)


async def test_participants_may_not_invite_unless_the_room_allows_it() -> None:
    async with open_room("juliet") as (_, juliet):
        await juliet.send(
            f"<message to='{ROOM}'><x xmlns='{USER_NS}'><invite to='nurse@localhost'/></x></message>"
        )
        refused = await juliet.expect(lambda e: e.get("type") == "error")
        assert error_condition(refused) == "forbidden"


# ---------------------------------------------------------------- discovery, ping, destroy


async def test_service_disco_lists_public_configured_rooms() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo:
        info = await query(romeo, MUC, f"<query xmlns='{INFO_NS}'/>")
        identity = info.find(f"{{{INFO_NS}}}query/{{{INFO_NS}}}identity")
        assert identity is not None and identity.attrib["category"] == "conference"
        features = {f.get("var") for f in info.iter(f"{{{INFO_NS}}}feature")}
        assert MUC_NS in features
        await enter(romeo, ROOM, "Romeo")  # locked: not listed yet
        items = await query(romeo, MUC, f"<query xmlns='{ITEMS_NS}'/>")
        assert [i.get("jid") for i in items.iter(f"{{{ITEMS_NS}}}item")] == []
        await query(
            romeo,
            ROOM,
            f"<query xmlns='{OWNER_NS}'><x xmlns='jabber:x:data' type='submit'/></query>",
            "set",
        )
        await create_room(romeo, f"hidden@{MUC}", "Romeo", public=False)
        items = await query(romeo, MUC, f"<query xmlns='{ITEMS_NS}'/>")
        assert [i.get("jid") for i in items.iter(f"{{{ITEMS_NS}}}item")] == [ROOM]


async def test_server_disco_items_lists_the_service() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo:
        items = await query(romeo, "localhost", f"<query xmlns='{ITEMS_NS}'/>")
        assert items.get("type") == "result"
        assert MUC in [i.get("jid") for i in items.iter(f"{{{ITEMS_NS}}}item")]
        info = await query(romeo, MUC, f"<query xmlns='{INFO_NS}'/>")
        identity = info.find(f"{{{INFO_NS}}}query/{{{INFO_NS}}}identity")
        assert identity is not None and identity.get("category") == "conference"
    async with open_muc(settings={"subdomain": "rooms"}) as srv, srv.client("romeo") as romeo:
        items = await query(romeo, "localhost", f"<query xmlns='{ITEMS_NS}'/>")
        jids = [i.get("jid") for i in items.iter(f"{{{ITEMS_NS}}}item")]
        assert "rooms.localhost" in jids and MUC not in jids


async def test_room_disco_info_and_items_only_for_occupants() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo", name="The Capulets")
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        identity = info.find(f"{{{INFO_NS}}}query/{{{INFO_NS}}}identity")
        assert identity is not None and identity.get("name") == "The Capulets"
        features = {f.get("var") for f in info.iter(f"{{{INFO_NS}}}feature")}
        assert {MUC_NS, "muc_semianonymous", "muc_temporary", "muc_open", "muc_public",
                "muc_unmoderated", "muc_unsecured"} <= features  # fmt: skip
        occupants = [
            f.findtext("{jabber:x:data}value")
            for f in info.iter("{jabber:x:data}field")
            if f.get("var") == "muc#roominfo_occupants"
        ]
        assert occupants == ["1"]
        stranger_items = await query(juliet, ROOM, f"<query xmlns='{ITEMS_NS}'/>")
        assert list(stranger_items.iter(f"{{{ITEMS_NS}}}item")) == []
        own_items = await query(romeo, ROOM, f"<query xmlns='{ITEMS_NS}'/>")
        assert [i.get("jid") for i in own_items.iter(f"{{{ITEMS_NS}}}item")] == [f"{ROOM}/Romeo"]


async def test_self_ping_and_iq_to_occupants() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        ping = "<ping xmlns='urn:xmpp:ping'/>"
        assert (await query(romeo, f"{ROOM}/Romeo", ping)).get("type") == "result"
        assert error_condition(await query(juliet, f"{ROOM}/Romeo", ping)) == "not-acceptable"
        await enter(juliet, ROOM, "Juliet")
        vcard = "<vCard xmlns='vcard-temp'/>"
        assert error_condition(await query(juliet, f"{ROOM}/Romeo", vcard)) == "service-unavailable"


async def test_owner_destroys_the_room() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo")
        await enter(juliet, ROOM, "Juliet")
        refused = await query(juliet, ROOM, f"<query xmlns='{OWNER_NS}'><destroy/></query>", "set")
        assert error_condition(refused) == "forbidden"
        answer = await query(
            romeo,
            ROOM,
            f"<query xmlns='{OWNER_NS}'><destroy jid='montagues@{MUC}'>"
            "<reason>Plague</reason></destroy></query>",
            "set",
        )
        assert answer.get("type") == "result"
        gone = await juliet.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        destroy = gone.find(f"{{{USER_NS}}}x/{{{USER_NS}}}destroy")
        assert destroy is not None and destroy.get("jid") == f"montagues@{MUC}"
        assert destroy.findtext(f"{{{USER_NS}}}reason") == "Plague"
        await romeo.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert error_condition(info) == "item-not-found"
        # every occupant's session forgot the room (server.presence.forget)
        for client in (romeo, juliet):
            assert client.jid is not None
            session = srv.server.router.session_for(client.jid)
            assert session is not None
            assert not {j for j in session.directed_to | session.seen_by if str(j.bare) == ROOM}


async def test_six_occupants_all_see_each_other_and_the_chat() -> None:
    names = [f"user{n}" for n in range(6)]
    async with open_muc(accounts=tuple(names)) as srv, AsyncExitStack() as stack:
        joined = []
        for n, name in enumerate(names):
            client = await stack.enter_async_context(srv.client(name))
            if n == 0:
                await create_room(client, ROOM, name)
            else:
                _, received = await enter(client, ROOM, name)
                present = {e.get("from") for e in received if e.tag == PRESENCE}
                assert present == {f"{ROOM}/{other}" for other in names[:n]}  # then its own
            joined.append(client)
        await say(joined[-1], ROOM, "all here")
        for client in joined:
            got = await client.expect(message_from(f"{ROOM}/{names[-1]}"))
            assert got.findtext(f"{{{CLIENT}}}body") == "all here"
