"""Server configuration: a frozen, validated :class:`Config` and its TOML loader.

A ``Config`` is valid by construction: ``__post_init__`` checks every value against the option
table below (Prosody's ``get_option_number(min, max)`` idea), whether it came from a file, the
command line or a test. The TOML layout (see ``examples/casper.toml``)::

    [server]  domain host port tls_port data_dir workers busy_wait
    [tls]     cert_file key_file require_starttls
    [auth]    scram_iterations allow_plain
    [limits]  max_stanza_size max_depth outbox_size negotiation_timeout idle_timeout
              max_connections_per_ip max_sessions_per_account stanza_rate stanza_burst
              auth_failures_per_ip auth_failures_per_account auth_failure_window
    [http]    port tls proxy_tls allowed_origins request_timeout ws_ping_interval
              bosh_max_wait bosh_max_hold bosh_inactivity bosh_polling bosh_max_body_size
    [plugins] default enable disable
    [log]     level
    [s2s]     enabled port require_encryption dialback_secret connect_timeout
              negotiation_timeout idle_timeout send_timeout queue_size ca_file
    [s2s.routes]  static routes: remote domain = "host:port" (instead of DNS)
    [stream_management]  enabled resume_timeout max_unacked ack_interval
    [plugin.NAME]  settings read by plugin NAME through ``Config.plugin_config(NAME)``

``tls_port``, ``busy_wait``, ``idle_timeout``, ``http.port``, ``http.ws_ping_interval``, ``s2s.dialback_secret`` and
``s2s.idle_timeout`` and ``stream_management.resume_timeout`` are switched off with ``false``
(TOML has no null), and so are the
``[limits]`` on connections per address, stanza rate and authentication failures. Relative
paths (``data_dir``, ``cert_file``, ``key_file``, ``s2s.ca_file``) are relative to the current
directory of the server process, not to the config file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from casper.jid import JID, InvalidJID

BASELINE_PLUGINS = ("disco", "version", "time", "ping", "last-activity", "offline")
LOG_LEVELS = ("debug", "info", "warning", "error")
_EMPTY: Mapping[str, object] = MappingProxyType({})


class ConfigError(Exception):
    """The configuration is unusable; the message is one line meant for users."""


@dataclass(frozen=True)
class _Option:
    """How one ``Config`` field appears in TOML and which values it accepts."""

    field: str
    section: str
    key: str
    kind: type
    low: float | None = None  # inclusive unless low_open
    high: float | None = None  # inclusive
    low_open: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False  # ``false`` in TOML means None

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _limit(name: str, kind: type, low: float, high: float, **extra: Any) -> _Option:
    """An option of ``[limits]`` with the same name in TOML and in ``Config``."""
    return _Option(name, "limits", name, kind, low, high, **extra)


_OPTIONS = (
    _Option("domain", "server", "domain", str),
    _Option("host", "server", "host", str),
    _Option("port", "server", "port", int, 0, 65535),
    _Option("tls_port", "server", "tls_port", int, 0, 65535, nullable=True),
    _Option("data_dir", "server", "data_dir", Path),
    _Option("workers", "server", "workers", int, 1, 64),
    _Option("busy_wait", "server", "busy_wait", float, 0, 0.1, True, nullable=True),
    _Option("cert_file", "tls", "cert_file", Path, nullable=True),
    _Option("key_file", "tls", "key_file", Path, nullable=True),
    _Option("require_starttls", "tls", "require_starttls", bool),
    _Option("scram_iterations", "auth", "scram_iterations", int, 4096, 1_000_000),
    _Option("allow_plain", "auth", "allow_plain", bool),
    _Option("max_stanza_size", "limits", "max_stanza_size", int, 1024, 16 * 1024 * 1024),
    _Option("max_depth", "limits", "max_depth", int, 4, 256),
    _Option("outbox_size", "limits", "outbox_size", int, 16, 1_000_000),
    _Option("negotiation_timeout", "limits", "negotiation_timeout", float, 0, 3600, True),
    _Option("idle_timeout", "limits", "idle_timeout", float, 0, 7 * 86400, True, nullable=True),
    _limit("max_connections_per_ip", int, 1, 10**6, nullable=True),
    _limit("max_sessions_per_account", int, 1, 10**6, nullable=True),
    _limit("stanza_rate", float, 0, 10**6, low_open=True, nullable=True),
    _limit("stanza_burst", int, 1, 10**6),
    _limit("auth_failures_per_ip", int, 1, 10**6, nullable=True),
    _limit("auth_failures_per_account", int, 1, 10**6, nullable=True),
    _limit("auth_failure_window", float, 0, 86400, low_open=True),
    _Option("http_port", "http", "port", int, 0, 65535, nullable=True),
    _Option("http_tls", "http", "tls", bool),
    _Option("http_proxy_tls", "http", "proxy_tls", bool),
    _Option("http_allowed_origins", "http", "allowed_origins", tuple),
    _Option("http_request_timeout", "http", "request_timeout", float, 0, 300, True),
    _Option(
        "http_ws_ping_interval", "http", "ws_ping_interval", float, 0, 3600, True, nullable=True
    ),
    _Option("bosh_max_wait", "http", "bosh_max_wait", int, 1, 3600),
    _Option("bosh_max_hold", "http", "bosh_max_hold", int, 1, 16),
    _Option("bosh_inactivity", "http", "bosh_inactivity", int, 1, 86400),
    _Option("bosh_polling", "http", "bosh_polling", int, 0, 3600),
    _Option("bosh_max_body_size", "http", "bosh_max_body_size", int, 1024, 64 * 1024 * 1024),
    _Option("default_plugins", "plugins", "default", bool),
    _Option("plugins", "plugins", "enable", tuple),
    _Option("disabled_plugins", "plugins", "disable", tuple),
    _Option("log_level", "log", "level", str, choices=LOG_LEVELS),
    _Option("invisibility", "invisibility", "enabled", bool),
    _Option("invisibility_allowed", "invisibility", "allowed", tuple),
    _Option("never_hidden_from", "invisibility", "never_hidden_from", tuple),
    _Option("sm_enabled", "stream_management", "enabled", bool),
    _Option(
        "sm_resume_timeout", "stream_management", "resume_timeout", int, 1, 86400, nullable=True
    ),
    _Option("sm_max_unacked", "stream_management", "max_unacked", int, 16, 1_000_000),
    _Option("sm_ack_interval", "stream_management", "ack_interval", float, 0, 3600, True),
    _Option("s2s_enabled", "s2s", "enabled", bool),
    _Option("s2s_port", "s2s", "port", int, 0, 65535),
    _Option("s2s_require_encryption", "s2s", "require_encryption", bool),
    _Option("s2s_dialback_secret", "s2s", "dialback_secret", str, nullable=True),
    _Option("s2s_connect_timeout", "s2s", "connect_timeout", float, 0, 600, True),
    _Option("s2s_negotiation_timeout", "s2s", "negotiation_timeout", float, 0, 3600, True),
    _Option("s2s_idle_timeout", "s2s", "idle_timeout", float, 0, 7 * 86400, True, nullable=True),
    _Option("s2s_send_timeout", "s2s", "send_timeout", float, 0, 3600, True),
    _Option("s2s_queue_size", "s2s", "queue_size", int, 1, 1_000_000),
    _Option("s2s_ca_file", "s2s", "ca_file", Path, nullable=True),
    _Option("s2s_routes", "s2s", "routes", dict),
)
_BY_FIELD = {opt.field: opt for opt in _OPTIONS}
_SECTIONS = {opt.section for opt in _OPTIONS} | {"plugin", "groups"}


@dataclass(frozen=True)
class Config:
    """Everything the server needs to know before it starts; immutable and always valid.

    :raises ConfigError: from the constructor if a value has the wrong type or is out of range.
    """

    domain: str = "localhost"
    host: str = "127.0.0.1"
    port: int = 5222  # 0 = any free port
    tls_port: int | None = 5223  # direct TLS (XEP-0368); None disables
    data_dir: Path = Path("casper-data")
    workers: int = 1  # processes serving the domain together (casper.cluster)
    busy_wait: float | None = 0.001  # seconds of polling after work before sleeping (busywait)
    cert_file: Path | None = None  # None (with key_file) = self-signed under data_dir/tls
    key_file: Path | None = None
    require_starttls: bool = True
    allow_plain: bool = True  # PLAIN is never offered without TLS anyway
    scram_iterations: int = 4096
    default_plugins: bool = True
    plugins: tuple[str, ...] = ()  # enabled in addition to the baseline
    disabled_plugins: tuple[str, ...] = ()
    max_stanza_size: int = 262144
    max_depth: int = 32
    outbox_size: int = 1024
    negotiation_timeout: float = 30.0
    idle_timeout: float | None = None
    max_connections_per_ip: int | None = 100  # TCP connections at once per IPv4 / IPv6 /64
    max_sessions_per_account: int | None = 10  # resources bound at once per account
    stanza_rate: float | None = 50.0  # stanzas a second per session; faster ones are slowed
    stanza_burst: int = 200  # stanzas a session may send at once before the rate applies
    auth_failures_per_ip: int | None = 10  # wrong credentials per address within the window
    auth_failures_per_account: int | None = 20  # wrong credentials per account within it
    auth_failure_window: float = 600.0  # seconds a failed authentication is remembered
    log_level: str = "info"
    http_port: int | None = None  # WebSocket + BOSH listener; None disables, 0 = any free port
    http_tls: bool = False  # https/wss with the server's certificate; plain for a proxy in front
    http_proxy_tls: bool = False  # plain, but a TLS-terminating proxy is in front: count as secure
    http_allowed_origins: tuple[str, ...] = ("*",)  # browser origins allowed; "*" = any
    http_request_timeout: float = 10.0  # seconds for request headers and body
    http_ws_ping_interval: float | None = 30.0  # WebSocket keepalive pings
    bosh_max_wait: int = 60  # seconds a BOSH request may be held
    bosh_max_hold: int = 1  # BOSH requests held at once per session
    bosh_inactivity: int = 60  # seconds without a request before a BOSH session ends
    bosh_polling: int = 2  # shortest polling interval (seconds)
    bosh_max_body_size: int = 1024 * 1024  # bytes in one BOSH request
    invisibility: bool = True  # the administrator's switch: False = nobody may hide
    invisibility_allowed: tuple[str, ...] = ("*",)  # accounts or group names; "*" = everyone
    never_hidden_from: tuple[str, ...] = ()  # accounts or groups nobody may hide from
    sm_enabled: bool = True  # XEP-0198 stream management offered to clients
    sm_resume_timeout: int | None = 300  # seconds a broken stream may be resumed; None: never
    sm_max_unacked: int = 5000  # stanzas awaiting the client's ack before the session ends
    sm_ack_interval: float = 5.0  # seconds after a stanza is written until <r/> asks for an ack
    s2s_enabled: bool = False  # federation (RFC 6120 server-to-server) on or off
    s2s_port: int = 5269  # s2s listener on ``host``; 0 = any free port
    s2s_require_encryption: bool = True  # STARTTLS before anything else, both directions
    s2s_dialback_secret: str | None = None  # XEP-0185 key secret; None = random per start
    s2s_connect_timeout: float = 10.0  # seconds to resolve and connect to a remote server
    s2s_negotiation_timeout: float = 30.0  # seconds for TLS and authentication of a stream
    s2s_idle_timeout: float | None = 600.0  # an unused s2s stream is closed after this
    s2s_send_timeout: float = 30.0  # a peer that takes longer to read a write is dropped
    s2s_queue_size: int = 1000  # stanzas queued per remote domain (while connecting, or slow)
    s2s_ca_file: Path | None = None  # peers' CAs trusted besides the system's (SASL EXTERNAL)
    s2s_routes: Mapping[str, tuple[str, int]] = field(default_factory=dict, hash=False)
    plugin_settings: Mapping[str, Mapping[str, object]] = field(default_factory=dict, hash=False)
    account_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for opt in _OPTIONS:
            _check_value(opt, getattr(self, opt.field))
        object.__setattr__(self, "domain", _normalise_domain(self.domain))
        object.__setattr__(self, "log_level", self.log_level.lower())
        object.__setattr__(self, "plugin_settings", _freeze_plugin_settings(self.plugin_settings))
        object.__setattr__(self, "account_groups", _check_groups(self.account_groups))
        object.__setattr__(self, "s2s_routes", _check_routes(self.s2s_routes))
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("tls.cert_file and tls.key_file must be set together")
        if self.tls_port is not None and self.tls_port == self.port != 0:
            raise ConfigError(f"server.tls_port and server.port are both {self.port}")
        if (
            self.http_port is not None
            and self.http_port != 0
            and self.http_port in (self.port, self.tls_port)
        ):
            raise ConfigError(f"http.port {self.http_port} is already used by a c2s port")
        if (
            self.s2s_enabled
            and self.s2s_port != 0
            and self.s2s_port in (self.port, self.tls_port, self.http_port)
        ):
            raise ConfigError(f"s2s.port {self.s2s_port} is already used by another listener")

    @property
    def enabled_plugins(self) -> tuple[str, ...]:
        """Baseline (unless switched off) plus ``plugins``, minus ``disabled_plugins``, in order."""
        wanted = (BASELINE_PLUGINS if self.default_plugins else ()) + self.plugins
        disabled = set(self.disabled_plugins)
        return tuple(dict.fromkeys(name for name in wanted if name not in disabled))

    def plugin_config(self, name: str) -> Mapping[str, object]:
        """Return the ``[plugin.NAME]`` table (read-only; empty if absent)."""
        return self.plugin_settings.get(name, _EMPTY)


def _describe_range(opt: _Option) -> str:
    low = f"> {opt.low:g}" if opt.low_open else f">= {opt.low:g}"
    return f"{low} and <= {opt.high:g}"


_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    Path: "a path",
}


def _has_kind(kind: type, value: object) -> bool:
    """Return whether ``value`` fits ``kind``; bools are not numbers, ints are floats."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _check_value(opt: _Option, value: object) -> None:
    """Raise ConfigError if ``value`` is not acceptable for ``opt``."""
    if value is None and opt.nullable:
        return
    if opt.kind is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{opt.name} must be a table, got {value!r}")
        return
    if opt.kind is tuple:
        if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
            what = "plugin names" if opt.section == "plugins" else "non-empty strings"
            raise ConfigError(f"{opt.name} must be a list of {what}, got {value!r}")
        return
    if not _has_kind(opt.kind, value):
        raise ConfigError(f"{opt.name} must be {_KIND_NAMES[opt.kind]}, got {value!r}")
    if opt.low is not None and opt.high is not None:
        number = float(value)  # type: ignore[arg-type]
        too_low = number <= opt.low if opt.low_open else number < opt.low
        if too_low or number > opt.high:
            raise ConfigError(f"{opt.name} = {value!r} is out of range ({_describe_range(opt)})")
    if opt.choices and str(value).lower() not in opt.choices:
        raise ConfigError(f"{opt.name} must be one of {', '.join(opt.choices)}, got {value!r}")
    if opt.kind is str and not value:
        raise ConfigError(f"{opt.name} must not be empty")


