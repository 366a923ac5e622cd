"""RFC 7622 JIDs: splitting, preparation, canonical form and the value type's API."""

from __future__ import annotations

import ast
import dataclasses
import gc
import importlib.util
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from casper.jid import JID, InvalidJID, prep_domain, prep_localpart, prep_resource

# text -> (local, domain, resource)
VALID_CASES: list[tuple[str, tuple[str | None, str, str | None]]] = [
    ("example.com", (None, "example.com", None)),
    ("juliet@example.com", ("juliet", "example.com", None)),
    ("juliet@example.com/foo", ("juliet", "example.com", "foo")),
    ("juliet@example.com/foo bar", ("juliet", "example.com", "foo bar")),
    ("juliet@example.com/foo@bar", ("juliet", "example.com", "foo@bar")),
    ("juliet@example.com/a/b/c", ("juliet", "example.com", "a/b/c")),
    ("example.com/foobar", (None, "example.com", "foobar")),
    ("a.example.com/b@example.net", (None, "a.example.com", "b@example.net")),
    ("foo\\20bar@example.com", ("foo\\20bar", "example.com", None)),
    ("fußball@example.com", ("fußball", "example.com", None)),
    ("π@example.com", ("π", "example.com", None)),
    ("king@example.com/♚", ("king", "example.com", "♚")),
    ("x@example.com/\u0915\u094d\u200d\u0937", ("x", "example.com", "\u0915\u094d\u200d\u0937")),
    ("x@example.com/\u0645\u06cc\u200c\u062e", ("x", "example.com", "\u0645\u06cc\u200c\u062e")),
    ("x@192.0.2.1/r", ("x", "192.0.2.1", "r")),
    ("x@[::1]/r", ("x", "[::1]", "r")),
    ("localhost", (None, "localhost", None)),
    ("a-b_c.d@xn--bcher-kva.example", ("a-b_c.d", "xn--bcher-kva.example", None)),
    ("x@bücher.example", ("x", "bücher.example", None)),
    ("x@example.com/ ", ("x", "example.com", " ")),
]

# input -> the same JID written differently (case, width, dots, Unicode forms, IPv6 spelling)
NORMALISATION_CASES: list[tuple[str, str]] = [
    ("Juliet@Example.COM/Balcony", "juliet@example.com/Balcony"),
    ("JULIET@EXAMPLE.COM", "juliet@example.com"),
    ("juliet@example.com.", "juliet@example.com"),
    ("juliet@example.com./Res", "juliet@example.com/Res"),
    ("example.com.", "example.com"),
    ("ＪＵＬＩＥＴ@ｅｘａｍｐｌｅ．ｃｏｍ", "juliet@example.com"),
    ("juliet@example。com", "juliet@example.com"),
    ("juliet@example｡com", "juliet@example.com"),
    ("ΣΑΣ@example.com", "σας@example.com"),  # str.lower() applies the final-sigma rule
    ("\u212a@example.com", "k@example.com"),  # KELVIN SIGN -> k
    ("\u00c5@example.com", "\u00e5@example.com"),
    ("A\u030a@example.com", "\u00e5@example.com"),  # decomposed -> composed
    ("x@BÜCHER.example", "x@bücher.example"),
    ("x@example.com/e\u0301", "x@example.com/\u00e9"),  # resource: NFC
    ("x@example.com/a\u00a0b", "x@example.com/a b"),  # resource: non-ASCII space -> U+0020
    ("x@example.com/a\u3000b", "x@example.com/a b"),
    ("x@example.com/ＡＢ", "x@example.com/ＡＢ"),  # resource: no width mapping, case kept
    ("x@[2001:DB8:0:0:0:0:0:1]", "x@[2001:db8::1]"),
]

