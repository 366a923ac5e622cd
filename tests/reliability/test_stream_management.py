"""XEP-0198 stream management end to end: acks, resumption, and no message vanishing.

Scripted conversations over memory streams and over loopback TCP, with the client
side of XEP-0198 in ``sm_client.py``. The rule checked everywhere: every message sent to a
client is handled by it exactly once (across resumed streams), or stored offline and
handed over at its next login, or bounced to its sender; and a session's death or
resumption never shows it to anyone it hid from.

Time is real (resumption windows of a second): a mock clock would also jump while the
server waits for its storage thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from xml.etree.ElementTree import Element

import pytest
import trio
from casper.testing import TestClient, TestServer, open_test_server
from casper.testing.client import StreamEnded

from tests.core.conftest import (
    any_presence_from,
    error_condition,
    make_contacts,
    message_with_id,
    presence_from,
    quiet,
)
from tests.helpers import new_id, sync
from tests.reliability.sm_client import SM, SMClient, authenticated, sm_login, sm_tag, try_resume

C = "{jabber:client}"


def is_message(element: Element) -> bool:
    return element.tag == f"{C}message"


def message_ids(elements: list[Element]) -> list[str]:
    return [e.get("id", "") for e in elements if is_message(e) and e.find(f"{C}body") is not None]


async def send_chat(sender: TestClient, to: str, count: int, prefix: str = "m") -> list[str]:
    ids = []
    for _ in range(count):
        msg_id = new_id(prefix)
        await sender.send(f"<message to='{to}' id='{msg_id}' type='chat'><body>hi</body></message>")
        ids.append(msg_id)
    return ids


_SETTINGS: dict[str, object] = {"sm_resume_timeout": 1, "sm_ack_interval": 0.2}


@pytest.fixture(autouse=True, params=["memory", "tcp"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scenario runs over memory streams and over loopback TCP and TLS, where a
    stanza for a session whose writer is idle is written by the delivering task
    (``SocketTLSStream.send_now``), counted and acked as the writer would."""
    monkeypatch.setitem(_SETTINGS, "tcp", request.param == "tcp")


@asynccontextmanager
async def server(**config: object) -> AsyncIterator[TestServer]:
    settings = {**_SETTINGS, **config}
    async with open_test_server(accounts=("romeo", "juliet", "nurse"), **settings) as srv:  # type: ignore[arg-type]
        yield srv


async def wait_until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


def sessions(srv: TestServer, user: str) -> list[object]:
    return list(srv.server.router.sessions_of(srv.jid(user)))


async def detached(srv: TestServer, count: int = 1) -> None:
    await wait_until(lambda: srv.server.resumable.detached == count)


# -------------------------------------------------------------------- feature and enabling


async def test_sm_feature_is_offered_after_authentication_only() -> None:
    async with server() as srv:
        client = await srv.connect()
        features = await client.open_stream()
        assert features.find(sm_tag("sm")) is None
        await client.starttls(srv.client_context)
        assert client.features is not None and client.features.find(sm_tag("sm")) is None
        await client.authenticate("romeo", "secret")
        assert client.features is not None and client.features.find(sm_tag("sm")) is not None
        await client.close()
    async with server(sm_enabled=False) as srv:
        client = await authenticated(srv, "romeo")
        assert client.features is not None and client.features.find(sm_tag("sm")) is None
        await client.bind()
        await client.send(f"<enable xmlns='{SM}'/>")
        with pytest.raises(StreamEnded) as ended:
            await client.recv()
        assert ended.value.error == "unsupported-stanza-type"
        await client.stream.aclose()


async def test_enable_before_bind_fails_then_works_after_bind() -> None:
    async with server() as srv:
        client = await authenticated(srv, "romeo")
        await client.send(f"<enable xmlns='{SM}' resume='true'/>")
        failed = await client.recv()
        assert failed.tag == sm_tag("failed")
        assert failed.find("{urn:ietf:params:xml:ns:xmpp-stanzas}unexpected-request") is not None
        await client.bind("balcony")
        romeo = SMClient(srv, "romeo", client)
        enabled = await romeo.enable()
        assert enabled.get("resume") == "true" and enabled.get("max") == "1"
        assert enabled.get("id")
        again = await romeo.client.send(f"<enable xmlns='{SM}'/>")
        assert again is None
        second = await romeo.client.recv()
        assert second.tag == sm_tag("failed")  # a second <enable/> is refused, the stream goes on
        await romeo.sync()
        await romeo.close()


