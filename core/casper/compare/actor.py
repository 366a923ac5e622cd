"""One simulated client in a comparison world: a real connection, a log of every stanza it
sent and received, and the habits of an ordinary IM client.

The client model (the same in every world and for every strategy, so differences come
from the server): it answers IQ gets for software version, entity time, ping, disco#info
and last activity, acknowledges roster pushes, sends a delivery receipt (XEP-0184) when a
message with a body asks for one, and answers a message with a body and a chat state
(XEP-0085) with ``<active/>`` — what clients do when the user reads the message.

Error handling: a failed login raises :class:`casper.bench.client.XMPPFailure`; a
connection the server closes just ends the reader (``closed`` is set).
"""

from __future__ import annotations

import itertools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import trio

from casper.bench.client import BenchClient, XMPPFailure, login
from casper.xml import StanzaReceived, XMLStreamParser, escape_attr, serialize, stream_header

if TYPE_CHECKING:
    from .world import World

CLIENT = "jabber:client"
SYNC_NS = "urn:casper:compare:sync"  # nobody answers it: every server replies with an error
PING_NS = "urn:xmpp:ping"
RECEIPTS = "urn:xmpp:receipts"
CHATSTATES = "http://jabber.org/protocol/chatstates"
CLIENT_FEATURES = (
    "http://jabber.org/protocol/disco#info",
    CHATSTATES,
    RECEIPTS,
    PING_NS,
    "urn:xmpp:time",
    "jabber:iq:version",
    "jabber:iq:last",
)
_TRANSPORT = (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError)


def q(local: str, ns: str = CLIENT) -> str:
    return f"{{{ns}}}{local}"


def parse(text: str) -> Element:
    """Parse one ``jabber:client`` element written as text."""
    parser = XMLStreamParser()
    parser.feed(stream_header(from_="x", id="x") + text.encode())
    parser.next_event()
    event = parser.next_event()
    assert isinstance(event, StanzaReceived), (event, text)
    return event.element


def bare(jid: str | None) -> str:
    return (jid or "").split("/", 1)[0]


def error_condition(element: Element) -> str | None:
    error = element.find(q("error"))
    if element.get("type") != "error" or error is None:
        return None
    return next((c.tag.rpartition("}")[2] for c in error if not c.tag.endswith("}text")), "error")


@dataclass
class Event:
    """One stanza an actor sent (``out``) or received (``in``)."""

    seq: int
    t: float
    actor: str
    direction: str
    element: Element
    step: int  # index of the scenario step (-1: setup, len(steps): finish)
    auto: bool = False  # sent by the client model on its own
    sync: bool = False  # barrier traffic, left out of reports
    claimed: str | None = None  # the check whose answer this is

    @property
    def xml(self) -> str:
        return serialize(self.element).decode()


