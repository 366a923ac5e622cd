"""A bound client session: its address, presence state and outbox.

While a connection is attached, its task (:mod:`casper.connection`) owns the receiving end
of the outbox; the router delivers with :meth:`Session.deliver_nowait` and never awaits one
recipient. A session can outlive its connection: with XEP-0198 resumption it stays bound
while detached, and what is delivered to it is kept in its stream management queue
(:attr:`Session.sm`) until a new connection takes it over or it ends for good
(:mod:`casper.resumption`). Nothing delivered to a session is dropped here: what cannot be
written is kept, and handed to the offline-equivalent path when the session ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .corks import CORK_LIMIT
from .errors import StreamError
from .jid import JID
from .stanza import Stanza
from .stream_management import StreamManagement

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("casper.session")
T = TypeVar("T")


@dataclass(frozen=True)
class StreamData:
    """Bytes for the attached stream only: never resent on another stream, never rescued."""

    data: bytes
    counted: bool = False  #: the client counts it as a stanza (a session iq's answer)
    enables_sm: bool = False  #: ``<enabled/>``: outbound counting starts once it is written


Outgoing = Stanza | bytes | StreamData
Kept = Stanza | StreamData  # what the stream management queue holds


class SessionOutbox:
    """``await session.outbox.send(stanza)``: deliver, waiting for room instead of ending
    the session when the outbox is full (offline delivery uses it).

    :raises trio.ClosedResourceError: the session has ended, or its connection went away
        while waiting (the stanza was not taken).
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    async def send(self, stanza: Stanza) -> None:
        session = self._session
        channel = session._channel
        if session.ended:
            raise trio.ClosedResourceError("the session has ended")
        if channel is None or session.closing is not None:
            await trio.lowlevel.checkpoint()
            session._keep(stanza)
            return
        session.flush_corked()  # what this step delivered before goes first
        session.writer_idle = False  # the writer takes it: what follows queues behind it
        try:
            await channel.send(stanza)
        except trio.BrokenResourceError:
            raise trio.ClosedResourceError("the connection went away") from None


