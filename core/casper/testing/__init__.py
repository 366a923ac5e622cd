"""Test kit for Casper and its plugins: in-memory servers and scripted clients.

``open_test_server`` runs a real server over memory streams (with a throwaway CA from
``trustme``); ``TestServer.client`` logs a scripted :class:`TestClient` in through the
full negotiation (STARTTLS, SCRAM, bind). Requires the ``test`` extra.
"""

from casper.testing.client import TestClient as TestClient
from casper.testing.client import parse_xml as parse_xml
from casper.testing.harness import TestServer as TestServer
from casper.testing.harness import open_test_server as open_test_server
from casper.testing.memory import MemoryListener as MemoryListener
