"""Persistent state: accounts, rosters, subscriptions, offline messages, plugin data."""

from __future__ import annotations

from pathlib import Path

from casper.storage.base import AccountExists as AccountExists
from casper.storage.base import AccountNotFound as AccountNotFound
from casper.storage.base import RosterItem as RosterItem
from casper.storage.base import Storage as Storage
from casper.storage.base import StorageError as StorageError
from casper.storage.sqlite import SCHEMA_VERSION as SCHEMA_VERSION
from casper.storage.sqlite import SQLiteStorage as SQLiteStorage

DATABASE_NAME = "casper.sqlite3"


def open_storage(data_dir: Path) -> SQLiteStorage:
    """Open (creating if needed) the database ``data_dir / "casper.sqlite3"``.

    :param data_dir: the server's data directory; created with its parents if missing.
    :raises StorageError: if the database cannot be used.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteStorage(data_dir / DATABASE_NAME)