INVALID_CASES: list[str] = [
    # empty parts and structure
    "",
    "@",
    "/",
    "@/",
    "@example.com",
    "juliet@",
    "juliet@/res",
    "juliet@example.com/",
    "example.com/",
    "/res",
    "a@b@c",
    # forbidden localpart characters
    'jul"iet@example.com',
    "jul&iet@example.com",
    "jul'iet@example.com",
    "jul:iet@example.com",
    "jul<iet@example.com",
    "jul>iet@example.com",
    "jul iet@example.com",
    "jul\tiet@example.com",
    "jul\x00iet@example.com",
    "jul\x7fiet@example.com",
    "jul\u00a0iet@example.com",
    "jul\u200biet@example.com",
    "jul\u3000iet@example.com",
    "a\uff20b@example.com",  # FULLWIDTH COMMERCIAL AT becomes '@' under NFKC
    "a\uff0fb@example.com",  # FULLWIDTH SOLIDUS becomes '/'
    "\ue000@example.com",  # private use
    # domainpart
    "juliet@exa mple.com",
    "juliet@example..com",
    "juliet@.example.com",
    "juliet@example.com..",
    "juliet@.",
    ".",
    "juliet@exa:mple.com",
    "example.com:5222",
    "juliet@exa[mple.com",
    "juliet@[::1",
    "juliet@[not-an-ip]",
    "juliet@[192.0.2.1]",
    "juliet@[fe80::1%eth0]",
    "juliet@exa\tmple.com",
    "juliet@exa\\mple.com",
    "juliet@" + "a" * 64 + ".com",
    "juliet@" + "ü" * 60 + ".com",  # A-label longer than 63 octets
    # resourcepart
    "x@example.com/a\x00b",
    "x@example.com/a\x7fb",
    "x@example.com/a\u0085b",
    "x@example.com/\ud800",
    "x@example.com/a\u200bb",  # zero width space: Cf, Default_Ignorable
    "x@example.com/a\U000e0001",  # language tag
    "x@example.com/a\ue000",  # private use
    "x@example.com/a\U0010fffd",  # private use, plane 16
    "x@example.com/a\u0378",  # unassigned
    "x@example.com/a\ufdd0",  # noncharacter
    "x@example.com/a\u200db",  # ZWJ not after a virama
    "x@example.com/\u200cb",  # ZWNJ with nothing before it
]


@pytest.mark.parametrize(("text", "parts"), VALID_CASES)
def test_parse_valid(text: str, parts: tuple[str | None, str, str | None]) -> None:
    jid = JID.parse(text)
    assert (jid.local, jid.domain, jid.resource) == parts
    assert str(jid) == text


@pytest.mark.parametrize(("text", "canonical"), NORMALISATION_CASES)
def test_parse_normalises(text: str, canonical: str) -> None:
    jid = JID.parse(text)
    assert str(jid) == canonical
    assert jid == JID.parse(canonical)
    assert hash(jid) == hash(JID.parse(canonical))


@pytest.mark.parametrize("text", INVALID_CASES)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(InvalidJID):
        JID.parse(text)


@pytest.mark.parametrize("text", [t for t, _ in VALID_CASES] + [t for t, _ in NORMALISATION_CASES])
def test_round_trip_is_stable(text: str) -> None:
    jid = JID.parse(text)
    again = JID.parse(str(jid))
    assert again == jid
    assert str(again) == str(jid)


def test_invalid_jid_is_a_value_error() -> None:
    assert issubclass(InvalidJID, ValueError)


def test_resource_case_is_significant() -> None:
    assert JID.parse("a@b/Res") != JID.parse("a@b/res")
    assert JID.parse("a@b/Res").bare == JID.parse("a@b/res").bare


LENGTH_CASES: list[tuple[str, bool]] = [
    ("a" * 1023 + "@example.com", True),
    ("a" * 1024 + "@example.com", False),
    ("é" * 511 + "a@example.com", True),  # 1023 bytes of UTF-8
    ("é" * 512 + "@example.com", False),  # 1024 bytes, 512 characters
    (".".join(["a" * 63] * 16), True),  # 1023 bytes
    (".".join(["a" * 63] * 15 + ["a" * 32, "a" * 31]), False),  # 1024 bytes
    ("example.com/" + "r" * 1023, True),
    ("example.com/" + "r" * 1024, False),
    ("example.com/" + "€" * 341, True),  # 1023 bytes
    ("example.com/" + "€" * 342, False),
]


@pytest.mark.parametrize(("text", "valid"), LENGTH_CASES)
def test_part_length_limits(text: str, valid: bool) -> None:
    if valid:
        assert str(JID.parse(text)) == text
    else:
        with pytest.raises(InvalidJID):
            JID.parse(text)


MAKE_CASES: list[tuple[tuple[str | None, str, str | None], str]] = [
    ((None, "example.com", None), "example.com"),
    (("Juliet", "Example.COM.", None), "juliet@example.com"),
    (("juliet", "example.com", "Balcony"), "juliet@example.com/Balcony"),
    ((None, "example.com", "r/with@chars"), "example.com/r/with@chars"),
]


