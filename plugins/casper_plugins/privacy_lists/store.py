"""Where privacy lists live: the plugin key-value store, and the caches the hooks read.

Storage (``plugin_get/put/delete/keys`` under the plugin name, per account):

- ``list:<name>`` → the list's items as JSON (:func:`.model.dump_list`);
- ``default`` → the name of the account's default list.

Caches, so that the synchronous hooks never wait on storage:

- the **default list of every account that has one**. Stanzas to an offline account are
  decided against it, synchronously, so it can't be loaded on demand: it is read for all
  accounts once at startup (:meth:`PrivacyStore.load_defaults`, before any listener) and
  kept current by every edit. Memory is bounded by the accounts that set a default.
- **every list of accounts with a session**, loaded when a session binds (and by any
  privacy IQ), dropped when the account's last session ends. Active lists are looked up
  here by name, so an edit takes effect at once for every session using the list.
- a **roster** per account whose default list needs one (group or subscription items) and
  per connected account: while connected it *is* the core's cached roster (the same dict,
  updated in place), so roster changes count at once; after the last session it is the
  roster as it was at logoff, refreshed on use (see :class:`~.strategy.PrivacyLists`).

A stored list that can't be read is replaced by a list denying everything (fail closed)
and logged.

Shared by two protocols: ``jabber:iq:privacy`` (:mod:`.protocol`) and the blocking command
(:mod:`casper_plugins.blocking`, XEP-0191, a view of the default list). Both edit under
:attr:`PrivacyStore.edit_lock`, and each names itself (``by``) when it writes, so a
*watcher* of the default list (:meth:`PrivacyStore.watch_default`) can tell the other
protocol's changes, which it must push to its own clients, from its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import trio
from casper.jid import JID
from casper.storage.base import RosterItem

from .model import PrivacyItem, PrivacyList, dump_list, load_list

if TYPE_CHECKING:
    from casper.server import Server

log = logging.getLogger("casper_plugins.privacy_lists")

NAME = "privacy-lists"
DEFAULT_KEY = "default"
LIST_PREFIX = "list:"
Roster = Mapping[str, RosterItem]
DefaultWatcher = Callable[[JID, PrivacyList | None, PrivacyList | None, object], None]
"""``watcher(account, before, after, by)``: the account's default list changed (its items,
or which list it is, or none any more); ``by`` is whoever wrote it."""


def _deny_all(name: str) -> PrivacyList:
    return PrivacyList(name, (PrivacyItem("deny", 0),))


def _load(account: str, name: str, text: str) -> PrivacyList:
    try:
        return load_list(name, text)
    except Exception:
        log.exception("unreadable privacy list %r of %s: denying everything", name, account)
        return _deny_all(name)


class PrivacyStore:
    """Persistence and caches of one server's privacy lists."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._defaults: dict[JID, PrivacyList] = {}
        self._lists: dict[JID, dict[str, PrivacyList]] = {}
        self._rosters: dict[JID, Roster] = {}
        self._watchers: list[DefaultWatcher] = []
        self.edit_lock = trio.Lock()
        """Held by every read-modify-write of an account's lists (either protocol), so a
        check and its change can't interleave with another edit."""

    def watch_default(self, watcher: DefaultWatcher) -> None:
        """Call ``watcher`` synchronously after every change of a default list."""
        self._watchers.append(watcher)

    def _default_changed(self, account: JID, before: PrivacyList | None,
                         after: PrivacyList | None, by: object) -> None:  # fmt: skip
        for watcher in self._watchers:
            try:
                watcher(account, before, after, by)
            except Exception:  # a push failing must not undo a stored change
                log.exception("privacy lists: a default-list watcher failed for %s", account)

    # ------------------------------------------------------------------ startup

    def load_defaults(self) -> None:
        """Read every account's default list (and its roster if the list needs one).

        Synchronous storage reads, meant for ``casper_configure``: the server is not
        listening yet, and the filters need these answers before the first stanza.
        """
        storage = self._server.storage
        for account in storage.list_accounts():
            name = storage.plugin_get(NAME, account, DEFAULT_KEY)
            if name is None:
                continue
            text = storage.plugin_get(NAME, account, LIST_PREFIX + name)
            plist = _deny_all(name) if text is None else _load(account, name, text)
            jid = JID.parse(account)
            self._defaults[jid] = plist
            if plist.roster_dependent:
                self._rosters[jid] = {i.jid: i for i in storage.get_roster(account)}

    # ------------------------------------------------------------------ synchronous reads

    def default(self, account: JID) -> PrivacyList | None:
        """The account's default list (always in memory)."""
        return self._defaults.get(account)

    def default_name(self, account: JID) -> str | None:
        plist = self._defaults.get(account)
        return None if plist is None else plist.name

    def cached(self, account: JID, name: str) -> PrivacyList | None:
        """A list of a connected account by name, ``None`` if unknown or not loaded."""
        return self._lists.get(account, {}).get(name)

    def roster(self, account: JID) -> Roster | None:
        """The core's live roster if cached, else this plugin's snapshot, else ``None``."""
        roster = self._server.rosters.cached(account)
        return roster if roster is not None else self._rosters.get(account)

    def has_snapshot(self, account: JID) -> bool:
        return account in self._rosters

    # ------------------------------------------------------------------ connected accounts

    async def lists(self, account: JID) -> dict[str, PrivacyList]:
        """Every list of ``account`` by name; cached while the account has sessions."""
        lists = self._lists.get(account)
        if lists is not None:
            return lists
        rows = await self._server.db(self._read_all, str(account))
        lists = {name: _load(str(account), name, text) for name, text in rows.items()}
        if self._server.router.sessions_of(account):
            lists = self._lists.setdefault(account, lists)
        return lists

    def _read_all(self, account: str) -> dict[str, str]:
        """Worker thread: every stored list of one account, in one storage visit."""
        storage = self._server.storage
        rows = {}
        for key in storage.plugin_keys(NAME, account):
            if key.startswith(LIST_PREFIX):
                text = storage.plugin_get(NAME, account, key)
                if text is not None:
                    rows[key.removeprefix(LIST_PREFIX)] = text
        return rows

    async def track(self, account: JID) -> None:
        """A session bound: load the lists and follow the core's cached roster."""
        await self.lists(account)
        roster = await self._server.rosters.get(account)
        if self._server.router.sessions_of(account):
            self._rosters[account] = roster

    def forget(self, account: JID) -> None:
        """The account's last session ended: keep only what offline decisions need."""
        self._lists.pop(account, None)
        default = self._defaults.get(account)
        if default is None or not default.roster_dependent:
            self._rosters.pop(account, None)

    async def refresh_roster(self, account: JID) -> None:
        """Reload an offline account's roster snapshot (changes made while offline)."""
        default = self._defaults.get(account)
        if default is None or not default.roster_dependent:
            return
        roster = await self._server.rosters.get(account)
        if not self._server.router.sessions_of(account):  # connected: the live one is used
            self._rosters[account] = roster

    # ------------------------------------------------------------------ writes

    async def put(self, account: JID, plist: PrivacyList, *, by: object = None) -> None:
        """Create or replace a list (the whole list, never a delta)."""
        storage = self._server.storage
        await self._server.db(storage.plugin_put, NAME, str(account), LIST_PREFIX + plist.name,
                              dump_list(plist))  # fmt: skip
        (await self.lists(account))[plist.name] = plist
        if self.default_name(account) == plist.name:
            await self._set_default_list(account, plist, by)

    async def remove(self, account: JID, name: str, *, by: object = None) -> None:
        """Delete a list; if it was the default, the account no longer has one."""
        storage = self._server.storage
        if self.default_name(account) == name:
            await self.set_default(account, None, by=by)
        await self._server.db(storage.plugin_delete, NAME, str(account), LIST_PREFIX + name)
        (await self.lists(account)).pop(name, None)

    async def set_default(self, account: JID, name: str | None, *, by: object = None) -> None:
        """Make ``name`` (an existing list) the default, or decline any default."""
        storage = self._server.storage
        if name is None:
            await self._server.db(storage.plugin_delete, NAME, str(account), DEFAULT_KEY)
            before = self._defaults.pop(account, None)
            if before is not None:
                self._default_changed(account, before, None, by)
            return
        plist = (await self.lists(account))[name]
        await self._server.db(storage.plugin_put, NAME, str(account), DEFAULT_KEY, name)
        await self._set_default_list(account, plist, by)

    async def _set_default_list(self, account: JID, plist: PrivacyList, by: object) -> None:
        before = self._defaults.get(account)
        self._defaults[account] = plist
        if plist.roster_dependent and account not in self._rosters:
            self._rosters[account] = await self._server.rosters.get(account)
        self._default_changed(account, before, plist, by)
