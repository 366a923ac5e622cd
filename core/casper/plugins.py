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
GUARD = "casper.guard"  # the FailClosedGuard's name


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
    pm.register(FailClosedGuard(pm), GUARD)
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


def _fail_closed(hook: str) -> Any:
    """The safe answer of a privacy hook whose implementation crashed."""
    if hook == "casper_filter_outgoing":
        return Bounce("internal-server-error", text="a server plugin failed")
    if hook == "casper_filter_incoming":
        return Drop("filter-error")
    return [True]  # casper_presence_blocked, casper_hidden_from: hide


def _log_crash(pm: pluggy.PluginManager, hook: str, exc: Exception, kwargs: dict[str, Any]) -> None:
    stanza = kwargs.get("stanza")
    log.error(
        "plugin %r crashed in %s (stanza id %s); failing closed",
        culprit(pm, hook, exc), hook, getattr(stanza, "id", None), exc_info=exc,
    )  # fmt: skip


class FailClosedGuard:
    """Wrappers that turn a crashing privacy hook into the safe answer."""

    CLUSTER_READY = True  # stateless (casper.cluster)

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    def _guard(self, hook: str, kwargs: dict[str, Any]) -> Any:
        try:
            return (yield)
        except Exception as exc:  # noqa: BLE001 - logged; the safe answer follows
            _log_crash(self._pm, hook, exc, kwargs)
            return _fail_closed(hook)

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_filter_outgoing(self, stanza):  # type: ignore[no-untyped-def]
        return (yield from self._guard("casper_filter_outgoing", {"stanza": stanza}))

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_filter_incoming(self, stanza):  # type: ignore[no-untyped-def]
        return (yield from self._guard("casper_filter_incoming", {"stanza": stanza}))

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_presence_blocked(self, session):  # type: ignore[no-untyped-def]
        return (yield from self._guard("casper_presence_blocked", {}))

    @hookimpl(wrapper=True, tryfirst=True)
    def casper_hidden_from(self, session):  # type: ignore[no-untyped-def]
        return (yield from self._guard("casper_hidden_from", {}))


def call_guarded(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> Any:
    """Call a privacy hook as pluggy would under :class:`FailClosedGuard`, without pluggy's
    call machinery (these hooks run for every stanza and every presence recipient):
    implementations in pluggy's order, the first answer of a firstresult hook, and on a
    crash the guard's safe answer. With any wrapper besides the guard, pluggy runs them."""
    caller = getattr(pm.hook, hook_name)
    impls = caller.get_hookimpls()
    plain = [impl for impl in impls if not (impl.wrapper or impl.hookwrapper)]
    if len(impls) - len(plain) != 1 or impls[-1].plugin_name != GUARD:  # wrappers come last
        return caller(**kwargs)
    firstresult = caller.spec is not None and caller.spec.opts.get("firstresult")
    results = []
    try:
        for impl in reversed(plain):
            result = impl.function(*[kwargs[name] for name in impl.argnames])
            if result is not None:
                if firstresult:
                    return result
                results.append(result)
    except Exception as exc:  # noqa: BLE001 - logged; the safe answer follows
        _log_crash(pm, hook_name, exc, kwargs)
        return _fail_closed(hook_name)
    return None if firstresult else results


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
