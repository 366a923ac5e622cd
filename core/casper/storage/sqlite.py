"""SQLite implementation of :class:`casper.storage.base.Storage` (stdlib ``sqlite3``).

One connection, shared by worker threads and serialised by a lock. Every write runs in its own
``BEGIN IMMEDIATE`` transaction and commits before the method returns. The database runs in
WAL mode with ``synchronous=NORMAL``: a crash of the process never loses a committed write; a
power failure may lose the last few.

Schema versions live in ``PRAGMA user_version``. ``_MIGRATIONS[n]`` upgrades version ``n`` to
``n + 1``; new versions are added by appending a function, never by editing an old one.

Per-account rows reference ``accounts`` with ``ON DELETE CASCADE``, so deleting an account
deletes everything stored for it. Writing per-account data for an unknown account raises
:class:`AccountNotFound`; reading it returns an empty result.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from casper.sasl.scram import ScramCredentials
from casper.storage.base import AccountExists, AccountNotFound, RosterItem, StorageError

BUSY_TIMEOUT = 10.0  # seconds to wait for another process's write lock (e.g. the CLI)


def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE accounts (
            jid TEXT PRIMARY KEY,
            roster_version INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute(
        """CREATE TABLE credentials (
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            mechanism TEXT NOT NULL,
            salt BLOB NOT NULL,
            iterations INTEGER NOT NULL,
            stored_key BLOB NOT NULL,
            server_key BLOB NOT NULL,
            PRIMARY KEY (account, mechanism)
        )"""
    )
    db.execute(
        """CREATE TABLE roster (
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            contact TEXT NOT NULL,
            name TEXT,
            subscription TEXT NOT NULL
                CHECK (subscription IN ('none', 'to', 'from', 'both')),
            ask INTEGER NOT NULL,
            approved INTEGER NOT NULL,
            groups_json TEXT NOT NULL,
            PRIMARY KEY (account, contact)
        )"""
    )
    db.execute(
        """CREATE TABLE pending_subscriptions (
            seq INTEGER PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            from_jid TEXT NOT NULL,
            stanza_xml TEXT NOT NULL,
            UNIQUE (account, from_jid)
        )"""
    )
    db.execute(
        """CREATE TABLE offline (
            seq INTEGER PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            stanza_xml TEXT NOT NULL,
            stamp REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX offline_account ON offline (account, seq)")
    db.execute(
        """CREATE TABLE last_activity (
            account TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
            stamp REAL NOT NULL,
            status TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE plugin_data (
            plugin TEXT NOT NULL,
            account TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (plugin, account, key)
        )"""
    )
    db.execute("CREATE INDEX plugin_data_account ON plugin_data (account)")


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Data of services that are not accounts (e.g. a MUC service's rooms)."""
    db.execute(
        """CREATE TABLE service_data (
            plugin TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (plugin, key)
        )"""
    )


_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_0_to_1, _migrate_1_to_2)
SCHEMA_VERSION = len(_MIGRATIONS)


class SQLiteStorage:
    """Keep Casper's persistent state in one SQLite file.

    :param path: the database file, created if missing, or ``":memory:"``.
    :raises StorageError: if the file was written by a newer Casper or is not a database.

    Resource handling: call :meth:`close` (or use the object as a context manager).
    """

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            self._configure()
            self._migrate(str(path))
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StorageError(f"cannot open database {str(path)!r}: {exc}") from exc
        except BaseException:
            self._db.close()
            raise

    def _configure(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def _migrate(self, where: str) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"database {where!r} has schema version {version}, but this Casper only "
                    f"knows versions up to {SCHEMA_VERSION}; upgrade Casper"
                )
            for migrate in _MIGRATIONS[version:]:
                migrate(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION:d}")

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self._read("PRAGMA user_version")[0][0])

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one immediate transaction; commit on success, roll back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @staticmethod
    def _require_account(db: sqlite3.Connection, jid: str) -> None:
        if db.execute("SELECT 1 FROM accounts WHERE jid = ?", (jid,)).fetchone() is None:
            raise AccountNotFound(jid)

    @staticmethod
    def _insert_credentials(
        db: sqlite3.Connection, jid: str, credentials: Mapping[str, ScramCredentials]
    ) -> None:
        db.executemany(
            "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?)",
            [
                (jid, mech, c.salt, c.iterations, c.stored_key, c.server_key)
                for mech, c in credentials.items()
            ],
        )

    # -- accounts -------------------------------------------------------------------------------

    def create_account(self, jid: str, credentials: Mapping[str, ScramCredentials]) -> None:
        with self._write() as db:
            try:
                db.execute("INSERT INTO accounts (jid) VALUES (?)", (jid,))
            except sqlite3.IntegrityError:
                raise AccountExists(jid) from None
            self._insert_credentials(db, jid, credentials)

    def set_credentials(self, jid: str, credentials: Mapping[str, ScramCredentials]) -> None:
        with self._write() as db:
            self._require_account(db, jid)
            db.execute("DELETE FROM credentials WHERE account = ?", (jid,))
            self._insert_credentials(db, jid, credentials)

    def delete_account(self, jid: str) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM accounts WHERE jid = ?", (jid,)).rowcount == 0:
                raise AccountNotFound(jid)

    def get_credentials(self, jid: str, mechanism: str) -> ScramCredentials | None:
        rows = self._read(
            "SELECT salt, iterations, stored_key, server_key FROM credentials"
            " WHERE account = ? AND mechanism = ?",
            (jid, mechanism),
        )
        if not rows:
            return None
        salt, iterations, stored_key, server_key = rows[0]
        return ScramCredentials(
            mechanism=mechanism,
            salt=bytes(salt),
            iterations=int(iterations),
            stored_key=bytes(stored_key),
            server_key=bytes(server_key),
        )

    def account_exists(self, jid: str) -> bool:
        return bool(self._read("SELECT 1 FROM accounts WHERE jid = ?", (jid,)))

    def list_accounts(self) -> list[str]:
        return [str(row[0]) for row in self._read("SELECT jid FROM accounts ORDER BY jid")]

    # -- roster ---------------------------------------------------------------------------------

    def get_roster(self, jid: str) -> list[RosterItem]:
        rows = self._read(
            "SELECT contact, name, subscription, ask, approved, groups_json FROM roster"
            " WHERE account = ? ORDER BY contact",
            (jid,),
        )
        return [
            RosterItem(
                jid=str(contact),
                name=None if name is None else str(name),
                subscription=str(subscription),
                ask=bool(ask),
                approved=bool(approved),
                groups=tuple(json.loads(str(groups))),
            )
            for contact, name, subscription, ask, approved, groups in rows
        ]

    def put_roster_item(self, jid: str, item: RosterItem) -> None:
        with self._write() as db:
            self._require_account(db, jid)
            db.execute(
                "INSERT OR REPLACE INTO roster VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    jid,
                    item.jid,
                    item.name,
                    item.subscription,
                    int(item.ask),
                    int(item.approved),
                    json.dumps(list(item.groups)),
                ),
            )
            self._bump_roster_version(db, jid)

    def delete_roster_item(self, jid: str, contact: str) -> None:
        with self._write() as db:
            self._require_account(db, jid)
            db.execute("DELETE FROM roster WHERE account = ? AND contact = ?", (jid, contact))
            self._bump_roster_version(db, jid)

    @staticmethod
    def _bump_roster_version(db: sqlite3.Connection, jid: str) -> None:
        db.execute("UPDATE accounts SET roster_version = roster_version + 1 WHERE jid = ?", (jid,))

    def get_roster_version(self, jid: str) -> int:
        rows = self._read("SELECT roster_version FROM accounts WHERE jid = ?", (jid,))
        return int(rows[0][0]) if rows else 0

    # -- pending inbound subscription requests ---------------------------------------------------

    def add_pending_subscription(self, jid: str, from_jid: str, stanza_xml: str) -> None:
        with self._write() as db:
            self._require_account(db, jid)
            db.execute(
                "DELETE FROM pending_subscriptions WHERE account = ? AND from_jid = ?",
                (jid, from_jid),
            )
            db.execute(
                "INSERT INTO pending_subscriptions (account, from_jid, stanza_xml)"
                " VALUES (?, ?, ?)",
                (jid, from_jid, stanza_xml),
            )

    def remove_pending_subscription(self, jid: str, from_jid: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM pending_subscriptions WHERE account = ? AND from_jid = ?",
                (jid, from_jid),
            )

    def get_pending_subscriptions(self, jid: str) -> list[tuple[str, str]]:
        rows = self._read(
            "SELECT from_jid, stanza_xml FROM pending_subscriptions WHERE account = ? ORDER BY seq",
            (jid,),
        )
        return [(str(from_jid), str(xml)) for from_jid, xml in rows]

    # -- offline messages -----------------------------------------------------------------------

    def store_offline(self, jid: str, stanza_xml: str, stamp: float) -> None:
        with self._write() as db:
            self._require_account(db, jid)
            db.execute(
                "INSERT INTO offline (account, stanza_xml, stamp) VALUES (?, ?, ?)",
                (jid, stanza_xml, stamp),
            )

    def pop_offline(self, jid: str) -> list[tuple[str, float]]:
        with self._write() as db:
            rows = db.execute(
                "SELECT stanza_xml, stamp FROM offline WHERE account = ? ORDER BY seq", (jid,)
            ).fetchall()
            db.execute("DELETE FROM offline WHERE account = ?", (jid,))
        return [(str(xml), float(stamp)) for xml, stamp in rows]

    def count_offline(self, jid: str) -> int:
        return int(self._read("SELECT COUNT(*) FROM offline WHERE account = ?", (jid,))[0][0])

    # -- last activity --------------------------------------------------------------------------

    def set_last_activity(self, jid: str, stamp: float, status: str | None) -> None:
        with self._write() as db:
            self._require_account(db, jid)
            db.execute(
                "INSERT OR REPLACE INTO last_activity VALUES (?, ?, ?)", (jid, stamp, status)
            )

    def get_last_activity(self, jid: str) -> tuple[float, str | None] | None:
        rows = self._read("SELECT stamp, status FROM last_activity WHERE account = ?", (jid,))
        if not rows:
            return None
        stamp, status = rows[0]
        return float(stamp), None if status is None else str(status)

    # -- plugin data ----------------------------------------------------------------------------

    def plugin_get(self, plugin: str, jid: str, key: str) -> str | None:
        rows = self._read(
            "SELECT value FROM plugin_data WHERE plugin = ? AND account = ? AND key = ?",
            (plugin, jid, key),
        )
        return str(rows[0][0]) if rows else None

    def plugin_put(self, plugin: str, jid: str, key: str, value: str) -> None:
        with self._write() as db:
            self._require_account(db, jid)
            db.execute(
                "INSERT OR REPLACE INTO plugin_data VALUES (?, ?, ?, ?)", (plugin, jid, key, value)
            )

    def plugin_delete(self, plugin: str, jid: str, key: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM plugin_data WHERE plugin = ? AND account = ? AND key = ?",
                (plugin, jid, key),
            )

    def plugin_keys(self, plugin: str, jid: str) -> list[str]:
        rows = self._read(
            "SELECT key FROM plugin_data WHERE plugin = ? AND account = ? ORDER BY key",
            (plugin, jid),
        )
        return [str(row[0]) for row in rows]

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- service data (not tied to an account) --------------------------------------------------

    def service_get(self, plugin: str, key: str) -> str | None:
        rows = self._read(
            "SELECT value FROM service_data WHERE plugin = ? AND key = ?", (plugin, key)
        )
        return rows[0][0] if rows else None

    def service_put(self, plugin: str, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO service_data (plugin, key, value) VALUES (?, ?, ?)",
                (plugin, key, value),
            )

    def service_delete(self, plugin: str, key: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM service_data WHERE plugin = ? AND key = ?", (plugin, key))

    def service_keys(self, plugin: str) -> list[str]:
        rows = self._read("SELECT key FROM service_data WHERE plugin = ? ORDER BY key", (plugin,))
        return [row[0] for row in rows]
