"""SCRAM-*-PLUS (RFC 5802 §6, RFC 5929): the GS2 flag rules and the channel-binding check.

The client is :class:`casper.sasl.ScramClient` (its proof is pinned by the RFC vectors in
``test_scram.py``); what channel binding adds, the ``c=`` attribute, is computed here
independently: base64 of the GS2 header followed by the binding data.
"""

from __future__ import annotations

import base64

import pytest
from casper.sasl import (
    MECHANISMS,
    PLUS_MECHANISMS,
    Failure,
    NeedCredentials,
    ScramClient,
    ScramServer,
    Success,
    derive_credentials,
)
from casper.sasl.scram import base_mechanism

UNIQUE = b"\x01" * 12  # what tls-unique gives on TLS 1.2: a Finished message
END_POINT = bytes(range(32))  # a SHA-256 certificate hash
BINDINGS = {"tls-unique": UNIQUE, "tls-server-end-point": END_POINT}
PASSWORD = "pencil"


def exchange(client: ScramClient, server: ScramServer) -> tuple[Success | Failure, bytes]:
    """Run one exchange; return the result and the client-final-message sent."""
    start = server.start(client.first())
    assert isinstance(start, NeedCredentials), start
    creds = derive_credentials(PASSWORD, iterations=16)[base_mechanism(server.mechanism)]
    final = client.final(server.credentials(creds).data)
    return server.respond(final), final


@pytest.mark.parametrize("mechanism", PLUS_MECHANISMS)
@pytest.mark.parametrize("cb_type", sorted(BINDINGS))
def test_plus_login_succeeds_with_each_offered_binding_type(mechanism: str, cb_type: str) -> None:
    client = ScramClient(
        mechanism, "user", PASSWORD, cb_flag=f"p={cb_type}", cb_data=BINDINGS[cb_type]
    )
    result, final = exchange(client, ScramServer(mechanism, channel_bindings=BINDINGS))
    assert isinstance(result, Success) and result.additional_data is not None
    assert client.verify(result.additional_data)
    expected = base64.b64encode(f"p={cb_type},,".encode() + BINDINGS[cb_type])
    assert final.startswith(b"c=" + expected + b",r=")


def test_plus_login_with_an_authzid_binds_the_whole_gs2_header() -> None:
    client = ScramClient("SCRAM-SHA-256-PLUS", "user", PASSWORD, authzid="user",
                         cb_flag="p=tls-unique", cb_data=UNIQUE)  # fmt: skip
    result, final = exchange(client, ScramServer("SCRAM-SHA-256-PLUS", channel_bindings=BINDINGS))
    assert isinstance(result, Success)
    assert final.startswith(b"c=" + base64.b64encode(b"p=tls-unique,a=user," + UNIQUE))


@pytest.mark.parametrize("mechanism", PLUS_MECHANISMS)
@pytest.mark.parametrize(
    ("cb_type", "data"),
    [("tls-unique", b"\x02" * 12), ("tls-unique", b""), ("tls-unique", END_POINT),
     ("tls-server-end-point", UNIQUE), ("tls-server-end-point", END_POINT[:-1])],
)  # fmt: skip
def test_plus_login_with_other_binding_data_is_not_authorized(
    mechanism: str, cb_type: str, data: bytes
) -> None:
    # what a man in the middle's client sees: another TLS connection, another certificate
    client = ScramClient(mechanism, "user", PASSWORD, cb_flag=f"p={cb_type}", cb_data=data)
    result, _ = exchange(client, ScramServer(mechanism, channel_bindings=BINDINGS))
    assert result == Failure("not-authorized")


def test_the_proof_covers_the_binding_data() -> None:
    # a man in the middle rewrites c= to its own connection's data: the proof no longer fits
    client = ScramClient("SCRAM-SHA-1-PLUS", "user", PASSWORD, cb_flag="p=tls-unique",
                         cb_data=b"\x02" * 12)  # fmt: skip
    server = ScramServer("SCRAM-SHA-1-PLUS", channel_bindings=BINDINGS)
    server.start(client.first())
    challenge = server.credentials(derive_credentials(PASSWORD, iterations=16)["SCRAM-SHA-1"])
    final = client.final(challenge.data)
    rewritten = final.replace(
        base64.b64encode(b"p=tls-unique,," + b"\x02" * 12),
        base64.b64encode(b"p=tls-unique,," + UNIQUE),
    )
    assert rewritten != final
    assert server.respond(rewritten) == Failure("not-authorized")


