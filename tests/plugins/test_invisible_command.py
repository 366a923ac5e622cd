"""invisible-command: XEP-0186 (urn:xmpp:invisible:1), every MUST and SHOULD, over real TCP.

The XEP's server rules (version 0.14), one or more tests each:

- §3.1: ``<invisible/>`` answered with a result; after initial presence, unavailable to
  everyone who would get it if the client sent unavailable; ``probe`` (a boolean,
  default false) says whether the session's initial presence probes its contacts.
- §3.1.1 while invisible: (1) no broadcast for later undirected presence; (2) outbound
  directed presence delivered; (3) inbound presence delivered; (4) bare-JID messages
  SHOULD be delivered — Casper deliberately takes the offline path instead, as for the
  other strategies; (5) inbound messages and IQs to the full JID delivered; (6) outbound
  messages and IQs delivered; (7) with no other available resource, IQ-gets and probes
  to the bare JID answered as if offline (last seen: the time the session went
  invisible, for every contact entitled to see it then; the older logoff for contacts
  it was never visible to; disco#items without it); (8) unavailable after directed
  presence only to those it was sent to.
- §3.2: ``<visible/>`` broadcasts nothing until the next presence; directed recipients
  from the invisible time still get unavailable at logoff.
- §2: invisibility ends with the session. §4: disco#info of the server lists the feature.

Cast: ``romeo`` (resource ``r1``, sometimes ``r2``) hides; ``juliet`` and ``nurse`` are his
contacts (mutual subscriptions seeded into the rosters); ``tybalt`` and ``mercutio`` are
strangers. Romeo last logged off publicly an hour ago saying "Gone fishing". After one
actor acts, every inbox is read with a round trip (the actor's first), so "heard nothing"
needs no sleeping; what each heard is compared as ``(from, type, show, status)``.

Tests marked xfail pin a MUST the server breaks today (the reason names the cause).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper.storage.base import RosterItem
from casper.testing import TestClient, open_test_server
from casper.testing.conformance.scenarios import shape, summary

from tests.helpers import BaseCast, Heard, error_condition, new_id, nobody_else, query, sync

NS = "urn:xmpp:invisible:1"
C = "{jabber:client}"
DOMAIN = "localhost"
ROMEO, R1, R2 = "romeo@localhost", "romeo@localhost/r1", "romeo@localhost/r2"
ACCOUNTS = ("romeo", "juliet", "nurse", "tybalt", "mercutio")
CONTACTS = ("juliet", "nurse")
LAST_STATUS = "Gone fishing"
AN_HOUR = 3600.0
LAST_QUERY = "<query xmlns='jabber:iq:last'/>"
ITEMS_QUERY = "<query xmlns='http://jabber.org/protocol/disco#items'/>"


def romeo(type_: str = "available", show: str | None = None, status: str | None = None,
          resource: str = "r1") -> Heard:  # fmt: skip
    return (f"{ROMEO}/{resource}", type_, show, status)


AVAILABLE, UNAVAILABLE = romeo(), romeo("unavailable")


class Cast(BaseCast):
    async def log_in(self, name: str, *, presence: bool = False) -> TestClient:
        """``user`` or ``user/resource`` (default r1); what the login brought is read away."""
        client = await super().log_in(name, presence=presence)
        await sync(client)
        return client

    async def log_off(self, name: str) -> dict[str, list[Heard]]:
        await self.leave(name)
        return await self.heard()

    async def heard(self, *, first: str | None = None) -> dict[str, list[Heard]]:
        """What each actor received since last asked (``first`` is read first, not returned)."""
        if first is not None:
            await sync(self.clients[first])
        return {name: [summary(e) for e in await sync(c)] for name, c in self.clients.items()
                if name != first}  # fmt: skip

    async def says(self, name: str, xml: str) -> dict[str, list[Heard]]:
        """``name`` sends ``xml``; what every other actor heard because of it."""
        await self.clients[name].send(xml)
        return await self.heard(first=name)


@asynccontextmanager
async def open_cast(
    *, plugins: tuple[str, ...] = ("invisible-command",), **config: Any
) -> AsyncIterator[Cast]:
    """A server with the plugin; rosters seeded, romeo's last logoff an hour ago."""
    async with open_test_server(plugins=plugins, accounts=ACCOUNTS, tcp=True, **config) as srv:
        server = srv.server
        for name in CONTACTS:
            a, b = srv.jid("romeo"), srv.jid(name)
            await server.rosters.put(a, RosterItem(str(b), subscription="both"), push=False)
            await server.rosters.put(b, RosterItem(str(a), subscription="both"), push=False)
        await server.db(server.storage.set_last_activity, ROMEO, time.time() - AN_HOUR, LAST_STATUS)
        cast = Cast(srv)
        try:
            yield cast
        finally:
            await cast.aclose()


