"""Presence per RFC 6121 §4: broadcast, probes, directed presence, unavailable on logoff.

Every place that could reveal a session asks the visibility decision
(:mod:`casper.visibility`); unavailable goes only to those who saw the session available
(``Session.seen_by``), so nobody learns of a login they never saw. Subscriptions are in
:mod:`casper.subscriptions`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from .errors import StanzaError
from .jid import JID
from .plugins import call_safely
from .stanza import CLIENT_NS, Stanza, delay_element, make_stanza, qname
from .subscriptions import SUBSCRIPTION_TYPES, Subscriptions
from .verdicts import OfflineEquivalent

if TYPE_CHECKING:
    from .server import Server
    from .session import Session

log = logging.getLogger("casper.presence")
AVAILABILITY = (None, "unavailable")


def parse_priority(stanza: Stanza) -> int:
    """The ``<priority/>`` of an available presence (RFC 6121 §4.7.2.3), default 0."""
    text = stanza.text_of("priority")
    if text is None:
        return 0
    try:
        value = int(text.strip())
    except ValueError:
        raise StanzaError("bad-request", "priority must be an integer") from None
    if not -128 <= value <= 127:
        raise StanzaError("bad-request", "priority must be in -128..127")
    return value


class PresenceService:
    """Presence processing for one server."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self.subscriptions = Subscriptions(server, self)

    # ------------------------------------------------------------ from a client

    async def outbound(self, stanza: Stanza, session: Session) -> None:
        """Process a presence stanza a local session sent (``from`` stamped)."""
        kind = stanza.type
        if kind in AVAILABILITY:
            if stanza.to is None:
                await self._broadcast(stanza, session)
            else:
                await self._directed(stanza, session)
        elif kind in SUBSCRIPTION_TYPES:
            if stanza.to is None or stanza.to.bare == session.account:
                raise StanzaError(
                    "bad-request", "a subscription request needs another entity's 'to'"
                )
            await self.subscriptions.outbound(stanza, session)
        elif kind == "probe" and stanza.to is not None:
            # the probing resource itself is the observer: it may have been sent
            # directed presence that its account's other resources were not
            await self._probe_local(stanza.to.bare, session.jid, session)
        elif kind == "error" and stanza.to is not None:
            await self._server.router.route(stanza)
        else:
            raise StanzaError("bad-request", f"unknown presence type {kind!r}")

    async def _broadcast(self, stanza: Stanza, session: Session) -> None:
        if stanza.type == "unavailable":
            await self.go_unavailable(session, stanza)
            return
        session.priority = parse_priority(stanza)
        initial = not session.available
        session.available = True
        session.presence = stanza.readdressed(to=None)
        if not self._server.visibility.hidden_from_world(session):
            session.shown_publicly = True
        await self.publish(session)
        if initial:
            await self._initial(session)

    async def _initial(self, session: Session) -> None:
        """Probes, pending subscription requests and offline delivery (RFC 6121 §4.2)."""
        roster = await self._server.rosters.get(session.account)
        wanted = call_safely(self._server.pm, "casper_initial_probes_wanted", None, session=session)
        for contact, item in roster.items() if wanted is not False else ():
            contact_jid = JID.parse(contact)
            if item.subscription not in ("to", "both"):
                continue
            if contact_jid.domain == self._server.domain:
                await self._probe_local(contact_jid, session.account, session)
            elif self._server.s2s.is_remote(contact_jid.domain):  # RFC 6121 §4.3.1
                probe = make_stanza("presence", from_=session.account, to=contact_jid, type="probe")
                self._server.s2s.send(probe)
        for other in self._server.router.sessions_of(session.account):
            if other is not session and other.available and other.presence is not None:
                self._server.router.deliver(other.presence.readdressed(to=session.jid), session)
        if not session.initial_presence_sent:
            session.initial_presence_sent = True
            await self.subscriptions.deliver_pending(session)
            await self._server.session_available(session)
        else:  # available again on the same stream: what was kept meanwhile comes now
            await self._server.session_shown(session)

    # ------------------------------------------------------------ publishing

    async def publish(self, session: Session) -> None:
        """Send the session's new broadcast presence to every subscriber entitled to it.

        Subscribers who saw it but no longer may get unavailable instead. Recipients of
        directed presence keep what they were sent and get no broadcast updates they are
        not otherwise entitled to (RFC 6121 §4.6; XEP-0186: nothing is broadcast while
        invisible).
        """
        subscribers, _ = await self._observers(session)
        audience = set()
        for observer in subscribers:
            if self._entitled(session, observer):
                audience.add(observer)
                self._send_available(session, observer)
            elif observer in session.seen_by and observer not in session.directed_to:
                self._send_unavailable(session, observer, None)
        await self._track_audience(session, audience)
        self._reflect(session, session.presence)

    async def reconcile(self, session: Session) -> None:
        """Bring ``seen_by`` in line with the visibility decision, sending only changes.

        Call after anything the decision depends on changed (roster, strategy state);
        plugins call it when their answer changes.
        """
        subscribers, others = await self._observers(session)
        audience = {o for o in subscribers if self._entitled(session, o)}
        shown = False
        for observer in subscribers + others:
            visible = observer in audience or observer in session.directed_to
            if visible and observer not in session.seen_by:
                self._send_available(session, observer)
                shown = True
            elif not visible and observer in session.seen_by:
                self._send_unavailable(session, observer, None)
        await self._track_audience(session, audience)
        if shown and session.initial_presence_sent:
            await self._server.session_shown(session)

    async def _observers(self, session: Session) -> tuple[list[JID], list[JID]]:
        """(subscribers with a from/both subscription, everyone else who saw or was sent
        directed presence)."""
        roster = await self._server.rosters.get(session.account)
        subscribers = [
            JID.parse(c) for c, i in roster.items() if i.subscription in ("from", "both")
        ]
        others = (session.seen_by | session.directed_to) - set(subscribers)
        return subscribers, sorted(others, key=str)

    def _entitled(self, session: Session, subscriber: JID) -> bool:
        """Whether a subscriber gets the session's broadcast presence now."""
        return session.available and not self._server.visibility.hidden(session, subscriber)

    async def _track_audience(self, session: Session, audience: set[JID]) -> None:
        """Remember which subscribers the session is publicly available to. Those it
        stops being available to while it stays connected (a strategy started hiding it)
        saw it go offline now, whether or not they were online to notice: their last
        activity answer says so (XEP-0186 §3.1.1)."""
        for observer in session.audience - audience:
            await self._server.lastseen.saw_go_offline(session.account, observer, time.time())
        session.audience = audience

    def _send_available(self, session: Session, observer: JID) -> None:
        presence = session.presence or make_stanza("presence", from_=session.jid)
        if self.deliver_presence(presence.readdressed(to=observer)):
            session.seen_by.add(observer)

    def _send_unavailable(self, session: Session, observer: JID, status: Stanza | None) -> None:
        session.seen_by.discard(observer)
        self.deliver_presence(_unavailable(session.jid, observer, status))

    def _reflect(self, session: Session, presence: Stanza | None) -> None:
        """Send a session's presence to its account's available resources and itself."""
        stanza = presence or _unavailable(session.jid, None, None)
        for other in self._server.router.sessions_of(session.account):
            if other is session or other.available:
                self._server.router.deliver(stanza.readdressed(to=other.jid), other)

    def deliver_presence(self, stanza: Stanza) -> bool:
        """Deliver availability presence to a local JID; return whether anyone got it.

        Bare JID: every available resource; full JID: that resource if connected.
        Components take their domains' presence; other domains go to federation
        (``server.s2s``), which counts as delivered once queued.
        """
        to = stanza.to
        assert to is not None
        router = self._server.router
        if to.domain != self._server.domain or to.local is None:
            return self._server.deliver_to_component(stanza) or self._server.s2s.send(stanza)
        cluster = self._server.cluster
        if cluster is not None and cluster.elsewhere(to):  # its home delivers it
            return cluster.forward_nowait(stanza, to)
        if to.resource is not None:
            target = router.session_for(to)
            targets = [target] if target is not None else []
        else:
            targets = [s for s in router.sessions_of(to) if s.available]
        delivered = [router.deliver(stanza, t) is None for t in targets]
        return any(delivered)

    # ------------------------------------------------------------ unavailable

    async def go_unavailable(self, session: Session, stanza: Stanza | None = None) -> None:
        """The session goes offline to everyone who saw it, but stays connected."""
        was_shown = session.available or bool(session.seen_by)
        for observer in list(session.seen_by):
            self._send_unavailable(session, observer, stanza)
        session.available = False
        session.presence = None
        session.directed_to.clear()
        session.audience = set()  # a real logoff: recorded below for all at once
        self._reflect(session, _unavailable(session.jid, None, stanza))
        if was_shown and session.shown_publicly:
            status = stanza.text_of("status") if stanza is not None else None
            await self._server.record_public_logoff(session, status)
        session.shown_publicly = False

    def forget_broadcast(self, session: Session) -> None:
        """Treat ``session`` as one that has not sent broadcast presence yet: until its next
        available presence nothing is broadcast for it and probes, last activity and
        disco#items answer as if it were offline (XEP-0186 §3.2, becoming visible again).
        Entities it sent directed presence to keep it and get unavailable at the end."""
        session.available = False
        session.presence = None

    # ------------------------------------------------------------ directed

    async def _directed(self, stanza: Stanza, session: Session) -> None:
        to = stanza.to
        assert to is not None
        if to.bare == session.account:
            self.deliver_presence(stanza)
            return
        if stanza.type == "unavailable":
            session.directed_to.discard(to)
            session.seen_by.discard(to)
            self.deliver_presence(stanza)
            return
        session.directed_to.add(to)
        if self.deliver_presence(stanza):
            session.seen_by.add(to)

    def withdraw_directed(self, session: Session, entity: JID) -> None:
        """Treat ``entity`` as never sent directed presence (a strategy now hides the
        session from it); :meth:`reconcile` then sends it unavailable if it saw the session."""
        session.directed_to.discard(entity)

    def forget(self, session: Session, entity: JID) -> None:
        """Drop ``entity`` from the session's presence bookkeeping without sending
        anything: it already knows the session is gone to it (a room that kicked the user)."""
        session.directed_to.discard(entity)
        session.seen_by.discard(entity)

    def forget_all_of(self, session_jid: JID, entity: JID) -> None:
        """:meth:`forget` every JID of the bare ``entity`` (a room and its nicks) for the
        session ``session_jid`` of the served domain, on whichever worker it lives."""
        cluster = self._server.cluster
        if cluster is not None and cluster.elsewhere(session_jid):
            cluster.forget_nowait(session_jid, entity.bare)
            return
        session = self._server.router.session_for(session_jid)
        if session is None:
            return
        for known in session.directed_to | session.seen_by:
            if known.bare == entity.bare:
                self.forget(session, known)

    # ------------------------------------------------------------ probes

    async def probe(self, stanza: Stanza) -> None:
        """Answer a presence probe for a local account (RFC 6121 §4.3.2)."""
        to, prober = stanza.to, stanza.from_
        assert to is not None and prober is not None
        if to.domain == self._server.domain and to.local is not None:
            await self._answer_probe(to.bare, prober)

    async def _probe_local(self, contact: JID, observer: JID, session: Session) -> None:
        """Probe a contact of the served domain for ``observer``: answered here, or by the
        contact's home worker (:mod:`casper.cluster`), whose answer is routed back."""
        cluster = self._server.cluster
        if cluster is not None and contact.local is not None and cluster.elsewhere(contact):
            await cluster.probe(contact, observer, session.jid)
        else:
            await self._answer_local_probe(contact, observer, session)

    async def send_current_presence(self, session: Session, contact: JID) -> None:
        """Send ``session`` the presence ``contact`` (an account of the served domain)
        shows it now, as a probe from the session would be answered."""
        await self._probe_local(contact.bare, session.jid, session)

    async def answer_cluster_probe(self, contact: JID, observer: JID, reply_to: JID) -> None:
        """A probe of a local contact from a session living on another worker, answered as
        :meth:`_answer_local_probe` would (to that session alone)."""
        stanzas, shown = await self.probe_answer(contact, observer)
        for stanza in stanzas:
            self.deliver_presence(stanza.readdressed(to=reply_to))
        for s in shown:
            s.seen_by.add(observer if observer in s.directed_to else observer.bare)

    async def _answer_local_probe(self, contact: JID, observer: JID, session: Session) -> None:
        """A local session asks for a contact's presence: answer straight to it.

        :param observer: whose view is asked: the session's account (probes on login) or
            the session's own full JID (a probe the client sent).
        """
        stanzas, shown = await self.probe_answer(contact, observer)
        for stanza in stanzas:
            self._server.router.deliver(stanza.readdressed(to=session.jid), session)
        for s in shown:
            s.seen_by.add(observer if observer in s.directed_to else observer.bare)

    async def _answer_probe(self, account: JID, prober: JID) -> None:
        stanzas, shown = await self.probe_answer(account, prober)
        for stanza in stanzas:
            self.deliver_presence(stanza.readdressed(to=prober))
        for s in shown:
            s.seen_by.add(prober.bare)

    async def probe_answer(self, account: JID, prober: JID) -> tuple[list[Stanza], list[Session]]:
        """What ``prober`` learns of ``account``'s presence, and which sessions it shows.

        Sessions hidden from the prober are left out; with none left, the answer is the
        offline one — the same stanza a truly offline account yields.
        """
        if not await self._server.account_exists(account):
            return [make_stanza("presence", from_=account, type="unsubscribed")], []
        if prober.bare == account:  # implicitly subscribed to itself (RFC 6121 §4.3.2)
            own = [s for s in self._server.router.sessions_of(account) if s.available]
            if own:
                return [s.presence or make_stanza("presence", from_=s.jid) for s in own], []
            return [await self.offline_presence(account, prober)], []
        roster = await self._server.rosters.get(account)
        item = roster.get(str(prober.bare))
        if item is None or item.subscription not in ("from", "both"):
            return [make_stanza("presence", from_=account, type="unsubscribed")], []
        sessions = await self._server.visibility.sessions_known_to(account, prober)
        if sessions:
            return [s.presence or make_stanza("presence", from_=s.jid) for s in sessions], sessions
        return [await self.offline_presence(account, prober)], []

    async def offline_presence(self, account: JID, observer: JID | None = None) -> Stanza:
        """The unavailable presence an offline account shows ``observer``, stamped with
        the last logoff it could see."""
        children: list[Element] = []
        last = await self._server.lastseen.for_observer(account, observer)
        if last is not None and last[0] > 0:
            stamp, status = last
            if status:
                status_el = Element(qname(CLIENT_NS, "status"))
                status_el.text = status
                children.append(status_el)
            children.append(delay_element(stamp, account))
        return make_stanza("presence", from_=account, type="unavailable", children=children)

    # ------------------------------------------------------------ to a local account

    async def route_inbound(self, stanza: Stanza) -> None:
        """Process presence addressed to a local JID by another entity."""
        kind = stanza.type
        to = stanza.to
        assert to is not None
        if kind in SUBSCRIPTION_TYPES or kind == "probe":
            # account-level rules (e.g. privacy lists) come before subscription handling
            verdict = self._server.router.filter_incoming(stanza, to.bare, None)
            if isinstance(verdict, OfflineEquivalent) and kind == "probe":
                prober = stanza.from_
                assert prober is not None
                self.deliver_presence(
                    (await self.offline_presence(to.bare, prober)).readdressed(to=prober)
                )
                return
            if verdict is not None:
                await self._server.router.apply(verdict, stanza)
                return
        if kind in SUBSCRIPTION_TYPES:
            await self.subscriptions.inbound(stanza)
        elif kind == "probe":
            await self.probe(stanza)
        elif kind in AVAILABILITY or kind == "error":
            self.deliver_presence(stanza)

    # ------------------------------------------------------------ session end

    async def session_ended(self, session: Session) -> None:
        """Logoff: unavailable to exactly those who saw the session (no ghosts)."""
        await self.go_unavailable(session, None)


def _unavailable(from_: JID, to: JID | None, like: Stanza | None) -> Stanza:
    children = (
        [] if like is None else [c for c in like.element if c.tag == qname(CLIENT_NS, "status")]
    )
    return make_stanza("presence", from_=from_, to=to, type="unavailable", children=children)
