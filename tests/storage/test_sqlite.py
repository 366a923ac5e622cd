"""SQLiteStorage: every Storage method, durability across reopen, schema versioning."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from casper.sasl.scram import ScramCredentials, derive_credentials
from casper.storage import (
    SCHEMA_VERSION,
    AccountExists,
    AccountNotFound,
    RosterItem,
    SQLiteStorage,
    Storage,
    StorageError,
    open_storage,
)

ROMEO = "romeo@localhost"
JULIET = "juliet@localhost"


def creds(mechanism: str = "SCRAM-SHA-1", seed: int = 1) -> ScramCredentials:
    return derive_credentials(f"password {seed}", salt=bytes([seed]) * 16)[mechanism]


CREDS = {"SCRAM-SHA-1": creds("SCRAM-SHA-1"), "SCRAM-SHA-256": creds("SCRAM-SHA-256", 7)}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "casper.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SQLiteStorage]:
    with SQLiteStorage(db_path) as storage:
        storage.create_account(ROMEO, CREDS)
        yield storage


def test_sqlite_storage_satisfies_storage_protocol(store: SQLiteStorage) -> None:
    storage: Storage = store  # checked by mypy; at runtime just exercise it
    assert storage.account_exists(ROMEO)


# -- accounts -----------------------------------------------------------------------------------


def test_created_account_returns_its_credentials_per_mechanism(store: SQLiteStorage) -> None:
    assert store.get_credentials(ROMEO, "SCRAM-SHA-1") == CREDS["SCRAM-SHA-1"]
    assert store.get_credentials(ROMEO, "SCRAM-SHA-256") == CREDS["SCRAM-SHA-256"]
    assert store.get_credentials(ROMEO, "SCRAM-SHA-512") is None
    assert store.get_credentials(JULIET, "SCRAM-SHA-1") is None


def test_create_existing_account_raises_account_exists(store: SQLiteStorage) -> None:
    with pytest.raises(AccountExists):
        store.create_account(ROMEO, {})
    assert store.get_credentials(ROMEO, "SCRAM-SHA-1") == CREDS["SCRAM-SHA-1"]


def test_set_credentials_replaces_every_mechanism(store: SQLiteStorage) -> None:
    store.set_credentials(ROMEO, {"SCRAM-SHA-256": creds("SCRAM-SHA-256", 42)})
    assert store.get_credentials(ROMEO, "SCRAM-SHA-1") is None
    assert store.get_credentials(ROMEO, "SCRAM-SHA-256") == creds("SCRAM-SHA-256", 42)


def test_set_credentials_of_unknown_account_raises(store: SQLiteStorage) -> None:
    with pytest.raises(AccountNotFound):
        store.set_credentials(JULIET, CREDS)


def test_account_exists_and_list_accounts_sorted(store: SQLiteStorage) -> None:
    store.create_account(JULIET, CREDS)
    store.create_account("benvolio@localhost", {})
    assert store.account_exists(JULIET)
    assert not store.account_exists("tybalt@localhost")
    assert store.list_accounts() == ["benvolio@localhost", JULIET, ROMEO]


def test_delete_unknown_account_raises(store: SQLiteStorage) -> None:
    with pytest.raises(AccountNotFound):
        store.delete_account(JULIET)


def test_delete_account_removes_everything_of_that_account_only(store: SQLiteStorage) -> None:
    store.create_account(JULIET, CREDS)
    for jid, other in ((ROMEO, JULIET), (JULIET, ROMEO)):
        store.put_roster_item(jid, RosterItem(other, groups=("Verona",)))
        store.add_pending_subscription(jid, "nurse@localhost", "<presence/>")
        store.store_offline(jid, "<message/>", 1.0)
        store.set_last_activity(jid, 2.0, "gone")
        store.plugin_put("privacy", jid, "list", "{}")
    store.delete_account(ROMEO)

    assert not store.account_exists(ROMEO)
    assert store.get_credentials(ROMEO, "SCRAM-SHA-1") is None
    assert store.get_roster(ROMEO) == []
    assert store.get_roster_version(ROMEO) == 0
    assert store.get_pending_subscriptions(ROMEO) == []
    assert store.count_offline(ROMEO) == 0
    assert store.get_last_activity(ROMEO) is None
    assert store.plugin_keys("privacy", ROMEO) == []
    assert store.get_roster(JULIET) == [RosterItem(ROMEO, groups=("Verona",))]
    assert store.count_offline(JULIET) == 1
    assert store.plugin_get("privacy", JULIET, "list") == "{}"


def test_recreated_account_starts_empty(store: SQLiteStorage) -> None:
    store.put_roster_item(ROMEO, RosterItem(JULIET))
    store.delete_account(ROMEO)
    store.create_account(ROMEO, CREDS)
    assert store.get_roster(ROMEO) == []


# -- roster -------------------------------------------------------------------------------------


def test_roster_item_round_trips_every_field(store: SQLiteStorage) -> None:
    item = RosterItem(
        JULIET, name="Juliet ♥", subscription="both", ask=True, approved=True, groups=("a", "b")
    )
    store.put_roster_item(ROMEO, item)
    assert store.get_roster(ROMEO) == [item]


def test_put_roster_item_replaces_same_contact(store: SQLiteStorage) -> None:
    store.put_roster_item(ROMEO, RosterItem(JULIET, name="J", groups=("x",)))
    store.put_roster_item(ROMEO, RosterItem(JULIET, subscription="to"))
    assert store.get_roster(ROMEO) == [RosterItem(JULIET, subscription="to")]


def test_roster_is_ordered_by_contact(store: SQLiteStorage) -> None:
    for contact in ("tybalt@x", "benvolio@x", "mercutio@x"):
        store.put_roster_item(ROMEO, RosterItem(contact))
    assert [i.jid for i in store.get_roster(ROMEO)] == ["benvolio@x", "mercutio@x", "tybalt@x"]


def test_delete_roster_item_removes_only_that_contact(store: SQLiteStorage) -> None:
    store.put_roster_item(ROMEO, RosterItem(JULIET))
    store.put_roster_item(ROMEO, RosterItem("nurse@localhost"))
    store.delete_roster_item(ROMEO, JULIET)
    store.delete_roster_item(ROMEO, "absent@localhost")
    assert store.get_roster(ROMEO) == [RosterItem("nurse@localhost")]


def test_roster_version_increments_on_every_put_and_delete(store: SQLiteStorage) -> None:
    assert store.get_roster_version(ROMEO) == 0
    store.put_roster_item(ROMEO, RosterItem(JULIET))
    store.put_roster_item(ROMEO, RosterItem(JULIET, name="J"))
    store.delete_roster_item(ROMEO, JULIET)
    assert store.get_roster_version(ROMEO) == 3


def test_roster_item_rejects_unknown_subscription() -> None:
    with pytest.raises(ValueError, match="subscription"):
        RosterItem(JULIET, subscription="sometimes")


# -- pending subscriptions ----------------------------------------------------------------------


def test_pending_subscriptions_in_arrival_order(store: SQLiteStorage) -> None:
    store.add_pending_subscription(ROMEO, "tybalt@x", "<presence id='1'/>")
    store.add_pending_subscription(ROMEO, "benvolio@x", "<presence id='2'/>")
    assert store.get_pending_subscriptions(ROMEO) == [
        ("tybalt@x", "<presence id='1'/>"),
        ("benvolio@x", "<presence id='2'/>"),
    ]


def test_pending_subscription_from_same_sender_is_replaced(store: SQLiteStorage) -> None:
    store.add_pending_subscription(ROMEO, JULIET, "<presence id='old'/>")
    store.add_pending_subscription(ROMEO, "nurse@x", "<presence/>")
    store.add_pending_subscription(ROMEO, JULIET, "<presence id='new'/>")
    assert store.get_pending_subscriptions(ROMEO) == [
        ("nurse@x", "<presence/>"),
        (JULIET, "<presence id='new'/>"),
    ]


def test_remove_pending_subscription(store: SQLiteStorage) -> None:
    store.add_pending_subscription(ROMEO, JULIET, "<presence/>")
    store.remove_pending_subscription(ROMEO, JULIET)
    store.remove_pending_subscription(ROMEO, "absent@x")
    assert store.get_pending_subscriptions(ROMEO) == []


# -- offline messages ---------------------------------------------------------------------------


def test_pop_offline_returns_arrival_order_and_empties_the_queue(store: SQLiteStorage) -> None:
    store.store_offline(ROMEO, "<message id='1'/>", 20.5)
    store.store_offline(ROMEO, "<message id='2'/>", 10.25)
    assert store.count_offline(ROMEO) == 2
    assert store.pop_offline(ROMEO) == [("<message id='1'/>", 20.5), ("<message id='2'/>", 10.25)]
    assert store.count_offline(ROMEO) == 0
    assert store.pop_offline(ROMEO) == []


def test_pop_offline_is_atomic_under_concurrent_pops(store: SQLiteStorage) -> None:
    for n in range(200):
        store.store_offline(ROMEO, f"<message id='{n}'/>", float(n))
    popped: list[list[tuple[str, float]]] = []
    threads = [
        threading.Thread(target=lambda: popped.append(store.pop_offline(ROMEO))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(batch) for batch in popped) == [0] * 7 + [200]


def test_offline_queues_are_per_account(store: SQLiteStorage) -> None:
    store.create_account(JULIET, {})
    store.store_offline(JULIET, "<message/>", 1.0)
    assert store.count_offline(ROMEO) == 0
    assert store.pop_offline(ROMEO) == []
    assert store.count_offline(JULIET) == 1


# -- last activity ------------------------------------------------------------------------------


def test_last_activity_round_trips_and_is_replaced(store: SQLiteStorage) -> None:
    assert store.get_last_activity(ROMEO) is None
    store.set_last_activity(ROMEO, 1000.5, "Parting is such sweet sorrow")
    store.set_last_activity(ROMEO, 2000.0, None)
    assert store.get_last_activity(ROMEO) == (2000.0, None)


# -- plugin data --------------------------------------------------------------------------------


def test_plugin_data_put_get_keys_delete(store: SQLiteStorage) -> None:
    store.plugin_put("privacy", ROMEO, "b", "2")
    store.plugin_put("privacy", ROMEO, "a", "1")
    store.plugin_put("privacy", ROMEO, "a", "one")
    store.plugin_put("blocking", ROMEO, "a", "other plugin")
    assert store.plugin_get("privacy", ROMEO, "a") == "one"
    assert store.plugin_keys("privacy", ROMEO) == ["a", "b"]
    store.plugin_delete("privacy", ROMEO, "a")
    store.plugin_delete("privacy", ROMEO, "absent")
    assert store.plugin_get("privacy", ROMEO, "a") is None
    assert store.plugin_keys("privacy", ROMEO) == ["b"]
    assert store.plugin_get("blocking", ROMEO, "a") == "other plugin"


# -- writes for unknown accounts ----------------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.put_roster_item(JULIET, RosterItem(ROMEO)),
        lambda s: s.delete_roster_item(JULIET, ROMEO),
        lambda s: s.add_pending_subscription(JULIET, ROMEO, "<presence/>"),
        lambda s: s.store_offline(JULIET, "<message/>", 1.0),
        lambda s: s.set_last_activity(JULIET, 1.0, None),
        lambda s: s.plugin_put("p", JULIET, "k", "v"),
    ],
)
def test_per_account_write_for_unknown_account_raises(store: SQLiteStorage, write) -> None:
    with pytest.raises(AccountNotFound):
        write(store)


def test_reads_for_unknown_account_are_empty(store: SQLiteStorage) -> None:
    assert store.get_roster(JULIET) == []
    assert store.get_roster_version(JULIET) == 0
    assert store.get_pending_subscriptions(JULIET) == []
    assert store.count_offline(JULIET) == 0
    assert store.plugin_keys("p", JULIET) == []


# -- durability, schema, lifecycle --------------------------------------------------------------


def test_everything_survives_close_and_reopen(db_path: Path) -> None:
    item = RosterItem(JULIET, name="J", subscription="from", approved=True, groups=("g",))
    with SQLiteStorage(db_path) as first:
        first.create_account(ROMEO, CREDS)
        first.put_roster_item(ROMEO, item)
        first.add_pending_subscription(ROMEO, JULIET, "<presence/>")
        first.store_offline(ROMEO, "<message/>", 3.5)
        first.set_last_activity(ROMEO, 4.0, "away")
        first.plugin_put("p", ROMEO, "k", "v")
    with SQLiteStorage(db_path) as second:
        assert second.get_credentials(ROMEO, "SCRAM-SHA-256") == CREDS["SCRAM-SHA-256"]
        assert second.get_roster(ROMEO) == [item]
        assert second.get_roster_version(ROMEO) == 1
        assert second.get_pending_subscriptions(ROMEO) == [(JULIET, "<presence/>")]
        assert second.pop_offline(ROMEO) == [("<message/>", 3.5)]
        assert second.get_last_activity(ROMEO) == (4.0, "away")
        assert second.plugin_get("p", ROMEO, "k") == "v"


def test_writes_are_visible_to_a_second_connection_without_close(store, db_path) -> None:
    store.store_offline(ROMEO, "<message/>", 1.0)
    with SQLiteStorage(db_path) as other:
        assert other.count_offline(ROMEO) == 1


def test_database_uses_wal_and_current_schema_version(store, db_path: Path) -> None:
    assert store.schema_version == SCHEMA_VERSION
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()


def test_newer_schema_version_is_refused(db_path: Path) -> None:
    SQLiteStorage(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        SQLiteStorage(db_path)


def test_file_that_is_not_a_database_raises_storage_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="cannot open database"):
        SQLiteStorage(db_path)


def test_in_memory_database_works() -> None:
    with SQLiteStorage(":memory:") as storage:
        storage.create_account(ROMEO, CREDS)
        assert storage.list_accounts() == [ROMEO]


def test_open_storage_creates_data_dir_and_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    with open_storage(data_dir) as storage:
        storage.create_account(ROMEO, {})
    assert (data_dir / "casper.sqlite3").is_file()


async def test_methods_run_in_worker_threads(store: SQLiteStorage) -> None:
    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(trio.to_thread.run_sync, store.store_offline, ROMEO, f"<m{n}/>", 0.0)
    assert store.count_offline(ROMEO) == 20


def test_service_data_is_kept_per_plugin_independent_of_accounts(tmp_path: Path) -> None:
    path = tmp_path / "casper.sqlite3"
    with SQLiteStorage(path) as storage:
        storage.service_put("muc", "room@conference.localhost", "{}")
        storage.service_put("muc", "another@conference.localhost", "{1}")
        storage.service_put("other", "room@conference.localhost", "x")
        storage.service_delete("muc", "another@conference.localhost")
    with SQLiteStorage(path) as storage:  # durable across reopening
        assert storage.service_keys("muc") == ["room@conference.localhost"]
        assert storage.service_get("muc", "room@conference.localhost") == "{}"
        assert storage.service_get("other", "room@conference.localhost") == "x"
        assert storage.service_get("muc", "another@conference.localhost") is None


def test_version_1_database_is_upgraded_keeping_its_data(tmp_path: Path) -> None:
    import sqlite3

    from casper.storage.sqlite import _MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    _MIGRATIONS[0](db)
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO accounts (jid) VALUES ('romeo@localhost')")
    db.commit()
    db.close()
    with SQLiteStorage(path) as storage:
        assert storage.schema_version == 2
        assert storage.list_accounts() == ["romeo@localhost"]
        storage.service_put("muc", "k", "v")
        assert storage.service_get("muc", "k") == "v"