async def command(client: TestClient, payload: str, to: str | None = None) -> Element:
    """An IQ set without ``to`` (handled by the user's server, as the XEP sends it)."""
    iq_id, address = new_id("inv"), "" if to is None else f" to='{to}'"
    await client.send(f"<iq type='set' id='{iq_id}'{address}>{payload}</iq>")
    return await client.expect(lambda e: e.tag == f"{C}iq" and e.get("id") == iq_id)


async def invisible(client: TestClient, probe: str | None = "true") -> Element:
    """Send ``<invisible/>`` (with ``probe`` unless ``None``); return the reply."""
    attr = "" if probe is None else f" probe='{probe}'"
    return await command(client, f"<invisible xmlns='{NS}'{attr}/>")


async def visible(client: TestClient) -> Element:
    return await command(client, f"<visible xmlns='{NS}'/>")


def ok(reply: Element) -> Element:
    assert reply.get("type") == "result", error_condition(reply)
    return reply


async def romeo_online_then_invisible(
    cast: Cast, *others: str, watching: tuple[str, ...] = ()
) -> None:
    """``others`` come online; romeo sends presence, then goes invisible (probe='true'):
    the contacts among them and ``watching`` (online already) saw him come and go."""
    for name in others:
        await cast.log_in(name, presence=True)
    r1 = await cast.log_in("romeo")
    heard = await cast.says("romeo", "<presence/>")
    contacts = {name: [AVAILABLE] for name in (*others, *watching) if name in CONTACTS}
    assert heard == nobody_else(heard, **contacts)
    ok(await invisible(r1))
    heard = await cast.heard(first="romeo")
    assert heard == nobody_else(heard, **{name: [UNAVAILABLE] for name in contacts})


async def probe_answer(cast: Cast, name: str) -> list[Element]:
    """``name`` logs in with presence (probing romeo), then off; what it learnt of romeo."""
    client = await cast.log_in(name)
    await client.send("<presence/>")
    received = await sync(client)
    await cast.log_off(name)
    return [e for e in received if (e.get("from") or "").split("/")[0] == ROMEO]


async def last_seen(client: TestClient) -> tuple[float, str | None]:
    """Last activity of romeo's bare JID, as (when he was last seen, status)."""
    reply = await query(client, ROMEO, LAST_QUERY)
    payload = reply.find("{jabber:iq:last}query")
    assert payload is not None, error_condition(reply)
    return time.time() - int(payload.get("seconds", "")), payload.text


async def disco_items(client: TestClient) -> list[str | None]:
    reply = ok(await query(client, ROMEO, ITEMS_QUERY))
    return [i.get("jid") for i in reply.iter("{http://jabber.org/protocol/disco#items}item")]


# ---------------------------------------------------------------- §4 discovery


