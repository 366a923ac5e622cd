"""Fuzz the sans-IO XML stream parser (casper.xml.parser).

Properties:

1. Whatever the bytes (random, or mutated valid streams), feeding them in any chunks gives
   only events, ``NEED_DATA`` or :class:`RemoteProtocolError`, never another exception.
2. Chunking does not matter: cutting the same input anywhere (even inside a UTF-8 sequence
   or a tag) gives the same events and the same error condition, except that a chunk that
   both completes events and breaks a rule loses those events, since the parser is dead
   before they are popped: the events of a coarser cutting are a prefix of a finer one's.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from casper.errors import RemoteProtocolError
from casper.xml import NEED_DATA, StanzaReceived, StreamClosed, StreamOpened, XMLStreamParser
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.fuzzing import FUZZ, chunked, corpus_bytes, corpus_files, mutated

SEEDS = corpus_bytes("parser")
LIMITS = {"max_stanza_bytes": 4096, "max_depth": 8}


def normal(element: Element) -> tuple[object, ...]:
    return (
        element.tag,
        sorted(element.attrib.items()),
        element.text or "",
        element.tail or "",
        [normal(child) for child in element],
    )


def run(chunks: list[bytes], *, eof: bool = True) -> tuple[list[object], str | None]:
    """Feed ``chunks``, popping events after each; return the events and the error, if any."""
    parser = XMLStreamParser(**LIMITS)
    events: list[object] = []

    def drain() -> None:
        while (event := parser.next_event()) is not NEED_DATA:
            if isinstance(event, StreamOpened):
                events.append(("open", sorted(event.attrs.items()), event.default_ns))
            elif isinstance(event, StanzaReceived):
                events.append(("stanza", normal(event.element)))
            else:
                assert isinstance(event, StreamClosed), event
                events.append(("close",))

    try:
        for chunk in chunks:
            parser.feed(chunk)
            drain()
        if eof:
            parser.feed_eof()
            drain()
    except RemoteProtocolError as exc:
        with pytest.raises(RemoteProtocolError):  # dead from now on, with the same error
            parser.next_event()
        return events, exc.condition
    return events, None


def check_chunkings(data: bytes, chunks: list[bytes]) -> None:
    whole = run([data])
    pieces = run(chunks)
    single = run([data[i : i + 1] for i in range(len(data))])
    assert whole[1] == pieces[1] == single[1], (whole[1], pieces[1], single[1])
    if whole[1] is None:
        assert whole[0] == pieces[0] == single[0]
    else:
        assert pieces[0][: len(whole[0])] == whole[0]
        assert single[0][: len(pieces[0])] == pieces[0]


@FUZZ
@given(st.binary(max_size=512).flatmap(chunked))
def test_random_bytes_give_events_or_remote_protocol_error(chunks: list[bytes]) -> None:
    run(chunks)


@FUZZ
@given(mutated(SEEDS).flatmap(chunked))
def test_mutated_streams_give_events_or_remote_protocol_error(chunks: list[bytes]) -> None:
    run(chunks)
    run(chunks, eof=False)


@FUZZ
@given(st.data())
@example(data=None)  # replaced below by the corpus replay; keeps the decorator order honest
def test_chunking_does_not_change_the_events(data: st.DataObject | None) -> None:
    if data is None:
        return
    stream = data.draw(st.one_of(st.sampled_from(SEEDS), mutated(SEEDS)), label="stream")
    check_chunkings(stream, data.draw(chunked(stream), label="chunks"))


@pytest.mark.parametrize("path", corpus_files("parser"), ids=lambda p: p.name)
def test_corpus_replay(path) -> None:
    data = path.read_bytes()
    run([data])
    check_chunkings(data, [data[: len(data) // 2], data[len(data) // 2 :]])
