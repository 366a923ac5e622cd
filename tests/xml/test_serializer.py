"""Serializer: exact bytes for known elements, and parse -> serialize -> parse round trips."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import pytest
from casper.xml import (
    NEED_DATA,
    STREAM_CLOSE,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    XMLStreamParser,
    serialize,
    stream_error,
    stream_header,
)

STREAM = "{http://etherx.jabber.org/streams}"
C = "{jabber:client}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ERRORS_NS = "urn:ietf:params:xml:ns:xmpp-streams"
HEADER = stream_header(from_="example.com", id="s1")


# -- helpers ---------------------------------------------------------------------------


def tree(element: Element) -> tuple[Any, ...]:
    return (
        element.tag,
        dict(element.attrib),
        element.text,
        tuple(map(tree, element)),
        element.tail,
    )


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def with_trailing(data: bytes) -> Iterator[bytes]:
    yield data + b"<presence><sta"


SPLITS: dict[str, Callable[[bytes], Iterator[bytes]]] = {
    "whole": whole,
    "bytewise": bytewise,
    "trailing": with_trailing,
}


def named(cases: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Parametrize keywords for a table whose first column names the case."""
    values = [case[1] if len(case) == 2 else case[1:] for case in cases]
    return {"argvalues": values, "ids": [case[0] for case in cases]}


