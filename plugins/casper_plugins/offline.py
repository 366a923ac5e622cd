"""Offline messages: keep chat messages for accounts that can't receive them now (XEP-0160).

Implements XEP-0160 with durable storage. A ``normal`` or ``chat`` message that reaches the
core's offline-equivalent path (the account has no session that may receive it: offline,
or hidden from the sender) is stored with its arrival time. It is handed to the account's
next session that sends initial presence with a non-negative priority (XEP-0160 §2),
oldest first, each with an XEP-0203 ``<delay from=DOMAIN stamp=.../>``. A session that
binds without sending presence gets nothing; neither does one whose initial presence has a
negative priority (bare-JID messages don't reach it either), and since the core announces
only *initial* presence, such a session doesn't get them by raising its priority later.

What is stored:

- only messages with a ``<body/>``. Messages without one (chat states, receipts, markers)
  have nothing to read later and are discarded without an error: bouncing a typing
  notification helps no one. Offline and hidden recipients are treated alike.
- at most ``max_per_account`` messages per account; more are bounced with
  ``service-unavailable`` (XEP-0160 §2, and the core's answer when storage declines),
  exactly as for any offline account with a full store.

Delivery goes through the router's incoming filters for the receiving session, as live
messages do: a message a filter drops or bounces now (e.g. from a sender blocked since) is
discarded; one a filter wants handled as offline (``OfflineEquivalent``) is stored again
with its original time for a later session. Delivery runs in the session's own task and
waits for room in its outbox, so a long queue never overflows it; messages not handed over
because the session ended meanwhile are stored again with their original times.

Hooks: ``casper_configure``, ``casper_offline_message``, ``casper_session_available``,
``casper_session_shown`` (delivery when an invisible session becomes visible),
``casper_disco_features`` (``msgoffline`` for the server).

Config keys (``[plugin.offline]``):

- ``max_per_account`` (int, 0..10000, default 100): messages kept per account; 0 stores
  nothing (every offline message is bounced).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio
from casper.config import ConfigError
from casper.errors import StanzaError
from casper.hookspecs import AsyncCallable, hookimpl
from casper.stanza import CLIENT_NS, Stanza, delay_element, qname
from casper.verdicts import OfflineEquivalent
from casper.xml import StanzaReceived, XMLStreamParser, stream_header

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

if TYPE_CHECKING:
    from casper.jid import JID
    from casper.server import Server
    from casper.session import Session

log = logging.getLogger("casper_plugins.offline")

NAME = "offline"
FEATURE = "msgoffline"
MAX_LIMIT = 10000
BODY = qname(CLIENT_NS, "body")
# Stored stanzas were written by the server itself: parse them back with a generous cap.
_STORED_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Config:
    max_per_account: int = 100

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> Config:
        """Validate ``[plugin.offline]``; raise ConfigError naming the bad key."""
        unknown = set(settings) - {"max_per_account"}
        if unknown:
            raise ConfigError(f"unknown config key plugin.{NAME}.{min(unknown)}")
        limit = settings.get("max_per_account", cls.max_per_account)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise ConfigError(f"plugin.{NAME}.max_per_account must be an integer, got {limit!r}")
        if not 0 <= limit <= MAX_LIMIT:
            raise ConfigError(
                f"plugin.{NAME}.max_per_account = {limit!r} is out of range (>= 0 and <= {MAX_LIMIT})"
            )
        return cls(max_per_account=limit)


def parse_stored(xml: str) -> Stanza:
    """Turn a stanza stored with ``Server.serialize`` back into a :class:`Stanza`."""
    parser = XMLStreamParser(max_stanza_bytes=_STORED_MAX_BYTES)
    header = stream_header(from_="stored", id="stored").replace(b"<?xml version='1.0'?>", b"")
    try:
        parser.feed(header + xml.encode())
        parser.next_event()  # StreamOpened
        event = parser.next_event()
    finally:
        parser.close()
    if isinstance(event, StanzaReceived):
        return Stanza.from_element(event.element)
    raise ValueError(f"stored stanza is incomplete: {xml[:80]!r}")


class OfflineStore:
    """Stores and delivers one server's offline messages."""

    def __init__(self, server: Server, config: Config) -> None:
        self.server = server
        self.config = config

    @hookimpl
    def casper_disco_features(self, target: str) -> list[str]:
        return [FEATURE] if target == "server" else []

    @hookimpl
    def casper_offline_message(self, stanza: Stanza, account: JID) -> AsyncCallable | None:
        if self.config.max_per_account == 0:
            return None
        if stanza.element.find(BODY) is None:
            return _discard
        xml = self.server.serialize(stanza)

        async def store() -> None:
            # a wall-clock arrival time, for XEP-0203 (trio.current_time() is monotonic)
            stored = await self.server.db(self._store_if_room, str(account), xml, time.time())
            if not stored:
                raise StanzaError("service-unavailable", "offline storage is full")

        return store

    def _store_if_room(self, account: str, xml: str, stamp: float) -> bool:
        """Count and store in one worker-thread call, so two messages can't both take the
        last place (``Server.db`` runs one storage call at a time)."""
        storage = self.server.storage
        if storage.count_offline(account) >= self.config.max_per_account:
            return False
        storage.store_offline(account, xml, stamp)
        return True

    @hookimpl
    def casper_session_available(self, session: Session) -> AsyncCallable | None:
        if session.priority < 0:
            return None
        return partial(self.deliver, session)

    @hookimpl
    def casper_session_shown(self, session: Session) -> AsyncCallable | None:
        """A session that looked offline (e.g. invisible) became visible: what was kept
        for it meanwhile is delivered now rather than at its next login."""
        if session.priority < 0 or not session.available:
            return None
        return partial(self.deliver, session)

    async def deliver(self, session: Session) -> None:
        """Hand every stored message to ``session``, oldest first, with its delay.

        Runs in the session's own task, so it waits for room in the session's outbox
        instead of overflowing it (which would end the session). Messages not handed over
        because the session ended meanwhile are stored again, with their original times.
        """
        server, account = self.server, str(session.account)
        pending = await server.db(server.storage.pop_offline, account)
        try:
            while pending and session.closing is None:
                xml, stamp = pending[0]
                await self._deliver_one(session, xml, stamp)
                pending.pop(0)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the session is gone; keep the rest
        finally:
            if pending:
                with trio.CancelScope(shield=True):
                    await server.db(self._restore, account, pending)

    async def _deliver_one(self, session: Session, xml: str, stamp: float) -> None:
        server = self.server
        try:
            stanza = parse_stored(xml)
        except Exception:
            log.exception("unreadable offline message for %s discarded", session.account)
            return
        delayed = stanza.with_child(delay_element(stamp, server.domain))
        verdict = server.router.filter_incoming(delayed, session.account, session)
        if verdict is None:
            await session.outbox.send(delayed)
        elif isinstance(verdict, OfflineEquivalent):
            await server.db(server.storage.store_offline, str(session.account), xml, stamp)
        else:
            log.debug("offline message %s for %s filtered: %s", stanza.id, session.jid, verdict)

    def _restore(self, account: str, rows: list[tuple[str, float]]) -> None:
        for xml, stamp in rows:
            self.server.storage.store_offline(account, xml, stamp)


async def _discard() -> None:
    """Take a message that is not worth keeping (no body) without bouncing it."""


@hookimpl
def casper_configure(server: Server) -> None:
    config = Config.from_mapping(server.plugin_config(NAME))
    server.pm.register(OfflineStore(server, config), f"{NAME}.state")
