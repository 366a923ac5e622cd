"""slixmpp against a real ``casper serve`` subprocess, over TCP and TLS on 127.0.0.1.

Scripted conversations, one actor acts and another observes: login over STARTTLS and direct
TLS (XEP-0368) with each SASL mechanism, subscriptions and presence, messages, the baseline
plugins' IQs (XEP-0030, XEP-0092, XEP-0199, XEP-0202) and offline delivery (XEP-0160 with
an XEP-0203 delay). Plus what must go wrong cleanly: a wrong password, and garbage on a raw
socket, after which the server still logs people in.

Two strict xfails pin down core bugs (see their reasons); they turn into failures once the
bugs are fixed, so the marker gets removed then.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import socket
import ssl
from collections.abc import Iterator

import pytest
from slixmpp.exceptions import IqError

from tests.realnet.conftest import read_until

pytestmark = pytest.mark.realnet

XML_DECL = b"<?xml version='1.0'?>"
STREAM_OPEN = (
    b"<stream:stream to='localhost' version='1.0'"
    b" xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
)
ENTITY_BOMB_DTD = (
    b"<!DOCTYPE lolz [<!ENTITY lol 'lol'>"
    b"<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
)


@pytest.fixture
def accounts(casper_server):
    """romeo and juliet, password ``secret``, created with ``casper user add``."""
    return casper_server.add_user("romeo"), casper_server.add_user("juliet")


# -- login --------------------------------------------------------------------------------------


def test_login_starttls_prefers_scram_sha_256(accounts, open_peer, run_async):
    async def scenario():
        async with open_peer("romeo") as romeo:
            assert romeo.mechanism == "SCRAM-SHA-256"
            assert romeo.tls_version in ("TLSv1.2", "TLSv1.3")
            assert "starttls" in romeo.xmpp.features
            assert str(romeo.jid) == "romeo@localhost/peer"

    run_async(scenario())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN"])
def test_login_with_each_mechanism_over_starttls(accounts, open_peer, run_async, mechanism):
    async def scenario():
        async with open_peer("romeo", mechanism=mechanism) as romeo:
            assert romeo.mechanism == mechanism
            assert romeo.tls_version is not None
            await romeo.sync()

    run_async(scenario())


@pytest.mark.parametrize("mechanism", [None, "PLAIN"])
def test_login_over_direct_tls_xep0368(accounts, open_peer, run_async, mechanism):
    async def scenario():
        async with open_peer("romeo", direct_tls=True, mechanism=mechanism) as romeo:
            assert romeo.port == romeo.server.tls_port
            assert romeo.tls_version is not None
            assert "starttls" not in romeo.xmpp.features  # TLS came first, not from STARTTLS
            assert romeo.mechanism == (mechanism or "SCRAM-SHA-256")
            await romeo.sync()

    run_async(scenario())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
def test_wrong_password_fails_cleanly(accounts, open_peer, run_async, mechanism):
    async def scenario():
        async with open_peer("romeo", "wrong", login=False, mechanism=mechanism) as romeo:
            with pytest.raises(romeo.LoginFailed, match="not-authorized"):
                await romeo.login()
            await romeo.next("disconnected")  # one mechanism allowed: slixmpp gives up
        async with open_peer("romeo", mechanism=mechanism) as romeo:  # the account still works
            assert romeo.mechanism == mechanism

    run_async(scenario())


def test_unknown_account_gets_the_same_failure(accounts, open_peer, run_async):
    async def scenario():
        async with open_peer("nobody", "secret", login=False, mechanism="SCRAM-SHA-1") as peer:
            with pytest.raises(peer.LoginFailed, match="not-authorized"):
                await peer.login()

    run_async(scenario())


# -- subscriptions, presence and messages -------------------------------------------------------


def test_two_users_subscribe_see_presence_and_chat(accounts, open_peer, run_async):
    romeo_jid, juliet_jid = accounts

    async def subscribe(user, contact):
        """``user`` asks, ``contact`` approves; ``user`` then sees ``contact``'s presence."""
        user.xmpp.send_presence(pto=contact.jid.bare, ptype="subscribe")
        request = await contact.next("presence_subscribe", sender=user.jid.bare)
        assert request["to"].bare == contact.jid.bare
        contact.xmpp.send_presence(pto=user.jid.bare, ptype="subscribed")
        await user.next("presence_subscribed", sender=contact.jid.bare)
        available = await user.next("presence_available", sender=contact.jid.bare)
        assert available["from"] == contact.jid  # the full JID of the online resource

    async def scenario():
        async with open_peer("romeo") as romeo, open_peer("juliet") as juliet:
            assert {romeo.mechanism, juliet.mechanism} == {"SCRAM-SHA-256"}
            await subscribe(romeo, juliet)
            await subscribe(juliet, romeo)

            for peer, contact in ((romeo, juliet_jid), (juliet, romeo_jid)):
                roster = await peer.xmpp.get_roster(timeout=10)
                items = roster["roster"]["items"]
                assert items[contact]["subscription"] == "both"

            romeo.xmpp.send_presence(pshow="away", pstatus="beneath the balcony")
            # slixmpp files a presence with <show/> under its show value, not "available"
            update = await juliet.next(
                "presence", sender=romeo_jid, where=lambda p: p["show"] == "away"
            )
            assert update["status"] == "beneath the balcony"
            assert update["from"] == romeo.jid

            romeo.xmpp.send_message(mto=juliet_jid, mbody="But soft!", mtype="chat")
            message = await juliet.next("message", sender=romeo_jid)
            assert message["body"] == "But soft!"
            assert message["type"] == "chat"
            assert message["from"] == romeo.jid  # stamped by the server with the full JID

            message.reply("Wherefore art thou?").send()
            answer = await romeo.next("message", sender=juliet_jid)
            assert answer["body"] == "Wherefore art thou?"
            assert answer["from"] == juliet.jid
            assert answer["to"] == romeo.jid

            await juliet.close()
            gone = await romeo.next("presence_unavailable", sender=juliet_jid)
            assert gone["from"] == juliet.jid

    run_async(scenario())


