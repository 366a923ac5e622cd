"""C2S negotiation as whole conversations: the happy paths and every rule, as a table.

Each row is a client's steps and the whole summary of what the server did (h11's
``SIMPLE_CASES``): the happy paths (STARTTLS, direct TLS, SCRAM and PLAIN, retries), then
the rules of ``casper.negotiation`` in order: the stream header (1), STARTTLS (3), SASL
(4), nothing before authentication and bind (5), and the client closing at any point (7).
Every row runs fed whole, byte by byte and with trailing data.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.negotiation.conftest import (
    ABORT,
    AUTH_OK,
    BOUND,
    CLOSE,
    CONFLICT,
    KEEPALIVE,
    MESSAGE,
    NO_TLS,
    PLAIN_OK,
    PRESENCE,
    SESSION_IQ,
    START,
    START_TLS,
    STARTTLS,
    TLS,
    Client,
    Step,
    auth,
    bind_iq,
    closed,
    header,
    plain,
    sasl,
    scram_auth,
    scram_final,
)

# (id, options, client steps, the whole summary of what the server did)
CONVERSATIONS: list[tuple[str, dict[str, Any], list[Step], list[str]]] = [
    # happy paths
    ("starttls-scram-sha-256", {}, [header(from_="juliet@example.com"), STARTTLS, KEEPALIVE,
        header(), scram_auth(), scram_final, header(), bind_iq("balcony"), SESSION_IQ, KEEPALIVE,
        MESSAGE, PRESENCE, CLOSE],
        [*START_TLS, "CredentialsNeeded", "challenge", "success", "Authenticated", *START, *BOUND,
         "iq:result", "StanzaIn", "StanzaIn", "close", "Closed"]),
    ("direct-tls-plain", TLS, [header(), plain(), header(), bind_iq(), MESSAGE, CLOSE],
        [*START, *PLAIN_OK, *BOUND, "StanzaIn", "close", "Closed"]),
    ("scram-sha-1-without-tls", NO_TLS, [header(), scram_auth("SCRAM-SHA-1"), scram_final,
        header(), bind_iq()], [*START, "CredentialsNeeded", "challenge", "success",
        "Authenticated", *START, *BOUND]),
    ("scram-without-initial-response", TLS, [header(), scram_auth(initial=False),
        lambda c: sasl("response", c.scram.first()), scram_final],
        [*START, "challenge", "CredentialsNeeded", "challenge", "success", "Authenticated"]),
    ("plain-authzid", TLS, [header(), plain(authzid="Juliet@Example.com")], [*START, *AUTH_OK]),
    ("abort-then-retry", TLS, [header(), scram_auth(), ABORT, plain()],
        [*START, "CredentialsNeeded", "challenge", "failure:aborted", *AUTH_OK]),
    ("invalid-resource-then-valid", TLS, [header(), plain(), header(), bind_iq("tab&#9;"),
        bind_iq("x" * 1024), bind_iq("ok")],
        [*START, *PLAIN_OK, "iq:error:bad-request", "iq:error:bad-request", *BOUND]),
    ("two-resources-then-one", TLS, [header(), plain(), header(), bind_iq("a</resource><resource>b"),
        bind_iq("a")], [*START, *PLAIN_OK, "iq:error:bad-request", *BOUND]),
    ("bind-failed-then-retry", {**TLS, "bind_errors": (CONFLICT,)}, [header(), plain(), header(),
        bind_iq("a"), bind_iq("b", "b2")], [*START, *PLAIN_OK, "BindRequested",
        "iq:error:conflict", *BOUND]),
    ("session-and-bind-after-binding", TLS, [header(), plain(), header(), bind_iq(), SESSION_IQ,
        bind_iq(iq_id="b2")], [*START, *PLAIN_OK, *BOUND, "iq:result", "StanzaIn"]),
    # rule 1
    ("wrong-host", {}, [header(to="example.net")], ["header", *closed("host-unknown")]),
    ("no-host", {}, [header(to=None)], ["header", *closed("host-unknown")]),
    ("old-version", {}, [header(version="0.9")], ["header", *closed("unsupported-version")]),
    ("no-version", {}, [header(version=None)], ["header", *closed("unsupported-version")]),
    ("bad-version", {}, [header(version="1")], ["header", *closed("unsupported-version")]),
    ("wrong-namespace", {}, [header(ns="jabber:server")], ["header", *closed("invalid-namespace")]),
    ("host-prepared-newer-version", {}, [header(to="Example.COM.", version="1.1")], START),
    ("doctype", {}, [b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" + header(decl=False)],
        ["header", *closed("restricted-xml")]),
    ("wrong-root", {}, [b"<stream:stream xmlns:stream='urn:x'>"],
        ["header", *closed("invalid-namespace")]),
    ("unbound-prefix", {}, [b"<stream:stream xmlns='jabber:client'>"],
        ["header", *closed("not-well-formed")]),
    ("comment", {}, [header(), b"<!-- hi -->"], [*START, *closed("restricted-xml")]),
    ("malformed", {}, [header(), b"<message><</message>"], [*START, *closed("not-well-formed")]),
    ("oversized", {"max_stanza_bytes": 200}, [header(), b"<message>" + b"x" * 200 + b"</message>"],
        [*START, *closed("policy-violation")]),
    # rule 3
    ("starttls-already-tls", TLS, [header(), STARTTLS], [*START, "tls-failure", "close", "Closed"]),
    ("starttls-no-tls", NO_TLS, [header(), STARTTLS], [*START, "tls-failure", "close", "Closed"]),
    ("starttls-twice", {}, [header(), STARTTLS, header(), STARTTLS],
        [*START_TLS, "tls-failure", "close", "Closed"]),
    # rule 4
    ("plain-without-tls", NO_TLS, [header(), plain()], [*START, "failure:encryption-required"]),
    ("plain-before-tls", {}, [header(), plain()], [*START, "failure:encryption-required"]),
    ("scram-before-tls", {}, [header(), auth("SCRAM-SHA-256", b"n,,n=juliet,r=abc")],
        [*START, "failure:encryption-required"]),
    ("unknown-mechanism", TLS, [header(), auth("DIGEST-MD5", b"x")],
        [*START, "failure:invalid-mechanism"]),
    ("plus-mechanism", TLS, [header(), auth("SCRAM-SHA-256-PLUS", b"x")],
        [*START, "failure:invalid-mechanism"]),
    ("no-mechanism", TLS, [header(), sasl("auth")], [*START, "failure:invalid-mechanism"]),
    ("plain-not-allowed", {**TLS, "allow_plain": False}, [header(), plain()],
        [*START, "failure:invalid-mechanism"]),
    ("bad-base64", TLS, [header(), auth("PLAIN", raw="!!not base64!!")],
        [*START, "failure:incorrect-encoding"]),
    ("truncated-base64", TLS, [header(), auth("SCRAM-SHA-1", raw="bm9")],
        [*START, "failure:incorrect-encoding"]),
    ("bad-base64-response", TLS, [header(), scram_auth(), sasl("response", raw="%%%")],
        [*START, "CredentialsNeeded", "challenge", "failure:incorrect-encoding"]),
    ("plain-malformed", TLS, [header(), auth("PLAIN", b"juliet")],
        [*START, "failure:malformed-request"]),
    ("plain-with-a-child-element", TLS, [header(), auth("PLAIN", raw="AGp1bGlldABy<x/>b21lbw==")],
        [*START, "failure:malformed-request"]),
    ("response-with-a-child-element", TLS, [header(), scram_auth(), sasl("response", raw="<x/>")],
        [*START, "CredentialsNeeded", "challenge", "failure:malformed-request"]),
    ("scram-empty", TLS, [header(), auth("SCRAM-SHA-256", raw="=")],
        [*START, "failure:malformed-request"]),
    ("plain-other-authzid", TLS, [header(), plain(authzid="romeo@example.com")],
        [*START, "failure:invalid-authzid"]),
    ("plain-authzid-other-domain", TLS, [header(), plain(authzid="juliet@example.net")],
        [*START, "failure:invalid-authzid"]),
    ("plain-bad-localpart", TLS, [header(), plain(authcid="bad user")],
        [*START, "failure:not-authorized"]),
    ("plain-wrong-password", TLS, [header(), plain(password="wrong")],
        [*START, "CredentialsNeeded", "failure:not-authorized"]),
    ("plain-unknown-user", TLS, [header(), plain(authcid="romeo")],
        [*START, "CredentialsNeeded", "failure:not-authorized"]),
    ("scram-wrong-password", TLS, [header(), scram_auth(pw="wrong"), scram_final],
        [*START, "CredentialsNeeded", "challenge", "failure:not-authorized"]),
    ("scram-unknown-user", TLS, [header(), scram_auth(user="romeo"), scram_final],
        [*START, "CredentialsNeeded", "challenge", "failure:not-authorized"]),
    ("scram-invalid-user", TLS, [header(), scram_auth(user="bad user"), scram_final],
        [*START, "challenge", "failure:not-authorized"]),
    ("too-many-failures", TLS, [header(), plain(password="a"), plain(password="b"),
        plain(password="c")], [*START, *["CredentialsNeeded", "failure:not-authorized"] * 3,
        *closed("policy-violation")]),
    ("one-failure-allowed", {**TLS, "max_auth_failures": 1}, [header(), auth("X-OAUTH2", b"t")],
        [*START, "failure:invalid-mechanism", *closed("policy-violation")]),
    # rule 5
    *[(f"before-auth-{i}", TLS, [header(), data], [*START, *closed("not-authorized")])
      for i, data in enumerate([MESSAGE, PRESENCE, bind_iq(), SESSION_IQ, sasl("response", b"x"),
                                b"<foo xmlns='urn:x'/>", ABORT])],
    ("during-sasl", TLS, [header(), scram_auth(), MESSAGE],
        [*START, "CredentialsNeeded", "challenge", *closed("not-authorized")]),
    *[(f"before-bind-{i}", TLS, [header(), plain(), header(), data],
       [*START, *PLAIN_OK, *closed("not-authorized")])
      for i, data in enumerate([b"<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
                                SESSION_IQ, MESSAGE, plain(), bind_iq().replace(b" id='b1'", b"")])
    ],
    # rule 7
    *[(f"client-closes-{n}", {}, [header(), STARTTLS, header(), plain(), header(), bind_iq()][:n]
       + [CLOSE], [*before, "close", "Closed"]) for n, before in ((1, START), (3, START_TLS),
       (5, [*START_TLS, *PLAIN_OK]), (6, [*START_TLS, *PLAIN_OK, *BOUND]))],
]  # fmt: skip


@pytest.mark.parametrize(("options", "steps", "expected"), [c[1:] for c in CONVERSATIONS],
                         ids=[c[0] for c in CONVERSATIONS])  # fmt: skip
def test_conversation(mode: str, options: dict[str, Any], steps: list[Step], expected: list[str]):
    assert Client(mode, **options).run(*steps).summary() == expected
