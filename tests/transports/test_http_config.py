"""Turning the HTTP listener on: the ``[http]`` config section, ``casper serve --http-port``,
and ``serve()`` logging the WebSocket and BOSH URLs once it listens."""

from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path

import pytest
import trio
from casper.cli import build_parser
from casper.config import Config, ConfigError, load_config
from casper.server import C2SListener, serve
from casper.storage import SQLiteStorage
from casper.testing import MemoryListener

from tests.transports.clients import http_request


def test_http_section_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "casper.toml"
    path.write_text(
        "[http]\nport = 5280\ntls = true\nallowed_origins = ['https://chat.example']\n"
        "bosh_max_wait = 30\nbosh_max_hold = 2\nws_ping_interval = false\n"
    )
    config = load_config(path, {})
    assert (config.http_port, config.http_tls, config.http_allowed_origins) == (
        5280,
        True,
        ("https://chat.example",),
    )
    assert (config.bosh_max_wait, config.bosh_max_hold, config.http_ws_ping_interval) == (
        30,
        2,
        None,
    )
    assert load_config(None, {}).http_port is None  # off unless asked for


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[http]\nbosh_max_hold = 0\n", "http.bosh_max_hold = 0 is out of range"),
        (
            "[http]\nallowed_origins = ['']\n",
            "http.allowed_origins must be a list of non-empty strings",
        ),
        ("[http]\nport = 5222\n", "http.port 5222 is already used"),
        ("[http]\nbosh_wait = 3\n", "unknown config key http.bosh_wait"),
        ("[http]\nrequest_timeout = 0\n", "http.request_timeout = 0.0 is out of range"),
    ],
)
def test_bad_http_settings(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "casper.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path, {})


def test_serve_http_port_flag() -> None:
    args = build_parser().parse_args(["serve", "--http-port", "5280"])
    assert args.http_port == 5280
    assert load_config(None, {"http_port": args.http_port}).http_port == 5280


async def test_serve_logs_the_urls_and_listens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="casper.http")
    config = Config(
        port=0, tls_port=None, http_port=0, default_plugins=False, data_dir=Path("unused")
    )
    storage = SQLiteStorage(":memory:")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, config, listeners=[C2SListener(MemoryListener())],
                                        storage=storage, ssl_context=None))  # fmt: skip
            ws = [r.getMessage() for r in caplog.records if "WebSocket at" in r.getMessage()]
            bosh = [r.getMessage() for r in caplog.records if "BOSH at" in r.getMessage()]
            assert len(ws) == 1 and len(bosh) == 1, (ws, bosh)
            match = re.search(r"ws://127\.0\.0\.1:(\d+)/xmpp-websocket", ws[0])
            assert match and f"http://127.0.0.1:{match[1]}/http-bind" in bosh[0]
            status, _, content = await http_request("127.0.0.1", int(match[1]), "GET", "/health")
            assert status == 200 and b'"status": "ok"' in content
            nursery.cancel_scope.cancel()
    finally:
        storage.close()