async def test_enable_without_resume_gets_no_id_and_a_broken_stream_ends_the_session() -> None:
    async with server() as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony", resume=False)
        assert romeo.sm_id is None
        ids = await send_chat(juliet, romeo.jid, 2)
        await romeo.close_abruptly()
        await wait_until(lambda: not sessions(srv, "romeo"))
        assert srv.server.resumable.detached == 0
        # nothing was acknowledged: both messages were stored offline
        async with srv.client("romeo", presence=True) as again:
            got = [await again.expect(message_with_id(i)) for i in ids]
            assert all(e.find("{urn:xmpp:delay}delay") is not None for e in got)


async def test_acks_count_handled_stanzas_both_ways() -> None:
    async with server(sm_ack_interval=60) as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony")
        session = srv.server.router.session_for(srv.jid("romeo", "balcony"))
        assert session is not None
        # inbound: the server counts what romeo sent since <enable/>
        for _ in range(3):
            await romeo.sync()
        await romeo.send(f"<r xmlns='{SM}'/>")
        ack = await romeo.client.recv()
        assert ack.tag == sm_tag("a") and ack.get("h") == "3"
        # outbound: what the server wrote waits for romeo's ack
        ids = await send_chat(juliet, romeo.jid, 4)
        await sync(juliet)
        got = [await romeo.expect(message_with_id(i)) for i in ids]
        assert len(got) == 4 and session.sm.pending == 3 + 4  # three sync answers too
        await romeo.send(f"<a xmlns='{SM}' h='5'/>")
        await romeo.sync()
        assert session.sm.pending == 2 + 1  # the last two messages, the new sync answer
        await romeo.ack()
        await romeo.sync()
        assert session.sm.pending == 1
        await romeo.close()


async def test_the_server_asks_for_acks_after_the_interval() -> None:
    async with server(sm_ack_interval=0.1) as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony")
        session = srv.server.router.session_for(srv.jid("romeo", "balcony"))
        assert session is not None
        ids = await send_chat(juliet, romeo.jid, 3)
        for msg_id in ids:
            await romeo.expect(message_with_id(msg_id))
        # no <a/> yet: a request comes within the interval, and romeo's answer empties the queue
        request = await romeo.client.recv(timeout=2)
        assert request.tag == sm_tag("r")
        assert session.sm.pending == 3
        await romeo.ack()
        await wait_until(lambda: session.sm.pending == 0)
        await romeo.close()


async def test_an_ack_for_more_than_was_sent_is_a_stream_error_and_nothing_is_lost() -> None:
    async with server() as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony")
        ids = await send_chat(juliet, romeo.jid, 2)
        await sync(juliet)
        await romeo.send(f"<a xmlns='{SM}' h='99'/>")
        with pytest.raises(StreamEnded) as ended:
            while True:
                await romeo.recv()
        assert ended.value.error == "undefined-condition"
        too_high = ended.value.element.find(f"{{{SM}}}handled-count-too-high")
        assert too_high is not None and too_high.get("h") == "99"
        await romeo.client.stream.aclose()
        await wait_until(lambda: not sessions(srv, "romeo"))  # not resumable after an error
        async with srv.client("romeo", presence=True) as again:
            for msg_id in ids:
                await again.expect(message_with_id(msg_id))


async def test_too_many_unacknowledged_stanzas_end_the_session_and_none_is_lost() -> None:
    async with server(sm_max_unacked=16) as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        ids = await send_chat(juliet, romeo.jid, 20)  # romeo reads nothing, acks nothing
        await sync(juliet)
        await wait_until(lambda: not sessions(srv, "romeo"))
        assert srv.server.resumable.detached == 0  # ended for good, not resumable
        with pytest.raises(StreamEnded) as ended:
            while True:
                await romeo.client.recv()
        assert ended.value.error == "resource-constraint"
        await romeo.client.stream.aclose()
        async with srv.client("romeo", presence=True) as again:
            got = message_ids(await sync(again))
            assert Counter(got) == Counter(ids)  # all of them, once
            rescued = [i for i in got if i in ids[:15]]
            assert rescued == ids[:15]  # the rescued ones keep their order