def _normalise_domain(domain: str) -> str:
    """Return the canonical form of ``domain`` or raise ConfigError (RFC 7622 domainpart)."""
    try:
        jid = JID.parse(domain)
    except InvalidJID as exc:
        raise ConfigError(f"server.domain {domain!r} is not a valid domain: {exc}") from None
    if jid.local is not None or jid.resource is not None:
        raise ConfigError(f"server.domain {domain!r} must be a bare domain, without '@' or '/'")
    return jid.domain


def _freeze(value: object) -> object:
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _freeze_plugin_settings(settings: object) -> Mapping[str, Mapping[str, object]]:
    if not isinstance(settings, Mapping):
        raise ConfigError(f"plugin settings must be tables, got {settings!r}")
    for name, table in settings.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"plugin.{name} must be a table, got {table!r}")
    return _freeze(settings)  # type: ignore[return-value]


def _check_groups(groups: object) -> Mapping[str, tuple[str, ...]]:
    """``[groups]``: group name -> list of bare account JIDs (for the invisibility policy)."""
    if not isinstance(groups, Mapping):
        raise ConfigError(f"[groups] must be a table of arrays, got {groups!r}")
    checked: dict[str, tuple[str, ...]] = {}
    for name, members in groups.items():
        if not isinstance(members, list | tuple) or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"groups.{name} must be an array of account JIDs")
        try:
            checked[str(name)] = tuple(str(JID.parse(m).bare) for m in members)
        except InvalidJID as exc:
            raise ConfigError(f"groups.{name}: {exc}") from None
    return MappingProxyType(checked)


