"""The bench client's stream reader: the same events as the server's parser, split anywhere."""

from __future__ import annotations

import pytest
from casper.bench.stream_reader import StreamReader, StreamReadError
from casper.xml import NEED_DATA, StanzaReceived, StreamClosed, StreamOpened, XMLStreamParser

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='localhost' "
    b"version='1.0' xml:lang='en'>"
)
STANZAS = (
    b"<presence from='hub@localhost/r' xml:lang='de'><status>u1</status></presence>"
    b"<message to='a@localhost' type='chat'><body>x &amp; y</body><x xmlns='urn:e'/></message>"
    b"<iq type='result' id='b1'/>"
)
CLOSE = b"</stream:stream>"


def _events(reader: StreamReader | XMLStreamParser) -> list[object]:
    found = []
    while (event := reader.next_event()) is not NEED_DATA:
        found.append(event)
    return found


def _shape(event: object) -> object:
    """What a test compares: elements by their serialized form."""
    if isinstance(event, StanzaReceived):
        element = event.element
        return ("stanza", element.tag, dict(element.attrib), [c.tag for c in element],
                element.findtext("{jabber:client}body"))  # fmt: skip
    return event


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_stream_reader_matches_the_server_parser_whatever_the_split(chunk: int) -> None:
    data = HEADER + STANZAS + CLOSE
    reader, parser = StreamReader(), XMLStreamParser()
    read: list[object] = []
    parsed: list[object] = []
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
        parser.feed(data[start : start + chunk])
        read += _events(reader)
        parsed += _events(parser)
    assert [_shape(e) for e in read] == [_shape(e) for e in parsed]
    assert isinstance(read[0], StreamOpened)
    assert read[0].attrs["xml:lang"] == "en" and read[0].default_ns == "jabber:client"
    assert isinstance(read[-1], StreamClosed)
    assert len(read) == 5


def test_stream_reader_eof_closes_an_open_stream_once() -> None:
    reader = StreamReader()
    reader.feed(HEADER + b"<presence/>")
    reader.feed_eof()
    events = _events(reader)
    assert isinstance(events[-1], StreamClosed) and len(events) == 3
    reader.feed_eof()
    assert reader.next_event() is NEED_DATA


def test_stream_reader_eof_before_any_stream_says_nothing() -> None:
    reader = StreamReader()
    reader.feed_eof()
    assert reader.next_event() is NEED_DATA


def test_stream_reader_drops_delivered_stanzas_from_the_tree() -> None:
    reader = StreamReader()
    reader.feed(HEADER)
    for _ in range(1000):
        reader.feed(b"<presence><status>u</status></presence>")
    assert len(_events(reader)) == 1001
    assert reader._root is not None and len(reader._root) == 0


@pytest.mark.parametrize(
    "data",
    [HEADER + b"<presence><status></presence>", b"<stream xmlns='jabber:client'>"],
    ids=["mismatched tag", "root not stream:stream"],
)
def test_stream_reader_refuses_what_is_not_an_xmpp_stream_and_stays_dead(data: bytes) -> None:
    reader = StreamReader()
    with pytest.raises(StreamReadError):
        reader.feed(data)
    with pytest.raises(StreamReadError):
        reader.feed(b"<presence/>")
