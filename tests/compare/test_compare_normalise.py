"""Normalisation: what is left of a stanza once names, ids and clocks are gone."""

from __future__ import annotations

from casper.compare.actor import parse
from casper.compare.normalise import Normaliser

NORM = Normaliser({"alice@example.org": "user", "bob@example.org": "friend"}, "example.org",
                  "lobby@conference.example.org")  # fmt: skip


def n(xml: str) -> str:
    return NORM.stanza(parse(xml))


def test_jids_become_roles_and_resources_stay() -> None:
    assert NORM.jid("Alice@Example.org/desk") == "user/desk"
    assert NORM.jid("bob@example.org") == "friend"
    assert NORM.jid("example.org") == "DOMAIN"
    assert NORM.jid("lobby@conference.example.org/user") == "ROOM/user"
    assert NORM.jid("conference.example.org") == "MUC"
    assert NORM.jid("eve@elsewhere.net") == "eve@elsewhere.net"


def test_stanza_ids_archive_ids_and_delay_stamps_are_dropped() -> None:
    one = n("<presence id='a1' from='alice@example.org' to='bob@example.org/x' type='unavailable'>"
            "<delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00Z' from='alice@example.org'/>"
            "<stanza-id xmlns='urn:xmpp:sid:0' id='zz' by='bob@example.org'/></presence>")  # fmt: skip
    two = n("<presence id='b2' from='alice@example.org' to='bob@example.org/x' type='unavailable'>"
            "<delay xmlns='urn:xmpp:delay' stamp='2025-05-05T05:05:05Z' from='alice@example.org'/></presence>")  # fmt: skip
    assert one == two
    assert one == ('<presence from="user" to="friend/x" type="unavailable">'
                   '<delay from="user" xmlns="urn:xmpp:delay"/></presence>')  # fmt: skip


def test_clock_values_are_normalised_but_online_now_is_kept() -> None:
    time_a = n("<iq type='result' from='alice@example.org/desk'><time xmlns='urn:xmpp:time'>"
               "<tzo>+01:00</tzo><utc>2024-01-01T00:00:00Z</utc></time></iq>")  # fmt: skip
    time_b = n("<iq type='result' from='alice@example.org/desk'><time xmlns='urn:xmpp:time'>"
               "<tzo>+00:00</tzo><utc>2030-01-01T00:00:00Z</utc></time></iq>")  # fmt: skip
    assert time_a == time_b
    now = n("<iq type='result'><query xmlns='jabber:iq:last' seconds='0'/></iq>")
    ago = n("<iq type='result'><query xmlns='jabber:iq:last' seconds='17'/></iq>")
    longer = n("<iq type='result'><query xmlns='jabber:iq:last' seconds='9000'/></iq>")
    assert ago == longer != now


def test_error_conditions_and_payloads_stay_distinguishable() -> None:
    err = n("<iq type='error' from='alice@example.org/desk'><error type='cancel'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")  # fmt: skip
    result = n("<iq type='result' from='alice@example.org/desk'/>")
    assert err != result
    assert "service-unavailable" in err