class Session:
    """State of one bound resource.

    Presence bookkeeping (RFC 6121 §4):

    - ``available``: sent available broadcast presence and not since unavailable.
    - ``presence``: the last available broadcast presence (``from`` stamped).
    - ``directed_to``: entities sent directed available presence, not since unavailable.
    - ``seen_by``: every entity that currently believes this session is available, i.e.
      got an available presence from it (broadcast or directed). Unavailable goes to
      exactly these and no one else, so nobody learns of a login they never saw.
    - ``heard``: the other way round: the full JIDs of the served domain whose available
      presence was routed to this session (whether or not a filter let it through) and
      not since unavailable. A strategy that starts or stops blocking inbound presence
      knows from it whom to send unavailable or current presence, without looking at
      other accounts' sessions (which may live on another worker).

    Connection bookkeeping: ``closing`` (ended for good, with this stream error),
    ``transport_lost`` (the attached connection's transport broke), ``taken_over`` (a
    resuming connection wants it), ``unbound`` (:meth:`Server.unbind` took it off the
    routing table; set once, before its unavailable presence goes out), ``ended`` (its end
    has been carried out).
    """

    # over 30 attributes: without slots each session's dict stops sharing its keys (1.6 KB)
    __slots__ = (
        "__weakref__",
        "_channel",
        "_closed",
        "_corked",
        "_ended",
        "_on_stop",
        "_plugin_state",
        "_released",
        "account",
        "audience",
        "available",
        "closing",
        "directed_to",
        "discard_queued",
        "heard",
        "initial_presence_sent",
        "jid",
        "outbox",
        "presence",
        "priority",
        "requested_roster",
        "seen_by",
        "server",
        "shown_publicly",
        "sm",
        "stop_requested",
        "taken_over",
        "transport_lost",
        "unbound",
        "write_now",
        "writer_idle",
    )  # fmt: skip

    def __init__(
        self, server: Server, jid: JID, outbox: trio.MemorySendChannel[Outgoing] | None
    ) -> None:
        config = server.config
        self.server = server
        self.jid = jid
        self.account = jid.bare
        self.outbox = SessionOutbox(self)
        self.sm: StreamManagement[Kept] = StreamManagement(
            max_unacked=config.sm_max_unacked, resume_timeout=config.sm_resume_timeout
        )
        self.available = False
        self.initial_presence_sent = False
        self.presence: Stanza | None = None
        self.priority = 0
        self.directed_to: set[JID] = set()
        self.seen_by: set[JID] = set()
        self.heard: set[JID] = set()
        self.audience: set[JID] = set()  # subscribers it is publicly available to now
        self.requested_roster = False
        self.shown_publicly = False  # was available while not hidden from the world
        self.closing: StreamError | None = None
        self.transport_lost = False
        self.taken_over = False
        self.unbound = False  # Server.unbind() has run (or is running) for it
        self.discard_queued = False
        self._channel = outbox
        # the connection's writer waits on an empty outbox, and how to write stanzas at once
        self.writer_idle = False
        self.write_now: Callable[[list[Stanza]], bool] | None = None
        self._corked: list[Stanza] = []  # delivered in this task step, written at its end
        self._closed = trio.Event()  # close() was called: for the session's whole life
        self.stop_requested = False  # the attached connection is asked to stop
        self._on_stop: Callable[[], None] | None = None  # how that connection stops
        self._released = trio.Event()  # the attached connection let go of the session
        self._ended = trio.Event()  # its end has been carried out
        self._plugin_state: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Session {self.jid} available={self.available}>"

    @property
    def attached(self) -> bool:
        """Whether a connection is writing for this session now."""
        return self._channel is not None

    @property
    def held(self) -> bool:
        """Whether a connection runs the session, even one that no longer writes for it
        (its transport broke and it has not let go yet)."""
        return not self._released.is_set()

    @property
    def ended(self) -> bool:
        """Whether the session's end has been carried out (it is unbound, for good)."""
        return self._ended.is_set()

    @property
    def resumable(self) -> bool:
        """Whether a broken connection leaves the session waiting to be resumed."""
        return self.sm.resumable and self.closing is None and not self.ended

    # -------------------------------------------------------------- delivery

    def deliver_nowait(self, stanza: Stanza) -> None:
        """Queue ``stanza`` for this client; a full outbox ends the session.

        Without a writable connection (detached, or ending) the stanza is kept, and
        disposed of when the session ends (:func:`casper.resumption.rescue`).
        """
        if self.ended:
            log.debug("%s: stanza %s delivered after the session ended", self.jid, stanza.id)
            return
        if self.closing is not None or self._channel is None:
            self._keep(stanza)
            return
        if self._corked:
            self._corked.append(stanza)
            if len(self._corked) >= CORK_LIMIT:
                self.flush_corked()
            return
        if self.writer_idle and self.write_now is not None:
            corks = self.server.corks
            if corks.active:  # written with what else this step delivers (casper.corks)
                self._corked.append(stanza)
                corks.hold(self)
                return
            if self.write_now([stanza]):
                return  # written by the delivering task: the writer was not woken for it
        self._put(stanza)

    def flush_corked(self) -> None:
        """Write the stanzas held in this task step, in one send if the writer is still
        idle, else queue them. Anything that changes how the session writes calls this
        first, so held stanzas meet the state they were delivered in."""
        corked = self._corked
        if not corked:
            return
        self._corked = []
        if self.writer_idle and self.write_now is not None:
            try:
                if self.write_now(corked):
                    return
            except Exception:  # a bug: the writer meets the stanzas again, in its own task
                log.exception("%s: writing %d stanzas at once failed", self.jid, len(corked))
        for stanza in corked:
            self._put(stanza)

    def deliver_nowait_bytes(self, data: bytes) -> None:
        """Queue raw stream bytes (negotiation answers) behind the queued stanzas."""
        self.deliver_stream_data(StreamData(data))

    def deliver_stream_data(self, item: StreamData) -> None:
        """Queue bytes for the attached stream; dropped if there is none."""
        if self._channel is not None:
            self._put(item if item.counted or item.enables_sm else item.data)

    def _put(self, item: Outgoing) -> None:
        assert self._channel is not None
        if self._corked:
            self.flush_corked()  # held stanzas were delivered first
        self.writer_idle = False  # it is woken: what follows must queue behind this item
        try:
            self._channel.send_nowait(item)
        except trio.WouldBlock:
            log.warning("%s: outbox full, closing the session", self.jid)
            self.close(StreamError("resource-constraint", "too many queued stanzas"))
            self._keep(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._keep(item)

    def _keep(self, item: Outgoing) -> None:
        """Keep a stanza that cannot be written now (bytes for a dead stream go)."""
        if isinstance(item, Stanza) or (isinstance(item, StreamData) and item.counted):
            self.sm.hold(item)
            if self.sm.over_limit:
                self.close(StreamError("resource-constraint", "too many stanzas kept"))

    # -------------------------------------------------------------- connection

    def close(self, error: StreamError | None = None) -> None:
        """End the session for good (with ``error`` for the client, if given)."""
        if self.closing is None:
            self.flush_corked()
            self.closing = error or StreamError("reset")
            self._closed.set()
            self._request_stop()

    def transport_gone(self) -> None:
        """The attached connection's transport broke: stop writing, keep what comes."""
        self.flush_corked()
        self.transport_lost = True
        self._channel, self.writer_idle = None, False
        self._request_stop()

    def take_over(self) -> None:
        """Ask the attached connection to let go: a new one resumes the session."""
        self.taken_over = True
        self._request_stop()

    def attach(self, outbox: trio.MemorySendChannel[Outgoing]) -> None:
        """A (new) connection writes for the session from now on."""
        self._channel = outbox
        self.transport_lost = self.taken_over = False
        self._released = trio.Event()
        self.stop_requested, self._on_stop = self.closing is not None, None

    def release(self) -> None:
        """The attached connection let go: nothing more is written for it."""
        self.flush_corked()
        self._channel = self._on_stop = self.write_now = None
        self.writer_idle = False
        self._released.set()

    def mark_ended(self) -> None:
        """Its end has been carried out (:func:`casper.resumption.end_session`)."""
        self.flush_corked()
        self._channel = self._on_stop = self.write_now = None
        self.writer_idle = False
        self._released.set()
        self._ended.set()

    async def wait_ended(self) -> None:
        """Return once the session's end has been carried out."""
        await self._ended.wait()

    def on_stop(self, stop: Callable[[], None]) -> None:
        """How the attached connection stops when it must (close, break, take-over):
        called at once if that was already asked, else when it is."""
        self._on_stop = stop
        if self.stop_requested:
            stop()

    def _request_stop(self) -> None:
        self.stop_requested = True
        if self._on_stop is not None:
            self._on_stop()

    async def wait_closed(self) -> None:
        """Return once :meth:`close` has been called."""
        await self._closed.wait()

    async def wait_released(self) -> None:
        """Return once the attached connection has let go of the session."""
        await self._released.wait()

    # -------------------------------------------------------------- plugin state

    def plugin_state(self, name: str, factory: type[T]) -> T:
        """Per-session state owned by plugin ``name``, created by ``factory()`` on first use."""
        state = self._plugin_state.get(name)
        if state is None:
            state = self._plugin_state[name] = factory()
        return state  # type: ignore[no-any-return]

    def peek_plugin_state(self, name: str) -> Any:
        """The plugin's state if created, else ``None`` (never creates it)."""
        return self._plugin_state.get(name)
