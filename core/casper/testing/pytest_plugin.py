"""pytest fixtures for Casper plugin authors, registered through the ``pytest11`` entry point.

Installing ``casper-xmpp`` makes these fixtures available in every pytest run (datasette's
pattern); a test of a plugin is then a few lines::

    @pytest.fixture
    def casper_plugins():
        return ["hello"]            # entry-point names, enabled beside the baseline plugins


    async def test_hello(casper_client):
        romeo = await casper_client("romeo", presence=True)
        await romeo.send("<iq type='get' to='localhost' id='h1'><hello xmlns='urn:example:hello'/></iq>")
        reply = await romeo.expect(lambda e: e.get("id") == "h1")
        assert reply.get("type") == "result"

The tests must run under Trio: set ``trio_mode = true`` in ``[tool.pytest.ini_options]`` (or
mark them ``@pytest.mark.trio``); pytest-trio comes with the ``test`` extra.

Fixtures to override (in a ``conftest.py`` or a test module), all plain values:

- ``casper_plugins``: plugin names to enable, by entry point, beside the baseline set.
- ``casper_plugin_settings``: ``{"NAME": {...}}``, the ``[plugin.NAME]`` tables.
- ``casper_accounts``: account names (password ``secret``) or a name → password mapping;
  default ``romeo``, ``juliet``, ``nurse`` and ``tybalt``.
- ``casper_server_options``: any other keyword of :func:`casper.testing.open_test_server`
  (``default_plugins=False``, ``extra_plugins=[(obj, name)]``, config fields such as
  ``invisibility=False``).

Fixtures to use:

- ``casper_server``: a running :class:`casper.testing.TestServer` over memory streams; its
  ``.server`` is the :class:`casper.server.Server` plugins see.
- ``casper_tcp_server``: the same over real loopback TCP sockets (127.0.0.1, a free port).
- ``casper_client`` / ``casper_tcp_client``: async factories of logged-in
  :class:`casper.testing.TestClient` objects for those servers:
  ``romeo = await casper_client("romeo", resource="balcony", presence=True)``. Every client
  is closed at teardown, before the server stops.

Nothing but pytest is imported until a fixture is used, so the entry point costs nothing in
projects that never ask for these fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import trio

    from casper.testing.client import TestClient
    from casper.testing.harness import TestServer

DEFAULT_ACCOUNTS = ("romeo", "juliet", "nurse", "tybalt")
DEFAULT_PASSWORD = "secret"
CONNECT_TIMEOUT = 10.0


# ---------------------------------------------------------------- settings to override


@pytest.fixture
def casper_plugins() -> Sequence[str]:
    """Plugin names (entry points in the ``casper`` group) enabled beside the baseline."""
    return ()


@pytest.fixture
def casper_plugin_settings() -> Mapping[str, Mapping[str, Any]]:
    """The ``[plugin.NAME]`` tables, as ``{"NAME": {"key": value}}``."""
    return {}


@pytest.fixture
def casper_accounts() -> Sequence[str] | Mapping[str, str]:
    """Accounts created on the test server (names with password ``secret``, or a mapping)."""
    return DEFAULT_ACCOUNTS


@pytest.fixture
def casper_server_options() -> Mapping[str, Any]:
    """Other keyword arguments for :func:`casper.testing.open_test_server`."""
    return {}


# ---------------------------------------------------------------- servers


def _open_server(
    plugins: Sequence[str],
    settings: Mapping[str, Mapping[str, Any]],
    accounts: Sequence[str] | Mapping[str, str],
    options: Mapping[str, Any],
    **fixed: Any,
) -> AbstractAsyncContextManager[TestServer]:
    """``open_test_server`` with what the fixtures say, plus the fixture's own ``fixed`` options."""
    from casper.testing.harness import open_test_server

    kwargs: dict[str, Any] = {
        "plugins": tuple(plugins),
        "plugin_settings": settings,
        "accounts": accounts,
    }
    clash = sorted(set(kwargs) & set(options))
    if clash:
        raise ValueError(
            f"casper_server_options must not set {', '.join(clash)}: "
            "override the casper_plugins / casper_plugin_settings / casper_accounts fixtures"
        )
    kwargs.update(options)
    return open_test_server(**fixed, **kwargs)


@pytest.fixture
async def casper_server(
    casper_plugins: Sequence[str],
    casper_plugin_settings: Mapping[str, Mapping[str, Any]],
    casper_accounts: Sequence[str] | Mapping[str, str],
    casper_server_options: Mapping[str, Any],
) -> AsyncIterator[TestServer]:
    """A Casper server over memory streams, with in-memory storage, stopped at teardown."""
    async with _open_server(
        casper_plugins, casper_plugin_settings, casper_accounts, casper_server_options
    ) as server:
        yield server


@pytest.fixture
async def casper_tcp_server(
    casper_plugins: Sequence[str],
    casper_plugin_settings: Mapping[str, Mapping[str, Any]],
    casper_accounts: Sequence[str] | Mapping[str, str],
    casper_server_options: Mapping[str, Any],
) -> AsyncIterator[TestServer]:
    """Like ``casper_server``, listening on a real TCP socket on 127.0.0.1 (``.tcp_port``)."""
    async with _open_server(
        casper_plugins, casper_plugin_settings, casper_accounts, casper_server_options, tcp=True
    ) as server:
        yield server


# ---------------------------------------------------------------- clients


class ClientFactory:
    """Logs clients in to one test server; what ``casper_client`` gives a test.

    Each client's context (:meth:`casper.testing.TestServer.client`) is entered and left by
    a task in the fixture's nursery, whichever task asked for the client, so teardown closes
    every client in the task that opened it, even if the test failed half-way.
    """

    def __init__(self, server: TestServer, nursery: trio.Nursery) -> None:
        self.server = server
        self._nursery = nursery
        self.clients: list[TestClient] = []

    async def __call__(
        self,
        user: str,
        *,
        resource: str | None = None,
        presence: bool = False,
        password: str | None = None,
        timeout: float = CONNECT_TIMEOUT,
    ) -> TestClient:
        """Log ``user`` in (STARTTLS, SCRAM-SHA-256, bind) and return the client.

        :param resource: the resource to bind; the server picks one if ``None``.
        :param presence: also send initial presence and wait for its reflection.
        :param password: defaults to the account's password (``secret``).
        :param timeout: seconds for the whole login before ``trio.TooSlowError``.
        """
        import trio

        async def hold(*, task_status: trio.TaskStatus[TestClient]) -> None:
            login = self.server.client(
                user, resource=resource, presence=presence, password=password
            )
            async with login as client:
                task_status.started(client)
                await trio.sleep_forever()

        with trio.fail_after(timeout):
            client: TestClient = await self._nursery.start(hold)
        self.clients.append(client)
        return client


@asynccontextmanager
async def _open_client_factory(server: TestServer) -> AsyncIterator[ClientFactory]:
    import trio

    async with trio.open_nursery() as nursery:
        yield ClientFactory(server, nursery)
        nursery.cancel_scope.cancel()  # each holder leaves its `async with`: the client closes


@pytest.fixture
async def casper_client(casper_server: TestServer) -> AsyncIterator[ClientFactory]:
    """``await casper_client("romeo", presence=True)``: a logged-in client of ``casper_server``."""
    async with _open_client_factory(casper_server) as factory:
        yield factory


@pytest.fixture
async def casper_tcp_client(casper_tcp_server: TestServer) -> AsyncIterator[ClientFactory]:
    """Like ``casper_client``, for ``casper_tcp_server`` (real sockets, real TLS)."""
    async with _open_client_factory(casper_tcp_server) as factory:
        yield factory
