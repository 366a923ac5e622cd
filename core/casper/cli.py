"""The ``casper`` command: run the server, manage accounts, list plugins.

::

    casper serve   [--config FILE] [--domain D] [--host H] [--port P] [--data-dir DIR]
                   [--plugins a,b,c] [--http-port P]
                   (SIGHUP reloads the TLS certificate; SIGINT or SIGTERM stops: open
                   streams end with a system-shutdown stream error)
    casper user    add|passwd JID [--password P] | delete JID | list   [--config] [--data-dir]
    casper plugins [--config FILE]
    casper compare [--strategies a,b,c+d] [--json F] [--markdown F] [--html F] [--target ...]

Error handling: a problem the user can fix (bad config, missing certificate, unknown account,
invalid JID, ...) prints one line ``casper: error: ...`` on stderr and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import getpass
import importlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casper.config import Config, ConfigError, load_config
from casper.jid import JID, InvalidJID
from casper.sasl.scram import ScramCredentials, derive_credentials
from casper.storage import AccountExists, AccountNotFound, StorageError, open_storage
from casper.tls import TLSConfigError, check_ca_file, ensure_certificate, server_ssl_context

if TYPE_CHECKING:
    from casper.server import Server

PLUGIN_GROUP = "casper"
log = logging.getLogger("casper.serve")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_USAGE = 2


class CommandError(Exception):
    """A user mistake detected by a command; the message is one line."""


_USER_ERRORS = (
    CommandError,
    ConfigError,
    TLSConfigError,
    AccountExists,
    AccountNotFound,
    InvalidJID,
    StorageError,
    OSError,
)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AccountExists):
        return f"account {exc} already exists"
    if isinstance(exc, AccountNotFound):
        return f"no such account: {exc}"
    if isinstance(exc, InvalidJID):
        return f"invalid JID: {exc}"
    return " ".join(str(exc).split()) or type(exc).__name__


# -- plugins ------------------------------------------------------------------------------------


def installed_plugins() -> dict[str, EntryPoint]:
    """Return the entry points of the ``casper`` group by name (first one wins)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=PLUGIN_GROUP):
        found.setdefault(ep.name, ep)
    return dict(sorted(found.items()))


def check_plugin_names(config: Config, installed: Sequence[str]) -> None:
    """Raise ConfigError for a configured plugin name that no entry point provides."""
    for name in (*config.enabled_plugins, *config.disabled_plugins):
        if name not in installed:
            choices = ", ".join(sorted(installed)) or "none"
            raise ConfigError(f"unknown plugin {name!r}; installed: {choices}")


def plugin_summary(ep: EntryPoint) -> str:
    """Return the first line of the plugin module's docstring, or why it cannot be read."""
    try:
        module = importlib.import_module(ep.module)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the listing
        return f"(fails to import: {type(exc).__name__}: {_describe(exc)})"
    doc = (module.__doc__ or "").strip()
    # a terminal shows reST inline literals (``x``) better as plain x
    return doc.splitlines()[0].replace("``", "") if doc else "(no description)"


def _cmd_plugins(args: argparse.Namespace) -> int:
    config = load_config(args.config, {})
    installed = installed_plugins()
    enabled = set(config.enabled_plugins)
    rows = [
        (name, "enabled" if name in enabled else "disabled", plugin_summary(ep))
        for name, ep in installed.items()
    ]
    rows += [(name, "enabled", "(not installed)") for name in enabled if name not in installed]
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, state, summary in rows:
        print(f"{name:<{width}}  {state:<8}  {summary}")
    return 0


# -- serve --------------------------------------------------------------------------------------


def _plugin_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _port_or_off(text: str) -> int | bool:
    """A port number, or ``False`` for ``off`` (what ``tls_port = false`` says in TOML)."""
    if text == "off":
        return False
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number or 'off': {text!r}") from None


def _with_certificate(config: Config) -> Config:
    """Check the configured certificate, or generate one, and return a config naming it."""
    check_ca_file(config.s2s_ca_file)
    if config.cert_file is not None and config.key_file is not None:
        server_ssl_context(config.cert_file, config.key_file)  # fails early with a clear message
        return config
    cert, key = ensure_certificate(config.data_dir, config.domain)
    return dataclasses.replace(config, cert_file=cert, key_file=key)