def test_approval_sends_subscribed_then_presence_once(accounts, open_peer, run_async):
    """RFC 6121 §3.1.5: the approval first, then the contact's available presence, once."""
    romeo_jid, juliet_jid = accounts

    async def scenario():
        async with open_peer("romeo") as romeo, open_peer("juliet") as juliet:
            romeo.xmpp.send_presence(pto=juliet_jid, ptype="subscribe")
            await juliet.next("presence_subscribe", sender=romeo_jid)
            romeo.queued("presence")
            juliet.xmpp.send_presence(pto=romeo_jid, ptype="subscribed")
            await juliet.sync()  # juliet's approval has been handled completely ...
            await romeo.sync()  # ... and everything it sent romeo has reached him
            types = [p["type"] for p in romeo.queued("presence") if p["from"].bare == juliet_jid]
            assert types == ["subscribed", "available"]

    run_async(scenario())


def test_server_answers_version_ping_disco_and_time(accounts, open_peer, run_async):
    async def scenario():
        async with open_peer("romeo") as romeo:
            plugin = romeo.xmpp.plugin

            version = await plugin["xep_0092"].get_version("localhost", timeout=10)
            assert version["type"] == "result"
            assert version["software_version"]["name"] == "Casper"
            assert version["software_version"]["version"]

            pong = await plugin["xep_0199"].send_ping("localhost", timeout=10)
            assert pong["type"] == "result"
            assert pong["from"] == "localhost"

            info = await plugin["xep_0030"].get_info(jid="localhost", timeout=10)
            assert info["type"] == "result"
            features = set(info["disco_info"]["features"])
            assert {
                "http://jabber.org/protocol/disco#info",
                "jabber:iq:version",
                "urn:xmpp:ping",
                "urn:xmpp:time",
                "msgoffline",
            } <= features
            categories = {(cat, typ) for cat, typ, _, _ in info["disco_info"]["identities"]}
            assert ("server", "im") in categories

            before = datetime.datetime.now(datetime.UTC)
            answer = await plugin["xep_0202"].get_entity_time("localhost", timeout=10)
            assert answer["type"] == "result"
            # slixmpp 1.17 parses neither field of a conforming answer: get_utc() appends a
            # second "Z" ("...:13ZZ") and get_tzo() feeds "00:00:00+00:00" to a date format.
            utc = answer.xml.findtext("{urn:xmpp:time}time/{urn:xmpp:time}utc")
            tzo = answer.xml.findtext("{urn:xmpp:time}time/{urn:xmpp:time}tzo")
            assert utc.endswith("Z"), utc  # XEP-0082 DateTime, in UTC
            server_time = datetime.datetime.fromisoformat(utc)
            assert abs(server_time - before) < datetime.timedelta(seconds=30)
            assert tzo in ("+00:00", "Z"), tzo

            with pytest.raises(IqError) as error:  # somebody else's bare JID: not answered
                await plugin["xep_0199"].send_ping("juliet@localhost", timeout=10)
            assert error.value.iq["error"]["condition"] == "service-unavailable"

    run_async(scenario())


