"""The ``[s2s]`` section: option table, static routes, defaults (the example file says them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from casper.config import Config, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "casper.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_section_is_read(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
            [s2s]
            enabled = true
            port = 0
            require_encryption = false
            dialback_secret = "s3cret"
            connect_timeout = 2
            negotiation_timeout = 3.5
            idle_timeout = false
            send_timeout = 4
            queue_size = 10
            ca_file = "certs/federation-ca.pem"
            [s2s.routes]
            "Prosody.Test" = "127.0.0.1:5270"
            "v6.test" = "[::1]:5269"
            """,
        ),
        {},
    )
    assert config.s2s_enabled and config.s2s_port == 0 and not config.s2s_require_encryption
    assert config.s2s_dialback_secret == "s3cret" and config.s2s_idle_timeout is None
    assert config.s2s_ca_file == Path("certs/federation-ca.pem")
    assert (config.s2s_connect_timeout, config.s2s_negotiation_timeout) == (2.0, 3.5)
    assert (config.s2s_send_timeout, config.s2s_queue_size) == (4.0, 10)
    assert dict(config.s2s_routes) == {
        "prosody.test": ("127.0.0.1", 5270),
        "v6.test": ("::1", 5269),
    }


def test_defaults() -> None:
    config = Config()
    assert not config.s2s_enabled and config.s2s_port == 5269 and config.s2s_require_encryption
    assert config.s2s_dialback_secret is None and dict(config.s2s_routes) == {}


@pytest.mark.parametrize(
    "routes, message",
    [
        ({"x.test": "127.0.0.1"}, 'must be "host:port"'),
        ({"x.test": "127.0.0.1:0"}, "port in 1..65535"),
        ({"x.test": "127.0.0.1:http"}, "port in 1..65535"),
        ({"user@x.test": "127.0.0.1:5269"}, "bare domain"),
        ({"x.test": 5269}, 'must be "host:port"'),
    ],
)
def test_bad_routes(routes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(s2s_routes=routes)  # type: ignore[arg-type]


def test_routes_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="s2s.routes must be a table"):
        load_config(write(tmp_path, '[s2s]\nroutes = "x"\n'), {})


def test_port_clash() -> None:
    with pytest.raises(ConfigError, match="s2s.port 5222"):
        Config(s2s_enabled=True, s2s_port=5222)
    Config(s2s_enabled=False, s2s_port=5222)  # unused, so no clash


@pytest.mark.parametrize("key, value", [("queue_size", 0), ("connect_timeout", 0), ("port", 70000)])
def test_ranges(tmp_path: Path, key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"s2s.{key}"):
        load_config(write(tmp_path, f"[s2s]\n{key} = {value}\n"), {})
