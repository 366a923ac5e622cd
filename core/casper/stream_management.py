"""Sans-IO XEP-0198 stream management: counters, the unacknowledged queue, the answers.

One :class:`StreamManagement` per session. It outlives a connection when the session is
resumed, so the counters and the queue carry over to the new stream. Elements and counts go
in, bytes come out; no I/O, no trio, no clock (the caller owns time: when to send ``<r/>``,
how long a detached session waits). Rules:

1. The ``<sm xmlns='urn:xmpp:sm:3'/>`` feature is offered after authentication
   (:func:`feature`). ``<resume/>`` comes instead of binding; ``<enable/>`` after it.
2. ``<enable/>`` once per session, on a bound stream: ``<enabled/>``; with ``resume='true'``
   (or ``'1'``) and resumption allowed (``resume_timeout``), ``<enabled id=SM-ID
   resume='true' max=SECONDS/>`` (the client's smaller ``max`` wins). A second ``<enable/>``
   gets ``<failed><unexpected-request/></failed>``; so does ``<resume/>`` on a bound stream.
3. Inbound counting (``h``) starts with the ``<enable/>``: :meth:`stanza_received` after
   each stanza handled. Outbound counting starts once the ``<enabled/>`` is *written*
   (:meth:`start_counting`), and :meth:`sent` queues each stanza as it is written: the caller
   writes in order, so both sides count exactly the same stanzas.
4. ``<r/>`` gets ``<a h=N/>``. ``<a h=N/>`` drops the stanzas up to N from the unacked queue;
   an N above what was sent is a ``undefined-condition`` stream error (handled-count-too-high).
   Counters wrap from 2**32-1 to 0.
5. ``<r/>`` or ``<a/>`` before ``<enable/>``, and any other element in the namespace, is an
   ``unsupported-stanza-type`` stream error, as for any unknown top-level element.
6. Nothing is ever dropped here: a stanza leaves the queue when the client acknowledges it,
   or when the caller takes it (:meth:`retransmit` on resumption, :meth:`take_all` when the
   session ends for good). :meth:`hold` keeps stanzas that could not be written (the
   transport is gone) behind the unacknowledged ones. :attr:`over_limit` says the queue
   holds more than ``max_unacked``: the caller ends the session (``resource-constraint``)
   and disposes of what was queued.
7. Resumption (:meth:`resume`): the client's ``h`` is checked like an ack, then
   :meth:`retransmit` hands back every unacknowledged and held stanza, in order, and the
   outbound count goes back to ``h``; writing them again numbers them as before.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar
from xml.etree.ElementTree import Element, SubElement

from casper.errors import STANZAS_NS, LocalProtocolError, StreamError
from casper.xml import serialize

NS = "urn:xmpp:sm:3"
MODULUS = 2**32  # h is an xs:unsignedInt that wraps (XEP-0198 §4)
T = TypeVar("T")

_NS = f"{{{NS}}}"
ENABLE, ENABLED, RESUME, RESUMED = _NS + "enable", _NS + "enabled", _NS + "resume", _NS + "resumed"
REQUEST, ACK, FAILED = _NS + "r", _NS + "a", _NS + "failed"


def feature() -> Element:
    """The stream feature, offered after authentication."""
    return Element(_NS + "sm")


def is_sm_element(element: Element) -> bool:
    """Whether a top-level element belongs to stream management (it is never a stanza)."""
    return element.tag.startswith(_NS)


def parse_counter(text: str | None) -> int | None:
    """An ``h`` attribute as an int, or ``None`` if it is missing or not an unsignedInt."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value < MODULUS else None


def failed(condition: str, *, h: int | None = None) -> bytes:
    """``<failed/>`` with a stanza error condition (XEP-0198 §6)."""
    element = Element(FAILED, {} if h is None else {"h": str(h)})
    SubElement(element, f"{{{STANZAS_NS}}}{condition}")
    return serialize(element)


REQUEST_DATA = serialize(Element(REQUEST))


