"""privacy-lists model: parsing, validation and the XEP-0016 match rule, sans-IO and table-driven.

Every case is a plain synchronous function over values: no server, no trio.
"""

from __future__ import annotations

import pytest
from casper.errors import StanzaError
from casper.jid import JID
from casper.storage.base import RosterItem
from casper.testing import parse_xml
from casper_plugins.privacy_lists.model import (
    IQ,
    MESSAGE,
    OTHER,
    PRESENCE_IN,
    PRESENCE_OUT,
    UNKNOWN,
    PrivacyItem,
    PrivacyList,
    decide,
    dump_list,
    list_element,
    load_list,
    lookup,
    match,
    parse_list,
)

from tests.plugins.privacy_lists.linear_reference import jid_matches

NS = "jabber:iq:privacy"


def xml_list(body: str, name: str = "l") -> PrivacyList:
    """Parse ``<list name>body</list>`` the way the IQ handler does."""
    return parse_list(parse_xml(f"<list xmlns='{NS}' name='{name}'>{body}</list>"))


def one(item_xml: str) -> PrivacyList:
    return xml_list(item_xml)


# ---------------------------------------------------------------- the four JID forms

JID_FORMS = [
    # (item value, contact, matches?)
    ("juliet@example.com/balcony", "juliet@example.com/balcony", True),
    ("juliet@example.com/balcony", "juliet@example.com/chamber", False),
    ("juliet@example.com/balcony", "juliet@example.com", False),
    ("juliet@example.com/balcony", "nurse@example.com/balcony", False),
    ("juliet@example.com", "juliet@example.com", True),
    ("juliet@example.com", "juliet@example.com/balcony", True),
    ("juliet@example.com", "nurse@example.com", False),
    ("juliet@example.com", "juliet@example.org", False),
    ("example.com/bot", "example.com/bot", True),
    ("example.com/bot", "example.com/other", False),
    ("example.com/bot", "example.com", False),
    ("example.com/bot", "juliet@example.com/bot", False),
    ("example.com", "example.com", True),
    ("example.com", "juliet@example.com", True),
    ("example.com", "juliet@example.com/balcony", True),
    ("example.com", "example.com/bot", True),
    ("example.com", "conference.example.com", True),  # "address containing a subdomain"
    ("example.com", "room@conference.example.com/nick", True),
    ("example.com", "badexample.com", False),
    ("example.com", "example.com.evil.org", False),
    ("example.com", "example.org", False),
    ("1.2.3.4", "1.2.3.4", True),
    ("2.3.4", "1.2.3.4", False),  # an IP literal has no subdomains
    # JID preparation: case-folded local and domain, case-kept resource
    ("Juliet@Example.COM", "juliet@example.com/x", True),
    ("juliet@example.com/Balcony", "JULIET@EXAMPLE.COM/Balcony", True),
    ("juliet@example.com/Balcony", "juliet@example.com/balcony", False),
    ("EXAMPLE.com.", "user@example.com", True),
]


@pytest.mark.parametrize(("value", "contact", "expected"), JID_FORMS)
def test_jid_forms_match_as_xep_0016_defines(value: str, contact: str, expected: bool) -> None:
    assert jid_matches(JID.parse(value), JID.parse(contact)) is expected
    plist = one(f"<item type='jid' value='{value}' action='deny' order='1'/>")
    assert decide(plist, JID.parse(contact), MESSAGE) == ("deny" if expected else "allow")


# ---------------------------------------------------------------- groups and subscriptions

ROSTER = {
    "frodo@shire.lit": RosterItem("frodo@shire.lit", subscription="both", groups=("Bagginses",)),
    "gandalf@shire.lit": RosterItem("gandalf@shire.lit", subscription="to", groups=("Wizards",)),
    "pippin@shire.lit": RosterItem("pippin@shire.lit", subscription="from"),
    "sam@shire.lit": RosterItem("sam@shire.lit", subscription="none", groups=("Bagginses", "x")),
}

ROSTER_CASES = [
    # (item attrs, contact, matches?)
    ("type='group' value='Bagginses'", "frodo@shire.lit/home", True),
    ("type='group' value='Bagginses'", "sam@shire.lit", True),
    ("type='group' value='Bagginses'", "gandalf@shire.lit", False),
    ("type='group' value='Bagginses'", "stranger@shire.lit", False),
    ("type='group' value='bagginses'", "frodo@shire.lit", False),  # group names are exact
    ("type='subscription' value='both'", "frodo@shire.lit", True),
    ("type='subscription' value='both'", "gandalf@shire.lit", False),
    ("type='subscription' value='to'", "gandalf@shire.lit/staff", True),
    ("type='subscription' value='from'", "pippin@shire.lit", True),
    ("type='subscription' value='from'", "frodo@shire.lit", False),
    ("type='subscription' value='none'", "sam@shire.lit", True),
    ("type='subscription' value='none'", "stranger@elsewhere.lit", True),  # not in the roster
    ("type='subscription' value='none'", "frodo@shire.lit", False),
]


