"""Last activity: server uptime, and when an account was last seen online (XEP-0012).

Implements XEP-0012 for the server's domain (seconds since the server started) and, on an
account's behalf, for accounts' bare JIDs (seconds since the account was last online):

- the account itself asking: ``seconds='0'``;
- a requester the account's presence is not shared with (no ``from``/``both`` item for
  them in the account's roster): ``forbidden``, as XEP-0012 §4 requires;
- a contact: the answer comes from the core's visibility decision,
  :meth:`casper.visibility.Visibility.last_seen`, so a session hidden from the contact
  counts as no session at all:

  - a session is visible to them: ``seconds='0'`` (online now). XEP-0012 would pass the
    IQ to a client; answering for it keeps the client's idle time private;
  - otherwise the time since the last *public* logoff, with that presence's status as
    text. While hidden, that is still the logoff before hiding, never "0 seconds";
  - never publicly online (a new account, or one that only ever logged in hidden):
    ``service-unavailable``. There is no logoff time to give, and ``seconds='0'`` would
    say "online now". Hidden-since-creation and never-logged-in get the same answer.

Hooks: ``casper_iq_handlers``, ``casper_disco_features`` (``jabber:iq:last`` for the
server and for accounts). Config keys: none.
"""

from __future__ import annotations

import time
from xml.etree.ElementTree import Element

from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.stanza import qname

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

LAST_NS = "jabber:iq:last"
SHARES_PRESENCE = ("from", "both")


@hookimpl
def casper_iq_handlers() -> list[IqHandler]:
    return [
        IqHandler("get", LAST_NS, "query", uptime, target="server"),
        IqHandler("get", LAST_NS, "query", account_last_activity, target="account"),
    ]


@hookimpl
def casper_disco_features(target: str) -> list[str]:
    return [LAST_NS]


def _query(seconds: float, status: str | None = None) -> Element:
    query = Element(qname(LAST_NS, "query"), {"seconds": str(max(0, int(seconds)))})
    if status:
        query.text = status
    return query


async def uptime(request: IqRequest) -> Element:
    """Seconds since the server started (XEP-0012 §5)."""
    return _query(time.time() - request.server.started_at)


async def account_last_activity(request: IqRequest) -> Element:
    """Seconds since the account was last seen online by the requester (XEP-0012 §4)."""
    if request.from_self:
        return _query(0)
    server, account, requester = request.server, request.target, request.requester.bare
    item = (await server.rosters.get(account)).get(str(requester))
    if item is None or item.subscription not in SHARES_PRESENCE:
        raise StanzaError("forbidden")
    seen = await server.visibility.last_seen(account, requester)
    if seen is None:
        return _query(0)
    stamp, status = seen
    if stamp <= 0:
        raise StanzaError("service-unavailable")
    return _query(time.time() - stamp, status)