def _cmd_serve(args: argparse.Namespace) -> int:
    overrides = {
        "domain": args.domain,
        "host": args.host,
        "port": args.port,
        "tls_port": args.tls_port,
        "data_dir": args.data_dir,
        "plugins": args.plugins,
        "http_port": args.http_port,
        "workers": args.workers,
    }
    config = load_config(args.config, overrides)
    check_plugin_names(config, list(installed_plugins()))
    logging.basicConfig(level=config.log_level.upper(), format=LOG_FORMAT)
    config = _with_certificate(config)
    if config.workers > 1:
        from casper.cluster.supervisor import supervise  # lazy, like the server itself

        return supervise(config)
    return _run_server(config)


async def serve_reloading(config: Config, **serve_options: Any) -> None:
    """Run the server until SIGINT or SIGTERM; on SIGHUP, reload its TLS certificate.
    ``serve_options`` go to :func:`casper.server.serve` (a worker's listeners and place).

    The signals are received by Trio rather than raised as ``KeyboardInterrupt``: an
    exception raised at an arbitrary bytecode can leave a context manager half entered, so
    shutdown goes through cancellation instead and every connection closes in order. The
    receiver is in place before anything listens, so a signal sent as soon as the server
    says it listens is queued, never lost.
    """
    import trio

    from casper.server import serve  # imported late: the CLI must work without a full server

    wanted = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):
        wanted.append(signal.SIGHUP)
    with trio.open_signal_receiver(*wanted) as signals:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(serve, config, **serve_options))
            # what exists now (modules, plugins, configuration) lives as long as the
            # process: keep it out of the cyclic collector's full passes, which are pauses
            gc.freeze()
            await _handle_signals(server, signals)


async def _handle_signals(server: Server, signals: AsyncIterator[int]) -> None:
    async for signum in signals:
        if signum == getattr(signal, "SIGHUP", None):
            server.reload_tls()
        else:
            log.info("stopping on %s", signal.Signals(signum).name)
            server.shut_down()
            return


def _run_server(config: Config) -> int:
    import trio

    try:
        trio.run(serve_reloading, config)
    except KeyboardInterrupt:  # Ctrl-C before the signal receiver is in place
        return 0
    except BaseExceptionGroup as group:
        if group.split(KeyboardInterrupt)[1] is None:
            return 0
        raise
    return 0


# -- user ---------------------------------------------------------------------------------------


def account_jid(text: str, config: Config) -> str:
    """Return the normalised bare JID for ``text``, which must be ``user@<configured domain>``."""
    try:
        jid = JID.parse(text)
    except InvalidJID as exc:
        raise CommandError(f"invalid JID {text!r}: {exc}") from None
    if jid.local is None or jid.resource is not None:
        raise CommandError(f"{text!r} is not a bare JID of the form user@{config.domain}")
    if jid.domain != config.domain:
        raise CommandError(f"{text!r} is not on this server's domain {config.domain!r}")
    return str(jid.bare)


def read_new_password(given: str | None, prompt: Callable[[str], str] = getpass.getpass) -> str:
    """Return ``given``, or ask twice with ``prompt``; reject empty or mismatched entries."""
    if given is None:
        try:
            given = prompt("Password: ")
            repeated = prompt("Repeat password: ")
        except EOFError:
            raise CommandError("no password given") from None
        if repeated != given:
            raise CommandError("passwords do not match")
    if not given:
        raise CommandError("the password must not be empty")
    return given


def _derive(password: str, config: Config) -> dict[str, ScramCredentials]:
    try:
        return derive_credentials(password, iterations=config.scram_iterations)
    except ValueError as exc:  # SASLprep refused the password
        raise CommandError(f"unusable password: {exc}") from None


def _load_user_config(args: argparse.Namespace) -> Config:
    return load_config(args.config, {"data_dir": args.data_dir})


def _cmd_user_password(args: argparse.Namespace, *, new_account: bool) -> int:
    """``user add`` (``new_account``: the account must not exist yet) or ``user passwd``
    (it must exist); either way the password is asked for only after that check."""
    config = _load_user_config(args)
    jid = account_jid(args.jid, config)
    with open_storage(config.data_dir) as storage:
        if storage.account_exists(jid) == new_account:
            raise AccountExists(jid) if new_account else AccountNotFound(jid)
        credentials = _derive(read_new_password(args.password), config)
        if new_account:
            storage.create_account(jid, credentials)
        else:
            storage.set_credentials(jid, credentials)
    print(f"created {jid}" if new_account else f"changed the password of {jid}")
    return 0


