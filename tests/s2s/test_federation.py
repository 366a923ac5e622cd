"""Casper <-> Casper federation (two servers in one process, s2s over loopback TCP):
the shared scenarios (``tests/s2s/scenarios.py``), then what only this setup can show."""

from __future__ import annotations

import logging

import pytest
from casper.testing import BUILTIN_DRIVERS, InvisibilityDriver

from tests.core.conftest import message_with_id, send_message
from tests.s2s import scenarios
from tests.s2s.conftest import Federation, open_federation


async def test_message_both_ways(fed: Federation) -> None:
    async with fed.a.client("romeo", presence=True) as romeo, \
            fed.b.client("juliet", presence=True) as juliet:  # fmt: skip
        msg = await send_message(romeo, juliet.jid)
        got = await juliet.expect(message_with_id(msg), timeout=10)
        assert got.get("from") == str(romeo.jid)
        assert got.findtext("{jabber:client}body") == "hello"
        reply = await send_message(juliet, romeo.jid)
        got = await romeo.expect(message_with_id(reply), timeout=10)
        assert got.get("from") == str(juliet.jid)
    stats = fed.a.server.s2s.statistics()
    assert stats["outgoing"] == ["a.test->b.test"]
    assert stats["incoming"] == ["b.test->a.test"]


async def test_subscription_and_presence(fed: Federation) -> None:
    await scenarios.subscription_and_presence(fed.a, scenarios.CasperSide(fed.b), "juliet")


async def test_probe_on_login(fed: Federation) -> None:
    await scenarios.probe_on_login(fed.a, scenarios.CasperSide(fed.b), "juliet")


DRIVERS = [pytest.param(cls(), id=cls.__name__) for cls in BUILTIN_DRIVERS]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_invisible_to_remote_contact(driver: InvisibilityDriver) -> None:
    async with open_federation(a={"plugins": driver.plugins}) as fed:
        await scenarios.invisible_to_remote_contact(
            fed.a, scenarios.CasperSide(fed.b), "juliet", driver
        )


async def _exchange(fed: Federation) -> None:
    async with fed.a.client("romeo", presence=True) as romeo, \
            fed.b.client("juliet", presence=True) as juliet:  # fmt: skip
        msg = await send_message(romeo, juliet.jid)
        await juliet.expect(message_with_id(msg), timeout=10)
        reply = await send_message(juliet, romeo.jid)
        await romeo.expect(message_with_id(reply), timeout=10)


def _mechanisms(fed: Federation) -> dict[str, object]:
    return {
        "a": fed.a.server.s2s.statistics()["mechanisms"],
        "b": fed.b.server.s2s.statistics()["mechanisms"],
    }


async def test_certificates_from_a_trusted_ca_authenticate_with_external_both_ways(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "casper.s2s")
    async with open_federation() as fed:
        await _exchange(fed)
        assert _mechanisms(fed) == {
            "a": {"in b.test->a.test": "EXTERNAL", "out a.test->b.test": "EXTERNAL"},
            "b": {"in a.test->b.test": "EXTERNAL", "out b.test->a.test": "EXTERNAL"},
        }
    assert "s2s out: a.test -> b.test authenticated (EXTERNAL; certificate verified)" in caplog.text
    assert "s2s in: a.test -> b.test authenticated (EXTERNAL; certificate verified)" in caplog.text


async def test_a_self_signed_certificate_means_dialback_both_ways(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """a.test's certificate is self-signed: b.test neither offers it EXTERNAL nor uses
    EXTERNAL towards it (b.test cannot authenticate a.test's certificate); a.test does
    not try, its certificate would not verify. Dialback both ways, and the TLS handshakes
    went through."""
    caplog.set_level(logging.INFO, "casper.s2s")
    async with open_federation(a={"self_signed": True}) as fed:
        await _exchange(fed)
        assert _mechanisms(fed) == {
            "a": {"in b.test->a.test": "dialback", "out a.test->b.test": "dialback"},
            "b": {"in a.test->b.test": "dialback", "out b.test->a.test": "dialback"},
        }
    assert "s2s out: b.test -> a.test authenticated (dialback; certificate not trusted " \
        "(self-signed certificate at depth 0))" in caplog.text  # fmt: skip


async def test_reloading_tls_renews_the_s2s_certificate_and_trust_anchors() -> None:
    async with open_federation() as fed:
        before = fed.a.server.s2s.tls
        assert fed.a.server.reload_tls()
        assert fed.a.server.s2s.tls is not before
        await _exchange(fed)  # new streams use the reloaded material
        assert fed.a.server.s2s.statistics()["mechanisms"]["out a.test->b.test"] == "EXTERNAL"