def test_offline_message_delivered_at_next_login_with_delay(accounts, open_peer, run_async):
    romeo_jid, juliet_jid = accounts

    async def scenario():
        sent_at = datetime.datetime.now(datetime.UTC)
        async with open_peer("romeo") as romeo:
            romeo.xmpp.send_message(mto=juliet_jid, mbody="first", mtype="chat")
            romeo.xmpp.send_message(mto=juliet_jid, mbody="second", mtype="normal")
            # The server handles a client's stanzas in order: once the ping is answered,
            # both messages have been stored.
            await romeo.sync()
            assert not romeo.queued("message"), "an error came back instead of storage"

        async with open_peer("juliet") as juliet:
            first = await juliet.next("message", sender=romeo_jid)
            second = await juliet.next("message", sender=romeo_jid)
            assert (first["body"], second["body"]) == ("first", "second")
            assert (first["type"], second["type"]) == ("chat", "normal")
            for message in (first, second):
                delay = message["delay"]
                assert delay["from"] == "localhost"
                stamp = delay["stamp"]
                assert stamp.tzinfo is not None
                lag = stamp - sent_at
                assert datetime.timedelta(seconds=-2) < lag < datetime.timedelta(seconds=30)

        async with open_peer("juliet") as juliet:  # delivered once, then gone from storage
            await juliet.sync()
            assert not juliet.queued("message")

    run_async(scenario())


# -- hostile input ------------------------------------------------------------------------------


def _exchange_raw(sock: socket.socket, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data``, then read until the server closes the connection (bounded)."""
    sock.settimeout(timeout)
    sock.sendall(data)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("garbage", "condition"),
    [
        pytest.param(XML_DECL + STREAM_OPEN + b"<<<", "not-well-formed", id="after-header"),
        pytest.param(b"<stream:stream ...><<<", "not-well-formed", id="broken-header"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not-well-formed", id="http"),
        pytest.param(
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "not-well-formed", id="tls-hello"
        ),
        pytest.param(XML_DECL + ENTITY_BOMB_DTD + STREAM_OPEN, "restricted-xml", id="entity-bomb"),
    ],
)
def test_server_survives_garbage_on_a_raw_socket(
    accounts, casper_server, open_peer, run_async, garbage, condition
):
    error = f"<{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>".encode()
    with socket.create_connection(("127.0.0.1", casper_server.port), timeout=10) as sock:
        reply = _exchange_raw(sock, garbage)
    assert b"<stream:error>" + error in reply, reply
    assert reply.endswith(b"</stream:stream>"), reply

    with socket.create_connection(("127.0.0.1", casper_server.tls_port), timeout=10) as raw:
        ctx = casper_server.client_ssl_context()
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            reply = _exchange_raw(sock, garbage)
    assert b"<stream:error>" + error in reply, reply
    assert reply.endswith(b"</stream:stream>"), reply

    async def scenario():
        async with open_peer("romeo") as romeo:
            await romeo.sync()

    run_async(scenario())


def test_server_survives_a_client_that_hangs_up_mid_handshake(
    accounts, casper_server, open_peer, run_async
):
    for port in (casper_server.port, casper_server.tls_port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01\x00\xa5\x01\x00")  # the start of a TLS ClientHello

    async def scenario():
        async with open_peer("romeo", direct_tls=True) as romeo:
            await romeo.sync()

    run_async(scenario())


@contextlib.contextmanager
def _raw_session(server, local: str, password: str) -> Iterator[ssl.SSLSocket]:
    """A bound session over direct TLS with SASL PLAIN, spoken byte by byte."""
    ctx = server.client_ssl_context()
    with (
        socket.create_connection(("127.0.0.1", server.tls_port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(XML_DECL + STREAM_OPEN)
        assert b"<mechanism>PLAIN</mechanism>" in read_until(sock, b"</stream:features>")
        token = base64.b64encode(f"\0{local}\0{password}".encode())
        sock.sendall(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % token
        )
        read_until(sock, b"<success")
        sock.sendall(STREAM_OPEN)
        read_until(sock, b"</stream:features>")
        sock.sendall(
            b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            b"<resource>raw</resource></bind></iq>"
        )
        read_until(sock, f"{local}@localhost/raw".encode())
        yield sock


def test_server_closes_the_connection_after_the_client_closes_its_stream(accounts, casper_server):
    with _raw_session(casper_server, "romeo", "secret") as sock:
        sock.sendall(b"</stream:stream>")
        assert read_until(sock, b"</stream:stream>").endswith(b"</stream:stream>")
        sock.settimeout(2.0)
        assert sock.recv(65536) == b""  # the server hangs up (RFC 6120 §4.4)
