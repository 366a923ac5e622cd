"""pytest fixtures for Casper plugin authors (registered through the ``pytest11`` entry point).

``casper_server`` starts an in-memory server with the plugins named by the
``casper_plugins`` fixture (override it in your conftest), accounts ``romeo`` and
``juliet`` (password ``secret``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest


@pytest.fixture
def casper_plugins() -> tuple[str, ...]:
    """Plugin names to enable in ``casper_server``; override to test your plugin."""
    return ()


@pytest.fixture
async def casper_server(casper_plugins: tuple[str, ...]) -> AsyncIterator[object]:
    from casper.testing.harness import open_test_server

    async with open_test_server(plugins=casper_plugins) as server:
        yield server
