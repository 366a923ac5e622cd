"""Test kit for Casper and its plugins: in-memory servers and scripted clients.

``open_test_server`` runs a real server over memory streams (with a throwaway CA from
``trustme``); ``TestServer.client`` logs a scripted :class:`TestClient` in through the
full negotiation (STARTTLS, SCRAM, bind). Requires the ``test`` extra.
"""

from casper.testing.client import TestClient as TestClient
from casper.testing.client import parse_xml as parse_xml
from casper.testing.conformance import BUILTIN_DRIVERS as BUILTIN_DRIVERS
from casper.testing.conformance import SCENARIOS as SCENARIOS
from casper.testing.conformance import ConformanceReport as ConformanceReport
from casper.testing.conformance import DirectedPresenceDriver as DirectedPresenceDriver
from casper.testing.conformance import InvisibilityDriver as InvisibilityDriver
from casper.testing.conformance import InvisibleCommandDriver as InvisibleCommandDriver
from casper.testing.conformance import PrivacyListsDriver as PrivacyListsDriver
from casper.testing.conformance import ScenarioOutcome as ScenarioOutcome
from casper.testing.conformance import Xep0018Driver as Xep0018Driver
from casper.testing.conformance import run_conformance as run_conformance
from casper.testing.harness import TestServer as TestServer
from casper.testing.harness import open_test_server as open_test_server
from casper.testing.memory import MemoryListener as MemoryListener