async def test_sm_elements_before_enable_end_the_stream() -> None:
    async with server() as srv:
        client = await authenticated(srv, "romeo")
        await client.bind()
        await client.send(f"<r xmlns='{SM}'/>")
        with pytest.raises(StreamEnded) as ended:
            await client.recv()
        assert ended.value.error == "unsupported-stanza-type"
        await client.stream.aclose()


# -------------------------------------------------------------------- resumption


@pytest.mark.parametrize("death", ["close_abruptly", "drop_transport"])
async def test_resume_after_the_connection_died_delivers_every_message_exactly_once(
    death: str,
) -> None:
    async with server() as srv, srv.client("juliet", presence=True) as juliet:
        await make_contacts(srv, "romeo", "juliet")
        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        await sync(juliet)
        first = await send_chat(juliet, romeo.jid, 3)
        await sync(juliet)
        await romeo.expect(message_with_id(first[0]))  # handled one, the others are in flight
        await getattr(romeo, death)()
        await detached(srv)
        meanwhile = await send_chat(juliet, "romeo@localhost", 2) + await send_chat(
            juliet, romeo.jid, 2
        )
        await quiet(juliet, any_presence_from("romeo@localhost"))  # no error, no presence
        again, answer = await try_resume(romeo)
        assert answer.tag == sm_tag("resumed") and answer.get("previd") == romeo.sm_id
        assert answer.get("h") == "1"  # romeo's presence was handled before the break
        await again.sync()
        assert Counter(message_ids(again.handled)) == Counter(first + meanwhile)
        # the session went on: same JID, still available to juliet, and it still works
        assert again.jid == romeo.jid and srv.server.resumable.detached == 0
        (only,) = sessions(srv, "romeo")
        assert only.available  # type: ignore[attr-defined]
        late = await send_chat(juliet, "romeo@localhost", 1)
        await again.expect(message_with_id(late[0]))
        await again.send(
            f"<message to='{juliet.jid}' id='back' type='chat'><body>back</body></message>"
        )
        await juliet.expect(message_with_id("back"))
        await quiet(juliet, any_presence_from("romeo@localhost"))
        await again.close()
        await juliet.expect(presence_from(romeo.jid, "unavailable"))


async def test_resume_with_an_unknown_id_or_as_someone_else_fails_with_item_not_found() -> None:
    async with server() as srv:
        romeo = await sm_login(srv, "romeo", resource="balcony")
        await romeo.close_abruptly()
        await detached(srv)
        for kwargs in ({"previd": "no-such-id"}, {"user": "juliet"}):
            other, answer = await try_resume(romeo, **kwargs)  # type: ignore[arg-type]
            assert answer.tag == sm_tag("failed")
            assert error_condition_of(answer) == "item-not-found"
            await other.client.bind()  # the stream goes on: binding works after a failure
            await other.close()
        assert srv.server.resumable.detached == 1  # romeo's session still waits
        again, answer = await try_resume(romeo)
        assert answer.tag == sm_tag("resumed")
        await again.close()


async def test_resume_with_a_too_high_h_is_a_stream_error_and_the_session_waits_on() -> None:
    async with server() as srv:
        romeo = await sm_login(srv, "romeo", resource="balcony")
        await romeo.close_abruptly()
        await detached(srv)
        client = await authenticated(srv, "romeo")
        await client.send(f"<resume xmlns='{SM}' previd='{romeo.sm_id}' h='{romeo.h + 10}'/>")
        with pytest.raises(StreamEnded) as ended:
            await client.recv()
        assert ended.value.error == "undefined-condition"
        await client.stream.aclose()
        await detached(srv)
        again, answer = await try_resume(romeo)
        assert answer.tag == sm_tag("resumed")
        await again.close()


