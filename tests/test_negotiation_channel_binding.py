"""Channel binding in the sans-IO c2s negotiation (rule 10 of ``casper.negotiation``).

RFC 5802 §6 (GS2 flags), RFC 5929 (``tls-unique``, ``tls-server-end-point``), XEP-0440
(``<sasl-channel-binding/>``). The driver is the negotiation suite's :class:`Client`; each
conversation runs with every client input fed whole, byte by byte and with trailing data.
The client side of SCRAM is :class:`casper.sasl.ScramClient` with the binding data given
here, as a client would read it from its own end of the TLS connection.
"""

from __future__ import annotations

from collections.abc import Callable
from xml.etree.ElementTree import Element

import pytest
from casper import negotiation as ng
from casper.errors import LocalProtocolError
from casper.sasl import ScramClient, derive_credentials

from tests.negotiation.conftest import (
    PASSWORD,
    START,
    STARTTLS,
    TLS,
    Client,
    auth,
    bind_iq,
    features,
    header,
    scram_auth,
    scram_final,
)

CB_NS = "urn:xmpp:sasl-cb:0"
UNIQUE = b"\x07" * 12
END_POINT = b"\x5e" * 32
BINDINGS = {"tls-unique": UNIQUE, "tls-server-end-point": END_POINT}
PLUS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]
PLAIN_MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
SCRAM_OK = ["CredentialsNeeded", "challenge", "success", "Authenticated"]


