"""Rooms in storage: what survives a restart, as JSON in the storage plugin KV.

What is kept of a persistent room: ``{"version": 1, "config": {...}, "affiliations":
{bare JID: affiliation}, "subject": ..., "subject_by": ...}``. Occupants, history and
pending invitations are not: after a restart a room is empty, configured and unlocked,
with its owners, admins, members and outcasts.

Where: the core's plugin KV (``Storage.plugin_put(plugin, jid, key, value)``) only takes
the JID of an existing *account* (rows are deleted with the account), and a room is not
one. So each room is anchored to one of its owners that is a local account — the first in
JID order — under plugin ``muc`` with the room's JID as the key. When that owner stops
being one, the room moves to the next; a room with no local owner account can't be kept
(logged). Loading reads every account's ``muc`` keys once at startup. Deleting the anchor
account deletes the stored room with it.

The functions here take the storage object and run in a worker thread (``Server.db``);
there is no trio in this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from casper.jid import JID
from casper.storage.base import Storage

from .model import AFFILIATIONS, Room, RoomConfig

NAME = "muc"
VERSION = 1
log = logging.getLogger("casper_plugins.muc")


def dump(room: Room) -> str:
    return json.dumps(
        {
            "version": VERSION,
            "config": dataclasses.asdict(room.config),
            "affiliations": {str(jid): a for jid, a in sorted(room.affiliations.items(), key=str)},
            "subject": room.subject,
            "subject_by": room.subject_by,
        },
        sort_keys=True,
    )


def load(jid: JID, text: str, *, history_size: int) -> Room:
    """Rebuild a stored room; raise ``ValueError`` for a value this version can't read."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"unknown stored room format for {jid}")
    known = {f.name for f in dataclasses.fields(RoomConfig)}
    config = RoomConfig(**{k: v for k, v in data.get("config", {}).items() if k in known})
    room = Room(jid, config, history_size=history_size)
    for member, affiliation in data.get("affiliations", {}).items():
        if affiliation in AFFILIATIONS:
            room.set_affiliation(JID.parse(member), affiliation)
    room.subject = str(data.get("subject") or "")
    subject_by = data.get("subject_by")
    room.subject_by = str(subject_by) if subject_by else None
    return room


def anchors(room: Room, server_domain: str) -> list[str]:
    """The accounts a room may be stored under, in order: its local owners."""
    return [str(j) for j in room.with_affiliation("owner") if j.domain == server_domain and j.local]


def save(storage: Storage, room: JID, candidates: list[str], previous: str | None,
         value: str) -> str | None:  # fmt: skip
    """Store ``value`` under the first candidate account that exists, removing the copy
    under ``previous`` if the anchor moved; return the anchor (``previous`` if none of
    the candidates exists: the older copy is kept rather than nothing)."""
    key = str(room)
    for account in candidates:
        if storage.account_exists(account):
            storage.plugin_put(NAME, account, key, value)
            if previous is not None and previous != account:
                storage.plugin_delete(NAME, previous, key)
            return account
    log.warning("room %s has no local owner account to be stored under; not saved", room)
    return previous


def delete(storage: Storage, room: JID, anchor: str) -> None:
    storage.plugin_delete(NAME, anchor, str(room))


def stored_rooms(storage: Storage, service_domain: str) -> list[tuple[str, JID, str]]:
    """Every stored room of ``service_domain``: ``(anchor account, room JID, value)``."""
    found = []
    for account in storage.list_accounts():
        for key in storage.plugin_keys(NAME, account):
            try:
                room = JID.parse(key)
            except ValueError:
                continue
            if room.domain == service_domain and room.local and room.resource is None:
                value = storage.plugin_get(NAME, account, key)
                if value is not None:
                    found.append((account, room, value))
    return found
