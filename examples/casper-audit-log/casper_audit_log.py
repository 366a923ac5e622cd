"""Audit log: who probed whom, to spot attempts to see through invisibility.

Records every request a client sends that asks about another account's presence or
sessions: presence probes, and IQ gets and sets of last activity (XEP-0012), disco#info
and disco#items (XEP-0030), software version (XEP-0092), entity time (XEP-0202) and ping
(XEP-0199), addressed to an account's bare JID or to one of its full JIDs. A burst of
version or ping IQs to guessed full JIDs of a user who is invisible is what an attack on
invisibility looks like.

It observes, never decides. Its only routing hook, ``casper_filter_outgoing``, always
returns ``None``, so every stanza goes exactly where it would go without the plugin, and
the answer each prober gets is unchanged (the tests compare them). The filter does no I/O:
it puts a record on a bounded in-memory channel and returns; a background task started in
``casper_serve`` writes the records. When the channel is full, records are dropped (and
counted in ``AuditLog.dropped``), never stanzas delayed.

Each record is one JSON object: ``time`` (UTC, ISO 8601), ``prober`` (the sender's full
JID), ``target`` (the JID as addressed), ``account`` (its bare JID), ``probe`` (one of
``presence-probe``, ``last-activity``, ``disco-info``, ``disco-items``, ``version``,
``time``, ``ping``) and ``id`` (the stanza id, or ``null``). Requests at one's own account
are not recorded. Only local clients are seen: there is no federation yet.

Hooks: ``casper_configure``, ``casper_serve``, ``casper_filter_outgoing``.
Config keys (``[plugin.audit-log]``): ``path`` (a JSON-lines file appended to; default:
none), ``storage`` (also keep the records in the plugin storage of the probed account,
under ``audit-log``; default ``true``), ``queue_size`` (records waiting to be written,
default 1000).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from casper.config import ConfigError
from casper.hookspecs import hookimpl

if TYPE_CHECKING:
    from casper.server import Server
    from casper.session import Session
    from casper.stanza import Stanza

NAME = "audit-log"
WATCHED_IQS = {
    "jabber:iq:last": "last-activity",
    "http://jabber.org/protocol/disco#info": "disco-info",
    "http://jabber.org/protocol/disco#items": "disco-items",
    "jabber:iq:version": "version",
    "urn:xmpp:time": "time",
    "urn:xmpp:ping": "ping",
}
log = logging.getLogger("casper_audit_log")

Record = dict[str, Any]


@dataclass(frozen=True)
class Config:
    """``[plugin.audit-log]``, validated."""

    path: Path | None = None
    storage: bool = True
    queue_size: int = 1000

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> Config:
        """Validate the settings; raise ConfigError naming the bad key."""
        unknown = set(settings) - {"path", "storage", "queue_size"}
        if unknown:
            raise ConfigError(f"unknown config key plugin.{NAME}.{min(unknown)}")
        path = settings.get("path")
        if path is not None and (not isinstance(path, str | Path) or not str(path)):
            raise ConfigError(f"plugin.{NAME}.path must be a file name, got {path!r}")
        storage = settings.get("storage", True)
        if not isinstance(storage, bool):
            raise ConfigError(f"plugin.{NAME}.storage must be true or false, got {storage!r}")
        size = settings.get("queue_size", 1000)
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 1_000_000:
            raise ConfigError(f"plugin.{NAME}.queue_size must be in 1..1000000, got {size!r}")
        return cls(None if path is None else Path(path), storage, size)


def probe_kind(stanza: Stanza) -> str | None:
    """What ``stanza`` asks about its addressee, if it is a probe worth recording."""
    if stanza.kind == "presence":
        return "presence-probe" if stanza.type == "probe" else None
    if stanza.kind != "iq" or stanza.type not in ("get", "set"):
        return None
    payload = stanza.payload
    if payload is None or not payload.tag.startswith("{"):
        return None
    return WATCHED_IQS.get(payload.tag[1:].partition("}")[0])


class AuditLog:
    """The plugin's state: the channel the filter feeds and the task that writes."""

    def __init__(self, server: Server, config: Config) -> None:
        self.server = server
        self.config = config
        self._send, self._receive = trio.open_memory_channel[Record](config.queue_size)
        self.queued = 0
        self.written = 0
        self.dropped = 0
        self._progress = trio.Event()

    @hookimpl(tryfirst=True)  # before any filter that might stop the call with a verdict
    def casper_filter_outgoing(self, stanza: Stanza, session: Session) -> None:
        """Record a probe at another account; never a verdict, never I/O."""
        kind = probe_kind(stanza)
        to = stanza.to
        if kind is None or to is None or to.local is None or to.bare == session.account:
            return
        record = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "prober": str(session.jid),
            "target": str(to),
            "account": str(to.bare),
            "probe": kind,
            "id": stanza.id,
        }
        try:
            self._send.send_nowait(record)
            self.queued += 1
        except trio.WouldBlock:
            self.dropped += 1
        return

    @hookimpl
    def casper_serve(self, nursery: object) -> None:
        nursery.start_soon(self.write_records)  # type: ignore[attr-defined]

    async def write_records(self) -> None:
        """Append the records as they come, in batches, to the file and/or storage."""
        file = None
        if self.config.path is not None:
            file = await trio.open_file(self.config.path, "a", encoding="utf-8")
        try:
            async for record in self._receive:
                batch = [record]
                while True:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                await self._write(file, batch)
                self.written += len(batch)
                self._progress.set()
                self._progress = trio.Event()
        finally:
            if file is not None:
                with trio.CancelScope(shield=True):
                    await file.aclose()

    async def _write(self, file: Any, batch: list[Record]) -> None:
        if file is not None:
            await file.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in batch))
            await file.flush()
        if self.config.storage:
            storage = self.server.storage
            for index, record in enumerate(batch):
                key = f"{record['time']} {self.written + index:08d}"
                value = json.dumps(record, sort_keys=True)
                await self.server.db(storage.plugin_put, NAME, record["account"], key, value)

    async def wait_written(self) -> None:
        """Return once every record queued so far is written (for tests and shutdown)."""
        while self.written < self.queued:
            await self._progress.wait()

    async def records_about(self, account: str) -> list[Record]:
        """The stored records about ``account`` (with ``storage = true``), oldest first."""
        storage, server = self.server.storage, self.server
        keys = await server.db(storage.plugin_keys, NAME, account)
        values = [await server.db(storage.plugin_get, NAME, account, key) for key in keys]
        return [json.loads(v) for v in values if v is not None]


@hookimpl
def casper_configure(server: Server) -> None:
    config = Config.from_mapping(server.plugin_config(NAME))
    server.pm.register(AuditLog(server, config), f"{NAME}.state")
