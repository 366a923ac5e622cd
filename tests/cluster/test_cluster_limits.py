"""Authentication limits hold across workers: every worker counts every failure."""

from __future__ import annotations

from pathlib import Path

from casper.testing import TestServer, open_test_cluster

from tests.cluster.test_cluster_routing import ALICE, BOB


async def attempt(srv: TestServer, user: str, password: str) -> str:
    client = await srv.connect()
    try:
        await client.open_stream()
        await client.starttls(srv.client_context)
        try:
            await client.authenticate(user, password)
        except AssertionError as refused:
            return str(refused)
        return "success"
    finally:
        await client.stream.aclose()


async def test_an_account_locked_on_one_worker_is_locked_on_every_worker(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB],
                                 auth_failures_per_account=2) as (w0, w1):  # fmt: skip
        for _ in range(2):
            assert "not-authorized" in await attempt(w0, BOB, "wrong")
        assert "temporary-auth-failure" in await attempt(w0, BOB, "secret")
        assert "temporary-auth-failure" in await attempt(w1, BOB, "secret")


async def test_a_success_on_one_worker_clears_the_account_everywhere(tmp_path: Path):
    async with open_test_cluster(tmp_path, accounts=[ALICE, BOB],
                                 auth_failures_per_account=2) as (w0, w1):  # fmt: skip
        assert "not-authorized" in await attempt(w1, BOB, "wrong")
        assert await attempt(w0, BOB, "secret") == "success"
        assert "not-authorized" in await attempt(w0, BOB, "wrong")
        assert await attempt(w1, BOB, "secret") == "success"  # one failure since: not locked