async def test_server_disco_info_lists_urn_xmpp_invisible_1() -> None:
    async with open_cast() as cast:
        r1 = await cast.log_in("romeo")
        reply = ok(
            await query(r1, DOMAIN, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        )
    features = {f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")}
    assert NS in features


async def test_server_disco_info_lacks_the_feature_without_the_plugin() -> None:
    async with open_cast(plugins=()) as cast:
        r1 = await cast.log_in("romeo")
        reply = ok(
            await query(r1, DOMAIN, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        )
        assert error_condition(await invisible(r1)) == "service-unavailable"
    assert NS not in {
        f.get("var") for f in reply.iter("{http://jabber.org/protocol/disco#info}feature")
    }


# ---------------------------------------------------------------- §3.1 becoming invisible


async def test_invisible_after_presence_sends_unavailable_to_exactly_those_who_saw_the_session() -> (
    None
):
    """juliet (contact) saw romeo; nurse was connected but not available; mercutio is a
    stranger who saw nothing: only juliet hears him leave."""
    async with open_cast() as cast:
        await cast.log_in("juliet", presence=True)
        await cast.log_in("mercutio", presence=True)
        await cast.log_in("nurse")
        r1 = await cast.log_in("romeo")
        heard = await cast.says("romeo", "<presence/>")
        assert heard == nobody_else(heard, juliet=[AVAILABLE])
        ok(await invisible(r1))
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard, juliet=[UNAVAILABLE])
        assert await cast.log_off("romeo") == {"juliet": [], "mercutio": [], "nurse": []}


async def test_invisible_after_presence_sends_unavailable_to_directed_recipients_too() -> None:
    async with open_cast() as cast:
        for name in ("juliet", "tybalt"):
            await cast.log_in(name, presence=True)
        r1 = await cast.log_in("romeo")
        await cast.says("romeo", "<presence/>")
        heard = await cast.says("romeo", "<presence to='tybalt@localhost'/>")
        assert heard == nobody_else(heard, tybalt=[AVAILABLE])
        ok(await invisible(r1))
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard, juliet=[UNAVAILABLE], tybalt=[UNAVAILABLE])


async def test_invisible_before_presence_is_answered_and_nobody_hears_anything() -> None:
    async with open_cast() as cast:
        for name in ("juliet", "nurse", "tybalt"):
            await cast.log_in(name, presence=True)
        r1 = await cast.log_in("romeo")
        reply = ok(await invisible(r1))
        assert list(reply) == []  # an empty IQ result
        heard = await cast.says("romeo", "<presence><status>here</status></presence>")
        assert heard == nobody_else(heard)


# ---------------------------------------------------------------- §3.1 probe


async def contacts_presence_on_invisible_login(probe: str | None) -> set[str]:
    """juliet and nurse online; romeo goes invisible with ``probe`` then sends initial
    presence: which contacts' presence he receives."""
    async with open_cast() as cast:
        for name in CONTACTS:
            await cast.log_in(name, presence=True)
        r1 = await cast.log_in("romeo")
        ok(await invisible(r1, probe))
        await r1.send("<presence/>")
        received = await sync(r1)
        heard = await cast.heard()
        assert heard == nobody_else(heard)
    return {e.get("from", "") for e in received if e.tag == f"{C}presence" and e.get("type") is None
            and not e.get("from", "").startswith(ROMEO)}  # fmt: skip


@pytest.mark.parametrize("probe", ["true", "1"])
async def test_probe_true_brings_the_invisible_session_its_contacts_presence(probe: str) -> None:
    assert await contacts_presence_on_invisible_login(probe) == {
        "juliet@localhost/r1",
        "nurse@localhost/r1",
    }


@pytest.mark.parametrize("probe", ["false", "0"])
async def test_probe_false_brings_the_invisible_session_no_contact_presence(probe: str) -> None:
    assert await contacts_presence_on_invisible_login(probe) == set()


async def test_probe_absent_means_false_and_sends_no_probes() -> None:
    assert await contacts_presence_on_invisible_login(None) == set()


@pytest.mark.parametrize("value", ["maybe", "", "yes", "2"])
async def test_bad_probe_value_is_bad_request_and_changes_nothing(value: str) -> None:
    async with open_cast() as cast:
        await cast.log_in("juliet", presence=True)
        r1 = await cast.log_in("romeo")
        await cast.says("romeo", "<presence/>")
        assert error_condition(await invisible(r1, value)) == "bad-request"
        heard = await cast.says("romeo", "<presence><show>away</show></presence>")
        assert heard == nobody_else(heard, juliet=[romeo(show="away")])  # still visible


# ---------------------------------------------------------------- §3.1.1 while invisible


UPDATES = {
    "auto-away": "<presence><show>away</show><status>Auto away</status></presence>",
    "xa": "<presence><show>xa</show></presence>",
    "status": "<presence><status>On the phone</status></presence>",
    "priority": "<presence><priority>5</priority></presence>",
    "back": "<presence/>",
}


@pytest.mark.parametrize("update", UPDATES.values(), ids=UPDATES.keys())
async def test_undirected_presence_while_invisible_is_broadcast_to_nobody(update: str) -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "nurse", "tybalt")
        heard = await cast.says("romeo", update)
        assert heard == nobody_else(heard)


