"""Fuzz the sans-IO SASL mechanisms (casper.sasl): the SCRAM server and PLAIN parsing.

Properties:

1. Whatever a client sends (random bytes, or a real client's messages mutated), each
   :class:`ScramServer` step returns only its documented results: ``start`` ->
   ``NeedCredentials``/``Failure``, ``credentials`` -> ``Challenge``, ``respond`` ->
   ``Success``/``Failure``; ``Success`` only for a known user. Nothing else is raised.
2. Calling the steps in any order raises only :class:`LocalProtocolError` for the calls out
   of order (the caller's bug), and the results above for the others.
3. ``parse_plain`` returns three strings or a ``Failure``.
"""

from __future__ import annotations

import pytest
from casper.errors import LocalProtocolError
from casper.sasl import (
    MECHANISMS,
    Challenge,
    Failure,
    NeedCredentials,
    ScramClient,
    ScramServer,
    Success,
    derive_credentials,
    parse_plain,
)
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.fuzzing import FUZZ, corpus_bytes, corpus_files, mutated

PASSWORD = "pencil"
CREDENTIALS = derive_credentials(PASSWORD, iterations=16, salt=b"fixed salt")
CLIENT_NONCE, SERVER_NONCE = "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j"  # reproducible
SEEDS = corpus_bytes("scram")


def server(mechanism: str) -> ScramServer:
    return ScramServer(
        mechanism, nonce=SERVER_NONCE, fake_key=b"k" * 32, default_iterations=16, domain="localhost"
    )


def exchange(mechanism: str, first: bytes, final: bytes | None, known: bool) -> object:
    """Run one server exchange with these client messages; check every result's type."""
    scram = server(mechanism)
    step = scram.start(first)
    assert isinstance(step, NeedCredentials | Failure), step
    if isinstance(step, Failure):
        with pytest.raises(LocalProtocolError):
            scram.credentials(None)
        return step
    assert isinstance(step.username, str)
    challenge = scram.credentials(CREDENTIALS[mechanism] if known else None)
    assert isinstance(challenge, Challenge) and challenge.data.startswith(b"r=")
    if final is None:  # what a real client answers, if ``first`` was its first message
        client = ScramClient(mechanism, "juliet", PASSWORD, nonce=CLIENT_NONCE)
        client.first()
        final = client.final(challenge.data)
    result = scram.respond(final)
    assert isinstance(result, Success | Failure), result
    assert known or not isinstance(result, Success)
    with pytest.raises(LocalProtocolError):
        scram.respond(final)
    return result


mechanisms = st.sampled_from(MECHANISMS)


@FUZZ
@given(mechanisms, st.binary(max_size=200), st.binary(max_size=200), st.booleans())
def test_random_client_messages(mechanism: str, first: bytes, final: bytes, known: bool) -> None:
    exchange(mechanism, first, final, known)


@FUZZ
@given(mechanisms, st.sampled_from(["first", "final", "both"]), st.data())
def test_mutated_real_exchanges(mechanism: str, which: str, data: st.DataObject) -> None:
    client = ScramClient(mechanism, "juliet", PASSWORD, nonce=CLIENT_NONCE)
    first = client.first()
    scram = server(mechanism)
    if which != "final":
        first = data.draw(mutated([first, *SEEDS]), label="first")
    step = scram.start(first)
    assert isinstance(step, NeedCredentials | Failure)
    if isinstance(step, Failure):
        return
    challenge = scram.credentials(CREDENTIALS[mechanism])
    assert isinstance(challenge, Challenge)
    try:
        final = client.final(challenge.data)
    except ValueError:  # a mutated first message changed the nonce: the client refuses
        final = b"c=biws,r=x,p=AAAA"
    if which != "first":
        final = data.draw(mutated([final, *SEEDS]), label="final")
    result = scram.respond(final)
    assert isinstance(result, Success | Failure)


def test_unmutated_exchange_succeeds_for_every_mechanism() -> None:
    for mechanism in MECHANISMS:
        client = ScramClient(mechanism, "juliet", PASSWORD)
        scram = server(mechanism)
        assert isinstance(scram.start(client.first()), NeedCredentials)
        challenge = scram.credentials(CREDENTIALS[mechanism])
        result = scram.respond(client.final(challenge.data))
        assert isinstance(result, Success) and client.verify(result.additional_data or b"")


CALLS = st.lists(
    st.tuples(
        st.sampled_from(["start", "credentials", "respond"]), st.binary(max_size=64), st.booleans()
    ),
    max_size=6,
)


@FUZZ
@given(mechanisms, CALLS)
def test_steps_in_any_order_raise_only_local_protocol_error(mechanism: str, calls) -> None:
    scram = server(mechanism)
    for name, payload, known in calls:
        try:
            if name == "start":
                result = scram.start(payload)
                assert isinstance(result, NeedCredentials | Failure)
            elif name == "credentials":
                result = scram.credentials(CREDENTIALS[mechanism] if known else None)
                assert isinstance(result, Challenge)
            else:
                result = scram.respond(payload)
                assert isinstance(result, Success | Failure)
        except LocalProtocolError:
            pass


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=100), mutated([b"\0juliet\0pencil", b"juliet@localhost\0juliet\0p"])
    )
)
def test_plain_messages_parse_or_fail(data: bytes) -> None:
    parsed = parse_plain(data)
    if not isinstance(parsed, Failure):
        authzid, authcid, password = parsed
        assert isinstance(authzid, str) and authcid and password


@pytest.mark.parametrize("path", corpus_files("scram"), ids=lambda p: p.name)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_corpus_replay(path, mechanism: str) -> None:
    data = path.read_bytes()
    exchange(mechanism, data, data, known=True)
    genuine = f"n,,n=juliet,r={CLIENT_NONCE}".encode()
    exchange(mechanism, genuine, data, known=True)
    assert isinstance(exchange(mechanism, genuine, None, known=True), Success)
    assert isinstance(exchange(mechanism, genuine, None, known=False), Failure)
