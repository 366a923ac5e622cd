"""Behavioural tests of the routing hooks: owning, filtering and handling stanzas.

``casper_handle_outgoing`` takes a stanza over (``True`` or an async callable);
``casper_filter_outgoing`` and ``casper_filter_incoming`` decide a stanza's fate (drop,
bounce, offline-equivalent); ``casper_iq_handlers`` declares IQ handlers for the server and
for accounts; ``casper_offline_message`` keeps messages for an account without sessions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from xml.etree.ElementTree import Element

import pytest
import trio
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.jid import JID
from casper.stanza import qname
from casper.testing import open_test_server
from casper.verdicts import Bounce, Drop, OfflineEquivalent, Verdict

from tests.helpers import drain, error_condition, message, note, with_id

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"
CLIENT = "{jabber:client}"
TEST_NS = "urn:casper:test:hooks"

# ---------------------------------------------------------------- routing filters


class TakesOver:
    """Owns messages carrying ``<takeover xmlns=TEST_NS/>``: answers them itself."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.taken: list[str | None] = []

    @hookimpl
    def casper_handle_outgoing(
        self, stanza: Any, session: Any
    ) -> bool | Callable[[], Awaitable[None]] | None:
        if stanza.find(TEST_NS, "takeover") is None:
            return None
        self.taken.append(stanza.id)
        if self.how == "true":
            return True

        async def answer() -> None:
            await trio.lowlevel.checkpoint()
            note(session, "taken", f"{stanza.id}-taken")

        return answer


@pytest.mark.parametrize("how", ["true", "async-callable"])
async def test_hook_handle_outgoing(how: str) -> None:
    plugin = TakesOver(how)
    marker = f"<takeover xmlns='{TEST_NS}'/>"
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "owner")]) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(f"{ROMEO}/r1", "t1", extra=marker))
        await juliet.send(message(f"{ROMEO}/r1", "plain"))
        assert (await romeo.expect("message")).get("id") == "plain"  # the core routed this one
        got = await drain(juliet)
        assert [e.get("id") for e in await drain(romeo, 0.1) if e.tag == f"{CLIENT}message"] == []
    assert plugin.taken == ["t1"]
    taken = [e.get("id") for e in got if e.tag == f"{CLIENT}message"]
    assert taken == (["t1-taken"] if how == "async-callable" else [])


class FiltersOutgoing:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.seen: list[tuple[str | None, str]] = []

    @hookimpl
    def casper_filter_outgoing(self, stanza: Any, session: Any) -> Verdict | None:
        self.seen.append((stanza.id, str(session.jid)))
        return self.verdict if stanza.text_of("body") == "forbidden" else None


@pytest.mark.parametrize("verdict", [Drop("test"), Bounce("not-allowed")], ids=["drop", "bounce"])
async def test_hook_filter_outgoing(verdict: Verdict) -> None:
    plugin = FiltersOutgoing(verdict)
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "out")]) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(f"{ROMEO}/r1", "f1", "forbidden"))
        await juliet.send(message(f"{ROMEO}/r1", "f2", "allowed"))
        assert (await romeo.expect("message")).get("id") == "f2"
        answers = [e for e in await drain(juliet) if e.get("id") == "f1"]
    assert ("f1", f"{JULIET}/balcony") in plugin.seen  # from stamped, sending session passed
    if isinstance(verdict, Bounce):
        assert [(e.get("type"), error_condition(e)) for e in answers] == [("error", "not-allowed")]
    else:
        assert answers == []


class FiltersIncoming:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.asked: list[tuple[str | None, str, str | None]] = []

    @hookimpl
    def casper_filter_incoming(self, stanza: Any, recipient: JID, session: Any) -> Verdict | None:
        if stanza.kind != "message" or stanza.type == "error":
            return None  # let the error reply (which echoes the body) back to the sender
        self.asked.append(
            (stanza.id, str(recipient), None if session is None else str(session.jid))
        )
        return self.verdict if stanza.text_of("body") == "unwelcome" else None


