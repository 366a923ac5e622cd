"""C2S negotiation: the caller's side of the conversation.

The caller may answer later (credentials, bind); it may refuse credentials without a
check and the stream goes on; every SASL failure comes with an ``AuthFailed`` event; it
may close with or without an error, at any stage; ``bind_done`` needs the account's full
JID; an illegal caller input raises ``LocalProtocolError`` naming the state and input.
"""

from __future__ import annotations

import pytest
from casper import negotiation as ng
from casper.errors import LocalProtocolError, StanzaError, StreamError
from casper.jid import JID
from casper.sasl import Failure

from tests.negotiation.conftest import (
    ACCOUNTS,
    DOMAIN,
    MESSAGE,
    SASL_NS,
    START,
    Client,
    auth,
    bind_iq,
    closed,
    header,
    plain,
    scram_auth,
    scram_final,
)


def test_caller_may_answer_later() -> None:
    client = Client(secure=True, answer=False)
    client.feed(header() + plain() + header())
    assert client.neg.state is ng.State.SASL_CREDENTIALS
    assert client.neg.next_event() is ng.NEED_DATA
    client.neg.provide_credentials(ACCOUNTS["juliet"]["SCRAM-SHA-256"])
    client.drain()
    assert client.summary()[-4:] == ["success", "Authenticated", "header", "features"]
    client.feed(bind_iq())
    assert client.neg.state is ng.State.BIND_PENDING
    client.neg.bind_done(JID.make("juliet", DOMAIN, "x"))
    client.drain()
    assert client.neg.state is ng.State.ESTABLISHED


@pytest.mark.parametrize(("steps", "headers"), [(0, 1), (1, 1), (3, 2), (5, 2)])
def test_caller_closes_with_error(steps: int, headers: int) -> None:
    client = Client(secure=True).run(*[header(), plain(), header(), bind_iq(), MESSAGE][:steps])
    error = StreamError("system-shutdown", "bye")
    client.neg.close(error)
    client.drain()
    assert client.summary()[-3:] == closed("system-shutdown")
    assert client.closed == ng.Closed(error)
    assert client.summary().count("header") == headers


def test_caller_closes_without_error_or_while_waiting() -> None:
    client = Client()
    client.neg.close()
    client.drain()
    assert client.summary() == ["header", "close", "Closed"]
    client.neg.close(StreamError("reset"))  # a second close is ignored
    client.drain()
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.neg.close(StreamError("connection-timeout"))
    client.drain()
    assert client.summary() == [*START, "CredentialsNeeded", *closed("connection-timeout")]


def test_illegal_caller_inputs_name_state_and_input() -> None:
    neg = Client().neg
    with pytest.raises(LocalProtocolError, match="'credentials'.*'header'"):
        neg.provide_credentials(None)
    neg.receive_data(header())
    neg.next_event()
    with pytest.raises(LocalProtocolError, match="'tls-started'.*'features'"):
        neg.tls_started()
    with pytest.raises(LocalProtocolError, match="'bind-done'.*'features'"):
        neg.bind_done(JID.make("juliet", DOMAIN, "r"))
    with pytest.raises(LocalProtocolError, match="'bind-failed'.*'features'"):
        neg.bind_failed(StanzaError("conflict"))
    neg.receive_eof()
    with pytest.raises(LocalProtocolError):
        neg.receive_data(b" ")


def test_every_sasl_failure_comes_with_an_auth_failed_event() -> None:
    client = Client(secure=True).run(
        header(),
        plain(password="wrong"),
        plain(authcid="nobody"),
        scram_auth(pw="wrong"),
    )
    client.run(scram_final)
    assert [(e.username, e.condition) for e in client.auth_failures] == [
        ("juliet", "not-authorized"), ("nobody", "not-authorized"), ("juliet", "not-authorized"),
    ]  # fmt: skip
    assert client.summary()[-2:] == closed("policy-violation")[-2:]
    client = Client(secure=True).run(header(), auth("X-UNKNOWN", b"x"))
    assert [(e.username, e.condition) for e in client.auth_failures] == [
        (None, "invalid-mechanism")
    ]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_refused_credentials_fail_without_a_check_and_the_stream_goes_on(mechanism: str) -> None:
    client = Client(secure=True, answer=False)
    first = plain() if mechanism == "PLAIN" else scram_auth()(client)
    client.feed(header() + first)
    assert client.summary()[-1] == "CredentialsNeeded"
    client.neg.refuse_credentials(Failure("temporary-auth-failure", "slow down"))
    client.drain()
    assert client.summary()[-1] == "failure:temporary-auth-failure"
    assert client.elements("failure")[-1].findtext(f"{{{SASL_NS}}}text") == "slow down"
    assert [e.condition for e in client.auth_failures] == ["temporary-auth-failure"]
    assert client.neg.state is ng.State.FEATURES  # the client may try again
    with pytest.raises(LocalProtocolError):
        client.neg.refuse_credentials(None)  # type: ignore[arg-type]


def test_bind_done_needs_the_accounts_full_jid() -> None:
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.neg.provide_credentials(ACCOUNTS["juliet"]["SCRAM-SHA-256"])
    client.feed(header() + bind_iq())
    for wrong in (JID.make("juliet", DOMAIN), JID.make("romeo", DOMAIN, "r")):
        with pytest.raises(LocalProtocolError):
            client.neg.bind_done(wrong)
    assert client.neg.state is ng.State.BIND_PENDING