@dataclass(frozen=True)
class Answer:
    """What to send for an element the client sent, queued behind earlier output."""

    data: bytes
    #: it is ``<enabled/>``: call :meth:`StreamManagement.start_counting` once it is written
    enabled: bool = False


class State(enum.Enum):
    OFF = "off"  # not enabled (yet)
    ON = "on"  # enabled: counting and acking


class Input(enum.Enum):
    ENABLE = "enable"
    REQUEST = "r"
    ACK = "a"
    RESUME = "resume"
    OTHER = "other"


_INPUTS = {ENABLE: Input.ENABLE, REQUEST: Input.REQUEST, ACK: Input.ACK, RESUME: Input.RESUME}

# (state, input) -> the method that answers it. Every client input has an entry.
TRANSITIONS: dict[tuple[State, Input], str] = {
    (State.OFF, Input.ENABLE): "_enable",
    (State.ON, Input.ENABLE): "_unexpected",
    (State.OFF, Input.REQUEST): "_not_enabled",
    (State.OFF, Input.ACK): "_not_enabled",
    (State.ON, Input.REQUEST): "_answer_request",
    (State.ON, Input.ACK): "_acknowledged",
    **{(state, Input.RESUME): "_unexpected" for state in State},  # rule 2: already bound
    **{(state, Input.OTHER): "_unsupported" for state in State},
}

_new_id = partial(secrets.token_urlsafe, 24)


