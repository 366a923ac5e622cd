"""Test kit for Casper and its plugins: in-memory servers and scripted clients.

``open_test_server`` runs a real server over memory streams (with a throwaway CA from
``trustme``), ``open_test_cluster`` several as the workers of one cluster; ``TestServer.client`` logs a scripted :class:`TestClient` in through the
full negotiation (STARTTLS, SCRAM, bind). ``casper.testing.conformance`` is the
invisibility conformance suite a strategy plugin runs against itself. Requires the
``test`` extra.

Names are imported on first use, so loading the ``pytest11`` entry point
(``casper.testing.pytest_plugin``) costs nothing for projects that don't use the kit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time, __getattr__ imports each name on first use
    from casper.testing.client import TestClient, parse_xml
    from casper.testing.conformance import (
        BUILTIN_DRIVERS,
        SCENARIOS,
        ConformanceReport,
        DirectedPresenceDriver,
        InvisibilityDriver,
        InvisibleCommandDriver,
        PrivacyListsDriver,
        ScenarioOutcome,
        Xep0018Driver,
        run_conformance,
    )
    from casper.testing.harness import TestServer, open_test_cluster, open_test_server
    from casper.testing.memory import MemoryListener

# name -> the module it lives in; keep in step with __all__ and the imports above
_EXPORTS = {
    "TestClient": "casper.testing.client",
    "parse_xml": "casper.testing.client",
    "BUILTIN_DRIVERS": "casper.testing.conformance",
    "SCENARIOS": "casper.testing.conformance",
    "ConformanceReport": "casper.testing.conformance",
    "DirectedPresenceDriver": "casper.testing.conformance",
    "InvisibilityDriver": "casper.testing.conformance",
    "InvisibleCommandDriver": "casper.testing.conformance",
    "PrivacyListsDriver": "casper.testing.conformance",
    "ScenarioOutcome": "casper.testing.conformance",
    "Xep0018Driver": "casper.testing.conformance",
    "run_conformance": "casper.testing.conformance",
    "TestServer": "casper.testing.harness",
    "open_test_server": "casper.testing.harness",
    "open_test_cluster": "casper.testing.harness",
    "MemoryListener": "casper.testing.memory",
}
__all__ = [
    "BUILTIN_DRIVERS",
    "SCENARIOS",
    "ConformanceReport",
    "DirectedPresenceDriver",
    "InvisibilityDriver",
    "InvisibleCommandDriver",
    "MemoryListener",
    "PrivacyListsDriver",
    "ScenarioOutcome",
    "TestClient",
    "TestServer",
    "Xep0018Driver",
    "open_test_cluster",
    "open_test_server",
    "parse_xml",
    "run_conformance",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'casper.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