@pytest.fixture(params=["whole", "bytes", "trailing"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def bound_client(mode: str, bindings: dict[str, bytes] = BINDINGS, **options: object) -> Client:
    """A client on a direct TLS stream whose caller gave ``bindings``."""
    client = Client(mode, **{**TLS, **options})
    client.neg.set_channel_bindings(bindings)
    return client


def plus_auth(mechanism: str, cb_flag: str, cb_data: bytes = b"") -> Callable[[Client], bytes]:
    def step(client: Client) -> bytes:
        client.scram = ScramClient(mechanism, "juliet", PASSWORD, cb_flag=cb_flag, cb_data=cb_data)
        return auth(mechanism, client.scram.first())

    return step


def channel_binding_types(element: Element) -> list[str] | None:
    feature = element.find(f"{{{CB_NS}}}sasl-channel-binding")
    if feature is None:
        return None
    return [
        child.get("type", "") for child in feature if child.tag == f"{{{CB_NS}}}channel-binding"
    ]


# -- what is offered ---------------------------------------------------------------------------


def test_bindings_offer_plus_mechanisms_first_and_announce_types(mode: str) -> None:
    client = bound_client(mode).run(header())
    offered = client.elements("features")[0]
    assert features(offered)["mechanisms"] == [*PLUS, *PLAIN_MECHANISMS]
    assert channel_binding_types(offered) == ["tls-unique", "tls-server-end-point"]


def test_without_bindings_nothing_channel_bound_is_offered(mode: str) -> None:
    client = Client(mode, **TLS).run(header())
    offered = client.elements("features")[0]
    assert features(offered)["mechanisms"] == PLAIN_MECHANISMS
    assert channel_binding_types(offered) is None
    client.run(plus_auth("SCRAM-SHA-256-PLUS", "p=tls-unique", UNIQUE))
    assert client.summary() == [*START, "failure:invalid-mechanism"]


def test_only_the_types_given_are_announced(mode: str) -> None:
    client = bound_client(mode, {"tls-server-end-point": END_POINT}).run(header())
    assert channel_binding_types(client.elements("features")[0]) == ["tls-server-end-point"]


class StartTLSCaller(Client):
    """Hands the bindings over after STARTTLS, as ``casper.connection`` does."""

    def _respond(self, event: object) -> None:
        super()._respond(event)
        if isinstance(event, ng.StartTLS):
            self.neg.set_channel_bindings({"tls-unique": UNIQUE})


def test_starttls_stream_offers_plus_only_after_tls(mode: str) -> None:
    client = StartTLSCaller(mode)
    client.run(header(), STARTTLS, header(), plus_auth("SCRAM-SHA-1-PLUS", "p=tls-unique", UNIQUE),
               scram_final, header(), bind_iq())  # fmt: skip
    before, after, _bound = client.elements("features")
    assert features(before) == {"starttls": "required"}
    assert channel_binding_types(before) is None
    assert features(after)["mechanisms"] == [*PLUS, *PLAIN_MECHANISMS]
    assert channel_binding_types(after) == ["tls-unique"]
    assert client.events(ng.Authenticated) == [ng.Authenticated("juliet")]
    assert channel_binding_types(_bound) is None  # nothing SASL after authentication


# -- logging in --------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", PLUS)
@pytest.mark.parametrize("cb_type", ["tls-unique", "tls-server-end-point"])
def test_plus_login_with_the_streams_binding_data(mode: str, mechanism: str, cb_type: str) -> None:
    client = bound_client(mode)
    client.run(header(), plus_auth(mechanism, f"p={cb_type}", BINDINGS[cb_type]), scram_final)
    assert client.summary() == [*START, *SCRAM_OK]
    base = mechanism.removesuffix("-PLUS")  # the credentials are stored under the base name
    assert client.events(ng.CredentialsNeeded) == [ng.CredentialsNeeded("juliet", base)]
    assert client.scram is not None and client.scram.verify(client.last_data("success"))


@pytest.mark.parametrize(
    ("cb_type", "data"),
    [("tls-unique", b"\x08" * 12), ("tls-server-end-point", b"\x5f" * 32),
     ("tls-server-end-point", UNIQUE), ("tls-unique", b"")],
)  # fmt: skip
def test_other_binding_data_is_not_authorized(mode: str, cb_type: str, data: bytes) -> None:
    # the client is on another TLS connection (a man in the middle's) or another certificate
    client = bound_client(mode)
    client.run(header(), plus_auth("SCRAM-SHA-256-PLUS", f"p={cb_type}", data), scram_final)
    assert client.summary() == [*START, "CredentialsNeeded", "challenge", "failure:not-authorized"]
    assert [f.condition for f in client.auth_failures] == ["not-authorized"]


@pytest.mark.parametrize(
    ("options", "bindings", "step", "condition"),
    [
        (TLS, {"tls-server-end-point": END_POINT},
         plus_auth("SCRAM-SHA-256-PLUS", "p=tls-unique", UNIQUE), "not-authorized"),
        (TLS, BINDINGS, plus_auth("SCRAM-SHA-256-PLUS", "p=tls-exporter", b"x"), "not-authorized"),
        (TLS, BINDINGS, plus_auth("SCRAM-SHA-256-PLUS", "n"), "malformed-request"),
        (TLS, BINDINGS, plus_auth("SCRAM-SHA-1-PLUS", "y"), "malformed-request"),
        (TLS, BINDINGS, plus_auth("SCRAM-SHA-256", "p=tls-unique", UNIQUE), "malformed-request"),
        (TLS, BINDINGS, plus_auth("SCRAM-SHA-256", "y"), "not-authorized"),  # a downgrade
        (TLS, BINDINGS, plus_auth("SCRAM-SHA-1", "y"), "not-authorized"),
    ],
    ids=["unoffered-type", "unknown-type", "plus-with-n", "plus-with-y", "p-without-plus",
         "y-downgrade-sha256", "y-downgrade-sha1"],
)  # fmt: skip
def test_gs2_flag_violations_fail_at_once(
    mode: str, options: dict, bindings: dict[str, bytes], step, condition: str
) -> None:
    client = bound_client(mode, bindings, **options)
    client.run(header(), step)
    assert client.summary() == [*START, f"failure:{condition}"]
    assert client.events(ng.CredentialsNeeded) == []


def test_y_downgrade_failure_names_the_rfc_5802_error(mode: str) -> None:
    client = bound_client(mode).run(header(), plus_auth("SCRAM-SHA-256", "y"))
    failure = client.elements("failure")[0]
    text = failure.findtext("{urn:ietf:params:xml:ns:xmpp-sasl}text")
    assert text == "server-does-support-channel-binding"


@pytest.mark.parametrize("cb_flag", ["n", "y"])
def test_plain_scram_logs_in_where_no_plus_is_offered(mode: str, cb_flag: str) -> None:
    client = Client(mode, **TLS)
    client.run(header(), plus_auth("SCRAM-SHA-256", cb_flag), scram_final)
    assert client.summary() == [*START, *SCRAM_OK]


def test_plain_scram_with_n_logs_in_while_plus_is_offered(mode: str) -> None:
    client = bound_client(mode).run(header(), scram_auth("SCRAM-SHA-1"), scram_final)
    assert client.summary() == [*START, *SCRAM_OK]


# -- the caller's side -------------------------------------------------------------------------


def test_bindings_are_refused_where_they_cannot_be_true() -> None:
    plaintext = Client(tls_available=False, tls_required=False)
    with pytest.raises(LocalProtocolError):  # no TLS at all
        plaintext.neg.set_channel_bindings(BINDINGS)
    before_tls = Client()
    with pytest.raises(LocalProtocolError):  # STARTTLS not done yet
        before_tls.neg.set_channel_bindings(BINDINGS)
    late = Client(**TLS).run(header())
    with pytest.raises(LocalProtocolError):  # the features are out
        late.neg.set_channel_bindings(BINDINGS)
    authenticated = bound_client("whole").run(header(), scram_auth(), scram_final)
    assert authenticated.neg.state is ng.State.HEADER
    with pytest.raises(LocalProtocolError):  # the stream after SASL
        authenticated.neg.set_channel_bindings(BINDINGS)
    for bad in ({"tls-unique": "text"}, {"tls-unique": b""}, {1: b"x"}):
        with pytest.raises(LocalProtocolError):
            Client(**TLS).neg.set_channel_bindings(bad)  # type: ignore[arg-type]


def test_bindings_are_ignored_once_closed() -> None:
    client = Client(**TLS)
    client.neg.close()
    client.drain()
    client.neg.set_channel_bindings(BINDINGS)
    assert client.neg.next_event() == client.closed == ng.Closed(None)


def test_credentials_of_another_mechanism_are_refused_for_plus() -> None:
    client = bound_client("whole", answer=False)
    client.run(header(), plus_auth("SCRAM-SHA-256-PLUS", "p=tls-unique", UNIQUE))
    assert client.events(ng.CredentialsNeeded) == [ng.CredentialsNeeded("juliet", "SCRAM-SHA-256")]
    creds = derive_credentials(PASSWORD, iterations=16)
    with pytest.raises(LocalProtocolError):
        client.neg.provide_credentials(creds["SCRAM-SHA-1"])
    with pytest.raises(LocalProtocolError):
        client.neg.provide_credentials("SCRAM-SHA-256")  # type: ignore[arg-type]
    client.neg.provide_credentials(creds["SCRAM-SHA-256"])
    client.drain()
    assert client.summary()[-1] == "challenge"
