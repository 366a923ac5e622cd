"""Routing of stanzas to local sessions, by RFC 6121 §8 rules.

The router maps JIDs to sessions, runs the incoming filters, and delivers with
``deliver_nowait`` — it never awaits a recipient. Presence has its own module
(:mod:`casper.presence`); messages and IQs are routed here. Whatever cannot or may not be
delivered takes the one offline-equivalent path (:meth:`Router.as_offline`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .errors import StanzaError, StreamError
from .iq import IqRequest
from .jid import JID
from .plugins import call_guarded, call_safely
from .stanza import Stanza
from .storage import AccountNotFound
from .verdicts import Bounce, Drop, OfflineEquivalent, Verdict

if TYPE_CHECKING:
    from .server import Server
    from .session import Session

log = logging.getLogger("casper.router")


class Router:
    """JID → session map plus message and IQ routing."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._accounts: dict[JID, dict[str, Session]] = {}

    # ------------------------------------------------------------------ registry

    def sessions_of(self, account: JID) -> list[Session]:
        return list(self._accounts.get(account, {}).values())

    def has_sessions(self, account: JID) -> bool:
        return bool(self._accounts.get(account))

    def session_for(self, full: JID) -> Session | None:
        assert full.resource is not None
        return self._accounts.get(full.bare, {}).get(full.resource)

    def all_sessions(self) -> list[Session]:
        return [s for sessions in self._accounts.values() for s in sessions.values()]

    def resource_in_use(self, full: JID) -> bool:
        return self.session_for(full) is not None

    def bind(self, session: Session) -> None:
        """Register ``session``; an older session on the same full JID is replaced."""
        assert session.jid.resource is not None
        resources = self._accounts.setdefault(session.account, {})
        old = resources.get(session.jid.resource)
        if old is not None:
            old.close(StreamError("conflict", "replaced by a new connection"))
        resources[session.jid.resource] = session

    def unbind(self, session: Session) -> None:
        assert session.jid.resource is not None
        resources = self._accounts.get(session.account, {})
        if resources.get(session.jid.resource) is session:
            del resources[session.jid.resource]
            if not resources:
                del self._accounts[session.account]

    # ------------------------------------------------------------------ delivery

    def filter_incoming(
        self, stanza: Stanza, account: JID, session: Session | None
    ) -> Verdict | None:
        return call_guarded(
            self._server.pm, "casper_filter_incoming",
            stanza=stanza, recipient=account, session=session,
        )  # fmt: skip

    def deliver(self, stanza: Stanza, session: Session) -> Verdict | None:
        """Deliver to one session unless a filter objects; return the objection."""
        if stanza.kind == "presence":
            _note_heard(stanza, session, self._server.domain)
        verdict = self.filter_incoming(stanza, session.account, session)
        if verdict is None:
            session.deliver_nowait(stanza)
        return verdict

    async def bounce(self, stanza: Stanza, error: StanzaError | Bounce) -> None:
        """Answer ``stanza``'s sender with an error. Errors and IQ results are never
        answered (RFC 6120 §8.3.1, §8.2.3). A stanza without ``to`` was handled on behalf
        of the sender's account, so the error comes from its bare JID (§8.1.2.1)."""
        if stanza.type == "error" or stanza.from_ is None:
            return
        if stanza.kind == "iq" and stanza.type == "result":
            return
        reply = stanza.error_reply(error)
        if reply.from_ is None:
            reply = reply.readdressed(from_=stanza.from_.bare)
        await self.route(reply)

    async def apply(self, verdict: Verdict, stanza: Stanza) -> None:
        """Carry out a Drop or Bounce verdict on ``stanza``."""
        if isinstance(verdict, Bounce):
            await self.bounce(stanza, verdict)

    # ------------------------------------------------------------------ routing

    async def route(self, stanza: Stanza) -> None:
        """Route an addressed, stamped message or IQ (presence: :mod:`casper.presence`)."""
        to = stanza.to
        assert to is not None
        if to.domain != self._server.domain and not self._server.deliver_to_component(stanza):
            if self._server.s2s.send(stanza):  # federation takes it (failures bounce later)
                return
            if stanza.kind != "presence" or stanza.type not in (None, "unavailable", "probe"):
                await self.bounce(stanza, StanzaError("remote-server-not-found"))
            return
        if to.domain != self._server.domain:
            return
        cluster = self._server.cluster
        if cluster is not None and to.local is not None and cluster.elsewhere(to):
            await cluster.forward(stanza, to)  # its home routes it
            return
        if stanza.kind == "presence":
            await self._server.presence.route_inbound(stanza)
        elif to.local is None:
            await self._to_server(stanza, to)
        elif not await self._server.account_exists(to.bare):
            await self.bounce(stanza, StanzaError("service-unavailable"))
        elif to.resource is not None:
            await self._to_full(stanza, to)
        elif stanza.kind == "iq":
            await self.answer_iq(stanza, "account", to.bare)
        else:
            await self._message_to_bare(stanza, to)

    async def _to_server(self, stanza: Stanza, to: JID) -> None:
        if to.resource is not None:
            await self.bounce(stanza, StanzaError("service-unavailable"))
        elif stanza.kind == "iq":
            await self.answer_iq(stanza, "server", to)
        # messages to the bare domain have no handler in the core: dropped silently

    async def _to_full(self, stanza: Stanza, to: JID) -> None:
        session = self.session_for(to)
        if session is not None:
            verdict = self.deliver(stanza, session)
            if verdict is None:
                return
            if not isinstance(verdict, OfflineEquivalent):
                await self.apply(verdict, stanza)
                return
        # no such resource, or it must look like there is none
        if stanza.kind == "iq":
            if stanza.type in ("get", "set"):
                await self.bounce(stanza, StanzaError("service-unavailable"))
        elif stanza.type in (None, "normal", "chat"):
            await self._message_to_bare(stanza, to.bare)
        elif stanza.type == "groupchat":
            await self.bounce(stanza, StanzaError("service-unavailable"))

    async def redeliver(self, stanza: Stanza, account: JID) -> None:
        """Route a message a session took but whose client never acknowledged it (XEP-0198
        §4; the session is unbound): to the account's sessions by the bare-JID rules, else
        the offline-equivalent path, which bounces ``recipient-unavailable`` if nothing
        stores it (the offline answer where a filter says the sender must see offline)."""
        await self._message_to_bare(stanza, account, refusal="recipient-unavailable")

    async def _message_to_bare(self, stanza: Stanza, account: JID,
                               refusal: str = "service-unavailable") -> None:  # fmt: skip
        msg_type = stanza.type or "normal"
        if msg_type == "groupchat":
            await self.bounce(stanza, StanzaError("service-unavailable"))
            return
        if msg_type == "error":
            return
        sender = stanza.from_ or JID.make(None, self._server.domain)
        targets = self._server.visibility.bare_targets(account, sender)
        verdicts = [self.deliver(stanza, s) for s in targets]
        if targets and any(v is None for v in verdicts):
            return
        bounce = next((v for v in verdicts if isinstance(v, Bounce)), None)
        if bounce is not None:
            await self.apply(bounce, stanza)
        elif verdicts and all(isinstance(v, Drop) for v in verdicts):
            return
        elif msg_type in ("normal", "chat"):
            await self.as_offline(stanza, account, refusal=refusal)

    async def as_offline(self, stanza: Stanza, account: JID, *,
                         refusal: str = "service-unavailable") -> None:  # fmt: skip
        """The offline-equivalent answer: what an account with no session gets.

        Used for offline accounts, and for anyone an account is hidden from or blocks.
        :param refusal: the error for a message nothing stores, unless a filter asked for
            the offline answer (which is always ``service-unavailable``).
        """
        verdict = self.filter_incoming(stanza, account, None)
        if verdict is not None:
            refusal = "service-unavailable"
        if verdict is not None and not isinstance(verdict, OfflineEquivalent):
            await self.apply(verdict, stanza)
            return
        if stanza.kind == "message" and (stanza.type or "normal") in ("normal", "chat"):
            store = call_safely(self._server.pm, "casper_offline_message", None,
                                stanza=stanza, account=account)  # fmt: skip
            if store is not None:
                try:
                    await store()
                    return
                except StanzaError as exc:  # e.g. the account's offline store is full
                    await self.bounce(stanza, exc)
                    return
                except Exception:
                    log.exception("offline storage failed for %s", account)
            await self.bounce(stanza, StanzaError(refusal))
        elif stanza.kind == "iq" and stanza.type in ("get", "set"):
            await self.bounce(stanza, StanzaError("service-unavailable"))

    # ------------------------------------------------------------------ IQ answers

    async def answer_iq(
        self, stanza: Stanza, target: str, target_jid: JID, session: Session | None = None
    ) -> None:
        """Answer an IQ addressed to the server or to an account's bare JID."""
        if stanza.type not in ("get", "set"):
            return  # results and errors to a bare JID are absorbed (RFC 6121 §8.5.2.1.3)
        sender = stanza.from_
        if session is None and sender is not None and sender.resource and sender.local \
                and sender.domain == self._server.domain:  # fmt: skip
            session = self.session_for(sender)
        if target == "account" and (stanza.from_ is None or stanza.from_.bare != target_jid):
            verdict = self.filter_incoming(stanza, target_jid, None)
            if verdict is not None:
                if isinstance(verdict, OfflineEquivalent):
                    await self.bounce(stanza, StanzaError("service-unavailable"))
                else:
                    await self.apply(verdict, stanza)
                return
        handler = self._server.iq_table.lookup(target, stanza)
        if handler is None:
            await self.bounce(stanza, StanzaError("service-unavailable"))
            return
        request = IqRequest(stanza=stanza, server=self._server, target=target_jid, session=session)
        try:
            payload = await handler.handler(request)
        except StanzaError as exc:
            await self.bounce(stanza, exc)
            return
        except AccountNotFound as exc:  # deleted (``casper user delete``) while in use
            await self.bounce(stanza, StanzaError("item-not-found", "the account was deleted"))
            if session is not None and str(session.account) == exc.args[0]:
                session.close(StreamError("not-authorized", "the account was deleted"))
            return
        except Exception as exc:
            log.error("plugin %r crashed in its IQ handler for %s (stanza id %s)",
                      self._server.iq_table.owner(handler), handler.name, stanza.id,
                      exc_info=exc)  # fmt: skip
            await self.bounce(stanza, StanzaError("internal-server-error"))
            return
        await self.route(stanza.result(payload))


def _note_heard(presence: Stanza, session: Session, domain: str) -> None:
    """Keep ``session.heard`` (see :class:`~casper.session.Session`)."""
    source = presence.from_
    if source is None or source.resource is None or source.domain != domain:
        return
    if source.bare == session.account:
        return
    if presence.type is None:
        session.heard.add(source)
    elif presence.type == "unavailable":
        session.heard.discard(source)
