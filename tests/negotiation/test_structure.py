"""C2S negotiation: the module's structure.

The constructor's defaults (fresh, unpredictable stream ids) and checks; the transition
table is well formed (every handler exists, the server can always close and the client
always go away, every client element has an answer); the module is sans-IO.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
from casper import negotiation as ng

from tests.negotiation.conftest import DOMAIN, header


def test_constructor_defaults_and_checks() -> None:
    with pytest.raises(ValueError):
        ng.C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=True)
    ids = set()
    for _ in range(3):  # default stream ids are fresh and unpredictable
        neg = ng.C2SNegotiation(domain=DOMAIN, tls_available=False, tls_required=False)
        neg.receive_data(header())
        event = neg.next_event()
        assert isinstance(event, ng.SendData)
        ids.update(re.findall(rb" id='([^']+)'", event.data))
    assert len(ids) == 3 and all(len(i) >= 16 for i in ids)


def test_transition_table_is_well_formed() -> None:
    for (state, _input), handler in ng.TRANSITIONS.items():
        assert callable(getattr(ng.C2SNegotiation, handler)), handler
        assert state is not ng.State.CLOSED or handler == "_ignore"
    for state in ng.State:  # the server can always close, the client can always go away
        assert (state, ng.Input.CLOSE) in ng.TRANSITIONS and (state, ng.Input.EOF) in ng.TRANSITIONS
    elements = [i for i in ng.Input if i.name not in ("STREAM_HEADER", "EOF")]
    elements = elements[: elements.index(ng.Input.STREAM_END) + 1]  # all the client can send
    reading = [ng.State.FEATURES, ng.State.SASL_INITIAL, ng.State.SASL_CHALLENGE, ng.State.BIND]
    for state in [*reading, ng.State.ESTABLISHED]:  # every client element has an answer
        assert all((state, element) in ng.TRANSITIONS for element in elements)


def test_module_is_sans_io() -> None:
    spec = importlib.util.find_spec("casper.negotiation")
    assert spec is not None and spec.origin is not None
    imported: set[str] = set()
    for node in ast.walk(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"trio", "asyncio", "socket", "ssl"}