async def test_resume_takes_over_a_connection_that_seems_alive() -> None:
    async with server() as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony")
        ids = await send_chat(juliet, romeo.jid, 2)
        await sync(juliet)
        # romeo's old connection looks fine to the server (half-open): a new one resumes
        again, answer = await try_resume(romeo)
        assert answer.tag == sm_tag("resumed")
        with pytest.raises(StreamEnded) as ended:
            while True:
                await romeo.client.recv()
        assert ended.value.error == "conflict"
        await romeo.client.stream.aclose()
        await again.sync()
        assert message_ids(again.handled) == ids
        await again.close()


async def test_resume_while_the_reader_is_given_its_grace_after_a_failed_write() -> None:
    """A write fails while the read side is still open: the reader gets READ_GRACE to
    read a closing tag, but a ``<resume/>`` meanwhile still takes the session over
    instead of failing with ``item-not-found``."""
    async with server(sm_resume_timeout=60, tcp=False) as srv, srv.client("juliet") as juliet:
        # (memory streams in both runs: it closes one direction of the transport)
        romeo = await sm_login(srv, "romeo", resource="balcony")
        stream = romeo.client.stream
        assert isinstance(stream, trio.SSLStream)
        await stream.transport_stream.receive_stream.aclose()  # the server's writes now fail
        ids = await send_chat(juliet, romeo.jid, 1)
        (session,) = sessions(srv, "romeo")
        await wait_until(lambda: session.transport_lost)  # type: ignore[attr-defined]
        again, answer = await try_resume(romeo)
        assert answer.tag == sm_tag("resumed"), answer.tag
        await again.sync()
        assert message_ids(again.handled) == ids
        await again.close()


async def test_resume_after_the_timeout_fails_and_the_messages_wait_offline() -> None:
    async with server() as srv, srv.client("juliet", presence=True) as juliet:
        await make_contacts(srv, "romeo", "juliet")
        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        await sync(juliet)
        first = await send_chat(juliet, romeo.jid, 2)
        await romeo.expect(message_with_id(first[0]))
        await romeo.ack()  # what romeo handled but never acked would come again
        await romeo.close_abruptly()
        await detached(srv)
        meanwhile = await send_chat(juliet, "romeo@localhost", 2)
        await quiet(juliet, any_presence_from("romeo@localhost"))
        # only when the window closes does juliet see romeo go, exactly once
        await juliet.expect(presence_from(romeo.jid, "unavailable"), timeout=5)
        await quiet(juliet, any_presence_from("romeo@localhost"))
        other, answer = await try_resume(romeo)
        assert answer.tag == sm_tag("failed") and error_condition_of(answer) == "item-not-found"
        await other.client.bind("balcony")
        await other.send("<presence/>")
        await other.sync()
        assert message_ids(other.handled) == first[1:] + meanwhile  # from offline storage
        assert message_ids(romeo.handled) == first[:1]
        await other.close()


async def test_after_the_timeout_messages_go_to_the_accounts_other_session() -> None:
    async with server() as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        async with srv.client("romeo", resource="garden", presence=True) as garden:
            await sync(garden)
            ids = await send_chat(juliet, romeo.jid, 2)  # to the balcony only
            await sync(juliet)
            await romeo.drop_transport()
            await detached(srv)
            await wait_until(lambda: srv.server.resumable.detached == 0)
            for msg_id in ids:
                got = await garden.expect(message_with_id(msg_id))
                assert got.get("to") == romeo.jid
            await quiet(juliet, lambda e: e.get("type") == "error")


async def test_after_the_timeout_without_offline_storage_senders_get_errors() -> None:
    async with server(default_plugins=False) as srv, srv.client("juliet") as juliet:
        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        ids = await send_chat(juliet, romeo.jid, 1)
        await juliet.send(
            f"<iq type='get' id='q1' to='{romeo.jid}'><query xmlns='jabber:iq:version'/></iq>"
        )
        await juliet.send(
            f"<message to='{romeo.jid}' id='hl' type='headline'><body>x</body></message>"
        )
        await sync(juliet)
        await romeo.close_abruptly()
        await detached(srv)
        bounced = await juliet.expect(message_with_id(ids[0]), timeout=5)
        assert (
            bounced.get("type") == "error" and error_condition(bounced) == "recipient-unavailable"
        )
        iq = await juliet.expect(lambda e: e.get("id") == "q1")
        assert iq.get("type") == "error" and error_condition(iq) == "service-unavailable"
        await quiet(juliet, message_with_id("hl"))  # headlines to a gone resource are dropped