async def test_undirected_presence_while_invisible_skips_a_contact_shown_by_directed_presence() -> (
    None
):
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "nurse")
        heard = await cast.says("romeo", "<presence to='juliet@localhost'/>")
        assert heard == nobody_else(heard, juliet=[AVAILABLE])
        heard = await cast.says("romeo", UPDATES["auto-away"])
        assert heard == nobody_else(heard)


async def test_directed_presence_while_invisible_is_delivered_and_unavailable_only_to_it() -> None:
    """Rules 2 and 8: tybalt gets the directed presence; at logoff he alone hears romeo go."""
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "nurse", "tybalt")
        heard = await cast.says(
            "romeo", "<presence to='tybalt@localhost'><show>chat</show></presence>"
        )
        assert heard == nobody_else(heard, tybalt=[romeo(show="chat")])
        assert await cast.log_off("romeo") == nobody_else(heard, tybalt=[UNAVAILABLE])


async def test_unavailable_after_directed_presence_goes_only_to_its_recipients() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "nurse", "tybalt")
        await cast.says("romeo", "<presence to='juliet@localhost'/>")
        heard = await cast.says(
            "romeo", "<presence type='unavailable'><status>bye</status></presence>"
        )
        assert heard == nobody_else(heard, juliet=[romeo("unavailable", status="bye")])
        assert await cast.log_off("romeo") == nobody_else(heard)


async def test_inbound_presence_reaches_the_invisible_session() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet")
        heard = await cast.says("juliet", "<presence><show>dnd</show></presence>")
        assert heard == {"romeo": [("juliet@localhost/r1", "available", "dnd", None)]}


async def test_full_jid_messages_and_iqs_reach_the_invisible_session_and_it_answers() -> None:
    """Rules 5 and 6: both ways, by full JID."""
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "tybalt")
        message = f"<message to='{R1}' type='chat'><body>draw</body></message>"
        heard = await cast.says("tybalt", message)
        assert heard == nobody_else(heard, romeo=[("tybalt@localhost/r1", "message/chat", "draw")])
        version = "<query xmlns='jabber:iq:version'/>"
        heard = await cast.says("juliet", f"<iq type='get' id='v1' to='{R1}'>{version}</iq>")
        expected = [("juliet@localhost/r1", "iq/get", "{jabber:iq:version}query")]
        assert heard == nobody_else(heard, romeo=expected)
        heard = await cast.says("romeo", "<iq type='result' id='v1' to='juliet@localhost/r1'/>")
        assert heard == nobody_else(heard, juliet=[(R1, "iq/result", None)])
        heard = await cast.says(
            "romeo", "<message to='tybalt@localhost/r1'><body>later</body></message>"
        )
        assert heard == nobody_else(heard, tybalt=[(R1, "message/normal", "later")])


async def test_bare_jid_message_from_a_directed_presence_recipient_reaches_the_session() -> None:
    """Shown to juliet by directed presence, romeo is online for her: her bare-JID chat
    reaches him, as everything else she is told says he is there."""
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "nurse")
        await cast.says("romeo", "<presence to='juliet@localhost'/>")
        assert await disco_items(cast.clients["juliet"]) == [R1]
        chat = f"<message to='{ROMEO}' type='chat'><body>hi</body></message>"
        heard = await cast.says("juliet", chat)
        assert heard == nobody_else(heard, romeo=[("juliet@localhost/r1", "message/chat", "hi")])


async def test_bare_jid_message_takes_the_offline_path_instead_of_the_xeps_should() -> None:
    """Rule 4 is a SHOULD; Casper stores it, as for an offline account, so a bare-JID
    message can't reveal the session."""
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet")
        storage = cast.srv.server.storage
        heard = await cast.says(
            "juliet", f"<message to='{ROMEO}' type='chat'><body>hi</body></message>"
        )
        assert heard == nobody_else(heard)  # nothing to romeo, no error to juliet
        assert await cast.srv.server.db(storage.count_offline, ROMEO) == 1


# ---------------------------------------------------------------- rule 7: as if offline


