"""An idle connection gives its parser's expat state back, and takes it again when the
client speaks (the stream goes on as one document)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from xml.parsers import expat

import pytest
import trio
from casper import heap
from casper.testing import open_test_server


def live_expat_parsers() -> int:
    return sum(1 for obj in gc.get_objects() if type(obj) is expat.XMLParserType)


@pytest.fixture(autouse=True)
def no_cyclic_collection() -> Iterator[None]:
    """Earlier tests' garbage collected mid-test would change the count; with the
    collector off, only what the server frees by reference counting does."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_an_idle_connection_frees_expat_and_the_stream_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "IDLE_SWEEP_SECONDS", 0.05)
    async with open_test_server() as srv, srv.client("romeo", presence=True) as romeo:
        busy = live_expat_parsers()
        await trio.sleep(0.3)  # nothing written to romeo for a while
        assert live_expat_parsers() == busy - 1  # the server's parser of romeo's stream
        await romeo.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        answer = await romeo.expect(lambda e: e.get("id") == "p1")
        assert answer.get("type") == "result"
        assert live_expat_parsers() == busy
        await trio.sleep(0.3)
        assert live_expat_parsers() == busy - 1  # freed again after the answer


async def test_a_connection_that_keeps_getting_stanzas_keeps_its_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "IDLE_SWEEP_SECONDS", 0.2)
    async with open_test_server() as srv, srv.client("romeo", presence=True) as romeo:
        busy = live_expat_parsers()
        for n in range(8):
            await romeo.send(
                f"<iq type='get' id='p{n}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
            )
            await romeo.expect(lambda e, n=n: e.get("id") == f"p{n}")
            await trio.sleep(0.05)
            assert live_expat_parsers() == busy