@dataclass
class Actor:
    """A logged-in connection of ``role`` with ``resource``; create with :meth:`connect`."""

    world: World
    role: str
    resource: str
    jid: str
    client: BenchClient
    log: list[Event] = field(default_factory=list)
    closed: bool = False
    state: dict[str, object] = field(default_factory=dict)  # the strategy's client-side state
    failure: str | None = None  # why the reader stopped, if not a clean end of stream

    def __post_init__(self) -> None:
        self._send_lock = trio.StrictFIFOLock()
        self._changed = trio.Event()
        self._ids = itertools.count(1)
        self.reader_scope = trio.CancelScope()

    @property
    def name(self) -> str:
        return (
            self.role
            if self.role != "user" and self.resource == "obs"
            else f"{self.role}/{self.resource}"
        )

    @classmethod
    async def connect(cls, world: World, role: str, resource: str) -> Actor:
        ep, (username, password) = world.endpoint, world.accounts[role]
        with trio.fail_after(world.timeout):
            client = await login(ep.host, ep.port, ep.domain, username, password,
                                 ssl_context=ep.ssl_context, resource=resource)  # fmt: skip
        assert client.jid is not None
        actor = cls(world, role, resource, client.jid, client)
        await world.nursery.start(actor._reader)
        return actor

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{self.role}-{self.resource}-{next(self._ids)}"

    # ------------------------------------------------------------------ I/O

    async def send(self, xml: str, *, auto: bool = False, sync: bool = False) -> Event:
        """Send one stanza written as text; return its log entry."""
        element = parse(xml)
        async with self._send_lock:
            event = self.world.record(self, "out", element, auto=auto, sync=sync)
            await self.client.send(xml.encode())
        return event

    async def _reader(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.reader_scope:
            task_status.started()
            try:
                while True:
                    element = await self.client.receive()
                    event = self.world.record(self, "in", element)
                    self._changed.set()
                    self._changed = trio.Event()
                    await self._respond(event)
            except (XMPPFailure, *_TRANSPORT):
                pass  # the server ended the stream: the world notices ``closed``
            except Exception as exc:  # noqa: BLE001 - e.g. unparsable input: this connection is over
                self.failure = f"{type(exc).__name__}: {exc}"
        self.closed = True
        self._changed.set()

    async def wait_for(
        self, match: Callable[[Event], bool], since: int = 0, timeout: float = 10
    ) -> Event:
        """The first event in the log from index ``since`` that ``match`` accepts."""
        with trio.fail_after(timeout):
            while True:
                changed = self._changed
                found = next((e for e in self.log[since:] if match(e)), None)
                if found is not None:
                    return found
                if self.closed:
                    why = self.failure or "connection closed"
                    raise XMPPFailure("receive", f"{self.name}: {why} while waiting")
                await changed.wait()

    async def request(self, xml: str, timeout: float = 10) -> Element:
        """Send an IQ (with an ``id``) and return the reply, result or error."""
        sent = await self.send(xml)
        iq_id = sent.element.get("id")
        reply = await self.wait_for(
            lambda e: (
                e.direction == "in" and e.element.tag == q("iq") and e.element.get("id") == iq_id
            ),
            timeout=timeout,
        )
        return reply.element

    async def sync(self, to: str | None = None) -> None:
        """One round trip to the server (or ``to``): what was queued before is here now."""
        iq_id = self.new_id("sync")
        target = to or self.world.endpoint.domain
        payload = f"<ping xmlns='{PING_NS}'/>" if to else f"<query xmlns='{SYNC_NS}'/>"
        start = len(self.log)
        await self.send(
            f"<iq type='get' id='{iq_id}' to='{escape_attr(target)}'>{payload}</iq>", sync=True
        )
        event = await self.wait_for(
            lambda e: e.element.get("id") == iq_id and e.direction == "in",
            since=start,
            timeout=self.world.timeout,
        )
        event.sync = True

    async def logout(self) -> None:
        """Close the stream cleanly and read until the server closes its own."""
        if not self.closed:
            try:
                await self.client.send(b"</stream:stream>")
                with trio.move_on_after(self.world.timeout):
                    while not self.closed:
                        await self._changed.wait()
            except _TRANSPORT:
                pass
        self.reader_scope.cancel()
        await self.client.aclose(graceful=False)
        self.closed = True

    async def drop(self) -> None:
        """Vanish without closing the stream: the server only sees the transport end."""
        self.reader_scope.cancel()
        self.closed = True
        await self.client.aclose(graceful=False)

    # ------------------------------------------------------------------ the client model

    async def _respond(self, event: Event) -> None:
        element = event.element
        sender = element.get("from")
        if sender is None or self.closed:
            return
        if element.tag == q("iq") and element.get("type") in ("get", "set"):
            await self._answer_iq(element, sender)
        elif element.tag == q("message") and element.find(q("body")) is not None:
            await self._answer_message(element, sender)

    async def _answer_iq(self, iq: Element, sender: str) -> None:
        child = next(iter(iq), None)
        tag = child.tag if child is not None else ""
        reply_to = f"to='{escape_attr(sender)}' id='{escape_attr(iq.get('id') or '')}'"
        if iq.get("type") == "set" and tag == "{jabber:iq:roster}query":  # roster push
            payload = ""
        elif iq.get("type") != "get":
            payload = None
        elif tag == "{jabber:iq:version}query":
            payload = (
                "<query xmlns='jabber:iq:version'><name>casper-compare client</name>"
                "<version>1</version></query>"
            )
        elif tag == "{urn:xmpp:time}time":
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            payload = f"<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>{now}</utc></time>"
        elif tag == f"{{{PING_NS}}}ping":
            payload = ""
        elif tag == "{http://jabber.org/protocol/disco#info}query":
            features = "".join(f"<feature var='{f}'/>" for f in CLIENT_FEATURES)
            payload = (
                "<query xmlns='http://jabber.org/protocol/disco#info'>"
                f"<identity category='client' type='pc'/>{features}</query>"
            )
        elif tag == "{jabber:iq:last}query":
            payload = "<query xmlns='jabber:iq:last' seconds='0'/>"
        else:
            payload = None
        if payload is None:
            error = (
                "<error type='cancel'><service-unavailable "
                "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
            )
            await self._auto(f"<iq type='error' {reply_to}>{error}</iq>")
        else:
            await self._auto(f"<iq type='result' {reply_to}>{payload}</iq>")

    async def _answer_message(self, message: Element, sender: str) -> None:
        to = escape_attr(sender)
        msg_id = message.get("id")
        if message.find(q("request", RECEIPTS)) is not None and msg_id:
            await self._auto(
                f"<message to='{to}' id='{self.new_id('rcpt')}'>"
                f"<received xmlns='{RECEIPTS}' id='{escape_attr(msg_id)}'/></message>"
            )
        if any(c.tag.startswith(f"{{{CHATSTATES}}}") for c in message):
            await self._auto(
                f"<message type='chat' to='{to}' id='{self.new_id('cs')}'>"
                f"<active xmlns='{CHATSTATES}'/></message>"
            )

    async def _auto(self, xml: str) -> None:
        try:
            await self.send(xml, auto=True)
        except _TRANSPORT:
            pass
