"""When each observer last saw an account go offline — never more than they saw.

XEP-0012 answers and the delay stamp on offline presence both say "last seen at T". With
invisibility, T differs per observer: a contact a session was hidden from must keep the
time of the last logoff *they* could see, or a fresh stamp would reveal the hidden login.

Storage: one account-wide record (the last public logoff), plus, only for subscribers a
session was hidden from at its logoff, an override holding the older value they last saw.
Accounts without invisibility write nothing extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .jid import JID

if TYPE_CHECKING:
    from .server import Server
    from .session import Session
    from .storage import Storage

Seen = tuple[float, str | None]
NEVER: Seen = (0.0, None)
_STORE = "casper.lastseen"


def _encode(seen: Seen) -> str:
    return f"{seen[0]!r}\n{seen[1] or ''}"


def _decode(text: str) -> Seen:
    stamp, _, status = text.partition("\n")
    return float(stamp), status or None


def _read_records(storage: Storage, account: str) -> tuple[Seen, dict[str, Seen]]:
    """The account's public record and overrides, in one storage-thread call."""
    public = storage.get_last_activity(account) or NEVER
    overrides: dict[str, Seen] = {}
    for observer in storage.plugin_keys(_STORE, account):
        value = storage.plugin_get(_STORE, account, observer)
        if value is not None:
            overrides[observer] = _decode(value)
    return public, overrides


class LastSeen:
    """Per-observer last-logoff bookkeeping over storage, with an in-memory cache."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._public: dict[JID, Seen] = {}
        self._overrides: dict[JID, dict[str, Seen]] = {}

    async def _load(self, account: JID) -> tuple[Seen, dict[str, Seen]]:
        """The account's records; cached only while it has sessions (bounded memory)."""
        if account in self._public:
            return self._public[account], self._overrides[account]
        server = self._server
        public, overrides = await server.db(_read_records, server.storage, str(account))
        if server.router.sessions_of(account):
            self._public[account], self._overrides[account] = public, overrides
        return public, overrides

    async def for_observer(self, account: JID, observer: JID | None) -> Seen:
        """The last logoff ``observer`` could see (``NEVER`` if none)."""
        public, overrides = await self._load(account)
        if observer is None:
            return public
        return overrides.get(str(observer.bare), public)

    async def record_logoff(self, session: Session, status: str | None, stamp: float) -> None:
        """A session that was publicly shown went offline at ``stamp``.

        Subscribers it was hidden from keep what they saw before; the others see ``stamp``.
        """
        server = self._server
        account = session.account
        public, overrides = await self._load(account)
        overrides = dict(overrides)
        roster = await server.rosters.get(account)
        for contact, item in roster.items():
            if item.subscription not in ("from", "both"):
                continue
            hidden = server.visibility.hidden(session, JID.parse(contact))
            if hidden and contact not in overrides:
                await self._set_override(account, contact, public)
            elif not hidden and contact in overrides:
                await self._drop_override(account, contact)
        if account in self._public:
            self._public[account] = (stamp, status)
        await server.db(server.storage.set_last_activity, str(account), stamp, status)

    async def saw_go_offline(self, account: JID, observer: JID, stamp: float) -> None:
        """``observer`` was just sent unavailable while the session stays connected
        (a strategy started hiding it): for them, the account went offline now."""
        await self._set_override(account, str(observer.bare), (stamp, None))

    async def _set_override(self, account: JID, observer: str, seen: Seen) -> None:
        self._overrides.setdefault(account, {})[observer] = seen
        storage = self._server.storage
        await self._server.db(storage.plugin_put, _STORE, str(account), observer, _encode(seen))

    async def _drop_override(self, account: JID, observer: str) -> None:
        self._overrides.get(account, {}).pop(observer, None)
        storage = self._server.storage
        await self._server.db(storage.plugin_delete, _STORE, str(account), observer)

    def forget(self, account: JID) -> None:
        """Drop the cache for an account with no sessions left."""
        self._public.pop(account, None)
        self._overrides.pop(account, None)
