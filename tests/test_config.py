"""casper.config: defaults, the TOML layout, overrides, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from casper.config import BASELINE_PLUGINS, Config, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "casper.toml"


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "casper.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def config_error(path: Path | None, overrides: dict[str, object] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides or {})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults() -> None:
    config = load_config(None, {})
    assert config == Config()
    assert (config.domain, config.host, config.port, config.tls_port) == (
        "localhost",
        "127.0.0.1",
        5222,
        5223,
    )
    assert config.data_dir == Path("casper-data")
    assert config.cert_file is None and config.key_file is None
    assert config.require_starttls and config.allow_plain and config.default_plugins
    assert config.scram_iterations == 4096
    assert (config.max_stanza_size, config.max_depth, config.outbox_size) == (262144, 32, 1024)
    assert config.negotiation_timeout == 30.0 and config.idle_timeout is None
    assert config.log_level == "info"
    assert config.plugins == config.disabled_plugins == ()
    assert dict(config.plugin_settings) == {}


def test_example_file_documents_exactly_the_defaults() -> None:
    assert load_config(EXAMPLE, {}) == Config()


def test_every_section_is_read(write) -> None:
    path = write(
        """
        [server]
        domain = "example.com"
        host = "::"
        port = 15222
        tls_port = 15223
        data_dir = "var/casper"
        [tls]
        cert_file = "certs/fullchain.pem"
        key_file = "certs/privkey.pem"
        require_starttls = false
        [auth]
        scram_iterations = 10000
        allow_plain = false
        [limits]
        max_stanza_size = 65536
        max_depth = 16
        outbox_size = 64
        negotiation_timeout = 5
        idle_timeout = 300.5
        [plugins]
        default = false
        enable = ["roster", "blocking"]
        disable = ["blocking"]
        [log]
        level = "DEBUG"
        [plugin.roster]
        max_items = 500
        """
    )
    assert load_config(path, {}) == Config(
        domain="example.com",
        host="::",
        port=15222,
        tls_port=15223,
        data_dir=Path("var/casper"),
        cert_file=Path("certs/fullchain.pem"),
        key_file=Path("certs/privkey.pem"),
        require_starttls=False,
        scram_iterations=10000,
        allow_plain=False,
        max_stanza_size=65536,
        max_depth=16,
        outbox_size=64,
        negotiation_timeout=5.0,
        idle_timeout=300.5,
        default_plugins=False,
        plugins=("roster", "blocking"),
        disabled_plugins=("blocking",),
        log_level="debug",
        plugin_settings={"roster": {"max_items": 500}},
    )


def test_relative_paths_stay_relative_to_the_current_directory(write) -> None:
    config = load_config(write('[server]\ndata_dir = "data"'), {})
    assert config.data_dir == Path("data")


def test_busy_wait_is_a_millisecond_unless_switched_off(write) -> None:
    assert load_config(None, {}).busy_wait == 0.001
    assert load_config(write("[server]\nbusy_wait = 0.0005"), {}).busy_wait == 0.0005
    assert load_config(write("[server]\nbusy_wait = false"), {}).busy_wait is None


def test_false_switches_off_tls_port_and_idle_timeout(write) -> None:
    config = load_config(write("[server]\ntls_port = false\n[limits]\nidle_timeout = false"), {})
    assert config.tls_port is None and config.idle_timeout is None


def test_domain_is_normalised(write) -> None:
    assert load_config(write('[server]\ndomain = "Example.COM."'), {}).domain == "example.com"


def test_plugin_config_is_read_only_and_empty_when_absent(write) -> None:
    config = load_config(write('[plugin.hello]\ngreeting = "hi"\nnames = ["a", "b"]'), {})
    settings = config.plugin_config("hello")
    assert settings == {"greeting": "hi", "names": ("a", "b")}
    with pytest.raises(TypeError):
        settings["greeting"] = "bye"  # type: ignore[index]
    assert dict(config.plugin_config("absent")) == {}


# -- enabled_plugins ----------------------------------------------------------------------------


def test_enabled_plugins_default_to_baseline() -> None:
    assert Config().enabled_plugins == BASELINE_PLUGINS


def test_enabled_plugins_add_in_order_without_duplicates() -> None:
    config = Config(plugins=("roster", "ping", "blocking", "roster"))
    assert config.enabled_plugins == (*BASELINE_PLUGINS, "roster", "blocking")


def test_disabled_plugins_win_over_baseline_and_enabled() -> None:
    config = Config(plugins=("roster",), disabled_plugins=("roster", "offline", "nonexistent"))
    assert config.enabled_plugins == tuple(p for p in BASELINE_PLUGINS if p != "offline")


def test_default_false_leaves_only_explicit_plugins() -> None:
    assert Config(default_plugins=False, plugins=("ping",)).enabled_plugins == ("ping",)


# -- overrides ----------------------------------------------------------------------------------


def test_overrides_win_over_the_file(write) -> None:
    path = write('[server]\ndomain = "example.com"\nport = 1\ndata_dir = "a"\nhost = "::"')
    config = load_config(
        path, {"domain": "example.org", "port": 2, "data_dir": "b", "host": "0.0.0.0"}
    )
    assert (config.domain, config.port, config.data_dir, config.host) == (
        "example.org",
        2,
        Path("b"),
        "0.0.0.0",
    )


def test_plugins_override_adds_to_the_files_list(write) -> None:
    config = load_config(write('[plugins]\nenable = ["roster"]'), {"plugins": ["blocking"]})
    assert config.plugins == ("roster", "blocking")


def test_none_overrides_are_ignored(write) -> None:
    config = load_config(write("[server]\nport = 7"), {"port": None, "plugins": None})
    assert config.port == 7


def test_bad_override_is_a_config_error() -> None:
    assert "server.port" in config_error(None, {"port": 70000})
    assert "unknown override" in config_error(None, {"colour": "blue"})


# -- errors -------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in config_error(tmp_path / "absent.toml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "cannot read config file" in config_error(tmp_path)


def test_bad_toml(write) -> None:
    assert "not valid TOML" in config_error(write("[server\nport = 1"))


def test_unknown_section(write) -> None:
    assert "[serverr]" in config_error(write("[serverr]\nport = 1"))


def test_unknown_key(write) -> None:
    assert "server.prot" in config_error(write("[server]\nprot = 1"))


def test_section_that_is_not_a_table(write) -> None:
    assert "[server] must be a table" in config_error(write("server = 1"))


def test_plugin_entry_that_is_not_a_table(write) -> None:
    assert "plugin.hello must be a table" in config_error(write("[plugin]\nhello = 1"))


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[server]\nport = "5222"', "server.port"),
        ("[server]\nport = 5222.0", "server.port"),
        ("[server]\nport = true", "server.port"),
        ("[server]\ndomain = 1", "server.domain"),
        ("[server]\ndata_dir = 1", "server.data_dir"),
        ('[server]\ndata_dir = ""', "server.data_dir"),
        ("[server]\ntls_port = true", "server.tls_port"),
        ("[tls]\nrequire_starttls = 1", "tls.require_starttls"),
        ("[auth]\nallow_plain = 'yes'", "auth.allow_plain"),
        ("[limits]\nnegotiation_timeout = '30'", "limits.negotiation_timeout"),
        ("[plugins]\nenable = 'roster'", "plugins.enable"),
        ("[plugins]\nenable = [1]", "plugins.enable"),
        ("[plugins]\ndisable = ['']", "plugins.disable"),
        ("[plugins]\ndefault = 'no'", "plugins.default"),
        ("[log]\nlevel = 3", "log.level"),
    ],
)
def test_wrong_type_names_the_key(write, toml: str, key: str) -> None:
    assert key in config_error(write(toml))


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[server]\nport = -1", "server.port"),
        ("[server]\nport = 65536", "server.port"),
        ("[server]\ntls_port = 70000", "server.tls_port"),
        ("[auth]\nscram_iterations = 4095", "auth.scram_iterations"),
        ("[auth]\nscram_iterations = 1000001", "auth.scram_iterations"),
        ("[limits]\nmax_stanza_size = 1023", "limits.max_stanza_size"),
        ("[limits]\nmax_stanza_size = 16777217", "limits.max_stanza_size"),
        ("[limits]\nmax_depth = 3", "limits.max_depth"),
        ("[limits]\nmax_depth = 257", "limits.max_depth"),
        ("[limits]\noutbox_size = 15", "limits.outbox_size"),
        ("[limits]\noutbox_size = 1000001", "limits.outbox_size"),
        ("[limits]\nnegotiation_timeout = 0", "limits.negotiation_timeout"),
        ("[limits]\nnegotiation_timeout = 3600.5", "limits.negotiation_timeout"),
        ("[limits]\nidle_timeout = 0", "limits.idle_timeout"),
        ("[limits]\nidle_timeout = -5", "limits.idle_timeout"),
        ("[server]\nbusy_wait = 0", "server.busy_wait"),
        ("[server]\nbusy_wait = 0.2", "server.busy_wait"),
    ],
)
def test_out_of_range_names_the_key_and_the_range(write, toml: str, key: str) -> None:
    message = config_error(write(toml))
    assert key in message and "out of range" in message


@pytest.mark.parametrize(
    "toml",
    [
        "[limits]\nmax_stanza_size = 1024\nmax_depth = 4\noutbox_size = 16",
        "[limits]\nmax_stanza_size = 16777216\nmax_depth = 256\noutbox_size = 1000000",
        "[auth]\nscram_iterations = 1000000\n[limits]\nnegotiation_timeout = 3600",
        "[server]\nport = 0\ntls_port = 0",
        "[server]\nport = 65535\ntls_port = 65534",
    ],
)
def test_bounds_are_inclusive(write, toml: str) -> None:
    load_config(write(toml), {})


@pytest.mark.parametrize("domain", ["", "a@example.com", "example.com/res", "exa mple.com", "a..b"])
def test_invalid_domain(write, domain: str) -> None:
    assert "server.domain" in config_error(write(f'[server]\ndomain = "{domain}"'))


def test_unknown_log_level(write) -> None:
    assert "log.level" in config_error(write('[log]\nlevel = "verbose"'))


def test_cert_file_without_key_file(write) -> None:
    assert "set together" in config_error(write('[tls]\ncert_file = "c.pem"'))


def test_tls_port_equal_to_port(write) -> None:
    assert "server.tls_port" in config_error(write("[server]\nport = 5222\ntls_port = 5222"))


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ConfigError, match="limits.max_depth"):
        Config(max_depth=1000)
    with pytest.raises(ConfigError, match="server.data_dir"):
        Config(data_dir="not-a-path")  # type: ignore[arg-type]
