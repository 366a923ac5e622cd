"""Room configuration (XEP-0045 §10, XEP-0004 ``muc#roomconfig``) and what each setting
does: password, members-only, anonymity, maximum occupants, change notices — plus the
plugin's own settings (``[plugin.muc]``) and the form table as pure functions.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from casper.config import ConfigError
from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.server import Server
from casper.testing import parse_xml
from casper_plugins.muc.config import Config
from casper_plugins.muc.forms import FIELDS, config_form, parse_submission
from casper_plugins.muc.model import Room, RoomConfig

from tests.plugins.muc.conftest import (
    DATA_NS,
    INFO_NS,
    MESSAGE,
    MUC,
    OWNER_NS,
    ROOM,
    USER_NS,
    codes,
    configure,
    create_room,
    enter,
    error_condition,
    form,
    item,
    join,
    open_muc,
    open_room,
    presence_from,
    query,
    quiet,
)


def features(info: Element) -> set[str]:
    return {f.get("var") or "" for f in info.iter(f"{{{INFO_NS}}}feature")}


def form_values(x: Element) -> dict[str, list[str]]:
    return {
        f.get("var") or "": [v.text or "" for v in f.findall(f"{{{DATA_NS}}}value")]
        for f in x.findall(f"{{{DATA_NS}}}field")
    }


# ---------------------------------------------------------------- the form over the wire


async def test_owner_gets_the_form_and_others_are_forbidden() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo", name="Capulets", persistent=True)
        answer = await query(romeo, ROOM, f"<query xmlns='{OWNER_NS}'/>")
        x = answer.find(f"{{{OWNER_NS}}}query/{{{DATA_NS}}}x")
        assert x is not None and x.get("type") == "form"
        values = form_values(x)
        assert values["FORM_TYPE"] == ["http://jabber.org/protocol/muc#roomconfig"]
        assert values["muc#roomconfig_roomname"] == ["Capulets"]
        assert values["muc#roomconfig_persistentroom"] == ["1"]
        assert values["muc#roomconfig_whois"] == ["moderators"]
        await enter(juliet, ROOM, "Juliet")
        refused = await query(juliet, ROOM, f"<query xmlns='{OWNER_NS}'/>")
        assert error_condition(refused) == "forbidden"
        refused = await configure(juliet, ROOM, name="Ours now")
        assert error_condition(refused) == "forbidden"


async def test_bad_values_are_refused_and_change_nothing() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo:
        await create_room(romeo, ROOM, "Romeo")
        for fields in ({"whois": "everybody"}, {"max_users": "0"}, {"persistent": "maybe"},
                       {"password_protected": True}):  # fmt: skip
            refused = await configure(romeo, ROOM, **fields)
            assert error_condition(refused) == "not-acceptable", fields
        info = await query(romeo, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert {"muc_semianonymous", "muc_temporary", "muc_unsecured"} <= features(info)


async def test_cancelling_the_initial_configuration_destroys_the_room() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo:
        await enter(romeo, ROOM, "Romeo")
        answer = await query(
            romeo,
            ROOM,
            f"<query xmlns='{OWNER_NS}'><x xmlns='{DATA_NS}' type='cancel'/></query>",
            "set",
        )
        assert answer.get("type") == "result"
        gone = await romeo.expect(presence_from(f"{ROOM}/Romeo", "unavailable"))
        assert gone.find(f"{{{USER_NS}}}x/{{{USER_NS}}}destroy") is not None
        info = await query(romeo, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert error_condition(info) == "item-not-found"


# ---------------------------------------------------------------- what the settings do


async def test_password_protected_room() -> None:
    async with open_muc() as srv, srv.client("romeo") as romeo, srv.client("juliet") as juliet:
        await create_room(romeo, ROOM, "Romeo", password_protected=True, password="nightingale")
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert "muc_passwordprotected" in features(info)
        for wrong in (None, "lark"):
            refused = await join(juliet, ROOM, "Juliet", password=wrong)
            assert error_condition(refused) == "not-authorized"
            assert "nightingale" not in repr([c.text for c in refused.iter()])
        assert (await join(juliet, ROOM, "Juliet", password="nightingale")).get("type") is None


async def test_members_only_room_and_turning_it_on_removes_non_members_322() -> None:
    async with open_room("juliet", "nurse") as (romeo, juliet, nurse):
        await query(
            romeo,
            ROOM,
            "<query xmlns='http://jabber.org/protocol/muc#admin'>"
            "<item jid='nurse@localhost' affiliation='member'/></query>",
            "set",
        )
        answer = await configure(romeo, ROOM, members_only=True)
        assert answer.get("type") == "result"
        removed = await juliet.expect(presence_from(f"{ROOM}/Juliet", "unavailable"))
        assert codes(removed) == {110, 322}
        notice = await nurse.expect(lambda e: e.tag == MESSAGE and e.get("from") == ROOM)
        assert 104 in codes(notice)
        refused = await join(juliet, ROOM, "Juliet")
        assert error_condition(refused) == "registration-required"
        info = await query(juliet, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert "muc_membersonly" in features(info)


async def test_members_only_invitation_by_an_owner_admits_the_invitee() -> None:
    async with (
        open_muc() as srv,
        srv.client("romeo") as romeo,
        srv.client("juliet", presence=True) as juliet,
    ):
        await create_room(romeo, ROOM, "Romeo", members_only=True)
        await romeo.send(
            f"<message to='{ROOM}'><x xmlns='{USER_NS}'><invite to='juliet@localhost'/></x></message>"
        )
        await juliet.expect(MESSAGE)
        assert (await join(juliet, ROOM, "Juliet")).get("type") is None


async def test_maximum_occupants() -> None:
    async with open_room("juliet", later=("nurse",), max_users=2) as (_, _, nurse):
        refused = await join(nurse, ROOM, "Nurse")
        assert error_condition(refused) == "service-unavailable"


@pytest.mark.parametrize(
    ("whois", "feature", "participant_sees", "owner_sees"),
    [
        ("anyone", "muc_nonanonymous", True, True),
        ("moderators", "muc_semianonymous", False, True),
        ("none", "muc_fullyanonymous", False, False),
    ],
)
async def test_anonymity_decides_who_sees_real_jids(
    whois, feature, participant_sees, owner_sees
) -> None:
    async with open_room(later=("juliet", "nurse"), whois=whois) as (romeo, juliet, nurse):
        info = await query(nurse, ROOM, f"<query xmlns='{INFO_NS}'/>")
        assert feature in features(info)
        own, received = await enter(juliet, ROOM, "Juliet")
        assert (100 in codes(own)) == (whois == "anyone")  # the joiner is warned
        assert item(own).get("jid") == str(juliet.jid)  # one always sees oneself
        romeo_seen = next(e for e in received if e.get("from") == f"{ROOM}/Romeo")
        assert (item(romeo_seen).get("jid") == str(romeo.jid)) == participant_sees
        at_owner = await romeo.expect(presence_from(f"{ROOM}/Juliet"))
        assert (item(at_owner).get("jid") == str(juliet.jid)) == owner_sees
        await enter(nurse, ROOM, "Nurse")
        at_juliet = await juliet.expect(presence_from(f"{ROOM}/Nurse"))
        assert (item(at_juliet).get("jid") is not None) == participant_sees


async def test_turning_a_room_non_anonymous_warns_172_and_reveals_only_later_joiners() -> None:
    async with open_room("juliet", later=("nurse",)) as (romeo, juliet, nurse):
        answer = await configure(romeo, ROOM, whois="anyone")
        assert answer.get("type") == "result"
        notice = await juliet.expect(lambda e: e.tag == MESSAGE and e.get("from") == ROOM)
        assert codes(notice) == {172}
        _, received = await enter(nurse, ROOM, "Nurse")
        juliet_seen = next(e for e in received if e.get("from") == f"{ROOM}/Juliet")
        assert item(juliet_seen).get("jid") is None  # joined under semi-anonymity
        nurse_seen = await juliet.expect(presence_from(f"{ROOM}/Nurse"))
        assert item(nurse_seen).get("jid") == str(nurse.jid)  # joined knowing (status 100)
        # a presence update from juliet still hides her real JID from nurse
        await juliet.send(f"<presence to='{ROOM}/Juliet'><show>away</show></presence>")
        update = await nurse.expect(presence_from(f"{ROOM}/Juliet"))
        assert item(update).get("jid") is None
        answer = await configure(romeo, ROOM, name="Capulets")
        notice = await juliet.expect(lambda e: e.tag == MESSAGE and e.get("from") == ROOM)
        assert codes(notice) == {104}
        await configure(romeo, ROOM, name="Capulets")  # no change, no notice
        await quiet(juliet, lambda e: e.tag == MESSAGE)


# ---------------------------------------------------------------- [plugin.muc]


async def test_the_service_domain_is_configurable() -> None:
    async with (
        open_muc(settings={"subdomain": "rooms", "name": "Verona"}) as srv,
        srv.client("romeo") as romeo,
    ):
        info = await query(romeo, "rooms.localhost", f"<query xmlns='{INFO_NS}'/>")
        identity = info.find(f"{{{INFO_NS}}}query/{{{INFO_NS}}}identity")
        assert identity is not None and identity.get("name") == "Verona"
        refused = await query(romeo, MUC, f"<query xmlns='{INFO_NS}'/>")
        assert error_condition(refused) == "remote-server-not-found"


async def test_lock_new_rooms_off_makes_every_new_room_instant() -> None:
    async with (
        open_muc(settings={"lock_new_rooms": False}) as srv,
        srv.client("romeo") as romeo,
        srv.client("juliet") as juliet,
    ):
        own, _ = await enter(romeo, ROOM, "Romeo")
        assert 201 in codes(own)
        assert (await join(juliet, ROOM, "Juliet")).get("type") is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"history_size": -1}, "plugin.muc.history_size"),
        ({"history_size": True}, "plugin.muc.history_size"),
        ({"queue_size": 2}, "plugin.muc.queue_size"),
        ({"max_occupants": 0}, "plugin.muc.max_occupants"),
        ({"lock_new_rooms": "yes"}, "plugin.muc.lock_new_rooms"),
        ({"subdomain": ""}, "plugin.muc.subdomain"),
        ({"colour": "red"}, "plugin.muc.colour"),
    ],
)
def test_config_from_mapping_rejects_bad_settings(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_mapping(settings)


@pytest.mark.parametrize("subdomain", ["a@b", "x/y", "bad..label"])
def test_config_rejects_a_subdomain_that_is_not_a_domain(subdomain: str) -> None:
    with pytest.raises(ConfigError, match="subdomain"):
        Config.from_mapping({"subdomain": subdomain}).service_domain("localhost")


def test_config_defaults() -> None:
    config = Config.from_mapping({})
    assert config.service_domain("Example.COM") == "conference.example.com"
    assert (config.history_size, config.max_occupants, config.lock_new_rooms) == (20, 200, True)


class OtherComponent:
    """A plugin that serves ``conference.localhost`` itself."""

    @hookimpl
    def casper_configure(self, server: Server) -> None:
        server.components[MUC] = lambda stanza: True


async def test_the_server_refuses_to_start_when_the_domain_is_taken() -> None:
    with pytest.RaisesGroup(
        pytest.RaisesExc(ConfigError, match="already served"), flatten_subgroups=True
    ):
        async with open_muc(extra_plugins=[(OtherComponent(), "other")]):
            pass  # pragma: no cover


# ---------------------------------------------------------------- the form table


def test_form_round_trip_every_field() -> None:
    room = Room(JID.parse(ROOM), RoomConfig(), history_size=5)
    built = config_form(room)
    assert [f.get("var") for f in built.findall(f"{{{DATA_NS}}}field")][1:] == [
        f.var for f in FIELDS
    ]
    submitted = parse_xml(
        "<message>"
        + form(name="N", description="D", persistent=True, public=False, members_only=True,
               moderated=True, password_protected=True, password="pw", whois="anyone",
               change_subject=True, allow_invites=True, allow_pm="moderators", max_users=7)
        + "</message>"
    )[0]  # fmt: skip
    config = parse_submission(submitted, RoomConfig(), max_users=10)
    assert config == RoomConfig("N", "D", True, False, True, True, True, "pw", "anyone", True, True,
                                "moderators", 7)  # fmt: skip
    room.config = config
    assert form_values(config_form(room))["muc#roomconfig_maxusers"] == ["7"]


@pytest.mark.parametrize(
    "fields",
    [{"max_users": 11}, {"allow_pm": "everyone"}, {"moderated": "2"}],
)
def test_form_values_out_of_range_are_not_acceptable(fields) -> None:
    submitted = parse_xml("<message>" + form(**fields) + "</message>")[0]
    with pytest.raises(StanzaError) as exc:
        parse_submission(submitted, RoomConfig(), max_users=10)
    assert exc.value.condition == "not-acceptable"


def test_a_form_of_another_type_is_a_bad_request() -> None:
    submitted = parse_xml(
        f"<message><x xmlns='{DATA_NS}' type='submit'><field var='FORM_TYPE'><value>urn:other</value>"
        "</field></x></message>"
    )[0]
    with pytest.raises(StanzaError) as exc:
        parse_submission(submitted, RoomConfig(), max_users=10)
    assert exc.value.condition == "bad-request"


def test_turning_password_protection_off_forgets_the_password() -> None:
    submitted = parse_xml("<message>" + form(password_protected=False) + "</message>")[0]
    config = parse_submission(submitted, RoomConfig(password_protected=True, password="x"), 10)
    assert (config.password_protected, config.password) == (False, "")
