"""The hook contract: every hook is documented, tested, synchronous, and has a full docstring.

Datasette's pattern: a hook nobody documented or tested fails the suite. The behavioural
tests, one ``test_hook_<name>`` per hook, live beside the behaviour they pin, in the
``tests/test_hooks_*.py`` modules (one per lifecycle stage), except ``casper_hidden_from``,
whose test lives with the other visibility tests in ``tests/core/test_visibility.py``;
``test_every_hook_has_a_test`` finds them wherever they are, by scanning every test module
under ``tests/``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from casper import hookspecs
from casper.plugins import ENTRY_POINT_GROUP
from casper.testing import open_test_server

TESTS = Path(__file__).parent
HOOKS_DOC = TESTS.parent / "docs" / "hooks.md"

HOOKSPECS: dict[str, Callable[..., Any]] = {
    name: fn
    for name, fn in vars(hookspecs).items()
    if name.startswith("casper_") and hasattr(fn, "casper_spec")
}
HOOK_HEADING = re.compile(r"^## (\w+)\((.*)\)\s*$", re.MULTILINE)


def short(hook: str) -> str:
    return hook.removeprefix("casper_")


def test_hookspecs_are_found() -> None:
    """Guards the tests below against passing vacuously."""
    assert len(HOOKSPECS) >= 15
    assert "casper_filter_incoming" in HOOKSPECS


def _documented_hooks() -> dict[str, str]:
    text = HOOKS_DOC.read_text(encoding="utf-8")
    assert all(
        line.startswith("## casper_") for line in text.splitlines() if line.startswith("## ")
    )
    return {match[1]: match[2] for match in HOOK_HEADING.finditer(text)}


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_every_hook_is_documented_with_its_arguments(hook: str) -> None:
    documented = _documented_hooks()
    assert hook in documented, f"docs/hooks.md has no '## {hook}(' heading"
    arguments = [a.strip() for a in documented[hook].split(",") if a.strip()]
    assert arguments == list(inspect.signature(HOOKSPECS[hook]).parameters)


def test_every_documented_hook_exists() -> None:
    unknown = sorted(set(_documented_hooks()) - set(HOOKSPECS))
    assert unknown == []


def _test_sources() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in TESTS.rglob("test_*.py"))


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_every_hook_has_a_test(hook: str) -> None:
    pattern = re.compile(
        rf"^\s*async def test_hook_{short(hook)}\(|^\s*def test_hook_{short(hook)}\(", re.MULTILINE
    )
    assert pattern.search(_test_sources()), f"no test named test_hook_{short(hook)} under tests/"


@pytest.mark.parametrize("hook", sorted(HOOKSPECS))
def test_every_hookspec_docstring_states_return_and_since(hook: str) -> None:
    doc = inspect.getdoc(HOOKSPECS[hook]) or ""
    assert ":return:" in doc
    assert "Since" in doc


def _hookimpls_in(module: ModuleType) -> list[tuple[str, Callable[..., Any]]]:
    """Module-level hookimpls and those on classes the module defines (state objects)."""
    found: list[tuple[str, Callable[..., Any]]] = []
    candidates: list[tuple[str, Any]] = list(vars(module).items())
    for cls in vars(module).values():
        if inspect.isclass(cls) and cls.__module__ == module.__name__:
            candidates += [(f"{cls.__name__}.{n}", v) for n, v in vars(cls).items()]
    for name, value in candidates:
        if callable(value) and getattr(value, "casper_impl", None) is not None:
            found.append((name, value))
    return found


def test_no_builtin_plugin_implements_a_hook_with_async_def() -> None:
    plugins = list(entry_points(group=ENTRY_POINT_GROUP))
    assert plugins
    impls = []
    for ep in plugins:
        module = ep.load()
        assert isinstance(module, ModuleType)
        impls += [(ep.name, name, fn) for name, fn in _hookimpls_in(module)]
    assert impls
    assert [(p, n) for p, n, fn in impls if inspect.iscoroutinefunction(fn)] == []


async def test_all_builtin_plugins_together_register_only_known_sync_hooks() -> None:
    """Start a server with every installed plugin and walk what actually got registered,
    including state objects plugins register from ``casper_configure``."""
    names = tuple(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    async with open_test_server(default_plugins=False, plugins=names) as srv:
        pm = srv.server.pm
        pm.check_pending()
        hooks = [getattr(pm.hook, name) for name in dir(pm.hook) if name.startswith("casper_")]
        impls = [impl for hook in hooks for impl in hook.get_hookimpls()]
    state_objects = {impl.plugin_name for impl in impls} - set(names) - {"casper.guard"}
    assert state_objects  # the walk reaches objects registered from casper_configure
    assert [impl.plugin_name for impl in impls if inspect.iscoroutinefunction(impl.function)] == []
