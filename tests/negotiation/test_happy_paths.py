"""C2S negotiation: the details of the happy paths.

Stream ids, headers and the features offered at each stage (extra features last), the
SCRAM exchange and its verification, prepared resources and the bound JID, the session
IQ, PLAIN checked against the SCRAM credentials, a failed bind's error, and a restart
after SASL pipelined with everything up to the first stanzas (XEP-0305 style).
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper import negotiation as ng
from casper.jid import JID
from casper.xml import serialize

from tests.negotiation.conftest import (
    BIND_NS,
    BOUND,
    CONFLICT,
    DOMAIN,
    MESSAGE,
    NO_TLS,
    PLAIN_OK,
    PRESENCE,
    SESSION_IQ,
    START,
    STARTTLS,
    TLS,
    Client,
    bind_iq,
    features,
    header,
    plain,
    scram_auth,
    scram_final,
)


@pytest.mark.parametrize("resource", ["balcony", "cafe\u0301", None])
def test_happy_path_details(mode: str, resource: str | None) -> None:
    client = Client(mode)
    client.neg.set_extra_features([Element("{urn:xmpp:sm:3}sm")])
    client.run(header(from_="juliet@example.com"), STARTTLS, header(), scram_auth(), scram_final,
               header(), bind_iq(resource), SESSION_IQ, MESSAGE, PRESENCE)  # fmt: skip
    assert [h["id"] for h in client.headers()] == ["s1", "s2", "s3"]
    assert client.headers()[0]["to"] == "juliet@example.com"
    assert all(h["from"] == DOMAIN and h["version"] == "1.0" for h in client.headers())
    assert [features(f) for f in client.elements("features")] == [
        {"starttls": "required"},
        {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]},
        {"bind": [], "session": ["optional"], "sm": []},  # extra features come last
    ]
    assert client.events(ng.CredentialsNeeded) == [ng.CredentialsNeeded("juliet", "SCRAM-SHA-256")]
    assert client.scram is not None and client.scram.verify(client.last_data("success"))
    assert client.events(ng.Authenticated) == [ng.Authenticated("juliet")]
    prepared = None if resource is None else resource.replace("e\u0301", "\u00e9")
    assert client.events(ng.BindRequested) == [ng.BindRequested(prepared, "b1")]
    full = JID.make("juliet", DOMAIN, prepared or "generated")
    assert client.events(ng.Established) == [ng.Established(full)]
    bind_result, session_result = client.elements("iq")
    assert bind_result.get("id") == "b1"
    assert bind_result.findtext(f"{{{BIND_NS}}}bind/{{{BIND_NS}}}jid") == str(full)
    assert session_result.attrib == {"type": "result", "id": "s1"} and len(session_result) == 0
    assert [serialize(e.element) for e in client.events(ng.StanzaIn)] == [MESSAGE, PRESENCE]


def test_plain_details(mode: str) -> None:
    client = Client(mode, secure=True, bind_errors=(CONFLICT,)).run(
        header(), plain(), header(), bind_iq("a"), bind_iq("b", "b2")
    )
    # PLAIN passwords are checked against the SCRAM-SHA-256 credentials
    assert client.events(ng.CredentialsNeeded) == [ng.CredentialsNeeded("juliet", "SCRAM-SHA-256")]
    success = client.elements("success")[0]
    assert success.text is None and len(success) == 0
    error_iq = client.elements("iq")[0]
    assert error_iq.get("id") == "b1"
    error = error_iq.find("{jabber:client}error")
    assert error is not None and error.get("type") == "cancel"
    assert error.findtext("{urn:ietf:params:xml:ns:xmpp-stanzas}text") == "resource in use"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"starttls": "required"}),
        ({"tls_required": False}, {"starttls": "optional", "mechanisms": ["SCRAM-SHA-256",
         "SCRAM-SHA-1"]}),
        (NO_TLS, {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"]}),
        (TLS, {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]}),
        ({**TLS, "allow_plain": False}, {"mechanisms": ["SCRAM-SHA-256", "SCRAM-SHA-1"]}),
    ],
)  # fmt: skip
def test_pre_auth_features(options: dict[str, Any], expected: dict[str, Any]) -> None:
    client = Client(**options).run(header())
    assert features(client.elements("features")[0]) == expected


@pytest.mark.parametrize("split", ["whole", "bytes"])
@pytest.mark.parametrize("decl", [True, False])
def test_pipelined_restart_after_sasl(split: str, decl: bool) -> None:
    """XEP-0305 style: everything up to the first stanzas in one write."""
    client = Client(split, secure=True)
    client.feed(header() + plain() + header(decl=decl) + bind_iq("r") + SESSION_IQ + MESSAGE)
    assert client.summary() == [*START, *PLAIN_OK, *BOUND, "iq:result", "StanzaIn"]
