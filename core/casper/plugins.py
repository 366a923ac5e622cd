"""The plugin host: a pluggy manager per server, loading plugins by entry-point name.

Built-in and third-party plugins are found the same way, through the ``casper``
entry-point group. The essential ``casper.guard`` plugin wraps the privacy-relevant hooks
so a crashing plugin fails closed instead of leaking.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import entry_points
from types import TracebackType
from typing import Any

import pluggy
import trio

from . import hookspecs
from .config import Config, ConfigError
from .hookspecs import hookimpl
from .verdicts import Bounce, Drop

log = logging.getLogger("casper.plugins")
ENTRY_POINT_GROUP = "casper"


def installed_plugins() -> dict[str, str]:
    """Map every installed plugin name to its entry-point value (``module:attr``)."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def make_plugin_manager(
    config: Config, extra: Iterable[tuple[object, str]] = ()
) -> pluggy.PluginManager:
    """Build the manager for one server: hookspecs, the guard, then the enabled plugins.

    :param config: the server configuration; ``config.enabled_plugins`` are loaded.
    :param extra: ``(plugin, name)`` pairs registered directly (tests, embedding).
    :raises ConfigError: unknown plugin name, or an ``async def`` hook implementation.
    """
    pm = pluggy.PluginManager("casper")
    pm.add_hookspecs(hookspecs)
    pm.hook.casper_addhooks.call_historic(kwargs={"pm": pm})
    pm.register(FailClosedGuard(pm), "casper.guard")
    for name in config.disabled_plugins:
        pm.set_blocked(name)
    installed = installed_plugins()
    for name in config.enabled_plugins:
        if name not in installed:
            raise ConfigError(f"unknown plugin {name!r}; installed: {', '.join(sorted(installed))}")
        if pm.get_plugin(name) is None:
            try:
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
            except pluggy.PluginValidationError as exc:
                raise ConfigError(f"plugin {name!r}: {exc}") from None
    for plugin, name in extra:
        try:
            pm.register(plugin, name)
        except pluggy.PluginValidationError as exc:
            raise ConfigError(f"plugin {name!r}: {exc}") from None
    check_plugin_manager(pm)
    return pm


def check_plugin_manager(pm: pluggy.PluginManager) -> None:
    """Fail at startup on misspelled hook names and on ``async def`` implementations."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise ConfigError(f"plugin {name!r}: {exc}") from None
    for name in dir(pm.hook):
        caller = getattr(pm.hook, name)
        if not name.startswith("casper_") or not hasattr(caller, "get_hookimpls"):
            continue
        for impl in caller.get_hookimpls():
            if inspect.iscoroutinefunction(impl.function):
                raise ConfigError(
                    f"plugin {impl.plugin_name!r}: hook {name} must not be async; "
                    "return an async callable instead"
                )


def culprit_of_callable(pm: pluggy.PluginManager, fn: object) -> str:
    """Name the plugin whose module defined ``fn`` (a callable a hook returned)."""
    module = getattr(fn, "__module__", None) or getattr(
        getattr(fn, "__func__", None), "__module__", ""
    )
    for name, plugin in pm.list_name_plugin():
        plugin_module = getattr(plugin, "__name__", None) or type(plugin).__module__
        if module and plugin_module == module:
            return name
    return module or "unknown"


def culprit(pm: pluggy.PluginManager, hook_name: str, exc: BaseException) -> str:
    """Name the plugin whose implementation of ``hook_name`` raised ``exc``."""
    codes = {id(frame.f_code) for frame, _ in _walk(exc.__traceback__)}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if id(getattr(impl.function, "__code__", None)) in codes:
            return impl.plugin_name
    return "unknown"


def _walk(tb: TracebackType | None) -> Iterable[tuple[Any, int]]:
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


class FailClosedGuard:
    """Wrappers that turn a crashing privacy hook into the safe answer."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    def _fail(self, hook: str, exc: Exception, stanza_id: str | None) -> None:
        log.error(
            "plugin %r crashed in %s (stanza id %s); failing closed",
            culprit(self._pm, hook, exc), hook, stanza_id, exc_info=exc,
        )  # fmt: skip

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_filter_outgoing(self, stanza):  # type: ignore[no-untyped-def]
        try:
            return (yield)
        except Exception as exc:  # noqa: BLE001 - logged by _fail; the safe answer follows
            self._fail("casper_filter_outgoing", exc, stanza.id)
            return Bounce("internal-server-error", text="a server plugin failed")

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_filter_incoming(self, stanza):  # type: ignore[no-untyped-def]
        try:
            return (yield)
        except Exception as exc:  # noqa: BLE001 - logged by _fail; the safe answer follows
            self._fail("casper_filter_incoming", exc, stanza.id)
            return Drop("filter-error")

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_presence_blocked(self, session):  # type: ignore[no-untyped-def]
        try:
            return (yield)
        except Exception as exc:  # noqa: BLE001 - logged by _fail; the safe answer follows
            self._fail("casper_presence_blocked", exc, None)
            return [True]

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_hidden_from(self, session):  # type: ignore[no-untyped-def]
        try:
            return (yield)
        except Exception as exc:  # noqa: BLE001 - logged by _fail; the safe answer follows
            self._fail("casper_hidden_from", exc, None)
            return [True]