# (mechanism, the server's bindings, client-first-message) -> result of start()
GS2_CASES: list[tuple[str, dict[str, bytes], bytes, NeedCredentials | Failure]] = [
    # without -PLUS offered: n and y as ever, p= is a client error
    ("SCRAM-SHA-1", {}, b"n,,n=user,r=abc", NeedCredentials("user")),
    ("SCRAM-SHA-1", {}, b"y,,n=user,r=abc", NeedCredentials("user")),
    ("SCRAM-SHA-1", {}, b"p=tls-unique,,n=user,r=abc", Failure("malformed-request")),
    # -PLUS offered, plain mechanism chosen: n is fine, y means someone hid -PLUS
    ("SCRAM-SHA-256", BINDINGS, b"n,,n=user,r=abc", NeedCredentials("user")),
    ("SCRAM-SHA-256", BINDINGS, b"y,,n=user,r=abc",
     Failure("not-authorized", "server-does-support-channel-binding")),
    ("SCRAM-SHA-256", BINDINGS, b"p=tls-unique,,n=user,r=abc", Failure("malformed-request")),
    # -PLUS chosen: p= with an offered type only
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"p=tls-unique,,n=user,r=abc", NeedCredentials("user")),
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"p=tls-server-end-point,,n=user,r=abc",
     NeedCredentials("user")),
    ("SCRAM-SHA-256-PLUS", {"tls-server-end-point": END_POINT}, b"p=tls-unique,,n=user,r=abc",
     Failure("not-authorized", "unsupported-channel-binding-type")),
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"p=tls-exporter,,n=user,r=abc",
     Failure("not-authorized", "unsupported-channel-binding-type")),
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"n,,n=user,r=abc", Failure("malformed-request")),
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"y,,n=user,r=abc", Failure("malformed-request")),
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"p=,,n=user,r=abc", Failure("malformed-request")),
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"p=tls_unique,,n=user,r=abc", Failure("malformed-request")),
    ("SCRAM-SHA-256-PLUS", BINDINGS, b"p,,n=user,r=abc", Failure("malformed-request")),
]  # fmt: skip


@pytest.mark.parametrize(("mechanism", "bindings", "message", "expected"), GS2_CASES)
def test_gs2_channel_binding_flag_rules(
    mechanism: str, bindings: dict[str, bytes], message: bytes, expected: NeedCredentials | Failure
) -> None:
    result = ScramServer(mechanism, channel_bindings=bindings).start(message)
    if isinstance(expected, Failure) and expected.text is None:
        assert isinstance(result, Failure) and result.condition == expected.condition
    else:
        assert result == expected


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_y_flag_logs_in_where_no_plus_is_offered(mechanism: str) -> None:
    # y passes start() where no -PLUS is offered, and still logs in
    client = ScramClient(mechanism, "user", PASSWORD, cb_flag="y")
    result, final = exchange(client, ScramServer(mechanism))
    assert isinstance(result, Success)
    assert final.startswith(b"c=" + base64.b64encode(b"y,,") + b",")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_plain_scram_with_n_flag_logs_in_while_plus_is_offered(mechanism: str) -> None:
    client = ScramClient(mechanism, "user", PASSWORD)
    assert isinstance(
        exchange(client, ScramServer(mechanism, channel_bindings=BINDINGS))[0], Success
    )


@pytest.mark.parametrize("mechanism", PLUS_MECHANISMS)
def test_plus_mechanism_without_channel_bindings_is_a_caller_bug(mechanism: str) -> None:
    with pytest.raises(ValueError):
        ScramServer(mechanism)
    with pytest.raises(ValueError):
        ScramServer(mechanism, channel_bindings={})


def test_plus_mechanism_uses_the_credentials_of_its_base_and_no_others() -> None:
    creds = derive_credentials(PASSWORD, iterations=16)
    server = ScramServer("SCRAM-SHA-256-PLUS", channel_bindings=BINDINGS)
    server.start(b"p=tls-unique,,n=user,r=abc")
    with pytest.raises(ValueError):
        server.credentials(creds["SCRAM-SHA-1"])
    assert base_mechanism("SCRAM-SHA-256-PLUS") == "SCRAM-SHA-256"
    assert base_mechanism("SCRAM-SHA-1") == "SCRAM-SHA-1"


def test_stored_credentials_are_never_for_a_plus_name() -> None:
    good = derive_credentials(PASSWORD, iterations=16)["SCRAM-SHA-256"]
    with pytest.raises(ValueError):
        type(good)("SCRAM-SHA-256-PLUS", good.salt, 16, good.stored_key, good.server_key)


@pytest.mark.parametrize("cb_flag", ["p", "p=", "p=a,b", "P=tls-unique", "x"])
def test_client_refuses_an_invalid_flag(cb_flag: str) -> None:
    with pytest.raises(ValueError):
        ScramClient("SCRAM-SHA-1-PLUS", "user", PASSWORD, cb_flag=cb_flag)
