"""Regression tests for what fuzzing found, one named test each (inputs also in the corpus).

A test marked ``xfail(strict=True)`` pins a bug not fixed yet: it fails the run as soon as
the bug is fixed (XPASS), so the mark, and any tolerance for the bug in the fuzz properties,
is removed together with it.
"""

from __future__ import annotations

import pytest
from casper import negotiation as ng
from casper.errors import LocalProtocolError
from casper.sasl import derive_credentials

from tests.fuzz.fuzzing import CORPUS

DOMAIN = "example.com"


def test_credentials_for_another_mechanism_are_a_local_protocol_error() -> None:
    # found by test_fuzz_negotiation.py::test_random_caller_calls_raise_only_local_protocol_error:
    # ScramServer.credentials()'s ValueError escaped; the negotiation now checks first
    neg = ng.C2SNegotiation(
        domain=DOMAIN, tls_available=False, tls_required=False, scram_iterations=16
    )
    neg.receive_data((CORPUS / "negotiation" / "scram-sha-1-auth.xml").read_bytes())
    events = []
    while (event := neg.next_event()) is not ng.NEED_DATA:
        events.append(event)
    assert ng.CredentialsNeeded("juliet", "SCRAM-SHA-1") in events
    wrong = derive_credentials("secret", iterations=16)["SCRAM-SHA-256"]
    with pytest.raises(LocalProtocolError):
        neg.provide_credentials(wrong)
    neg.provide_credentials(derive_credentials("secret", iterations=16)["SCRAM-SHA-1"])
    assert isinstance(neg.next_event(), ng.SendData)  # the caller's mistake cost nothing