def call_guarded(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> Any:
    """Call a privacy hook (wrapped by the guard); with only wrappers registered, answer
    what pluggy would (``None`` for firstresult hooks, ``[]`` otherwise) without its call
    machinery: these hooks run for every stanza and every presence recipient."""
    caller = getattr(pm.hook, hook_name)
    if all(impl.wrapper or impl.hookwrapper for impl in caller.get_hookimpls()):
        return None if caller.spec is not None and caller.spec.opts.get("firstresult") else []
    return caller(**kwargs)


def call_safely(pm: pluggy.PluginManager, hook_name: str, default: Any, **kwargs: Any) -> Any:
    """Call a non-privacy hook; on a crash, log the culprit and return ``default``."""
    caller = getattr(pm.hook, hook_name)
    if not caller.get_hookimpls():  # what pluggy would answer, without its call machinery
        return None if caller.spec is not None and caller.spec.opts.get("firstresult") else []
    try:
        return caller(**kwargs)
    except Exception as exc:
        log.error("plugin %r crashed in %s", culprit(pm, hook_name, exc), hook_name, exc_info=exc)
        return default


class GuardedNursery:
    """What ``casper_serve`` hands plugins: ``start_soon`` into the server's nursery, but a
    task that raises is logged with its plugin's name instead of taking the server down."""

    def __init__(self, nursery: Any, pm: pluggy.PluginManager) -> None:
        self._nursery = nursery
        self._pm = pm

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: object = None
    ) -> None:
        self._nursery.start_soon(
            self._run, async_fn, args, name=name or getattr(async_fn, "__qualname__", None)
        )

    async def start(
        self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: object = None
    ) -> Any:
        """Like ``trio.Nursery.start``: returns what the task passes to ``task_status.started``."""
        return await self._nursery.start(self._run_started, async_fn, args, name=name)

    async def _run_started(self, async_fn: Callable[..., Awaitable[object]], args: tuple[Any, ...],
                           task_status: Any = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
        try:
            await async_fn(*args, task_status=task_status)
        except Exception as exc:
            log.error("background task %s of plugin %r crashed", getattr(async_fn, "__qualname__", async_fn),
                      culprit_of_callable(self._pm, async_fn), exc_info=exc)  # fmt: skip

    async def _run(self, async_fn: Callable[..., Awaitable[object]], args: tuple[Any, ...]) -> None:
        try:
            await async_fn(*args)
        except Exception as exc:
            log.error("background task %s of plugin %r crashed", getattr(async_fn, "__qualname__", async_fn),
                      culprit_of_callable(self._pm, async_fn), exc_info=exc)  # fmt: skip

    @property
    def cancel_scope(self) -> Any:
        return self._nursery.cancel_scope


async def run_returned_callables(
    pm: pluggy.PluginManager,
    hook_name: str,
    results: Iterable[Callable[[], Awaitable[None]] | None],
) -> None:
    """Await the async callables a hook returned, in order; a failing one is logged."""
    for fn in results:
        if fn is None:
            continue
        try:
            await fn()
        except Exception as exc:
            log.error("plugin callable from %s failed", hook_name, exc_info=exc)
