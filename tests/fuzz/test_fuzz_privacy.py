"""Fuzz the privacy-list parser (casper_plugins.privacy_lists.model).

Random ``<list/>`` elements, built as element trees (random names, orders, actions, types,
values including arbitrary Unicode and JID-like strings, random children), or parsed from
mutated XML of real lists. Properties:

1. ``parse_list`` returns a :class:`PrivacyList` or raises :class:`StanzaError`, nothing else.
2. A parsed list survives its wire form and its storage form unchanged:
   ``parse_list(list_element(l)) == l == load_list(name, dump_list(l))``.
3. Matching a parsed list against any contact and stanza kind returns ``allow`` or ``deny``.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

import pytest
from casper.errors import RemoteProtocolError, StanzaError
from casper.jid import JID, InvalidJID
from casper.xml import NEED_DATA, StanzaReceived, XMLStreamParser
from casper_plugins.privacy_lists.model import (
    KINDS,
    OTHER,
    PRIVACY_NS,
    PrivacyList,
    decide,
    dump_list,
    list_element,
    load_list,
    parse_list,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.fuzzing import FUZZ, corpus_bytes, corpus_files, mutated

P = f"{{{PRIVACY_NS}}}"
jid_like = st.one_of(
    st.text(max_size=30),
    st.builds("{}@{}/{}".format, st.text(max_size=8), st.text(max_size=12), st.text(max_size=8)),
    st.builds("{}@{}".format, st.text(max_size=8), st.text(max_size=12)),
    st.sampled_from(
        [
            "capulet.lit",
            "tybalt@capulet.lit",
            "[::1]",
            "127.0.0.1",
            "a..b",
            "@x",
            "x@",
            "x/",
            "ÄÖÜ@bücher.example",
            "\u0130@x",
            "a" * 1100,
            "xn--zz",
        ]
    ),
)
order = st.one_of(
    st.integers(0, 2**32 - 1).map(str),
    st.integers().map(str),
    st.text(max_size=12),
    st.sampled_from(["", " 1 ", "01", "4294967296", "١", "1.0", "+1", "-0"]),
)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), strategy)


@st.composite
def items(draw: st.DrawFn) -> Element:
    tag = draw(st.sampled_from([P + "item"] * 9 + [P + "list", "item", P + "other"]))
    attrs = {
        "action": draw(maybe(st.sampled_from(["allow", "deny", "Allow", "", "block"]))),
        "order": draw(maybe(order)),
        "type": draw(maybe(st.sampled_from(["jid", "group", "subscription", "", "other"]))),
        "value": draw(maybe(st.one_of(jid_like, st.sampled_from(["both", "to", "from", "none"])))),
    }
    element = Element(tag, {k: v for k, v in attrs.items() if v is not None})
    for child in draw(st.lists(st.sampled_from([*KINDS, "other", "iq", "message"]), max_size=5)):
        namespace = draw(st.sampled_from([P, P, "{urn:other}", ""]))
        SubElement(element, namespace + child)
    return element


@st.composite
def lists(draw: st.DrawFn) -> Element:
    tag = draw(st.sampled_from([P + "list"] * 9 + [P + "item", "list"]))
    name = draw(maybe(st.one_of(st.text(max_size=20), st.sampled_from(["", "a" * 1024]))))
    element = Element(tag, {} if name is None else {"name": name})
    element.extend(draw(st.lists(items(), max_size=6)))
    return element


def check(element: Element) -> PrivacyList | None:
    try:
        plist = parse_list(element)
    except StanzaError as exc:
        assert exc.condition == "bad-request"
        return None
    assert isinstance(plist, PrivacyList)
    assert parse_list(list_element(plist)) == plist
    assert load_list(plist.name, dump_list(plist)) == plist
    return plist


@FUZZ
@given(lists())
def test_random_lists_parse_or_raise_stanza_error(element: Element) -> None:
    check(element)


@FUZZ
@given(lists(), jid_like, st.sampled_from([*KINDS, OTHER]))
def test_parsed_lists_decide_allow_or_deny(element: Element, contact: str, kind: str) -> None:
    plist = check(element)
    try:
        jid = JID.parse(contact)
    except InvalidJID:
        return
    assert decide(plist, jid, kind) in ("allow", "deny")


def parse_fragment(data: bytes) -> Element | None:
    """The first element of ``data`` as a stanza in a stream, or None if it is not XML."""
    parser = XMLStreamParser()
    header = (
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
    try:
        parser.feed(header + data)
        parser.next_event()
        event = parser.next_event()
    except RemoteProtocolError:
        return None
    return event.element if event is not NEED_DATA and isinstance(event, StanzaReceived) else None


@FUZZ
@given(mutated(corpus_bytes("privacy")))
def test_mutated_real_lists_parse_or_raise_stanza_error(data: bytes) -> None:
    element = parse_fragment(data)
    if element is not None:
        check(element)


@pytest.mark.parametrize("path", corpus_files("privacy"), ids=lambda p: p.name)
def test_corpus_replay(path) -> None:
    element = parse_fragment(path.read_bytes())
    assert element is not None
    check(element)
