"""XMLStreamParser: every input fed whole, byte by byte and with trailing data (h11 style)."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import casper.xml
import pytest
from casper.errors import LocalProtocolError, RemoteProtocolError
from casper.xml import (
    NEED_DATA,
    Event,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    XMLStreamParser,
)

STREAM = "{http://etherx.jabber.org/streams}"
C = "{jabber:client}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"

HEADER = (
    b"<?xml version='1.0'?>"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='example.com' version='1.0' xml:lang='en'>"
)
OPENED = StreamOpened(
    {"to": "example.com", "version": "1.0", "xml:lang": "en"}, default_ns="jabber:client"
)
CLOSE = b"</stream:stream>"
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"


# -- helpers ---------------------------------------------------------------------------


def el(
    tag: str,
    attrs: dict[str, str] | None = None,
    text: str | None = None,
    *children: Any,
    tail: str | None = None,
) -> tuple[Any, ...]:
    """Expected element as a comparable tuple."""
    return (tag, attrs or {}, text, children, tail)


def tree(element: Element) -> tuple[Any, ...]:
    return (
        element.tag,
        dict(element.attrib),
        element.text,
        tuple(map(tree, element)),
        element.tail,
    )


def norm(event: Event) -> Any:
    return ("stanza", tree(event.element)) if isinstance(event, StanzaReceived) else event


def stanza(*args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...]]:
    return ("stanza", el(*args, **kwargs))


def named(cases: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Parametrize keywords for a table whose first column names the case."""
    values = [case[1] if len(case) == 2 else case[1:] for case in cases]
    return {"argvalues": values, "ids": [case[0] for case in cases]}


