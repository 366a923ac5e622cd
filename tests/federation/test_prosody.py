"""Casper <-> Prosody (Debian's package), on loopback: the shared federation scenarios
(``tests/s2s/scenarios.py``), each invisibility strategy, and a room on Prosody's MUC."""

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
    prosody: RemoteServer, ca: trustme.CA, casper_s2s_port: int
) -> AsyncIterator[TestServer]:
    async with open_casper(ca, casper_s2s_port, [prosody], accounts=("romeo",)) as server:
        yield server


async def test_message_both_ways(prosody: RemoteServer, casper: TestServer) -> None:
    await chat_both_ways(casper, prosody, unique("alice"))


async def test_sasl_external_both_ways_with_certificates_from_a_shared_ca(
    prosody: RemoteServer, casper: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Prosody trusts the tests' CA (``ssl.cafile``) and Casper does too (``[s2s] ca_file``);
    both certificates come from it: each side authenticates with SASL EXTERNAL (Prosody's
    mod_saslauth offers it when chain and identity are valid, and tries it when offered)."""
    caplog.set_level(logging.INFO, "casper.s2s")
    mechanisms = await chat_both_ways(casper, prosody, unique("alice"))
    assert mechanisms == both_ways(prosody, "EXTERNAL"), prosody.log_tail()
    assert f"s2s in: {prosody.domain} -> casper.test authenticated (EXTERNAL; certificate verified)" \
        in caplog.text  # fmt: skip


async def test_subscription_and_presence(prosody: RemoteServer, casper: TestServer) -> None:
    await scenarios.subscription_and_presence(casper, RemoteSide(prosody), unique("alice"))


async def test_probe_on_login(prosody: RemoteServer, casper: TestServer) -> None:
    await scenarios.probe_on_login(casper, RemoteSide(prosody), unique("alice"))


@pytest.mark.parametrize("driver", DRIVERS)
async def test_invisible_to_remote_contact(prosody: RemoteServer, ca: trustme.CA,
                                           casper_s2s_port: int, driver: InvisibilityDriver) -> None:  # fmt: skip
    async with open_casper(ca, casper_s2s_port, [prosody], accounts=("romeo",),
                           plugins=driver.plugins) as casper:  # fmt: skip
        await scenarios.invisible_to_remote_contact(
            casper, RemoteSide(prosody), unique("alice"), driver
        )


@pytest.mark.parametrize("driver", DRIVERS)
async def test_room_join_and_leave_while_invisible(prosody: RemoteServer, ca: trustme.CA,
                                                   casper_s2s_port: int,
                                                   driver: InvisibilityDriver) -> None:  # fmt: skip
    async with open_casper(ca, casper_s2s_port, [prosody], accounts=("romeo",),
                           plugins=driver.plugins) as casper:  # fmt: skip
        await scenarios.room_join_and_leave_while_invisible(casper, RemoteSide(prosody), driver)


async def test_dialback_both_ways_when_certificates_do_not_verify(
    prosody: RemoteServer, ca: trustme.CA, casper_s2s_port: int
) -> None:
    await dialback_both_ways(prosody, ca, casper_s2s_port)