@pytest.mark.parametrize(("parts", "canonical"), MAKE_CASES)
def test_make_prepares_like_parse(
    parts: tuple[str | None, str, str | None], canonical: str
) -> None:
    assert JID.make(*parts) == JID.parse(canonical)


@pytest.mark.parametrize(
    "parts",
    [("", "example.com", None), (None, "", None), (None, "example.com", ""), ("a@b", "c", None),
     ("a", "b/c", None), ("a", "b@c", None)],
)  # fmt: skip
def test_make_invalid(parts: tuple[str | None, str, str | None]) -> None:
    with pytest.raises(InvalidJID):
        JID.make(*parts)


def test_bare_full_and_domain_jid() -> None:
    full = JID.parse("juliet@example.com/balcony")
    bare = JID.parse("juliet@example.com")
    domain = JID.parse("example.com")
    assert (full.is_full, full.is_bare) == (True, False)
    assert (bare.is_full, bare.is_bare) == (False, True)
    assert full.bare == bare
    assert bare.bare is bare
    assert full.domain_jid == bare.domain_jid == domain
    assert domain.domain_jid is domain
    assert JID.parse("example.com/r").domain_jid == domain


def test_with_resource_prepares_it() -> None:
    bare = JID.parse("juliet@example.com")
    assert bare.with_resource("Orch\u00a0ard") == JID.parse("juliet@example.com/Orch ard")
    assert JID.parse("juliet@example.com/old").with_resource("new").resource == "new"
    with pytest.raises(InvalidJID):
        bare.with_resource("")
    with pytest.raises(InvalidJID):
        bare.with_resource("a\x00")


def test_jid_is_immutable_and_hashable() -> None:
    jid = JID.parse("juliet@example.com/balcony")
    with pytest.raises(dataclasses.FrozenInstanceError):
        jid.local = "romeo"  # type: ignore[misc]
    assert len({jid, JID.parse("Juliet@EXAMPLE.com/balcony"), jid.bare}) == 2


def test_parse_is_cached_for_short_inputs() -> None:
    assert JID.parse("cached@example.com/r") is JID.parse("cached@example.com/r")
    long_text = "l" * 300 + "@example.com"
    assert JID.parse(long_text) == JID.parse(long_text)


def test_parse_cache_is_bounded_in_entries_and_memory() -> None:
    """Every login with a new resource adds an entry, so the cap is what a long-running
    server pays: at most a few MiB, even if every entry is as long as a cached input can be."""
    from casper.jid import _CACHE_MAX_CHARS, _CACHE_SIZE, _parse_cached

    def longest(i: int) -> str:
        head = f"{i}-{'l' * 80}@{'d' * 60}.example/"
        return head + "r" * (_CACHE_MAX_CHARS - len(head))

    _parse_cached.cache_clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2 * _CACHE_SIZE):
            jid = JID.parse(longest(i))
            str(jid), hash(jid), jid.bare  # fill the memos, as routing does
        gc.collect()
        at_cap = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        _parse_cached.cache_clear()
    assert len(longest(0)) == _CACHE_MAX_CHARS
    assert _CACHE_SIZE >= 1024  # still a cache for the hot addresses
    assert at_cap < 8 * 2**20, f"a full JID parse cache holds {at_cap / 2**20:.1f} MiB"


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        JID.parse(b"juliet@example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prep", "text"),
    [(prep_localpart, "ＪＵＬＩＥＴ"), (prep_localpart, "A\u030a\u212a"), (prep_localpart, "ǅ"),
     (prep_localpart, "İstanbul"), (prep_domain, "Ｅxample．COM．"), (prep_domain, "[::FFFF:1]"),
     (prep_resource, "e\u0301\u2003x"), (prep_resource, "Ab C")],
)  # fmt: skip
def test_preparation_is_idempotent(prep: Callable[[str], str], text: str) -> None:
    once = prep(text)
    assert prep(once) == once


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_jid_module_is_sans_io() -> None:
    spec = importlib.util.find_spec("casper.jid")
    assert spec is not None and spec.origin is not None
    assert not _imported_modules(Path(spec.origin)) & {"trio", "socket", "asyncio", "ssl"}
