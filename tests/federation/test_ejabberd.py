"""Casper <-> ejabberd (Debian's package), on loopback: the shared federation scenarios
(``tests/s2s/scenarios.py``) and each invisibility strategy. The room scenario runs
against Prosody's MUC (``test_prosody.py``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import trustme
from casper.testing import BUILTIN_DRIVERS, InvisibilityDriver, TestServer

from tests.federation.conftest import (
    RemoteServer,
    RemoteSide,
    both_ways,
    chat_both_ways,
    dialback_both_ways,
    open_casper,
    unique,
)
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
    await chat_both_ways(casper, ejabberd, unique("bob"))


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


async def test_sasl_external_both_ways_with_certificates_from_a_shared_ca(
    ejabberd: RemoteServer, casper: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """ejabberd trusts the tests' CA (``ca_file``) and Casper does too (``[s2s] ca_file``);
    both certificates come from it: each side authenticates with SASL EXTERNAL."""
    caplog.set_level(logging.INFO, "casper.s2s")
    mechanisms = await chat_both_ways(casper, ejabberd, unique("bob"))
    assert mechanisms == both_ways(ejabberd, "EXTERNAL"), ejabberd.log_tail()
    assert f"s2s in: {ejabberd.domain} -> casper.test authenticated (EXTERNAL; certificate verified)" \
        in caplog.text  # fmt: skip


async def test_dialback_both_ways_when_certificates_do_not_verify(
    ejabberd: RemoteServer, ca: trustme.CA, casper_s2s_port: int
) -> None:
    await dialback_both_ways(ejabberd, ca, casper_s2s_port)