def parse_stream(data: bytes, split: Callable[[bytes], Iterator[bytes]] = whole) -> list[Any]:
    parser = XMLStreamParser()
    events = []
    for chunk in split(data):
        parser.feed(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def parse_stanzas(
    stanzas: bytes, split: Callable[[bytes], Iterator[bytes]] = whole
) -> list[Element]:
    events = parse_stream(HEADER + stanzas, split)
    assert isinstance(events[0], StreamOpened)
    assert all(isinstance(e, StanzaReceived) for e in events[1:])
    return [e.element for e in events[1:]]


def make(
    tag: str,
    attrib: dict[str, str] | None = None,
    text: str | None = None,
    *children: Element,
    tail: str | None = None,
) -> Element:
    element = Element(tag, attrib or {})
    element.text, element.tail = text, tail
    element.extend(children)
    return element


# -- exact output ----------------------------------------------------------------------

SERIALIZE_CASES: list[tuple[str, Element, str, bytes]] = [
    ("empty-self-closes", make(C + "presence"), "jabber:client", b"<presence/>"),
    ("empty-text-self-closes", make(C + "presence", None, ""), "jabber:client", b"<presence/>"),
    (
        "default-namespace-omitted-attributes-kept",
        make(C + "message", {"to": "a@b", "type": "chat"}, None, make(C + "body", None, "hi")),
        "jabber:client",
        b"<message to='a@b' type='chat'><body>hi</body></message>",
    ),
    (
        "foreign-child-declares-default-for-its-subtree",
        make(
            C + "iq",
            {"id": "1"},
            None,
            make("{jabber:iq:roster}query", None, None, make("{jabber:iq:roster}item")),
        ),
        "jabber:client",
        b"<iq id='1'><query xmlns='jabber:iq:roster'><item/></query></iq>",
    ),
    (
        "back-to-outer-namespace-redeclares",
        make("{urn:a}x", None, None, make(C + "body")),
        "jabber:client",
        b"<x xmlns='urn:a'><body xmlns='jabber:client'/></x>",
    ),
    (
        "stream-namespace-uses-stream-prefix",
        make(
            STREAM + "features",
            None,
            None,
            make(
                "{urn:ietf:params:xml:ns:xmpp-tls}starttls",
                None,
                None,
                make("{urn:ietf:params:xml:ns:xmpp-tls}required"),
            ),
        ),
        "jabber:client",
        (
            b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
            b"</starttls></stream:features>"
        ),
    ),
    (
        "stream-child-inherits-outer-default",
        make(STREAM + "features", None, None, make(C + "x")),
        "jabber:client",
        b"<stream:features><x/></stream:features>",
    ),
    (
        "xml-lang-attribute",
        make(C + "body", {XML_LANG: "fr"}, "salut"),
        "jabber:client",
        b"<body xml:lang='fr'>salut</body>",
    ),
    (
        "namespaced-attributes-get-declared-prefixes",
        make(C + "x", {"{urn:a}p": "1", "{urn:b}q": "2", "{urn:a}r": "3"}),
        "jabber:client",
        b"<x xmlns:ns0='urn:a' ns0:p='1' xmlns:ns1='urn:b' ns1:q='2' ns0:r='3'/>",
    ),
    (
        "unnamespaced-element-undeclares-default",
        make(C + "message", None, None, make("bare")),
        "jabber:client",
        b"<message><bare xmlns=''/></message>",
    ),
    ("other-default-namespace", make("{jabber:server}message"), "jabber:server", b"<message/>"),
    (
        "text-and-attribute-escaping",
        make(C + "body", {"a": "<&>\"'\t\n\r"}, "a<b>&c]]>\r"),
        "jabber:client",
        b"<body a='&lt;&amp;&gt;&quot;&apos;&#9;&#10;&#13;'>a&lt;b&gt;&amp;c]]&gt;&#13;</body>",
    ),
    (
        "tails-kept-top-level-tail-dropped",
        make(C + "p", None, "t", make(C + "b", tail="after"), tail="ignored"),
        "jabber:client",
        b"<p>t<b/>after</p>",
    ),
    (
        "unicode-as-utf8",
        make(C + "body", None, "é☃😀"),
        "jabber:client",
        "<body>é☃😀</body>".encode(),
    ),
]


@pytest.mark.parametrize(("element", "default_ns", "expected"), **named(SERIALIZE_CASES))
def test_serialize_writes_expected_bytes(
    element: Element, default_ns: str, expected: bytes
) -> None:
    assert serialize(element, default_ns) == expected


@pytest.mark.parametrize("name", ["xmlns", "xmlns:x"])
def test_serialize_refuses_xmlns_attributes(name: str) -> None:
    with pytest.raises(ValueError, match="Clark"):
        serialize(make(C + "query", {name: "jabber:iq:roster"}))


def test_stream_header_full() -> None:
    assert stream_header(from_="example.com", id="a'b<&", to="juliet@example.com") == (
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
        b" xmlns:stream='http://etherx.jabber.org/streams' from='example.com'"
        b" id='a&apos;b&lt;&amp;' to='juliet@example.com' version='1.0' xml:lang='en'>"
    )


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
def test_stream_header_parses_back(split: Any) -> None:
    header = stream_header(from_="s.example", id="x\"'<", lang="fr", default_ns="jabber:server")
    assert parse_stream(header, split) == [
        StreamOpened(
            {"from": "s.example", "id": "x\"'<", "version": "1.0", "xml:lang": "fr"},
            default_ns="jabber:server",
        )
    ]
    assert parse_stream(HEADER + STREAM_CLOSE) == [
        StreamOpened(
            {"from": "example.com", "id": "s1", "version": "1.0", "xml:lang": "en"},
            default_ns="jabber:client",
        ),
        StreamClosed(),
    ]


@pytest.mark.parametrize(
    ("condition", "text", "expected"),
    [
        (
            "host-unknown",
            None,
            (
                b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                b"</stream:error>"
            ),
        ),
        (
            "policy-violation",
            "too <big> & bad",
            (
                b"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too &lt;big&gt; &amp; bad</text>"
                b"</stream:error>"
            ),
        ),
    ],
    ids=["without-text", "with-text"],
)
def test_stream_error_bytes(condition: str, text: str | None, expected: bytes) -> None:
    assert stream_error(condition, text) == expected
    (element,) = parse_stanzas(expected)
    assert tree(element) == tree(
        make(
            STREAM + "error",
            None,
            None,
            make(f"{{{ERRORS_NS}}}{condition}"),
            *([make(f"{{{ERRORS_NS}}}text", None, text)] if text else []),
        )
    )


def test_stream_error_refuses_unknown_condition() -> None:
    with pytest.raises(ValueError):
        stream_error("no-such-condition")


# -- round trips -----------------------------------------------------------------------

ROUND_TRIP_CASES: list[tuple[str, bytes]] = [
    ("message", b"<message to='a@b' type='chat' id='m1'><body>hi</body></message>"),
    (
        "unicode",
        "<message to='ju\u00efliet@b'><body>h\u00e9 \u2603 \U0001f600 \u4f60\u597d"
        "</body><subject>\u00df</subject></message>".encode(),
    ),
    (
        "nested-foreign-namespaces",
        (
            b"<iq type='result' id='r'><query xmlns='jabber:iq:roster' ver='1'>"
            b"<item jid='a@b' name='A'><group>g1</group><group>g2</group></item></query></iq>"
            b"<message><x xmlns='urn:a'><y xmlns='urn:b'><z xmlns='urn:a'/></y><w/></x></message>"
        ),
    ),
    (
        "prefixed-elements-and-attributes",
        (
            b"<message><x:foo xmlns:x='urn:a' xmlns:y='urn:b' x:p='1' y:q='2' r='3'><x:bar/>"
            b"<y:baz>t</y:baz>tail</x:foo></message>"
        ),
    ),
    ("xml-lang", b"<message xml:lang='fr'><body xml:lang='de'>Hallo</body></message>"),
    (
        "escapes-and-whitespace",
        (
            b"<message a='&lt;&amp;&gt;&quot;&apos;&#9;&#10;&#13;'><body>\n  a &amp; &lt;b&gt;"
            b" ]]&gt; &#13;\r\n <![CDATA[<raw/>]]>  </body>\n</message>"
        ),
    ),
    (
        "stream-features",
        (
            b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
            b"</starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>"
        ),
    ),
    ("no-namespace-child", b"<message><bare xmlns=''><deeper/></bare></message>"),
]


@pytest.mark.parametrize("split", SPLITS.values(), ids=SPLITS.keys())
@pytest.mark.parametrize("stanzas", **named(ROUND_TRIP_CASES))
def test_parse_serialize_parse_round_trips(stanzas: bytes, split: Any) -> None:
    first = parse_stanzas(stanzas, split)
    assert first
    again = parse_stanzas(b"".join(serialize(e) for e in first), split)
    assert list(map(tree, again)) == list(map(tree, first))


def test_built_tree_round_trips() -> None:
    message = Element(C + "message", {"to": "a@b", XML_LANG: "en", "{urn:x}attr": "v"})
    SubElement(message, C + "body").text = "tab\there & <there> \"quoted\" 'single'"
    extension = SubElement(message, "{urn:ext}data", {"k": "v\nw"})
    extension.text = " "
    SubElement(extension, "{urn:ext}item").tail = "\r\n"
    (parsed,) = parse_stanzas(serialize(message))
    assert tree(parsed) == tree(message)
