"""Rooms in storage: what survives a restart, as JSON in the core's service storage.

What is kept of a persistent room: ``{"version": 1, "config": {...}, "affiliations":
{bare JID: affiliation}, "subject": ..., "subject_by": ...}``. Occupants, history and
pending invitations are not: after a restart a room is empty, configured and unlocked,
with its owners, admins, members and outcasts.

Where: the core's service storage (``Storage.service_put(plugin, key, value)``), data of
the server's services that belongs to no account, under plugin ``muc`` with the room's
bare JID as the key. A room is stored whoever owns it — a local account, a remote JID, or
an account since deleted — and stays until it is destroyed or made temporary. Loading
reads the ``muc`` keys (``service_keys``) once at startup and keeps those of this
service's domain.

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


def save(storage: Storage, room: JID, value: str) -> None:
    """Store ``value`` (from :func:`dump`) as the room ``room``, replacing any older copy."""
    storage.service_put(NAME, str(room), value)


def delete(storage: Storage, room: JID) -> None:
    """Forget the stored room ``room``; an absent room is ignored."""
    storage.service_delete(NAME, str(room))


def stored_rooms(storage: Storage, service_domain: str) -> list[tuple[JID, str]]:
    """Every stored room of ``service_domain``: ``(room JID, value)``, in key order.

    Keys that are not a room JID of this service are skipped (logged)."""
    found = []
    for key in storage.service_keys(NAME):
        try:
            room = JID.parse(key)
        except ValueError:
            log.warning("stored MUC key %r is not a JID; skipped", key)
            continue
        if room.domain != service_domain:
            continue  # another MUC service's room
        if room.local is None or room.resource is not None:
            log.warning("stored MUC key %r is not a room JID; skipped", key)
            continue
        value = storage.service_get(NAME, key)
        if value is not None:
            found.append((room, value))
    return found
