"""Rooms in storage: what survives a restart, as JSON in the storage plugin KV.

One value per persistent room, under plugin ``muc``, the service's domain as the JID and
the room's localpart as the key: ``{"version": 1, "config": {...}, "affiliations":
{bare JID: affiliation}, "subject": ..., "subject_by": ...}``. Occupants, history and
pending invitations are not kept: after a restart a room is empty, configured and
unlocked, with its owners, admins, members and outcasts. Sans-IO.
"""

from __future__ import annotations

import dataclasses
import json

from casper.jid import JID

from .model import AFFILIATIONS, Room, RoomConfig

NAME = "muc"
VERSION = 1


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