async def test_a_clean_close_ends_the_session_at_once_and_keeps_what_was_not_acked() -> None:
    async with server(sm_ack_interval=60) as srv, srv.client("juliet", presence=True) as juliet:
        await make_contacts(srv, "romeo", "juliet")
        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        await sync(juliet)
        ids = await send_chat(juliet, romeo.jid, 2)
        await romeo.expect(message_with_id(ids[0]))
        await romeo.ack()  # romeo acks the first, then closes cleanly
        await romeo.close()
        await juliet.expect(presence_from(romeo.jid, "unavailable"))
        assert srv.server.resumable.detached == 0 and not sessions(srv, "romeo")
        async with srv.client("romeo", presence=True) as again:
            await again.expect(message_with_id(ids[1]))
            await quiet(again, message_with_id(ids[0]))


async def test_binding_the_same_resource_ends_the_detached_session_first() -> None:
    async with server(sm_resume_timeout=60) as srv, srv.client("juliet", presence=True) as juliet:
        await make_contacts(srv, "romeo", "juliet")
        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        await sync(juliet)
        ids = await send_chat(juliet, romeo.jid, 1)
        await sync(juliet)
        await romeo.close_abruptly()
        await detached(srv)
        async with srv.client("romeo", resource="balcony", presence=True) as again:
            # the old session's unavailable came before the new one's available
            await juliet.expect(presence_from(romeo.jid, "unavailable"))
            await juliet.expect(presence_from(romeo.jid))
            await again.expect(message_with_id(ids[0]))  # offline storage, at the new login
            assert srv.server.resumable.detached == 0


# -------------------------------------------------------------------- invisibility


@pytest.mark.parametrize("strategy", ["xep0018", "invisible-command"])
async def test_a_resumed_invisible_session_stays_invisible_and_its_death_shows_nothing(
    strategy: str,
) -> None:
    async with server(plugins=[strategy]) as srv:
        await make_contacts(srv, "romeo", "juliet")
        await make_contacts(srv, "romeo", "nurse")
        async with (
            srv.client("juliet", presence=True) as juliet,
            srv.client("nurse", presence=True) as nurse,
        ):
            await sync(juliet)  # the offline presence of romeo their logins probed
            await sync(nurse)
            romeo = await sm_login(srv, "romeo", resource="balcony")
            await go_invisible(romeo, strategy)
            await show_to(romeo, strategy, "nurse@localhost")
            await nurse.expect(presence_from(romeo.jid))
            await quiet(juliet, any_presence_from("romeo@localhost"))

            async def nothing_for_juliet() -> None:
                await quiet(juliet, any_presence_from("romeo@localhost"))

            for _ in range(2):  # die, wait, resume: twice
                await romeo.close_abruptly()
                await detached(srv)
                await nothing_for_juliet()
                await quiet(nurse, any_presence_from("romeo@localhost"))
                romeo, answer = await try_resume(romeo)
                assert answer.tag == sm_tag("resumed")
                await romeo.sync()
                await nothing_for_juliet()
                await quiet(nurse, any_presence_from("romeo@localhost"))

            # still invisible to juliet, still shown to nurse
            for observer, expected in ((juliet, "unavailable"), (nurse, None)):
                await observer.send("<presence type='probe' to='romeo@localhost'/>")
                answer = await observer.expect(any_presence_from("romeo@localhost"))
                assert answer.get("type") == expected
            hidden = await send_chat(juliet, "romeo@localhost", 1)
            shown = await send_chat(nurse, "romeo@localhost", 1)
            await romeo.expect(message_with_id(shown[0]))
            await romeo.sync()
            assert hidden[0] not in message_ids(romeo.handled)  # kept offline, as if he were

            # the final death: nurse sees him go, juliet sees nothing at all
            await romeo.drop_transport()
            await detached(srv)
            await nurse.expect(presence_from(romeo.jid, "unavailable"), timeout=5)
            await wait_until(lambda: not sessions(srv, "romeo"))
            await nothing_for_juliet()
            await quiet(nurse, any_presence_from("romeo@localhost"))


