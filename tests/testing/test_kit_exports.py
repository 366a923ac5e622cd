"""``casper.testing`` imports its names on first use: ``__all__``, the name-to-module map
and the imports type checkers see must list the same names, from the same modules."""

from __future__ import annotations

import ast
import importlib
import inspect

import casper.testing as kit


def _type_checking_imports() -> dict[str, str]:
    tree = ast.parse(inspect.getsource(kit))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
        if node.test.id == "TYPE_CHECKING"
    )
    return {
        alias.name: node.module or ""
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_all_and_type_checking_imports_match_the_lazy_exports() -> None:
    assert sorted(kit.__all__) == sorted(kit._EXPORTS)
    assert _type_checking_imports() == kit._EXPORTS


def test_every_export_resolves_from_its_module() -> None:
    for name, module in kit._EXPORTS.items():
        assert getattr(kit, name) is getattr(importlib.import_module(module), name), name