def _check_routes(routes: object) -> Mapping[str, tuple[str, int]]:
    """``[s2s.routes]``: remote domain -> ``"host:port"`` (or a ``(host, port)`` pair)."""
    assert isinstance(routes, Mapping)
    checked: dict[str, tuple[str, int]] = {}
    for domain, target in routes.items():
        where = f"s2s.routes.{domain}"
        try:
            jid = JID.parse(str(domain))
        except InvalidJID as exc:
            raise ConfigError(f"{where}: not a valid domain: {exc}") from None
        if jid.local is not None or jid.resource is not None:
            raise ConfigError(f"{where}: must be a bare domain")
        checked[jid.domain] = _host_port(target, where)
    return MappingProxyType(checked)


def _host_port(target: object, where: str) -> tuple[str, int]:
    if isinstance(target, tuple) and len(target) == 2:
        host, port = target
    elif isinstance(target, str) and ":" in target:
        host, _, port_text = target.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        port = int(port_text) if port_text.isdigit() else -1
    else:
        raise ConfigError(f'{where} must be "host:port", got {target!r}')
    if not isinstance(host, str) or not host or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f'{where} must be "host:port" with a port in 1..65535, got {target!r}')
    return host, port


# -- loading ------------------------------------------------------------------------------------


def _convert(opt: _Option, raw: object) -> object:
    """Turn a TOML value into the field's Python type; leave wrong types for _check_value."""
    if opt.nullable and raw is False:
        return None
    if opt.kind is Path and isinstance(raw, str) and raw:
        return Path(raw)
    if opt.kind is dict and isinstance(raw, dict):
        return dict(raw)
    if opt.kind is tuple and isinstance(raw, list):
        return tuple(raw)
    if opt.kind is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not valid UTF-8") from None


