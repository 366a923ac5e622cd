"""C2S negotiation: client input at awkward moments.

Plaintext pipelined behind STARTTLS or sent after ``<proceed/>`` is injection and closes
the stream with ``policy-violation``; EOF closes (complete stanzas first); too much data
while the caller is deciding closes; input after the stream closed is ignored.
"""

from __future__ import annotations

import pytest
from casper import negotiation as ng

from tests.negotiation.conftest import (
    KEEPALIVE,
    MESSAGE,
    START,
    STARTTLS,
    Client,
    bind_iq,
    closed,
    header,
    plain,
)


@pytest.mark.parametrize("injected", [plain(), b"<au", b"<iq type='get' id='x'/>"])
def test_starttls_with_pipelined_plaintext_is_refused(injected: bytes) -> None:
    client = Client(auto_tls=False)
    client.feed(header() + STARTTLS + injected)
    assert client.summary() == [*START, *closed("policy-violation")]


@pytest.mark.parametrize("split", ["whole", "bytes"])
def test_plaintext_after_proceed_is_refused(split: str) -> None:
    client = Client(split, auto_tls=False)
    client.feed(header() + STARTTLS + KEEPALIVE)  # whitespace is harmless
    assert client.neg.state is ng.State.TLS_PENDING
    client.feed(plain())
    assert client.summary() == [*START, "proceed", "StartTLS", *closed("policy-violation")]
    client.neg.tls_started()  # too late: ignored once closed


def test_eof_closes_without_data(mode: str) -> None:
    client = Client(mode, secure=True).run(header(), plain(), header(), bind_iq(), MESSAGE)
    before = len(client.log)
    client.eof()
    assert client.log[before:] == [ng.Closed(None)]


def test_eof_after_buffered_stanza_or_while_waiting_for_the_caller() -> None:
    client = Client(secure=True).run(header(), plain(), header(), bind_iq())
    client.neg.receive_data(MESSAGE + b"<pres")
    client.eof()
    assert client.summary()[-2:] == ["StanzaIn", "Closed"]  # complete stanzas come first
    client = Client(secure=True, answer=False)
    client.feed(header() + plain())
    client.eof()
    assert client.summary() == [*START, "CredentialsNeeded", "Closed"]
    client.neg.provide_credentials(None)  # ignored once closed
    client.drain()


def test_input_after_closed_is_ignored() -> None:
    client = Client().run(header(to="example.net"))
    client.neg.receive_data(header() + STARTTLS)
    assert client.neg.next_event() == client.closed
    client.neg.receive_eof()
    client.neg.receive_data(b"more")
    assert client.neg.next_event() == client.closed


def test_too_much_data_while_waiting_for_the_caller() -> None:
    client = Client(secure=True, answer=False, max_stanza_bytes=100)
    client.feed(header() + plain())
    client.feed(MESSAGE * 2)
    assert client.summary()[-3:] == closed("policy-violation")
