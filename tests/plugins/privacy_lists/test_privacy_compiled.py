"""privacy-lists compiled matching: the same answers as the linear rule, at any list length.

A property test draws random lists (the four JID forms with case variants, IP literals
and subdomains, groups, subscriptions, fall-through items, random orders, actions and
stanza kinds) and random contacts and roster entries (including an unknown roster), and
checks that :meth:`PrivacyList.compiled` returns the very item the plain linear reading
(:mod:`tests.plugins.privacy_lists.linear_reference`) returns. Examples are derandomized
(the same ones on every run) so the ordinary run never fails by chance.
"""

from __future__ import annotations

from casper.jid import JID
from casper.storage.base import RosterItem
from casper_plugins.privacy_lists.model import (
    KINDS,
    MAX_ORDER,
    MESSAGE,
    OTHER,
    PRESENCE_OUT,
    SUBSCRIPTIONS,
    UNKNOWN,
    PrivacyItem,
    PrivacyList,
    RosterLookup,
    match,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.plugins.privacy_lists.linear_reference import linear_match

EQUIVALENCE = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

LOCALS = ["romeo", "Romeo", "ROMEO", "juliet", "Juliet"]
DOMAINS = [
    "example.com",
    "Example.COM",
    "example.com.",
    "conference.example.com",
    "Conference.Example.com",
    "a.b.example.com",
    "b.example.com",
    "badexample.com",
    "example.org",
    "com",
    "1.2.3.4",
    "2.3.4",
    "x.1.2.3.4",
    "10.0.0.1",
    "0.0.1",
    "[::1]",
    "[0:0::1]",
]
RESOURCES = ["balcony", "Balcony", "r"]
GROUPS = ["Friends", "friends", "Enemies", "x"]
KIND_NAMES = [*KINDS, OTHER]

jid_text = st.one_of(
    st.sampled_from(DOMAINS),  # the domain form, where subdomains and IP literals matter
    st.builds(
        lambda local, domain, resource: (
            (f"{local}@" if local else "") + domain + (f"/{resource}" if resource else "")
        ),
        st.sampled_from([None, *LOCALS]),
        st.sampled_from(DOMAINS),
        st.sampled_from([None, *RESOURCES]),
    ),
)


@st.composite
def items(draw: st.DrawFn, order: int) -> PrivacyItem:
    kind = draw(st.sampled_from([None, "jid", "jid", "group", "subscription"]))
    value = {
        None: st.none(),
        "jid": jid_text,
        "group": st.sampled_from(GROUPS),
        "subscription": st.sampled_from(SUBSCRIPTIONS),
    }[kind]
    return PrivacyItem(
        action=draw(st.sampled_from(["allow", "deny"])),
        order=order,
        type=kind,
        value=draw(value),
        kinds=frozenset(draw(st.sets(st.sampled_from(KINDS)))),
    )


@st.composite
def privacy_lists(draw: st.DrawFn) -> PrivacyList:
    orders = draw(st.lists(st.integers(0, MAX_ORDER), unique=True, max_size=25))
    return PrivacyList("l", tuple(draw(items(order)) for order in orders))


roster_lookups: st.SearchStrategy[RosterLookup] = st.one_of(
    st.just(UNKNOWN),
    st.none(),
    st.builds(
        lambda sub, groups: RosterItem("contact@x.lit", subscription=sub, groups=tuple(groups)),
        st.sampled_from(SUBSCRIPTIONS),
        st.lists(st.sampled_from(GROUPS), max_size=3),
    ),
)


def _near(text: str, change: str) -> str:
    """A JID close to an item's value: the same, another resource, bare, or a subdomain."""
    jid = JID.parse(text)
    if change == "resource":
        return str(jid.bare) + "/Balcony"
    if change == "bare":
        return str(jid.bare)
    if change == "subdomain" and not jid.domain.startswith("["):
        return str(JID(jid.local, "x." + jid.domain, jid.resource))
    return text


def contacts(plist: PrivacyList) -> st.SearchStrategy[JID]:
    """Any JID of the pool, or one close to a ``jid`` item of ``plist`` (collisions)."""
    values = [item.value for item in plist.items if item.type == "jid" and item.value]
    near = st.builds(_near, st.sampled_from(values),
                     st.sampled_from(["same", "resource", "bare", "subdomain"]))  # fmt: skip
    texts = st.one_of(jid_text, near) if values else jid_text
    return texts.map(JID.parse)


@EQUIVALENCE
@given(st.data())
def test_compiled_match_returns_the_item_the_linear_rule_returns(data: st.DataObject) -> None:
    plist = data.draw(privacy_lists(), label="list")
    questions = st.tuples(contacts(plist), st.sampled_from(KIND_NAMES), roster_lookups)
    for contact, kind, roster_item in data.draw(st.lists(questions, min_size=1, max_size=30)):
        assert match(plist, contact, kind, roster_item) is linear_match(
            plist, contact, kind, roster_item
        ), (contact, kind, roster_item)


def test_every_jid_form_against_every_contact_matches_as_the_linear_rule() -> None:
    """Exhaustive over the pool: each prepared JID as a one-item list, each as the contact."""
    pool = {
        JID.parse((f"{local}@" if local else "") + domain + (f"/{resource}" if resource else ""))
        for local in [None, *LOCALS]
        for domain in DOMAINS
        for resource in [None, *RESOURCES]
    }
    for pattern in pool:
        plist = PrivacyList("l", (PrivacyItem("deny", 7, "jid", str(pattern)),))
        for contact in pool:
            assert match(plist, contact, MESSAGE) is linear_match(plist, contact, MESSAGE), (
                pattern,
                contact,
            )


def _many(count: int) -> list[PrivacyItem]:
    """``count`` items of every kind that match nobody asked below."""
    forms = [
        lambda i: PrivacyItem("deny", i, "jid", f"user{i}@elsewhere.lit"),
        lambda i: PrivacyItem("deny", i, "jid", f"user{i}@example.com/res{i}"),
        lambda i: PrivacyItem("deny", i, "jid", f"host{i}.example.com"),
        lambda i: PrivacyItem("deny", i, "jid", f"example.com/res{i}"),
        lambda i: PrivacyItem("deny", i, "group", f"group{i}", frozenset({MESSAGE})),
        lambda i: PrivacyItem("allow", i, "jid", "romeo@example.com", frozenset({MESSAGE})),
    ]
    return [forms[i % len(forms)](i) for i in range(count)]


def test_a_long_list_still_decides_by_its_last_item() -> None:
    """A thousand items that don't apply, then the one that does: found, same as linear."""
    last = PrivacyItem("deny", 5000, "jid", "Romeo@Example.com")
    plist = PrivacyList("long", (*_many(1000), last))
    romeo = JID.parse("romeo@example.com/balcony")
    roster = RosterItem("romeo@example.com", subscription="both", groups=("Friends",))
    for kind in (PRESENCE_OUT, OTHER):
        assert match(plist, romeo, kind, roster) is last
        assert linear_match(plist, romeo, kind, roster) is last


def test_a_list_is_compiled_once() -> None:
    plist = PrivacyList("l", tuple(_many(12)))
    assert plist.compiled is plist.compiled
