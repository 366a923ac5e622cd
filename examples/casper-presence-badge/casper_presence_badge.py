"""Presence badge: online/offline over HTTP, exactly as the visibility decision says.

A web presence badge like Openfire's Presence Service plugin, served with h11 on its own
port. ``GET /status/<user>@<domain>`` answers a small SVG badge, and
``GET /status/<user>@<domain>?format=json`` answers ``{"jid": ..., "status": ...}``.

Other servers' badges read the raw session table, so an invisible user shows "online" on
the web. This one asks the core's single visibility decision, as seen by one observer JID
(``observer``): a session hidden from that observer, an account with no session, and an
account that does not exist all give the same bytes.

- ``audience = "subscribers"`` (the default): an account shows online only when it shares
  its presence with ``observer`` and a session is known to it
  (:meth:`casper.visibility.Visibility.sessions_known_to`, the same rule presence probes,
  last activity and disco#items follow), so the badge never reveals more than presence
  would reveal to that JID. Users opt in by approving ``observer``'s subscription, like
  Openfire's "only users subscribed to the presence service" setting. With the default
  observer (``stranger@invalid``, whom nobody shares presence with) everyone shows offline.
- ``audience = "public"``: Openfire's "anyone" setting: an account shows online while a
  session is available and no strategy hides it from ``observer``
  (:meth:`casper.visibility.Visibility.visible_sessions`). Strategies that hide from
  everyone (``xep0018``, ``invisible-command``, ``directed-presence``) still make the badge
  say offline.

Hooks: ``casper_configure``, ``casper_serve``. Config keys (``[plugin.presence-badge]``):
``host`` (default ``127.0.0.1``), ``port`` (default 5290; 0 = any free port), ``observer``
(a JID, default ``stranger@invalid``), ``audience`` (``subscribers`` or ``public``),
``request_timeout`` (seconds, default 10).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import trio
from casper.config import ConfigError
from casper.hookspecs import hookimpl
from casper.jid import JID, InvalidJID
from casper.visibility import STRANGER

if TYPE_CHECKING:
    from casper.server import Server

NAME = "presence-badge"
AUDIENCES = ("subscribers", "public")
MAX_REQUEST_BYTES = 16 * 1024
log = logging.getLogger("casper_presence_badge")


@dataclass(frozen=True)
class Config:
    """``[plugin.presence-badge]``, validated."""

    host: str = "127.0.0.1"
    port: int = 5290
    observer: JID = STRANGER
    audience: str = "subscribers"
    request_timeout: float = 10.0

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> Config:
        """Validate the settings; raise ConfigError naming the bad key."""
        unknown = set(settings) - {"host", "port", "observer", "audience", "request_timeout"}
        if unknown:
            raise ConfigError(f"unknown config key plugin.{NAME}.{min(unknown)}")
        host = settings.get("host", cls.host)
        port = settings.get("port", cls.port)
        observer = settings.get("observer", str(cls.observer))
        audience = settings.get("audience", cls.audience)
        timeout = settings.get("request_timeout", cls.request_timeout)
        if not isinstance(host, str) or not host:
            raise ConfigError(f"plugin.{NAME}.host must be a non-empty string, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"plugin.{NAME}.port must be an integer in 0..65535, got {port!r}")
        if audience not in AUDIENCES:
            raise ConfigError(
                f"plugin.{NAME}.audience must be one of {', '.join(AUDIENCES)}, got {audience!r}"
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 300
        ):
            raise ConfigError(f"plugin.{NAME}.request_timeout must be in (0, 300], got {timeout!r}")
        try:
            observer_jid = JID.parse(observer) if isinstance(observer, str) else None
        except InvalidJID:
            observer_jid = None
        if observer_jid is None:
            raise ConfigError(f"plugin.{NAME}.observer must be a JID, got {observer!r}")
        return cls(host, port, observer_jid, audience, float(timeout))


# ---------------------------------------------------------------- answers (no I/O)

Response = tuple[int, list[tuple[str, str]], bytes]


def parse_target(target: str) -> tuple[JID, str] | None:
    """``/status/<jid>[?format=svg|json]`` → (bare JID, format); ``None`` if not one."""
    parts = urlsplit(target)
    if not parts.path.startswith("/status/"):
        return None
    formats = parse_qs(parts.query).get("format", ["svg"])
    if len(formats) != 1 or formats[0] not in ("svg", "json"):
        return None
    try:
        jid = JID.parse(unquote(parts.path.removeprefix("/status/")))
    except InvalidJID:
        return None
    if jid.local is None or jid.resource is not None:
        return None
    return jid, formats[0]


def render_badge(jid: JID, status: str, fmt: str) -> Response:
    """The 200 answer for ``jid``'s status; its bytes depend on nothing else."""
    if fmt == "json":
        body = json.dumps({"jid": str(jid), "status": status}).encode() + b"\n"
        return 200, _headers("application/json", body), body
    color = "#4c1" if status == "online" else "#9f9f9f"
    body = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="90" height="20" role="img" '
        f'aria-label="xmpp: {status}">'
        '<rect width="40" height="20" fill="#555"/>'
        f'<rect x="40" width="50" height="20" fill="{color}"/>'
        '<g fill="#fff" font-family="Verdana,sans-serif" font-size="11">'
        '<text x="6" y="14">xmpp</text>'
        f'<text x="45" y="14">{status}</text></g></svg>\n'
    ).encode()
    return 200, _headers("image/svg+xml", body), body


