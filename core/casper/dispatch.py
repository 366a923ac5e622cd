"""What happens to each stanza a bound client sends (RFC 6120 §8.1, RFC 6121 §8).

Wait if the session is over its stanza rate, stamp ``from``, let plugins take over or filter
it, then hand it to presence processing, the router or the server's own IQ answers.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

import trio

from .errors import StanzaError, StreamError
from .plugins import call_guarded, call_safely, culprit_of_callable
from .stanza import IQ, MESSAGE, PRESENCE, Stanza
from .verdicts import Bounce

if TYPE_CHECKING:
    from .server import Server
    from .session import Session

_STANZA_TAGS = (MESSAGE, PRESENCE, IQ)
log = logging.getLogger("casper.dispatch")


async def handle_client_element(server: Server, session: Session, element: Element) -> None:
    """Process one top-level element from a bound session.

    A session over its stanza rate (``limits.stanza_rate``) waits here first: its reader is
    slowed down, nothing is dropped (see :mod:`casper.limits`).
    """
    delay = server.limits.stanza_delay(session, trio.current_time())
    if delay > 0:
        await trio.sleep(delay)
    if element.tag not in _STANZA_TAGS:
        session.close(StreamError("unsupported-stanza-type", element.tag))
        return
    try:
        stanza = Stanza.from_element(element)
    except StanzaError as exc:
        await _answer_malformed(server, session, element, exc)
        return
    if stanza.from_ is not None and stanza.from_ not in (session.jid, session.account):
        session.close(StreamError("invalid-from", "from must be the session's own address"))
        return
    element.set("from", str(session.jid))  # in place: the parser's element is ours alone
    stanza = Stanza(element, stanza.to, session.jid)
    try:
        await _process(server, session, stanza)
    except StanzaError as exc:
        await server.router.bounce(stanza, exc)


async def _process(server: Server, session: Session, stanza: Stanza) -> None:
    handled = call_safely(server.pm, "casper_handle_outgoing", None, stanza=stanza, session=session)
    if handled:
        if callable(handled):
            await _run_takeover(server, stanza, handled)
        return
    verdict = call_guarded(server.pm, "casper_filter_outgoing", stanza=stanza, session=session)
    if verdict is not None:
        if isinstance(verdict, Bounce) and stanza.type != "error":
            # straight back to the sender: its own incoming rules must not swallow it
            session.deliver_nowait(stanza.error_reply(verdict).readdressed(to=session.jid))
        return
    if stanza.kind == "presence":
        await server.presence.outbound(stanza, session)
    elif stanza.kind == "message":
        await server.router.route(stanza if stanza.to else stanza.readdressed(to=session.account))
    else:
        await _iq(server, session, stanza)


async def _run_takeover(server: Server, stanza: Stanza, handler: Callable[[], object]) -> None:
    """Await what a plugin returned to take a stanza over; a crash answers the sender."""
    try:
        result = handler()
        if inspect.isawaitable(result):
            await result
    except StanzaError:
        raise
    except Exception as exc:
        log.error("plugin %r crashed in casper_handle_outgoing (stanza id %s)",
                  culprit_of_callable(server.pm, handler), stanza.id, exc_info=exc)  # fmt: skip
        await server.router.bounce(stanza, StanzaError("internal-server-error"))


async def _iq(server: Server, session: Session, stanza: Stanza) -> None:
    if stanza.type not in ("get", "set", "result", "error"):
        raise StanzaError("bad-request", "iq type must be get, set, result or error")
    if stanza.type in ("get", "set") and (stanza.id is None or len(stanza.element) != 1):
        raise StanzaError("bad-request", "an iq get or set has an id and exactly one child")
    if stanza.to is None or stanza.to == session.account:
        await server.router.answer_iq(stanza, "account", session.account, session)
    else:
        await server.router.route(stanza)


async def _answer_malformed(server: Server, session: Session, element: Element,
                            exc: StanzaError) -> None:  # fmt: skip
    """A stanza whose addresses don't parse: answer it as coming from the server."""
    if element.get("type") == "error":
        return
    bare = Element(
        element.tag, {k: v for k, v in element.attrib.items() if k not in ("to", "from")}
    )
    stanza = Stanza(bare, None, session.jid)
    session.deliver_nowait(stanza.error_reply(exc).readdressed(to=session.jid))