async def test_probe_answer_after_going_invisible_carries_the_time_he_went_invisible() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "nurse")
        went_invisible = time.time()
        await cast.log_off("juliet")
        answer = await probe_answer(cast, "juliet")
    assert [summary(e) for e in answer] == [(ROMEO, "unavailable", None, None)]
    delay = answer[0].find("{urn:xmpp:delay}delay")
    assert delay is not None
    stamp = datetime.fromisoformat(delay.get("stamp", "")).timestamp()
    assert stamp == pytest.approx(went_invisible, abs=2)


async def test_last_activity_is_the_time_he_went_invisible_for_a_contact_who_saw_him() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet")
        went_invisible = time.time()
        when, status = await last_seen(cast.clients["juliet"])
    assert when == pytest.approx(went_invisible, abs=2) and status is None


async def test_last_activity_is_the_time_he_went_invisible_for_a_contact_who_asked_meanwhile() -> (
    None
):
    """nurse, connected without presence, asked while romeo was visible ('0 seconds');
    an hour-old logoff afterwards would tell her he hid rather than left."""
    async with open_cast() as cast:
        nurse = await cast.log_in("nurse")
        r1 = await cast.log_in("romeo")
        await cast.says("romeo", "<presence/>")
        reply = ok(await query(nurse, ROMEO, LAST_QUERY))
        assert reply.find("{jabber:iq:last}query").get("seconds") == "0"  # type: ignore[union-attr]
        ok(await invisible(r1))
        went_invisible = time.time()
        when, _ = await last_seen(nurse)
    assert when == pytest.approx(went_invisible, abs=2)


async def test_last_activity_is_the_time_he_went_invisible_for_a_contact_offline_meanwhile() -> (
    None
):
    """nurse was offline while romeo was visible to her; had he logged off instead of
    hiding, she would get that time too."""
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet")
        went_invisible = time.time()
        nurse = await cast.log_in("nurse", presence=True)
        when, _ = await last_seen(nurse)
    assert when == pytest.approx(went_invisible, abs=2)


async def test_last_activity_stays_the_last_logoff_after_a_session_invisible_from_login() -> None:
    """Never visible, so never seen: during and after it, the hour-old logoff."""
    async with open_cast() as cast:
        juliet = await cast.log_in("juliet", presence=True)
        r1 = await cast.log_in("romeo")
        ok(await invisible(r1))
        await cast.says("romeo", "<presence/>")
        during = await last_seen(juliet)
        await cast.log_off("romeo")
        after = await last_seen(juliet)
    for when, status in (during, after):
        assert when == pytest.approx(time.time() - AN_HOUR, abs=2) and status == LAST_STATUS


async def test_disco_items_on_the_bare_jid_omit_the_invisible_resource() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet")
        assert await disco_items(cast.clients["juliet"]) == []
        assert await disco_items(cast.clients["romeo"]) == [R1]  # the account itself sees it


BARE_JID_GETS = {
    "version": "<query xmlns='jabber:iq:version'/>",
    "time": "<time xmlns='urn:xmpp:time'/>",
    "ping": "<ping xmlns='urn:xmpp:ping'/>",
    "disco-info": "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    "disco-items": ITEMS_QUERY,
    "roster": "<query xmlns='jabber:iq:roster'/>",
}


@pytest.mark.parametrize("payload", BARE_JID_GETS.values(), ids=BARE_JID_GETS.keys())
async def test_iq_get_to_the_bare_jid_is_answered_exactly_as_when_offline(payload: str) -> None:
    async with open_cast() as cast:
        juliet = await cast.log_in("juliet", presence=True)
        offline = await query(juliet, ROMEO, payload)
        await romeo_online_then_invisible(cast, watching=("juliet",))
        hidden = await query(juliet, ROMEO, payload)
    assert shape(hidden) == shape(offline)


async def test_a_second_visible_resource_makes_the_account_look_online_normally() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet")
        await cast.log_in("romeo/r2", presence=True)
        heard = await cast.heard()
        assert heard["juliet"] == [romeo(resource="r2")]
        juliet = cast.clients["juliet"]
        assert await disco_items(juliet) == [R2]
        reply = ok(await query(juliet, ROMEO, LAST_QUERY))
        assert reply.find("{jabber:iq:last}query").get("seconds") == "0"  # type: ignore[union-attr]
        await cast.log_off("juliet")
        answer = await probe_answer(cast, "juliet")
        assert [summary(e) for e in answer] == [romeo(resource="r2")]


