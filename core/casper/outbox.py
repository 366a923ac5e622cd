"""A session's outbox: the writer's batches, their encoding, and what is left when it stops.

The writer takes the next item and whatever else is already queued (up to :data:`BATCH`)
and writes them in one send. While it waits on an empty outbox, the session's
``writer_idle`` is set, so a stanza can be written by the task delivering it
(:meth:`casper.session.Session.deliver_nowait`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

import trio

from . import stream_management as sm
from .errors import StreamError
from .session import Kept, Outgoing, Session, StreamData
from .stanza import Stanza
from .xml import serialize

BATCH = 256  # queued items coalesced into one write


async def next_batch(
    receive: trio.MemoryReceiveChannel[Outgoing], session: Session
) -> list[Outgoing]:
    """The next item and whatever else is queued (up to BATCH); empty at the channel's end.
    The session's ``writer_idle`` is set while waiting on an empty outbox."""
    try:
        batch = [await _receive_marking_idle(receive, session)]
    except trio.EndOfChannel:
        return []
    while len(batch) < BATCH:
        try:
            batch.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return batch


async def _receive_marking_idle(
    receive: trio.MemoryReceiveChannel[Outgoing], session: Session
) -> Outgoing:
    try:
        return receive.receive_nowait()
    except trio.WouldBlock:
        pass
    session.writer_idle = True
    try:
        return await receive.receive()
    finally:
        session.writer_idle = False


def drain(receive: trio.MemoryReceiveChannel[Outgoing]) -> list[Outgoing]:
    items = []
    while True:
        try:
            items.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return items


def worth_keeping(item: Outgoing) -> TypeGuard[Kept]:
    """Stanzas outlive a stream; bytes for it don't (a counted iq answer is a stanza)."""
    return isinstance(item, Stanza) or (isinstance(item, StreamData) and item.counted)


def encode(batch: Sequence[Outgoing], session: Session) -> tuple[bytes, list[Kept]]:
    """Serialize ``batch``, counting what the client counts (XEP-0198 rule 3); also
    return the stanzas not counted, which only the write itself delivers. A stanza that
    cannot be serialized raises before anything is counted."""
    data = b"".join(
        item if isinstance(item, bytes)
        else serialize(item.element) if isinstance(item, Stanza)
        else item.data
        for item in batch
    )  # fmt: skip
    uncounted = []
    for item in batch:
        if isinstance(item, bytes):
            continue
        if isinstance(item, StreamData):
            if item.enables_sm:
                session.sm.start_counting()  # every stanza after <enabled/> counts
                continue
            if not item.counted:
                continue
        if not session.sm.sent(item):
            uncounted.append(item)
    return data, uncounted


def encode_with_request(batch: Sequence[Outgoing], session: Session) -> tuple[bytes, list[Kept]]:
    """:func:`encode`, with ``<r/>`` added when many stanzas wait for an ack."""
    data, uncounted = encode(batch, session)
    if session.sm.unrequested >= max(1, session.sm.max_unacked // 8):
        data += sm.REQUEST_DATA  # many wait: ask now
        session.sm.request_sent()
    return data, uncounted


def close_if_over_limit(session: Session) -> None:
    if session.sm.over_limit:
        session.close(StreamError("resource-constraint", "too many unacknowledged stanzas"))
