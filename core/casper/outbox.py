"""Reading a session's outbox: the writer's batches, and what is left when it stops.

The writer takes the next item and whatever else is already queued (up to :data:`BATCH`)
and writes them in one send. While it waits on an empty outbox, the session's
``writer_idle`` is set, so a stanza can be written by the task delivering it
(:meth:`casper.session.Session.deliver_nowait`).
"""

from __future__ import annotations

from typing import TypeGuard

import trio

from .session import Kept, Outgoing, Session, StreamData
from .stanza import Stanza

BATCH = 256  # queued items coalesced into one write


async def next_batch(
    receive: trio.MemoryReceiveChannel[Outgoing], session: Session | None = None
) -> list[Outgoing]:
    """The next item and whatever else is queued (up to BATCH); empty at the channel's end.
    With ``session``, its ``writer_idle`` is set while waiting on an empty outbox."""
    try:
        if session is None:
            batch = [await receive.receive()]
        else:
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