class StreamManagement(Generic[T]):
    """The XEP-0198 state of one session (see the module docstring for the rules).

    :param max_unacked: stanzas the queue may hold before :attr:`over_limit`.
    :param resume_timeout: seconds a broken stream stays resumable, or ``None`` to refuse
        resumption (``<enabled/>`` without ``resume``).
    :param new_id: makes the SM-ID of a resumable session; unpredictable by default.
    """

    def __init__(self, *, max_unacked: int, resume_timeout: int | None,
                 new_id: Callable[[], str] = _new_id) -> None:  # fmt: skip
        if max_unacked < 1:
            raise ValueError("max_unacked must be at least 1")
        self.max_unacked = max_unacked
        self._resume_timeout, self._new_id = resume_timeout, new_id
        self._state = State.OFF
        self.id: str | None = None  #: the SM-ID, once resumable
        self.max: int | None = None  #: seconds granted for resumption, once resumable
        self.counting = False  #: outbound stanzas are being counted
        self._inbound = 0  # stanzas handled from the client (h we report)
        self._acked = 0  # the client's last h
        # lists, not deques: an empty deque costs a 64-slot block per session
        self._unacked: list[T] = []  # written, not acknowledged; _acked + 1 onwards
        self._held: list[T] = []  # not written (no transport); after the unacked ones
        self._unrequested = 0  # counted stanzas written since the last <r/>

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> State:
        return self._state

    @property
    def enabled(self) -> bool:
        return self._state is State.ON

    @property
    def resumable(self) -> bool:
        return self.id is not None

    @property
    def inbound(self) -> int:
        """``h`` for the client: stanzas handled since ``<enable/>``, mod 2**32."""
        return self._inbound

    @property
    def acked(self) -> int:
        """The client's last ``h``: our stanzas it has handled, mod 2**32."""
        return self._acked

    @property
    def sent_count(self) -> int:
        """Stanzas written since counting started, mod 2**32."""
        return (self._acked + len(self._unacked)) % MODULUS

    @property
    def pending(self) -> int:
        """Stanzas the client has not acknowledged: unacked plus held."""
        return len(self._unacked) + len(self._held)

    @property
    def over_limit(self) -> bool:
        return self.pending > self.max_unacked

    @property
    def unrequested(self) -> int:
        """Counted stanzas written since the last ``<r/>``."""
        return self._unrequested

    # ------------------------------------------------------------------ from the client

    def receive(self, element: Element) -> Answer | None:
        """Answer a stream management element; ``None`` when there is nothing to send.

        :raises StreamError: the element ends the stream (rules 4 and 5).
        """
        handler = TRANSITIONS[(self._state, _INPUTS.get(element.tag, Input.OTHER))]
        answer: Answer | None = getattr(self, handler)(element)
        return answer

    def stanza_received(self) -> None:
        """Count a stanza the client sent, once it has been handled."""
        if self._state is State.ON:
            self._inbound = (self._inbound + 1) % MODULUS

    def _enable(self, element: Element) -> Answer:
        self._state = State.ON
        attrs: dict[str, str] = {}
        if element.get("resume") in ("true", "1") and self._resume_timeout is not None:
            wanted = parse_counter(element.get("max"))
            self.max = min(wanted, self._resume_timeout) if wanted else self._resume_timeout
            self.id = self._new_id()
            attrs = {"id": self.id, "resume": "true", "max": str(self.max)}
        return Answer(serialize(Element(ENABLED, attrs)), enabled=True)

    def _unexpected(self, _element: Element) -> Answer:
        return Answer(failed("unexpected-request"))

    def _not_enabled(self, element: Element) -> None:
        raise StreamError("unsupported-stanza-type", f"{element.tag} before <enable/>")

    def _unsupported(self, element: Element) -> None:
        raise StreamError("unsupported-stanza-type", element.tag)

    def _answer_request(self, _element: Element) -> Answer:
        return Answer(serialize(Element(ACK, h=str(self._inbound))))

    def _acknowledged(self, element: Element) -> None:
        h = parse_counter(element.get("h"))
        if h is None:
            raise StreamError("undefined-condition", "<a/> needs an 'h' attribute (unsignedInt)")
        self._trim(h)

    def _trim(self, h: int) -> None:
        """Drop the stanzas the client says it handled (rule 4)."""
        count = (h - self._acked) % MODULUS
        if count > len(self._unacked):
            sent = str(self.sent_count)
            raise StreamError(
                "undefined-condition",
                f"h={h} but only {sent} stanzas were sent",
                app=Element(f"{_NS}handled-count-too-high", {"h": str(h), "send-count": sent}),
            )
        del self._unacked[:count]
        self._acked = h

    # ------------------------------------------------------------------ to the client

    def start_counting(self) -> None:
        """The ``<enabled/>`` was written: every stanza written from now on is counted."""
        if self._state is not State.ON:
            raise LocalProtocolError(f"start_counting() in state {self._state.value!r}")
        self.counting = True

    def sent(self, item: T) -> bool:
        """Queue ``item``, about to be written; return whether it is counted."""
        if not self.counting:
            return False
        self._unacked.append(item)
        self._unrequested += 1
        return True

    def request_sent(self) -> None:
        """An ``<r/>`` (:data:`REQUEST_DATA`) was written."""
        self._unrequested = 0

    def hold(self, item: T) -> None:
        """Keep an item that could not be written, behind everything queued."""
        self._held.append(item)

    def hold_first(self, items: Iterable[T]) -> None:
        """Keep items that were queued for writing before any held one (in order)."""
        self._held[:0] = list(items)

    # ------------------------------------------------------------------ resumption

    def resume(self, h: int) -> bytes:
        """Accept ``<resume h=.../>``: the client handled ``h`` of our stanzas.

        :return: the ``<resumed/>`` element to send; then write :meth:`retransmit`.
        :raises StreamError: ``h`` is more than was sent (rule 4).
        :raises LocalProtocolError: the session is not resumable.
        """
        if not self.resumable:
            raise LocalProtocolError("resume() on a session that is not resumable")
        self._trim(h)
        return serialize(Element(RESUMED, h=str(self._inbound), previd=str(self.id)))

    def retransmit(self) -> list[T]:
        """Take every unacknowledged then held item, to be written (and counted) again."""
        items = [*self._unacked, *self._held]
        self._unacked.clear()
        self._held.clear()
        self._unrequested = 0
        return items

    def take_all(self) -> list[T]:
        """Take everything the client never acknowledged (the session ends for good)."""
        return self.retransmit()