# ---------------------------------------------------------------- §3.2 becoming visible


async def test_visible_broadcasts_nothing_until_the_next_presence() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "nurse", "tybalt")
        ok(await visible(cast.clients["romeo"]))
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard)
        heard = await cast.says("romeo", "<presence><show>chat</show></presence>")
        assert heard == nobody_else(heard, juliet=[romeo(show="chat")], nurse=[romeo(show="chat")])


async def test_after_visible_the_session_answers_as_one_that_has_not_sent_presence_yet() -> None:
    """§3.2: presence sent while invisible is not shown by <visible/>: until the next
    presence, probes, last activity and disco#items still say offline."""
    async with open_cast() as cast:
        juliet = await cast.log_in("juliet", presence=True)
        r1 = await cast.log_in("romeo")
        ok(await invisible(r1))
        await cast.says("romeo", "<presence/>")
        ok(await visible(r1))
        when, status = await last_seen(juliet)
        assert when == pytest.approx(time.time() - AN_HOUR, abs=2) and status == LAST_STATUS
        assert await disco_items(juliet) == []
        answer = await probe_answer(cast, "nurse")
        assert [summary(e) for e in answer] == [(ROMEO, "unavailable", None, LAST_STATUS)]
        heard = await cast.says("romeo", "<presence/>")
        assert heard == nobody_else(heard, juliet=[AVAILABLE])


async def test_invisible_again_after_visible_and_presence_dates_last_activity_anew() -> None:
    async with open_cast() as cast:
        juliet = await cast.log_in("juliet", presence=True)
        r1 = await cast.log_in("romeo")
        ok(await invisible(r1))
        ok(await visible(r1))
        await cast.says("romeo", "<presence/>")
        ok(await invisible(r1))
        went_invisible = time.time()
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard, juliet=[UNAVAILABLE])
        when, status = await last_seen(juliet)
    assert when == pytest.approx(went_invisible, abs=2) and status is None


async def test_directed_recipient_while_invisible_gets_unavailable_after_visible_and_logoff() -> (
    None
):
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet", "tybalt")
        await cast.says("romeo", "<presence to='tybalt@localhost'/>")
        ok(await visible(cast.clients["romeo"]))
        await cast.says("romeo", "<presence/>")
        heard = await cast.log_off("romeo")
        assert heard == nobody_else(heard, juliet=[UNAVAILABLE], tybalt=[UNAVAILABLE])


async def test_invisibility_ends_with_the_session() -> None:
    async with open_cast() as cast:
        await romeo_online_then_invisible(cast, "juliet")
        assert await cast.log_off("romeo") == {"juliet": []}
        await cast.log_in("romeo")
        heard = await cast.says("romeo", "<presence/>")
        assert heard == nobody_else(heard, juliet=[AVAILABLE])


# ---------------------------------------------------------------- addressing


@pytest.mark.parametrize("name", ["invisible", "visible"])
async def test_command_addressed_to_another_account_is_forbidden(name: str) -> None:
    async with open_cast() as cast:
        await cast.log_in("juliet", presence=True)
        r1 = await cast.log_in("romeo")
        await cast.says("romeo", "<presence/>")
        reply = await command(r1, f"<{name} xmlns='{NS}' probe='false'/>", to="juliet@localhost")
        assert error_condition(reply) == "forbidden"
        heard = await cast.says("romeo", "<presence><show>away</show></presence>")
        assert heard == nobody_else(heard, juliet=[romeo(show="away")])  # romeo unaffected
        iq_id = new_id()
        await cast.clients["juliet"].send(
            f"<iq type='set' id='{iq_id}' to='{ROMEO}'><invisible xmlns='{NS}'/></iq>"
        )
        back = await sync(cast.clients["juliet"])
        assert [error_condition(e) for e in back if e.get("id") == iq_id] == ["forbidden"]


async def test_command_addressed_to_own_bare_jid_works_like_no_to() -> None:
    async with open_cast() as cast:
        await cast.log_in("juliet", presence=True)
        r1 = await cast.log_in("romeo")
        await cast.says("romeo", "<presence/>")
        ok(await command(r1, f"<invisible xmlns='{NS}' probe='false'/>", to=ROMEO))
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard, juliet=[UNAVAILABLE])
