"""The presence subscription state machine (RFC 6121 §3).

Outbound stanzas change the user's roster item, then travel to the contact; inbound
stanzas change the contact-side item. Requests are stored until answered, so approvals
work while the account is offline. Every roster change ends in a push and in a
reconciliation of who may see whom.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .jid import JID
from .stanza import Stanza, make_stanza
from .storage.base import RosterItem

if TYPE_CHECKING:
    from .presence import PresenceService
    from .server import Server
    from .session import Session

SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")

# (current subscription, event) -> new subscription
_GAIN_FROM = {"none": "from", "to": "both"}
_LOSE_FROM = {"from": "none", "both": "to"}
_GAIN_TO = {"none": "to", "from": "both"}
_LOSE_TO = {"to": "none", "both": "from"}


class Subscriptions:
    def __init__(self, server: Server, presence: PresenceService) -> None:
        self._server = server
        self._presence = presence

    async def _item(self, account: JID, contact: JID) -> RosterItem | None:
        return (await self._server.rosters.get(account)).get(str(contact))

    async def _save(self, account: JID, item: RosterItem, *, reconcile: bool = True) -> None:
        await self._server.rosters.put(account, item)
        if reconcile:
            await self._server.visibility_inputs_changed(account)

    async def _save_quietly(self, account: JID, item: RosterItem) -> None:
        """Save and push; the caller reconciles visibility once the stanza is routed."""
        await self._save(account, item, reconcile=False)

    async def _pending(self, account: JID) -> dict[str, str]:
        rows = await self._server.db(self._server.storage.get_pending_subscriptions, str(account))
        return dict(rows)

    async def _drop_pending(self, account: JID, contact: JID) -> None:
        storage = self._server.storage
        await self._server.db(storage.remove_pending_subscription, str(account), str(contact))

    # ------------------------------------------------------------ outbound (user → contact)

    async def outbound(self, stanza: Stanza, session_or_account: object) -> None:
        account = getattr(session_or_account, "account", session_or_account)
        assert isinstance(account, JID) and stanza.to is not None
        contact = stanza.to.bare
        out = make_stanza("presence", to=contact, from_=account, type=stanza.type,
                          id=stanza.id, children=list(stanza.element))  # fmt: skip
        handler = getattr(self, f"_out_{stanza.type}")
        if await handler(account, contact, await self._item(account, contact)):
            await self._server.router.route(out)
        # who may see whom changes only now that the contact has the stanza (RFC 6121
        # §3.1.5: the approval arrives before the presence it entitles to)
        await self._server.visibility_inputs_changed(account)

    async def _out_subscribe(self, account: JID, contact: JID, item: RosterItem | None) -> bool:
        base = item or RosterItem(jid=str(contact))
        if base.subscription not in ("to", "both") and not base.ask:
            await self._save_quietly(account, replace(base, ask=True))
        return True

    async def _out_subscribed(self, account: JID, contact: JID, item: RosterItem | None) -> bool:
        base = item or RosterItem(jid=str(contact))
        if base.subscription in ("from", "both"):
            return False
        if str(contact) not in await self._pending(account):
            if not base.approved:  # pre-approval (RFC 6121 §3.4)
                await self._save_quietly(account, replace(base, approved=True))
            return False
        await self._drop_pending(account, contact)
        await self._save_quietly(account, replace(base, subscription=_GAIN_FROM[base.subscription],
                                          approved=False))  # fmt: skip
        return True

    async def _out_unsubscribe(self, account: JID, contact: JID, item: RosterItem | None) -> bool:
        if item is not None and (item.subscription in ("to", "both") or item.ask):
            new = _LOSE_TO.get(item.subscription, item.subscription)
            await self._save_quietly(account, replace(item, subscription=new, ask=False))
        return True

    async def _out_unsubscribed(self, account: JID, contact: JID, item: RosterItem | None) -> bool:
        pending = str(contact) in await self._pending(account)
        if pending:
            await self._drop_pending(account, contact)
        if item is not None and item.subscription in ("from", "both"):
            new = _LOSE_FROM[item.subscription]
            await self._save_quietly(account, replace(item, subscription=new, approved=False))
            return True
        if item is not None and item.approved:
            await self._save_quietly(account, replace(item, approved=False))
        return pending

    # ------------------------------------------------------------ inbound (contact → user)

    async def inbound(self, stanza: Stanza) -> None:
        assert stanza.to is not None and stanza.from_ is not None
        account, contact = stanza.to.bare, stanza.from_.bare
        if stanza.to.local is None or not await self._server.account_exists(account):
            if stanza.type == "subscribe":
                await self._reply(account, contact, "unsubscribed")
            return
        stanza = stanza.readdressed(to=account, from_=contact)
        handler = getattr(self, f"_in_{stanza.type}")
        await handler(stanza, account, contact, await self._item(account, contact))

    async def _in_subscribe(self, stanza: Stanza, account: JID, contact: JID,
                            item: RosterItem | None) -> None:  # fmt: skip
        if item is not None and item.subscription in ("from", "both"):
            await self._reply(account, contact, "subscribed")
            return
        if item is not None and item.approved:
            await self._save_quietly(account, replace(item, approved=False,
                                     subscription=_GAIN_FROM[item.subscription]))  # fmt: skip
            await self._reply(account, contact, "subscribed")
            await self._server.visibility_inputs_changed(account)
            return
        xml = self._server.serialize(stanza)
        storage = self._server.storage
        await self._server.db(storage.add_pending_subscription, str(account), str(contact), xml)
        self._to_available(stanza, account)

    async def _in_subscribed(self, stanza: Stanza, account: JID, contact: JID,
                             item: RosterItem | None) -> None:  # fmt: skip
        if item is None or not item.ask or item.subscription in ("to", "both"):
            return
        await self._save(
            account, replace(item, subscription=_GAIN_TO[item.subscription], ask=False)
        )
        self._to_available(stanza, account)
        if contact.domain == self._server.domain:
            for session in self._server.router.sessions_of(account):
                if session.available:
                    await self._presence._probe_local(contact, account, session)

    async def _in_unsubscribe(self, stanza: Stanza, account: JID, contact: JID,
                              item: RosterItem | None) -> None:  # fmt: skip
        await self._drop_pending(account, contact)
        if item is not None and item.subscription in ("from", "both"):
            await self._save(account, replace(item, subscription=_LOSE_FROM[item.subscription]))
            self._to_available(stanza, account)

    async def _in_unsubscribed(self, stanza: Stanza, account: JID, contact: JID,
                               item: RosterItem | None) -> None:  # fmt: skip
        if item is None or not (item.subscription in ("to", "both") or item.ask):
            return
        new = _LOSE_TO.get(item.subscription, item.subscription)
        await self._save(account, replace(item, subscription=new, ask=False))
        self._to_available(stanza, account)

    # ------------------------------------------------------------ helpers

    def _to_available(self, stanza: Stanza, account: JID) -> None:
        for session in self._server.router.sessions_of(account):
            if session.available:
                self._server.router.deliver(stanza.readdressed(to=session.jid), session)

    async def _reply(self, account: JID, contact: JID, type_: str) -> None:
        await self._server.router.route(
            make_stanza("presence", to=contact, from_=account, type=type_)
        )

    async def deliver_pending(self, session: Session) -> None:
        """Hand stored subscription requests to a session's initial presence."""
        account = session.account
        for contact in await self._pending(account):
            request = make_stanza(
                "presence", to=account, from_=JID.parse(contact), type="subscribe"
            )
            self._server.router.deliver(request, session)

    async def cancel_for_removal(self, account: JID, contact: JID, item: RosterItem) -> None:
        """Roster removal cancels both directions (RFC 6121 §2.5.2)."""
        if item.subscription in ("from", "both"):
            await self._reply(account, contact, "unsubscribed")
        if item.subscription in ("to", "both") or item.ask:
            await self._reply(account, contact, "unsubscribe")
        await self._drop_pending(account, contact)