@pytest.mark.parametrize(("attrs", "contact", "expected"), ROSTER_CASES)
def test_group_and_subscription_items_read_the_roster(
    attrs: str, contact: str, expected: bool
) -> None:
    plist = one(f"<item {attrs} action='deny' order='1'/>")
    jid = JID.parse(contact)
    assert decide(plist, jid, MESSAGE, lookup(ROSTER, jid)) == ("deny" if expected else "allow")


def test_unknown_roster_is_read_restrictively() -> None:
    """Without the roster, a roster-dependent deny matches and an allow does not."""
    frodo = JID.parse("frodo@shire.lit")
    deny_group = one("<item type='group' value='Enemies' action='deny' order='1'/>")
    assert decide(deny_group, frodo, MESSAGE, UNKNOWN) == "deny"
    allow_then_deny = xml_list(
        "<item type='subscription' value='both' action='allow' order='1'/>"
        "<item action='deny' order='2'/>"
    )
    assert decide(allow_then_deny, frodo, MESSAGE, UNKNOWN) == "deny"
    assert decide(allow_then_deny, frodo, MESSAGE, lookup(ROSTER, frodo)) == "allow"
    jid_first = xml_list(
        "<item type='jid' value='frodo@shire.lit' action='allow' order='1'/>"
        "<item type='group' value='Enemies' action='deny' order='2'/>"
    )
    assert decide(jid_first, frodo, MESSAGE, UNKNOWN) == "allow"  # decided before the roster
    assert lookup(None, frodo) is UNKNOWN


# ---------------------------------------------------------------- kinds, order, fall-through

KIND_CASES = [
    # (children, kind, covered?)
    ("", MESSAGE, True),
    ("", IQ, True),
    ("", PRESENCE_IN, True),
    ("", PRESENCE_OUT, True),
    ("", OTHER, True),  # no child: everything, subscriptions included
    ("<message/>", MESSAGE, True),
    ("<message/>", IQ, False),
    ("<message/>", OTHER, False),
    ("<iq/>", IQ, True),
    ("<iq/>", PRESENCE_IN, False),
    ("<presence-in/>", PRESENCE_IN, True),
    ("<presence-in/>", PRESENCE_OUT, False),
    ("<presence-out/>", PRESENCE_OUT, True),
    ("<presence-out/>", MESSAGE, False),
    ("<presence-out/>", OTHER, False),
    ("<message/><iq/>", IQ, True),
    ("<message/><iq/>", PRESENCE_OUT, False),
]


@pytest.mark.parametrize(("children", "kind", "covered"), KIND_CASES)
def test_stanza_kinds(children: str, kind: str, covered: bool) -> None:
    plist = one(f"<item action='deny' order='1'>{children}</item>")
    assert decide(plist, JID.parse("x@y.lit"), kind) == ("deny" if covered else "allow")


def test_ascending_order_first_match_wins_whatever_the_document_order() -> None:
    contact = JID.parse("tybalt@example.com/pda")
    plist = xml_list(
        "<item action='allow' order='68'/>"
        "<item type='jid' value='tybalt@example.com' action='deny' order='3'/>"
    )
    assert [i.order for i in plist.items] == [3, 68]
    assert decide(plist, contact, MESSAGE) == "deny"
    assert decide(plist, JID.parse("paris@example.org"), MESSAGE) == "allow"


def test_an_item_for_other_kinds_is_skipped_not_decisive() -> None:
    plist = xml_list(
        "<item type='jid' value='a@b.lit' action='allow' order='1'><message/></item>"
        "<item action='deny' order='2'><presence-out/></item>"
    )
    assert decide(plist, JID.parse("a@b.lit"), PRESENCE_OUT) == "deny"
    assert decide(plist, JID.parse("a@b.lit"), MESSAGE) == "allow"


def test_no_match_and_no_list_allow() -> None:
    plist = one("<item type='jid' value='a@b.lit' action='deny' order='1'/>")
    assert decide(plist, JID.parse("c@d.lit"), MESSAGE) == "allow"
    assert decide(None, JID.parse("c@d.lit"), MESSAGE) == "allow"
    assert match(plist, JID.parse("c@d.lit"), MESSAGE) is None


