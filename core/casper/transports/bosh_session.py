"""Sans-IO BOSH session (XEP-0124 with XEP-0206): request bodies in, response bodies out.

No I/O and no trio: the adapter (:mod:`casper.transports.bosh`) passes the current time in,
parses each HTTP body with :func:`parse_request`, hands it to :meth:`BoshSession.receive`,
and waits until :meth:`BoshSession.response` has the answer for that ``rid``. Rules:

1. Creation (:meth:`BoshSession.create`): no ``sid``; ``to`` must be our domain
   (``host-unknown``); ``wait`` and ``hold`` are capped by the limits; ``requests`` is
   ``hold + 1``. The XMPP stream opens at once (XEP-0206), and the creation response carries
   ``sid``, ``wait``, ``requests``, ``hold``, ``inactivity``, ``polling``, ``ver`` and, once the
   stream is open, ``authid``.
2. Ordering: requests are processed strictly in ``rid`` order; a request that arrives early
   waits (held) for the missing ones. A ``rid`` beyond ``last + requests``, or one already
   processed whose answer is no longer cached, ends the session with ``item-not-found``.
3. Retransmission: a ``rid`` already answered gets the very same body again.
4. Holding: at most ``hold`` requests are held; the oldest beyond that is answered at once.
   Output for the client goes to the oldest held request at once; a held request with
   nothing to say is answered empty after ``wait`` seconds.
5. Overactivity: more than ``requests`` requests open at once (early arrivals included) ends
   the session with ``policy-violation``; so do two empty requests less than ``polling``
   seconds apart in a polling session (``hold = 0``).
6. Restart (``xmpp:restart='true'``) reopens the XMPP stream; it must carry no payload
   (``bad-request``). ``type='terminate'`` delivers its payload, closes the stream and is
   answered with ``type='terminate'``.
7. Inactivity: with no request held for ``inactivity`` seconds, the session ends.
8. The server ends the session with :meth:`BoshSession.close`: every open request is
   answered with ``type='terminate'`` (``condition='remote-stream-error'`` when the stream
   ended in a stream error, which is included). Once terminated, the inbound side reports
   EOF after whatever was still queued, and further requests get ``item-not-found``.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from casper.errors import LocalProtocolError, RemoteProtocolError
from casper.transports.framing import parse_element, standalone, stream_header_for
from casper.xml import STREAM_CLOSE, STREAM_NS, escape_attr

BOSH_NS = "http://jabber.org/protocol/httpbind"
XBOSH_NS = "urn:xmpp:xbosh"
CLIENT_NS = "jabber:client"
VERSION = "1.6"
_BODY = "{" + BOSH_NS + "}body"
_RESTART = "{" + XBOSH_NS + "}restart"
_XMPP_VERSION = "{" + XBOSH_NS + "}version"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_STREAM_ERROR = "{" + STREAM_NS + "}error"


class BoshError(Exception):
    """A terminal binding condition (XEP-0124 §17) and the HTTP status that carries it."""

    def __init__(self, condition: str, text: str, status: int = 200) -> None:
        super().__init__(f"{condition}: {text}")
        self.condition, self.text, self.status = condition, text, status

    def body(self) -> bytes:
        return terminate_body(self.condition)


@dataclass(frozen=True)
class BoshLimits:
    max_wait: int = 60  #: seconds a request may be held
    max_hold: int = 1  #: requests held at once
    inactivity: int = 60  #: seconds without a held request before the session ends
    polling: int = 2  #: shortest polling interval (enforced for hold=0 sessions)
    max_body_bytes: int = 1024 * 1024
    max_depth: int = 32  #: nesting of a stanza (the body adds one level)
    max_pending: int = 1024  #: elements queued for a client that is not collecting them


@dataclass(frozen=True)
class BoshRequest:
    """One parsed ``<body/>``: its attributes (Clark notation for namespaced ones)."""

    attrs: Mapping[str, str]
    payload: tuple[Element, ...]
    rid: int

    @property
    def sid(self) -> str | None:
        return self.attrs.get("sid")

    @property
    def type(self) -> str | None:
        return self.attrs.get("type")

    @property
    def restart(self) -> bool:
        return self.attrs.get(_RESTART) in ("true", "1")


def _requalify(element: Element) -> None:
    """XEP-0206 §7: stanzas that inherited the BOSH namespace are ``jabber:client``."""
    for node in element.iter():
        if node.tag.startswith("{" + BOSH_NS + "}"):
            node.tag = "{" + CLIENT_NS + "}" + node.tag.rpartition("}")[2]


def parse_request(data: bytes, *, limits: BoshLimits) -> BoshRequest:
    """Parse an HTTP request body into a :class:`BoshRequest`.

    :raises BoshError: ``bad-request`` (HTTP 400) for anything but one ``<body/>`` of the
        BOSH namespace with a numeric ``rid``; ``policy-violation`` (HTTP 413) if too big.
    """
    if len(data) > limits.max_body_bytes:
        raise BoshError("policy-violation", "request body too large", 413)
    try:
        body = parse_element(data, max_bytes=limits.max_body_bytes, max_depth=limits.max_depth)
    except RemoteProtocolError as exc:
        raise BoshError("bad-request", f"not a BOSH body: {exc}", 400) from None
    if body.tag != _BODY:
        raise BoshError("bad-request", f"expected <body xmlns='{BOSH_NS}'>", 400)
    rid = body.get("rid", "")
    if not rid.isdigit() or len(rid) > 16:
        raise BoshError("bad-request", "missing or invalid rid", 400)
    for child in body:
        _requalify(child)
        child.tail = None
    return BoshRequest(dict(body.attrib), tuple(body), int(rid))


def terminate_body(condition: str | None = None, payload: bytes = b"") -> bytes:
    attrs = {"type": "terminate"}
    if condition:
        attrs["condition"] = condition
    return _body(attrs, payload)


def _body(attrs: Mapping[str, str], payload: bytes = b"") -> bytes:
    head = [f"<body xmlns='{BOSH_NS}' xmlns:xmpp='{XBOSH_NS}' xmlns:stream='{STREAM_NS}'"]
    head += (f" {name}='{escape_attr(value)}'" for name, value in attrs.items())
    if not payload:
        return ("".join(head) + "/>").encode()
    return ("".join(head) + ">").encode() + payload + b"</body>"


def _int_attr(attrs: Mapping[str, str], name: str, default: int) -> int:
    value = attrs.get(name)
    if value is None:
        return default
    if not value.isdigit() or len(value) > 9:
        raise BoshError("bad-request", f"attribute {name!r} must be a number", 400)
    return int(value)


class State(enum.Enum):
    ACTIVE = "active"
    TERMINATED = "terminated"


class Input(enum.Enum):
    REQUEST = "request"  # a request body from the client
    OUTPUT = "output"  # an element from the server for the client
    STREAM_OPENED = "stream-opened"  # the server's stream header (its id is the authid)
    CLOSE = "close"  # the server ends the session
    TICK = "tick"  # time passed


# (state, input) -> handler; a terminated session ignores everything but new requests
TRANSITIONS: dict[tuple[State, Input], str] = {
    (State.ACTIVE, Input.REQUEST): "_on_request",
    (State.ACTIVE, Input.OUTPUT): "_on_output",
    (State.ACTIVE, Input.STREAM_OPENED): "_on_stream_opened",
    (State.ACTIVE, Input.CLOSE): "_on_close",
    (State.ACTIVE, Input.TICK): "_on_tick",
    (State.TERMINATED, Input.REQUEST): "_on_late_request",
    **{(State.TERMINATED, i): "_ignore" for i in Input if i is not Input.REQUEST},
}


class BoshSession:
    """One BOSH session; create it with :meth:`create`."""

    def __init__(self, sid: str, request: BoshRequest, limits: BoshLimits, now: float) -> None:
        attrs = request.attrs
        self.sid, self.limits = sid, limits
        self.wait = max(1, min(_int_attr(attrs, "wait", limits.max_wait), limits.max_wait))
        self.hold = min(_int_attr(attrs, "hold", 1), limits.max_hold)
        self.requests = self.hold + 1
        self.state = State.ACTIVE
        self.condition: str | None = None  #: the terminal binding condition, once ended
        self.reason: str | None = None  #: who ended it: client, server, inactive or refused
        self._creation_rid = self._last_rid = request.rid
        self._creation_attrs = {
            "sid": sid, "wait": str(self.wait), "requests": str(self.requests),
            "hold": str(self.hold), "inactivity": str(limits.inactivity),
            "polling": str(limits.polling), "ver": VERSION, "xmpp:version": "1.0",
            "xmpp:restartlogic": "true",
        }  # fmt: skip
        if "ack" in attrs:
            self._creation_attrs["ack"] = str(request.rid)
        self._now = now
        self._held: deque[tuple[int, float]] = deque()  # (rid, deadline), oldest first
        self._early: dict[int, BoshRequest] = {}  # arrived before a lower rid
        self._answers: dict[int, bytes] = {}  # rid -> body, for retransmission
        self._pending: list[bytes] = []  # output waiting for a request
        self._stream_error = False
        self._inbound = bytearray()
        self._last_empty: float | None = None
        self._idle_since: float | None = None
        header = {"to": attrs.get("to", ""), "version": attrs.get(_XMPP_VERSION, "1.0")}
        if _XML_LANG in attrs:
            header["xml:lang"] = attrs[_XML_LANG]
        self._inbound += stream_header_for(header)
        self._hold_request(request.rid)
        self._flush()

    @classmethod
    def create(cls, sid: str, request: BoshRequest, *, domain: str, limits: BoshLimits,
               now: float) -> BoshSession:  # fmt: skip
        """Start a session from a creation request (rule 1).

        :raises BoshError: ``host-unknown`` for another domain, ``bad-request`` otherwise.
        """
        if request.sid is not None:
            raise BoshError("bad-request", "a creation request has no sid", 400)
        if request.attrs.get("to") != domain:
            raise BoshError("host-unknown", f"this server serves {domain}")
        return cls(sid, request, limits, now)

    # ------------------------------------------------------------------ inputs

    def receive(self, request: BoshRequest, now: float) -> None:
        """Take a request; its answer appears in :meth:`response` now or later.

        :raises BoshError: the session has ended (or ends now) with that condition; the
            error's body answers this request.
        """
        self._dispatch(Input.REQUEST, request, now)

    def send(self, element: Element, now: float) -> None:
        """Queue an element the server sends to the client."""
        self._dispatch(Input.OUTPUT, element, now)

    def stream_opened(self, attrs: Mapping[str, str], now: float) -> None:
        """Note the server's stream header (a restart's header carries nothing new)."""
        self._dispatch(Input.STREAM_OPENED, attrs, now)

    def close(self, now: float, condition: str | None = None) -> None:
        """End the session from the server side (rule 8)."""
        self._dispatch(Input.CLOSE, condition, now)

    def tick(self, now: float) -> None:
        """Answer held requests whose ``wait`` is over; end an inactive session (rule 7)."""
        self._dispatch(Input.TICK, None, now)

    # ------------------------------------------------------------------ outputs

    def response(self, rid: int) -> bytes | None:
        """The body answering ``rid``, or ``None`` while it is held."""
        return self._answers.get(rid)

    def take_inbound(self, max_bytes: int) -> bytes | None:
        """Stream bytes for the XMPP connection: ``b""`` if none yet, ``None`` at EOF."""
        if not self._inbound:
            return None if self.state is State.TERMINATED else b""
        data = bytes(self._inbound[:max_bytes])
        del self._inbound[:max_bytes]
        return data

    @property
    def pending(self) -> int:
        """Elements waiting for the client to collect them."""
        return len(self._pending)

    @property
    def held(self) -> int:
        return len(self._held)

    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to do (``inf``: never, until an input)."""
        if self.state is State.TERMINATED:
            return math.inf
        if self._held:
            return min(deadline for _rid, deadline in self._held)
        if self._idle_since is not None:
            return self._idle_since + self.limits.inactivity
        return math.inf

    # ------------------------------------------------------------------ machinery

    def _dispatch(self, event: Input, payload: object, now: float) -> None:
        handler = TRANSITIONS.get((self.state, event))
        if handler is None:  # pragma: no cover - the table is total
            raise LocalProtocolError(f"{event.value!r} is illegal in state {self.state.value!r}")
        self._now = max(self._now, now)
        try:
            getattr(self, handler)(payload)
        except BoshError as exc:
            if self.state is State.ACTIVE:
                self._terminate(exc.condition, reason="refused")
            raise
        self._flush()

    def _on_request(self, request: BoshRequest) -> None:
        rid = request.rid
        if request.sid != self.sid:
            raise BoshError("item-not-found", "wrong sid")
        if rid in self._answers:  # rule 3: the answer is already there
            return
        if rid in self._early or any(held == rid for held, _ in self._held):
            return  # a repeat of a request still open: both get the one answer
        if rid <= self._last_rid:
            raise BoshError("item-not-found", f"rid {rid} is no longer in the window")
        if rid > self._last_rid + self.requests:
            raise BoshError("item-not-found", f"rid {rid} is beyond the window")
        if len(self._held) + len(self._early) >= self.requests:
            raise BoshError("policy-violation", f"more than {self.requests} requests open")
        self._early[rid] = request
        while (next_rid := self._last_rid + 1) in self._early:
            self._last_rid = next_rid
            self._process(self._early.pop(next_rid))

    def _process(self, request: BoshRequest) -> None:
        if request.restart:
            if request.payload:
                raise BoshError("bad-request", "a restart request carries no payload", 400)
            header = {"to": request.attrs.get("to", ""), "version": "1.0"}
            if _XML_LANG in request.attrs:
                header["xml:lang"] = request.attrs[_XML_LANG]
            self._inbound += stream_header_for(header)
        for element in request.payload:
            self._inbound += standalone(element, CLIENT_NS)
        if request.type == "terminate":
            self._inbound += STREAM_CLOSE
            self._terminate(None, answer=request.rid, reason="client")
            return
        if not request.payload and not request.restart:
            self._check_polling()
        self._hold_request(request.rid)

    def _check_polling(self) -> None:
        last, polling = self._last_empty, self.limits.polling
        if self.hold == 0 and last is not None and self._now - last < polling:
            raise BoshError("policy-violation", f"polling faster than every {polling}s")
        self._last_empty = self._now

    def _hold_request(self, rid: int) -> None:
        self._held.append((rid, self._now + self.wait))
        self._idle_since = None

    def _on_output(self, element: Element) -> None:
        if element.tag == _STREAM_ERROR:
            self._stream_error = True
        self._pending.append(standalone(element, BOSH_NS))

    def _on_stream_opened(self, attrs: Mapping[str, str]) -> None:
        if "authid" not in self._creation_attrs and self._creation_rid not in self._answers:
            self._creation_attrs["authid"] = attrs.get("id", "")
            self._creation_attrs["from"] = attrs.get("from", "")

    def _on_close(self, condition: str | None) -> None:
        if condition is None and self._stream_error:
            condition = "remote-stream-error"
        self._terminate(condition, reason="server")

    def _on_tick(self, _payload: None) -> None:
        while self._held and min(deadline for _rid, deadline in self._held) <= self._now:
            expired = min(self._held, key=lambda held: held[1])
            self._held.remove(expired)
            self._answer(expired[0])
        idle = self._idle_since
        if not self._held and idle is not None and self._now >= idle + self.limits.inactivity:
            self._terminate(None, reason="inactive")

    def _on_late_request(self, request: BoshRequest) -> None:
        if request.rid in self._answers:
            return  # the terminate answer (or an earlier one) is still here to repeat
        raise BoshError("item-not-found", "the session has ended")

    def _ignore(self, _payload: object) -> None:
        pass

    def _terminate(self, condition: str | None, *, reason: str, answer: int | None = None) -> None:
        """Answer every open request with ``type='terminate'`` (and the output so far)."""
        self.state = State.TERMINATED
        self.condition, self.reason = condition, reason
        open_rids = [rid for rid, _ in self._held] + sorted(self._early)
        if answer is not None:
            open_rids.append(answer)
        self._held.clear()
        self._early.clear()
        payload, self._pending = b"".join(self._pending), []
        for rid in open_rids:
            self._remember(rid, terminate_body(condition, payload))
            payload = b""
        self._idle_since = None

    def _flush(self) -> None:
        """Rule 4: answer beyond ``hold``, and give output to the oldest held request."""
        if self.state is State.TERMINATED or self._stream_error:
            return  # a stream error goes out with the terminate answer (rule 8)
        while len(self._held) > self.hold or (self._pending and self._held):
            rid, _deadline = self._held.popleft()
            self._answer(rid)

    def _answer(self, rid: int) -> None:
        attrs = dict(self._creation_attrs) if rid == self._creation_rid else {}
        payload, self._pending = b"".join(self._pending), []
        self._remember(rid, _body(attrs, payload))
        if not self._held:
            self._idle_since = self._now

    def _remember(self, rid: int, body: bytes) -> None:
        self._answers[rid] = body
        for old in [r for r in self._answers if r <= self._last_rid - 2 * self.requests - 2]:
            del self._answers[old]