def _cmd_user_delete(args: argparse.Namespace) -> int:
    config = _load_user_config(args)
    jid = account_jid(args.jid, config)
    with open_storage(config.data_dir) as storage:
        storage.delete_account(jid)
    print(f"deleted {jid}")
    return 0


def _cmd_user_list(args: argparse.Namespace) -> int:
    config = _load_user_config(args)
    with open_storage(config.data_dir) as storage:
        accounts = storage.list_accounts()
    for jid in accounts:
        print(jid)
    return 0


# -- argument parsing ---------------------------------------------------------------------------


def _config_options(*, data_dir: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", type=Path, metavar="FILE", help="TOML configuration file")
    if data_dir:
        parent.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory")
    return parent


def _add_user_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = _config_options(data_dir=True)
    user = commands.add_parser("user", help="manage accounts")
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, about in (
        ("add", partial(_cmd_user_password, new_account=True), "create an account"),
        ("passwd", partial(_cmd_user_password, new_account=False), "change an account's password"),
        ("delete", _cmd_user_delete, "delete an account and all its data"),
    ):
        sub = actions.add_parser(name, parents=[common], help=about)
        sub.add_argument("jid", metavar="JID", help="bare JID, user@domain")
        if name != "delete":
            sub.add_argument("--password", help="the new password (prompted for if omitted)")
        sub.set_defaults(func=func)
    actions.add_parser("list", parents=[common], help="list accounts").set_defaults(
        func=_cmd_user_list
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser for the whole ``casper`` command line."""
    parser = argparse.ArgumentParser(prog="casper", description="Casper XMPP server")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    serve = commands.add_parser("serve", parents=[_config_options(data_dir=True)], help="run")
    serve.add_argument("--domain", help="the XMPP domain served")
    serve.add_argument("--host", help="address to listen on")
    serve.add_argument("--port", type=int, help="c2s port (0 = any free port)")
    serve.add_argument("--tls-port", type=_port_or_off, metavar="P|off",
                       help="direct TLS port (XEP-0368; 0 = any free port, off = none)")  # fmt: skip
    serve.add_argument("--plugins", type=_plugin_list, metavar="A,B,C", help="enable more")
    serve.add_argument("--http-port", type=int, metavar="P",
                       help="serve WebSocket and BOSH on this port (0 = any free port)")  # fmt: skip
    serve.add_argument("--workers", type=int, metavar="N",
                       help="worker processes sharing the load (see [server] workers)")  # fmt: skip
    serve.set_defaults(func=_cmd_serve)
    _add_user_commands(commands)
    plugins = commands.add_parser(
        "plugins", parents=[_config_options(data_dir=False)], help="list installed plugins"
    )
    plugins.set_defaults(func=_cmd_plugins)
    # everything after "compare" goes to casper.compare.cli, which has its own --help
    compare = commands.add_parser("compare", add_help=False, prefix_chars="\0",
                                  help="invisibility strategies side by side (see casper compare --help)")  # fmt: skip
    compare.add_argument("compare_args", nargs=argparse.REMAINDER)
    compare.set_defaults(func=_cmd_compare)
    return parser


def _cmd_compare(args: argparse.Namespace) -> int:
    from casper.compare.cli import main as compare_main  # lazy: loads trio and the catalogue

    return compare_main(args.compare_args)


def main(argv: list[str] | None = None) -> int:
    """Run the ``casper`` command line and return its exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage or help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except _USER_ERRORS as exc:
        return _report([exc])
    except BaseExceptionGroup as group:  # e.g. a listener that cannot bind, inside the server
        leaves = list(_leaves(group))
        if not all(isinstance(leaf, _USER_ERRORS) for leaf in leaves):
            raise
        return _report(leaves)
    except KeyboardInterrupt:  # e.g. at a password prompt
        return 130


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _report(errors: Sequence[BaseException]) -> int:
    for message in dict.fromkeys(_describe(exc) for exc in errors):
        print(f"casper: error: {message}", file=sys.stderr)
    return EXIT_USAGE