def test_fall_through_item_matches_everyone() -> None:
    plist = one("<item action='deny' order='0'><presence-out/></item>")
    for contact in ("a@b.lit", "b.lit", "a@b.lit/r", "stranger@invalid"):
        assert decide(plist, JID.parse(contact), PRESENCE_OUT) == "deny"


# ---------------------------------------------------------------- validation

INVALID_LISTS = [
    ("<item action='deny'/>", "order missing"),
    ("<item action='deny' order='-1'/>", "negative order"),
    ("<item action='deny' order='1.5'/>", "non-integer order"),
    ("<item action='deny' order='x'/>", "non-numeric order"),
    ("<item action='deny' order='4294967296'/>", "order beyond unsignedInt"),
    ("<item action='deny' order='1'/><item action='allow' order='1'/>", "duplicate order"),
    ("<item order='1'/>", "action missing"),
    ("<item action='block' order='1'/>", "bad action"),
    ("<item type='user' value='a@b' action='deny' order='1'/>", "bad type"),
    ("<item type='jid' action='deny' order='1'/>", "jid without value"),
    ("<item type='jid' value='a@b@c/' action='deny' order='1'/>", "malformed jid"),
    ("<item type='jid' value='@example.com' action='deny' order='1'/>", "empty localpart"),
    ("<item type='subscription' value='mutual' action='deny' order='1'/>", "bad subscription"),
    ("<item type='group' value='' action='deny' order='1'/>", "empty group"),
    ("<item action='deny' order='1'><presence/></item>", "unknown kind"),
    ("<other action='deny' order='1'/>", "not an item"),
]


@pytest.mark.parametrize(("body", "why"), INVALID_LISTS, ids=[w for _, w in INVALID_LISTS])
def test_invalid_items_are_bad_requests(body: str, why: str) -> None:
    with pytest.raises(StanzaError) as info:
        xml_list(body)
    assert info.value.condition == "bad-request", why


def test_list_needs_a_name() -> None:
    with pytest.raises(StanzaError) as info:
        parse_list(parse_xml(f"<list xmlns='{NS}'><item action='deny' order='1'/></list>"))
    assert info.value.condition == "bad-request"


def test_empty_list_parses_for_removal() -> None:
    assert xml_list("").items == ()


def test_order_zero_and_the_maximum_are_valid() -> None:
    plist = xml_list("<item action='deny' order='0'/><item action='allow' order='4294967295'/>")
    assert [i.order for i in plist.items] == [0, 4294967295]


def test_values_are_stored_prepared_and_fall_through_values_ignored() -> None:
    plist = xml_list(
        "<item type='jid' value='Juliet@Example.COM' action='deny' order='1'/>"
        "<item value='ignored' action='allow' order='2'/>"
    )
    assert plist.items[0].value == "juliet@example.com"
    assert plist.items[1].value is None


def test_roster_dependence_and_groups() -> None:
    assert not one("<item type='jid' value='a@b' action='deny' order='1'/>").roster_dependent
    plist = xml_list(
        "<item type='group' value='G' action='deny' order='1'/>"
        "<item type='subscription' value='none' action='deny' order='2'/>"
    )
    assert plist.roster_dependent and plist.groups == {"G"}


def test_an_invisibility_list_names_presence_out():
    assert one("<item action='deny' order='1'><presence-out/></item>").hides
    assert one(
        "<item type='jid' value='a@b' action='deny' order='1'><presence-out/><iq/></item>"
    ).hides
    assert not one("<item action='allow' order='1'><presence-out/></item>").hides
    assert not one("<item type='jid' value='a@b' action='deny' order='1'/>").hides  # blocking


# ---------------------------------------------------------------- round trips


def test_xml_round_trip() -> None:
    plist = xml_list(
        "<item type='jid' value='a@b.lit' action='deny' order='3'><message/><presence-in/></item>"
        "<item type='group' value='Friends' action='allow' order='1'/>"
        "<item action='deny' order='9'><presence-out/></item>"
    )
    assert parse_list(list_element(plist)) == plist
    assert list(list_element(plist, items=False)) == []


def test_storage_round_trip() -> None:
    plist = xml_list(
        "<item type='subscription' value='both' action='allow' order='10'><iq/></item>"
        "<item action='deny' order='15'/>"
    )
    assert load_list("l", dump_list(plist)) == plist


def test_items_are_values() -> None:
    item = PrivacyItem("deny", 1, "jid", "A@B.lit")
    assert item == PrivacyItem("deny", 1, "jid", "a@b.lit")
    assert item.covers(MESSAGE) and item.jid == JID.parse("a@b.lit")