async def go_invisible(client: SMClient, strategy: str) -> None:
    if strategy == "xep0018":
        await client.send("<presence type='invisible'/>")
    else:
        await client.send("<iq type='set' id='inv'><invisible xmlns='urn:xmpp:invisible:1'/></iq>")
        reply = await client.expect(lambda e: e.get("id") == "inv")
        assert reply.get("type") == "result"
        await client.send("<presence/>")
    await client.sync()


async def show_to(client: SMClient, strategy: str, contact: str) -> None:
    kind = " type='visible'" if strategy == "xep0018" else ""
    await client.send(f"<presence to='{contact}'{kind}/>")
    await client.sync()


def error_condition_of(failed: Element) -> str:
    (child,) = list(failed)
    return child.tag.rpartition("}")[2]


# -------------------------------------------------------------------- killing connections


DEATHS = ["close_abruptly", "drop_transport", "reset", "silence"]


@pytest.mark.parametrize("death", DEATHS)
@pytest.mark.parametrize("outcome", ["resume", "timeout"])
async def test_killing_connections_mid_conversation_loses_no_message(
    death: str, outcome: str
) -> None:
    """romeo's connection dies three times while juliet writes to him; every message is
    handled exactly once (on a resumed stream, or at the next login from offline storage),
    or bounced back to juliet. ``silence`` is a half-open connection: the server notices it
    with its idle timeout. (A message handled but never acknowledged, in a session that is
    not resumed, would come again: XEP-0198 §4. So romeo acks before his last death.)"""
    config: dict[str, object] = {"tcp": death == "reset"}
    if death == "silence":
        config["idle_timeout"] = 0.5
    async with server(**config) as srv, srv.client("juliet") as juliet:
        seen_by_juliet: list[Element] = []

        async def wait_for(predicate: Callable[[], bool]) -> None:
            """Wait, with juliet making round trips (she must not look idle herself)."""
            with trio.fail_after(10):
                while not predicate():
                    seen_by_juliet.extend(await sync(juliet))
                    await trio.sleep(0.05)

        romeo = await sm_login(srv, "romeo", resource="balcony", presence=True)
        sent: list[str] = []
        streams = [romeo]
        for round_ in range(3):
            sent += await send_chat(juliet, romeo.jid, 4) + await send_chat(
                juliet, "romeo@localhost", 4
            )
            last = outcome == "timeout" and round_ == 2
            for _ in range(3):  # romeo handles a few, acks some of those, then dies
                await romeo.expect(is_message)
                if round_ % 2 or last:  # unacked ones come again unless he resumes
                    await romeo.ack()
            if death != "silence":
                await getattr(romeo, death)()
            await wait_for(lambda: srv.server.resumable.detached == 1)
            sent += await send_chat(juliet, romeo.jid, 2) + await send_chat(
                juliet, "romeo@localhost", 2
            )
            if last:
                break
            romeo, answer = await try_resume(romeo)
            assert answer.tag == sm_tag("resumed")
            streams.append(romeo)
        if outcome == "timeout":
            await wait_for(
                lambda: srv.server.resumable.detached == 0 and not sessions(srv, "romeo")
            )
            async with srv.client("romeo", presence=True) as later:
                stored = message_ids(await sync(later))
        else:
            await romeo.sync()
            stored = []
        seen_by_juliet.extend(await sync(juliet))
        bounced = [e.get("id", "") for e in seen_by_juliet if e.get("type") == "error"]
        handled = message_ids(romeo.handled)
        outcomes = Counter(handled) + Counter(stored) + Counter(bounced)
        assert outcomes == Counter(sent), (handled, stored, bounced)  # each exactly once
        assert not bounced  # offline storage took what no session did
        if outcome == "resume":
            await romeo.close()
        for stream in streams:
            await quietly_close(stream)


async def quietly_close(client: SMClient) -> None:
    with trio.move_on_after(1):
        try:
            await client.client.stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