def _values_from_toml(document: Mapping[str, Any]) -> dict[str, object]:
    """Map a parsed TOML document onto ``Config`` field values, rejecting unknown names."""
    keys = {(opt.section, opt.key): opt for opt in _OPTIONS}
    values: dict[str, object] = {}
    for section, table in document.items():
        if section not in _SECTIONS:
            raise ConfigError(f"unknown config section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"config section [{section}] must be a table")
        if section == "plugin":
            values["plugin_settings"] = table
            continue
        if section == "groups":
            values["account_groups"] = table
            continue
        for key, raw in table.items():
            opt = keys.get((section, key))
            if opt is None:
                raise ConfigError(f"unknown config key {section}.{key}")
            values[opt.field] = _convert(opt, raw)
    return values


def _apply_overrides(values: dict[str, object], overrides: Mapping[str, object]) -> None:
    """Let command-line values win; ``plugins`` adds to the file's list, ``None`` is ignored."""
    for name, value in overrides.items():
        if value is None:
            continue
        opt = _BY_FIELD.get(name)
        if opt is None:
            raise ConfigError(f"unknown override {name!r}")
        value = _convert(opt, list(value) if isinstance(value, list | tuple) else value)
        if name == "plugins":
            base = values.get("plugins", ())
            _check_value(opt, base)
            _check_value(opt, value)
            value = base + value  # type: ignore[operator]
        values[name] = value


def load_config(path: Path | None, overrides: Mapping[str, object]) -> Config:
    """Read ``path`` (TOML; ``None`` for defaults only) and apply ``overrides`` on top.

    :param path: the config file, or ``None``.
    :param overrides: ``Config`` field names to values, from command-line flags. They replace
        the file's values, except ``plugins``, which is added to the file's list. ``None``
        values are ignored (flag not given). ``data_dir`` may be a ``str`` or a ``Path``.
    :raises ConfigError: naming the offending key, for any unusable input.
    """
    values = _values_from_toml(_read_toml(path)) if path is not None else {}
    _apply_overrides(values, overrides)
    return Config(**values)  # type: ignore[arg-type]
