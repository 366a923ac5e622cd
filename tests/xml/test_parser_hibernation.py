"""Hibernation: the parser frees expat between stanzas and takes it back when bytes come,
and the stream goes on as one document (the same events, the same faults, the same limits).
"""

from __future__ import annotations

from typing import Any

import pytest
from casper.errors import RemoteProtocolError
from casper.xml import StreamClosed, XMLStreamParser

from tests.xml.test_parser import (
    ERROR_CASES,
    HEADER,
    LIMITS,
    SPLITS,
    VALID_CASES,
    drain,
    fail_condition,
    named,
    norm,
    parse,
)


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize(("data", "expected"), **named(VALID_CASES))
def test_hibernating_between_chunks_yields_the_same_events(
    data: bytes, expected: list[Any], split: Any
) -> None:
    assert parse(data, split, hibernate=True) == expected


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize(("data", "condition"), **named(ERROR_CASES))
def test_hibernating_between_chunks_raises_the_same_faults(
    data: bytes, condition: str, split: Any
) -> None:
    assert fail_condition(data, split, hibernate=True, **LIMITS) == condition


def test_hibernation_frees_expat_only_between_stanzas() -> None:
    parser = XMLStreamParser()
    assert not parser.hibernate()  # before the stream header
    parser.feed(HEADER)
    drain(parser)
    assert parser.hibernate()
    assert parser._expat is None
    parser.feed(b"<message><bo")
    assert not parser.hibernate()  # inside a stanza
    parser.feed(b"dy>hi</body></message>  ")
    assert len(drain(parser)) == 1
    assert parser.hibernate()  # whitespace after a stanza does not stop it
    parser.feed(b"</stream:stream>")
    assert drain(parser) == [norm(StreamClosed())]
    assert not parser.hibernate()  # the stream is over


def test_prefixes_declared_on_the_root_still_apply_after_waking() -> None:
    header = (
        b"<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server'"
        b" xmlns:db='jabber:server:dialback' xmlns:q='a&quot;b'>"
    )
    parser = XMLStreamParser()
    parser.feed(header)
    drain(parser)
    assert parser.hibernate()
    parser.feed(b"<db:result from='a' to='b'>key</db:result><message q:x='1'/>")
    events = drain(parser)
    result, message = (event[1] for event in events)
    assert result[0] == "{jabber:server:dialback}result"
    assert message[0] == "{jabber:server}message"
    assert message[1] == {'{a"b}x': "1"}


def test_the_size_cap_counts_from_the_right_place_after_waking() -> None:
    limit = len(HEADER) + 50  # the header obeys the cap too
    parser = XMLStreamParser(max_stanza_bytes=limit)
    parser.feed(HEADER)
    drain(parser)
    body = b"x" * (limit - len(b"<message><body></body></message>"))
    for _ in range(3):
        assert parser.hibernate()
        parser.feed(b"<message><body>" + body + b"</body></message>")  # exactly the cap
        assert len(drain(parser)) == 1
    assert parser.hibernate()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"<message><body>" + body + b"x</body></message>")  # one byte more
    assert info.value.condition == "policy-violation"
