"""Shared settings, corpus access and mutation strategies for the property-based fuzz tests.

Budget: every fuzz property runs ``CASPER_FUZZ_EXAMPLES`` examples (default
:data:`DEFAULT_EXAMPLES`, small so the ordinary test run stays fast). By default the examples
are derandomized (the same ones on every run, so CI never fails by chance);
``CASPER_FUZZ_RANDOM=1`` draws new ones each run, which is what ``tests/fuzz/run_fuzz.py``
does in a loop until its time budget is spent.

Corpus: ``tests/fuzz/corpus/<target>/`` holds interesting inputs, one per file, checked into
the repository: valid inputs the mutations start from, and every input that once broke
something. Each file is replayed as its own regression test, and seeds the mutations.

Import with ``from tests.fuzz.fuzzing import ...``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

CORPUS = Path(__file__).resolve().parent / "corpus"
DEFAULT_EXAMPLES = 60
EXAMPLES = int(os.environ.get("CASPER_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
RANDOM = os.environ.get("CASPER_FUZZ_RANDOM", "") not in ("", "0")

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Fragments that tend to matter to an XML stream parser or a SASL message parser.
TOKENS = [
    b"<",
    b">",
    b"/>",
    b"</",
    b"&",
    b";",
    b"'",
    b'"',
    b"=",
    b":",
    b",",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"]]>",
    b"<![CDATA[",
    b"<!--",
    b"-->",
    b"<?xml version='1.0'?>",
    b"<?pi x?>",
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"&amp;",
    b"&lt;",
    b"&#0;",
    b"&#x10FFFF;",
    b"&#xD800;",
    b"&unknown;",
    b"xmlns=''",
    b"xmlns:stream='http://etherx.jabber.org/streams'",
    b"xml:lang='en'",
    b"xmlns:a='x}y'",
    b"</stream:stream>",
    b"<stream:stream>",
    b" ",
    b"\n",
    b"n=",
    b"r=",
    b"p=",
    b"c=",
    b"s=",
    b"i=",
    b"a=",
    b"=2C",
    b"=3D",
    b"=",
    b"biws",
    b"m=x",
]


def corpus_files(target: str) -> list[Path]:
    return sorted(p for p in (CORPUS / target).iterdir() if p.is_file())


def corpus_bytes(target: str) -> list[bytes]:
    return [p.read_bytes() for p in corpus_files(target)]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few random edits: flips, insertions of tokens or bytes, deletions,
    duplications and splices with another seed."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "token", "delete", "dup", "splice"]))
        if action == "flip" and data:
            index = min(where, len(data) - 1)
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif action == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        elif action == "token":
            data[where:where] = draw(st.sampled_from(TOKENS))
        elif action == "delete":
            del data[where : where + draw(st.integers(1, 16))]
        elif action == "dup":
            data[where:where] = data[where : where + draw(st.integers(1, 32))]
        elif action == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data[where:] = other[cut:]
    return bytes(data)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random places (possibly inside a UTF-8 sequence)."""
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]