def drain(parser: XMLStreamParser) -> list[Any]:
    events = []
    while (event := parser.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(norm(event))
    return events


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


SPLITS: dict[str, Callable[[bytes], Iterator[bytes]]] = {"whole": whole, "bytewise": bytewise}


def parse(
    data: bytes,
    split: Callable[[bytes], Iterator[bytes]] = whole,
    *,
    hibernate: bool = False,
    **kwargs: Any,
) -> list[Any]:
    """Feed ``data`` in ``split`` chunks, draining after each (and, with ``hibernate``,
    letting the parser free expat between chunks whenever it may)."""
    parser = XMLStreamParser(**kwargs)
    events = []
    for chunk in split(data):
        parser.feed(chunk)
        events += drain(parser)
        if hibernate:
            parser.hibernate()
    return events


def fail_condition(
    data: bytes,
    split: Callable[[bytes], Iterator[bytes]],
    *,
    hibernate: bool = False,
    **kwargs: Any,
) -> str:
    parser = XMLStreamParser(**kwargs)
    with pytest.raises(RemoteProtocolError) as info:
        for chunk in split(data):
            parser.feed(chunk)
            drain(parser)
            if hibernate:
                parser.hibernate()
    return info.value.condition


# -- valid input -----------------------------------------------------------------------

VALID_CASES: list[tuple[str, bytes, list[Any]]] = [
    ("open-with-xml-decl", HEADER, [OPENED]),
    (
        "open-without-decl-double-quotes-other-prefix",
        (
            b'<s:stream xmlns:s="http://etherx.jabber.org/streams" xmlns="jabber:server"'
            b' from="a.example" id="x&amp;y">'
        ),
        [StreamOpened({"from": "a.example", "id": "x&y"}, default_ns="jabber:server")],
    ),
    (
        "open-lowercase-utf8-decl",
        (
            b"<?xml version='1.0' encoding='utf-8'?><stream:stream"
            b" xmlns:stream='http://etherx.jabber.org/streams'>"
        ),
        [StreamOpened({}, default_ns=None)],
    ),
    (
        "message-with-body",
        HEADER + b"<message to='juliet@example.com' type='chat'><body>hi</body></message>",
        [
            OPENED,
            stanza(
                C + "message",
                {"to": "juliet@example.com", "type": "chat"},
                None,
                el(C + "body", None, "hi"),
            ),
        ],
    ),
    (
        "nested-foreign-namespaces",
        HEADER + b"<iq type='get' id='r1'><query xmlns='jabber:iq:roster'><item jid='a@b'>"
        b"<group>g</group></item></query></iq>"
        b"<message><x xmlns='urn:a'><y xmlns='urn:b'/><z/></x></message>",
        [
            OPENED,
            stanza(
                C + "iq",
                {"type": "get", "id": "r1"},
                None,
                el(
                    "{jabber:iq:roster}query",
                    None,
                    None,
                    el(
                        "{jabber:iq:roster}item",
                        {"jid": "a@b"},
                        None,
                        el("{jabber:iq:roster}group", None, "g"),
                    ),
                ),
            ),
            stanza(
                C + "message",
                None,
                None,
                el("{urn:a}x", None, None, el("{urn:b}y"), el("{urn:a}z")),
            ),
        ],
    ),
    (
        "prefixed-elements-and-attributes",
        HEADER + b"<message><x:foo xmlns:x='urn:a' x:attr='v' plain='p'><x:bar/>t</x:foo>"
        b"</message>",
        [
            OPENED,
            stanza(
                C + "message",
                None,
                None,
                el(
                    "{urn:a}foo",
                    {"{urn:a}attr": "v", "plain": "p"},
                    None,
                    el("{urn:a}bar", tail="t"),
                ),
            ),
        ],
    ),
    (
        "text-tails-predefined-entities-char-refs-unicode",
        HEADER
        + "<message xml:lang='fr'><body>a &amp; &lt;b&gt; &quot;&apos; &#65;&#x42; é☃😀"
        "</body> tail <![CDATA[<raw>&amp;]]></message>".encode(),
        [
            OPENED,
            stanza(
                C + "message",
                {XML_LANG: "fr"},
                None,
                el(C + "body", None, "a & <b> \"' AB é☃😀", tail=" tail <raw>&amp;"),
            ),
        ],
    ),
    (
        "whitespace-keepalives-yield-nothing",
        HEADER + b" \n\t \r\n<presence/>  \n <presence/>\n",
        [OPENED, stanza(C + "presence"), stanza(C + "presence")],
    ),
    (
        "gt-inside-attribute-of-empty-element",
        HEADER + b"<presence status='a>b' x=\"'>\"/>" + STARTTLS,
        [
            OPENED,
            stanza(C + "presence", {"status": "a>b", "x": "'>"}),
            stanza(f"{{{TLS_NS}}}starttls"),
        ],
    ),
    (
        "stream-namespace-element-and-no-namespace-element",
        HEADER + b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
        b"</stream:features><foo xmlns=''/>",
        [
            OPENED,
            stanza(STREAM + "features", None, None, el(f"{{{TLS_NS}}}starttls")),
            stanza("foo"),
        ],
    ),
    (
        "close",
        HEADER + b"<presence/>" + CLOSE,
        [OPENED, stanza(C + "presence"), StreamClosed()],
    ),
    (
        "self-closed-root",
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='1'/>",
        [StreamOpened({"id": "1"}, default_ns=None), StreamClosed()],
    ),
]


def _closes(expected: list[Any]) -> bool:
    return bool(expected) and expected[-1] == StreamClosed()


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize(("data", "expected"), **named(VALID_CASES))
def test_valid_input_yields_expected_events(data: bytes, expected: list[Any], split: Any) -> None:
    assert parse(data, split) == expected


@pytest.mark.parametrize(("data", "expected"), **named(VALID_CASES))
def test_valid_input_with_trailing_data_keeps_the_rest_buffered(
    data: bytes, expected: list[Any]
) -> None:
    trail = b"\n " if _closes(expected) else b"<message to='later'><body>par"
    parser = XMLStreamParser()
    parser.feed(data + trail)
    events = drain(parser)
    assert events == expected
    if _closes(expected):
        assert parser.trailing_bytes() == b""
    else:
        assert parser.trailing_bytes().lstrip(b" \n") == trail


def test_fresh_parser_needs_data() -> None:
    parser = XMLStreamParser()
    assert parser.next_event() is NEED_DATA
    parser.feed(HEADER[:10])
    assert parser.next_event() is NEED_DATA
    assert repr(NEED_DATA) == "NEED_DATA"


def test_whitespace_keepalives_do_not_count_toward_stanza_limit() -> None:
    parser = XMLStreamParser(max_stanza_bytes=len(HEADER))
    parser.feed(HEADER)
    for _ in range(1000):
        parser.feed(b" \n")
    parser.feed(b"<presence/>")
    assert drain(parser) == [OPENED, stanza(C + "presence")]


def test_many_small_stanzas_do_not_accumulate_toward_limit() -> None:
    parser = XMLStreamParser(max_stanza_bytes=len(HEADER))
    parser.feed(HEADER)
    parser.feed(b"<presence/>" * 1000)
    assert len(drain(parser)) == 1001


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_stanza_of_exactly_max_bytes_is_accepted_one_more_is_not(split: Any) -> None:
    body = b"<message>" + b"x" * 281 + b"</message>"
    assert len(body) == 300
    assert parse(HEADER + body, split, max_stanza_bytes=300)[1:] == [
        stanza(C + "message", None, "x" * 281)
    ]
    assert fail_condition(HEADER + body, split, max_stanza_bytes=299) == "policy-violation"


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_stream_header_obeys_the_stanza_size_cap(split: Any) -> None:
    assert fail_condition(HEADER, split, max_stanza_bytes=len(HEADER) - 1) == "policy-violation"
    assert parse(HEADER, split, max_stanza_bytes=len(HEADER)) == [OPENED]


# -- peer faults -----------------------------------------------------------------------

BILLION_LAUGHS = (
    b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    + b"".join(
        b"<!ENTITY lol%d '%s'>" % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>&lol9;"
)

ERROR_CASES: list[tuple[str, bytes, str]] = [
    ("doctype", b"<?xml version='1.0'?><!DOCTYPE stream:stream>" + HEADER[21:], "restricted-xml"),
    ("entity-declaration", b"<!DOCTYPE s [<!ENTITY e 'x'>]>" + HEADER[21:], "restricted-xml"),
    (
        "external-entity",
        b"<!DOCTYPE s [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><s>&e;</s>",
        "restricted-xml",
    ),
    ("billion-laughs", BILLION_LAUGHS, "restricted-xml"),
    ("comment-in-prolog", b"<!-- hi -->" + HEADER[21:], "restricted-xml"),
    ("comment-between-stanzas", HEADER + b"<!-- hi -->", "restricted-xml"),
    ("comment-in-stanza", HEADER + b"<message><!-- hi --></message>", "restricted-xml"),
    ("processing-instruction", HEADER + b"<?php echo 1?>", "restricted-xml"),
    ("processing-instruction-in-prolog", b"<?foo bar?>" + HEADER[21:], "restricted-xml"),
    ("misplaced-xml-declaration", HEADER + b"<?xml version='1.0'?>", "restricted-xml"),
    ("undefined-entity", HEADER + b"<message>&foo;</message>", "restricted-xml"),
    ("undefined-entity-in-attribute", HEADER + b"<message to='&foo;'/>", "restricted-xml"),
    (
        "non-utf8-declaration",
        b"<?xml version='1.0' encoding='ISO-8859-1'?><a/>",
        "unsupported-encoding",
    ),
    ("bad-root-namespace", b"<stream:stream xmlns:stream='urn:wrong'>", "invalid-namespace"),
    ("bad-root-name", b"<stream xmlns='jabber:client'>", "invalid-namespace"),
    ("text-at-depth-1", HEADER + b"  hello ", "not-well-formed"),
    ("entity-text-at-depth-1", HEADER + b"&amp;", "not-well-formed"),
    ("mismatched-tag", HEADER + b"<message></presence>", "not-well-formed"),
    ("duplicate-attribute", HEADER + b"<message a='1' a='2'/>", "not-well-formed"),
    ("unbound-prefix", HEADER + b"<x:foo/>", "not-well-formed"),
    ("invalid-utf8", HEADER + b"<message>\xff</message>", "not-well-formed"),
    ("nul-char-ref", HEADER + b"<message>&#0;</message>", "not-well-formed"),
    ("junk-after-close", HEADER + CLOSE + b"<message/>", "not-well-formed"),
    ("brace-in-namespace-name", HEADER + b"<x xmlns='urn:a}b'/>", "not-well-formed"),
    ("deep-nesting", HEADER + b"<a>" * 32, "policy-violation"),
    (
        "oversized-stanza-never-completed",
        HEADER + b"<message><body>" + b"x" * 300,
        "policy-violation",
    ),
    (
        "oversized-start-tag-never-completed",
        HEADER + b"<message to='" + b"a" * 300,
        "policy-violation",
    ),
    ("oversized-prolog", b"<?xml version='1.0'?>" + b" " * 300, "policy-violation"),
]
LIMITS = {"max_stanza_bytes": 256}
# Trailing data that keeps these inputs unfinished; the rest get a whole stanza after them.
TRAILERS = {"oversized-start-tag-never-completed": b"a" * 50, "oversized-prolog": b" " * 50}


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize(("data", "condition"), **named(ERROR_CASES))
def test_peer_fault_raises_condition(data: bytes, condition: str, split: Any) -> None:
    assert fail_condition(data, split, **LIMITS) == condition


@pytest.mark.parametrize(
    ("name", "data", "condition"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_peer_fault_with_trailing_data_raises_condition(
    name: str, data: bytes, condition: str
) -> None:
    trail = TRAILERS.get(name, b"<message><body>tail</body></message>")
    assert fail_condition(data + trail, whole, **LIMITS) == condition


def test_oversized_stanza_trips_before_it_completes() -> None:
    parser = XMLStreamParser(max_stanza_bytes=200)
    parser.feed(HEADER)
    parser.feed(b"<message><body>")
    fed = 0
    with pytest.raises(RemoteProtocolError) as info:
        while fed < 400:
            parser.feed(b"x")
            fed += 1
    assert info.value.condition == "policy-violation"
    assert fed < 200  # tripped while the body was still arriving, no end tag needed


def test_oversized_stanza_in_one_chunk_stops_before_its_end() -> None:
    # A mismatched end tag would say not-well-formed: the cap must trip before expat gets there.
    data = HEADER + b"<message>" + b"<b/>" * 1000 + b"</wrong>"
    assert fail_condition(data, whole, max_stanza_bytes=200) == "policy-violation"


def test_nesting_at_max_depth_is_accepted() -> None:
    stanza_bytes = b"<a>" * 31 + b"</a>" * 31  # root is depth 1, so this reaches depth 32
    events = parse(HEADER + stanza_bytes, bytewise)
    assert len(events) == 2
    assert fail_condition(HEADER + stanza_bytes, whole, max_depth=31) == "policy-violation"


def test_billion_laughs_is_refused_at_the_doctype() -> None:
    parser = XMLStreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(BILLION_LAUGHS)
    assert info.value.condition == "restricted-xml"
    assert "DOCTYPE" in str(info.value)


def test_dead_parser_raises_same_error_again() -> None:
    parser = XMLStreamParser()
    with pytest.raises(RemoteProtocolError) as first:
        parser.feed(HEADER + b"<!-- x -->")
    for call in (lambda: parser.feed(b" "), parser.next_event, parser.feed_eof):
        with pytest.raises(RemoteProtocolError) as again:
            call()
        assert again.value is first.value


def test_expat_syntax_error_is_translated_not_leaked() -> None:
    parser = XMLStreamParser()
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(b"<<<")
    assert info.value.condition == "not-well-formed"
    assert type(info.value.__cause__).__name__ == "ExpatError"


# -- EOF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (HEADER[:30], []),
        (HEADER, [OPENED, StreamClosed()]),
        (HEADER + b"<message><body>half", [OPENED, StreamClosed()]),
        (HEADER + CLOSE, [OPENED, StreamClosed()]),
    ],
    ids=["nothing", "half-header", "open", "mid-stanza", "after-close"],
)
def test_eof_closes_an_open_stream_once(data: bytes, expected: list[Any]) -> None:
    parser = XMLStreamParser()
    parser.feed(data)
    parser.feed_eof()
    parser.feed_eof()
    assert drain(parser) == expected


def test_feed_after_eof_is_a_local_error() -> None:
    parser = XMLStreamParser()
    parser.feed_eof()
    with pytest.raises(LocalProtocolError):
        parser.feed(HEADER)


# -- trailing_bytes --------------------------------------------------------------------


def _pop_until_starttls(parser: XMLStreamParser) -> None:
    assert parser.next_event() == OPENED
    event = parser.next_event()
    assert isinstance(event, StanzaReceived)
    assert event.element.tag == f"{{{TLS_NS}}}starttls"


@pytest.mark.parametrize(
    ("after", "trailing"),
    [
        (b"", b""),
        (b" \r\n\t", b""),
        (b"<message to='x'><body>plain", b"<message to='x'><body>plain"),
        (b" <message to='x'/>", b" <message to='x'/>"),
        (b"<iq/>\n<presence/>", b"<iq/>\n<presence/>"),
    ],
    ids=["nothing", "whitespace", "partial-stanza", "complete-stanza", "two-stanzas"],
)
def test_trailing_bytes_after_starttls_reveals_injected_plaintext(
    after: bytes, trailing: bytes
) -> None:
    parser = XMLStreamParser()
    parser.feed(HEADER + STARTTLS + after)
    _pop_until_starttls(parser)
    assert parser.trailing_bytes() == trailing


def test_trailing_bytes_empty_when_starttls_arrives_byte_by_byte() -> None:
    parser = XMLStreamParser()
    for chunk in bytewise(HEADER + STARTTLS):
        parser.feed(chunk)
    _pop_until_starttls(parser)
    assert parser.trailing_bytes() == b""
    parser.feed(b"<mess")
    assert parser.trailing_bytes() == b"<mess"


def test_trailing_bytes_counts_from_the_event_last_returned() -> None:
    parser = XMLStreamParser()
    parser.feed(HEADER + b"<presence/>" + STARTTLS)
    assert parser.next_event() == OPENED
    assert parser.trailing_bytes() == b"<presence/>" + STARTTLS
    parser.next_event()
    assert parser.trailing_bytes() == STARTTLS
    parser.next_event()
    assert parser.trailing_bytes() == b""


# -- house rules -----------------------------------------------------------------------

SANS_IO_MODULES = ["events.py", "parser.py", "serializer.py", "__init__.py"]


@pytest.mark.parametrize("name", SANS_IO_MODULES)
def test_sans_io_module_does_not_import_trio(name: str) -> None:
    path = Path(casper.xml.__file__).parent / name
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        assert not any(m == "trio" or m.startswith("trio.") for m in modules), (name, modules)


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_text_longer_than_the_character_buffer_arrives_whole(split) -> None:
    from casper.xml.parser import TEXT_BUFFER

    body = ("é" * TEXT_BUFFER + "x" * (3 * TEXT_BUFFER + 7)).encode()
    events = parse(HEADER + b"<message><body>" + body + b"</body></message>", split)
    assert events == [
        OPENED,
        stanza(C + "message", None, None, el(C + "body", None, body.decode())),
    ]
