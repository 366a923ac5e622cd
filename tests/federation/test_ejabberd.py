"""Casper <-> ejabberd (Debian's package), on loopback: the shared federation scenarios
(``tests/s2s/scenarios.py``) and each invisibility strategy. The room scenario runs
against Prosody's MUC (``test_prosody.py``)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from casper.testing import BUILTIN_DRIVERS, InvisibilityDriver, TestServer

from tests.core.conftest import message_with_id, send_message
from tests.federation.conftest import RemoteServer, RemoteSide, open_casper, remote_client, unique
from tests.s2s import scenarios

pytestmark = pytest.mark.federation
TIMEOUT = scenarios.TIMEOUT
DRIVERS = [pytest.param(cls(), id=cls.__name__) for cls in BUILTIN_DRIVERS]


@pytest.fixture
async def casper(
    ejabberd: RemoteServer, ca: trustme.CA, casper_s2s_port: int
) -> AsyncIterator[TestServer]:
    async with open_casper(ca, casper_s2s_port, [ejabberd], accounts=("romeo",)) as server:
        yield server


async def test_message_both_ways(ejabberd: RemoteServer, casper: TestServer) -> None:
    bob = unique("bob")
    ejabberd.add_user(bob)
    async with (
        casper.client("romeo", presence=True) as romeo,
        remote_client(ejabberd, bob) as remote,
    ):
        msg = await send_message(romeo, f"{bob}@ejabberd.test/r")
        got = await remote.expect(message_with_id(msg), timeout=TIMEOUT)
        assert got.get("from") == str(romeo.jid)
        reply = await send_message(remote, romeo.jid)
        got = await romeo.expect(message_with_id(reply), timeout=TIMEOUT)
        assert got.get("from") == f"{bob}@ejabberd.test/r"


async def test_subscription_and_presence(ejabberd: RemoteServer, casper: TestServer) -> None:
    await scenarios.subscription_and_presence(casper, RemoteSide(ejabberd), unique("bob"))


async def test_probe_on_login(ejabberd: RemoteServer, casper: TestServer) -> None:
    await scenarios.probe_on_login(casper, RemoteSide(ejabberd), unique("bob"))


@pytest.mark.parametrize("driver", DRIVERS)
async def test_invisible_to_remote_contact(ejabberd: RemoteServer, ca: trustme.CA,
                                           casper_s2s_port: int, driver: InvisibilityDriver) -> None:  # fmt: skip
    async with open_casper(ca, casper_s2s_port, [ejabberd], accounts=("romeo",),
                           plugins=driver.plugins) as casper:  # fmt: skip
        await scenarios.invisible_to_remote_contact(
            casper, RemoteSide(ejabberd), unique("bob"), driver
        )


async def test_sasl_external_when_our_certificate_verifies(
    ejabberd: RemoteServer, ca: trustme.CA, casper_s2s_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """ejabberd trusts the tests' CA: with a certificate for casper.test from it, Casper
    authenticates its outgoing stream with SASL EXTERNAL instead of dialback."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    ca.issue_cert("casper.test").configure_cert(context)
    bob = unique("bob")
    ejabberd.add_user(bob)
    caplog.set_level(logging.INFO, "casper.s2s")
    async with open_casper(ca, casper_s2s_port, [ejabberd], accounts=("romeo",)) as casper:
        casper.server.s2s.client_context = context
        casper.server.s2s.try_external = True
        async with casper.client("romeo") as romeo, remote_client(ejabberd, bob) as remote:
            msg = await send_message(romeo, f"{bob}@ejabberd.test/r")
            await remote.expect(message_with_id(msg), timeout=TIMEOUT)
    assert "casper.test -> ejabberd.test authenticated (EXTERNAL)" in caplog.text