def error_response(status: int, text: str, *extra: tuple[str, str]) -> Response:
    body = f"{text}\n".encode()
    return status, [*_headers("text/plain; charset=utf-8", body), *extra], body


def _headers(content_type: str, body: bytes) -> list[tuple[str, str]]:
    return [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]


# ---------------------------------------------------------------- the plugin


class PresenceBadge:
    """The plugin's state: its config, the decision it asks, and the port it listens on."""

    def __init__(self, server: Server, config: Config) -> None:
        self.server = server
        self.config = config
        self.port: int | None = None
        self._listening = trio.Event()

    async def status(self, account: JID) -> str:
        """``"online"`` or ``"offline"`` for ``account`` as the observer may know it."""
        visibility, observer = self.server.visibility, self.config.observer
        if self.config.audience == "public":
            sessions = visibility.visible_sessions(account, observer)
        else:
            sessions = await visibility.sessions_known_to(account, observer)
        return "online" if sessions else "offline"

    async def answer(self, method: str, target: str) -> Response:
        if method not in ("GET", "HEAD"):
            return error_response(405, "method not allowed", ("Allow", "GET, HEAD"))
        parsed = parse_target(target)
        if parsed is None or parsed[0].domain != self.server.domain:
            return error_response(404, "not found")
        jid, fmt = parsed
        return render_badge(jid, await self.status(jid), fmt)

    async def wait_listening(self) -> int:
        """The port, once the badge accepts connections."""
        await self._listening.wait()
        assert self.port is not None
        return self.port

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.port = await nursery.start(serve_presence_badge, self)
            self._listening.set()
            log.info("presence badge on http://%s:%d/status/", self.config.host, self.port)

    @hookimpl
    def casper_serve(self, nursery: object) -> None:
        nursery.start_soon(self.run)  # type: ignore[attr-defined]


async def serve_presence_badge(
    badge: PresenceBadge, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the badge over HTTP/1.1 until cancelled; ``started(port)`` once listening.

    Error handling: a malformed request gets h11's status hint (400, 431, ...), a client
    that stalls longer than ``request_timeout`` is disconnected, and a client that goes
    away ends its connection only. Resource handling: listeners and connections are closed
    on exit.
    """
    listeners = await trio.open_tcp_listeners(badge.config.port, host=badge.config.host)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, partial(handle_connection, badge), listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


async def handle_connection(badge: PresenceBadge, stream: trio.abc.Stream) -> None:
    """Answer requests on one connection (keep-alive) until it closes or stalls."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
    try:
        while True:
            with trio.move_on_after(badge.config.request_timeout):
                request = await _read_request(conn, stream)
                if request is None:
                    return
                status, headers, body = await badge.answer(
                    request.method.decode(), request.target.decode()
                )
                await _send(
                    conn, stream, status, headers, b"" if request.method == b"HEAD" else body
                )
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # timed out, or either side wants the connection closed
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status, headers, body = error_response(exc.error_status_hint, "bad request")
            await _send(conn, stream, status, [*headers, ("Connection", "close")], body)
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
        pass  # the peer is gone: not an error
    finally:
        await stream.aclose()


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Request | None:
    """The next request (its body, if any, read and ignored), or ``None`` at EOF."""
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(MAX_REQUEST_BYTES)))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(conn: h11.Connection, stream: trio.abc.Stream, status: int,
                headers: list[tuple[str, str]], body: bytes) -> None:  # fmt: skip
    data = conn.send(h11.Response(status_code=status, headers=headers))
    if body:
        data += conn.send(h11.Data(data=body))
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


@hookimpl
def casper_configure(server: Server) -> None:
    config = Config.from_mapping(server.plugin_config(NAME))
    server.pm.register(PresenceBadge(server, config), f"{NAME}.state")