@pytest.mark.parametrize(
    ("verdict", "sender_gets"),
    [
        (Drop("test"), []),
        (Bounce("policy-violation", type="modify"), ["policy-violation"]),
        (OfflineEquivalent("test"), ["service-unavailable"]),  # what an offline romeo answers
    ],
    ids=["drop", "bounce", "offline-equivalent"],
)
async def test_hook_filter_incoming(verdict: Verdict, sender_gets: list[str]) -> None:
    plugin = FiltersIncoming(verdict)
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "in")]) as srv,
        srv.client("romeo", presence=True, resource="r1") as romeo,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(ROMEO, "i1", "unwelcome"))
        await juliet.send(message(ROMEO, "i2", "welcome"))
        assert (await romeo.expect("message")).get("id") == "i2"
        answers = [error_condition(e) for e in await drain(juliet) if e.get("id") == "i1"]
        assert [e for e in await drain(romeo, 0.1) if e.get("id") == "i1"] == []
    assert answers == sender_gets
    assert ("i1", ROMEO, f"{ROMEO}/r1") in plugin.asked
    if isinstance(verdict, OfflineEquivalent):
        assert ("i1", ROMEO, None) in plugin.asked  # asked again on the offline path


# ---------------------------------------------------------------- handlers


async def _whoami(request: IqRequest) -> Element:
    return Element(
        qname(TEST_NS, "whoami"),
        {
            "target": str(request.target),
            "requester": str(request.requester),
            "session": "" if request.session is None else str(request.session.jid),
        },
    )


class DeclaresIqHandlers:
    @hookimpl
    def casper_iq_handlers(self) -> list[IqHandler]:
        return [
            IqHandler("get", TEST_NS, "whoami", _whoami, target="server"),
            IqHandler("get", TEST_NS, "whoami", _whoami, target="account"),
        ]


@pytest.mark.parametrize(
    ("to", "target"), [("localhost", "localhost"), (ROMEO, ROMEO)], ids=["server", "account"]
)
async def test_hook_iq_handlers(to: str, target: str) -> None:
    async with (
        open_test_server(
            default_plugins=False, extra_plugins=[(DeclaresIqHandlers(), "iq")]
        ) as srv,
        srv.client("juliet", resource="balcony") as juliet,
    ):
        await juliet.send(f"<iq type='get' to='{to}' id='w1'><whoami xmlns='{TEST_NS}'/></iq>")
        reply = await juliet.expect(with_id("w1"))
        await juliet.send(f"<iq type='set' to='{to}' id='w2'><whoami xmlns='{TEST_NS}'/></iq>")
        unhandled = await juliet.expect(with_id("w2"))
    payload = reply.find(qname(TEST_NS, "whoami"))
    assert reply.get("type") == "result" and payload is not None
    assert dict(payload.attrib) == {
        "target": target,
        "requester": f"{JULIET}/balcony",
        "session": f"{JULIET}/balcony",
    }
    assert error_condition(unhandled) == "service-unavailable"  # only 'get' was declared


class KeepsOfflineMessages:
    def __init__(self) -> None:
        self.offered: list[tuple[str | None, str]] = []
        self.kept: list[str | None] = []

    @hookimpl
    def casper_offline_message(self, stanza: Any, account: JID) -> Callable[[], Awaitable[None]]:
        self.offered.append((stanza.id, str(account)))

        async def keep() -> None:
            await trio.lowlevel.checkpoint()
            self.kept.append(stanza.text_of("body"))

        return keep


async def test_hook_offline_message() -> None:
    """Offered normal/chat messages for an account without sessions; keeping one means the
    sender gets no error. Other message types are never offered."""
    plugin = KeepsOfflineMessages()
    async with (
        open_test_server(default_plugins=False, extra_plugins=[(plugin, "keeper")]) as srv,
        srv.client("juliet", presence=True, resource="balcony") as juliet,
    ):
        await juliet.send(message(ROMEO, "o1", "while you were out"))
        await juliet.send(
            f"<message to='{ROMEO}' type='headline' id='o2'><body>news</body></message>"
        )
        answers = [e for e in await drain(juliet) if e.get("id") in ("o1", "o2")]
    assert plugin.offered == [("o1", ROMEO)]
    assert plugin.kept == ["while you were out"]
    assert answers == []
