"""Ping: answer XMPP-level pings to the server (XEP-0199).

Implements XEP-0199 client-to-server pings: a ping to the server's domain gets an empty
result.

A ping to an account's bare JID is answered by the server on the account's behalf (RFC 6120
§10.5.3.1), and only the account itself gets a result (a client pinging its own bare JID).
Everyone else gets ``service-unavailable``, always: whether the account is online, offline,
or online but hidden from the requester. A result would say "this account is online" to
some requesters and not others, and the answer for a hidden account must be exactly the
answer for an offline one; answering nobody but the account does both. Pings to a full JID
are routed to that client like any other IQ and are not handled here.

Hooks: ``casper_iq_handlers``, ``casper_disco_features`` (``urn:xmpp:ping`` for the server
only; accounts do not advertise it, since they don't answer others).
Config keys: none.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

PING_NS = "urn:xmpp:ping"


@hookimpl
def casper_iq_handlers() -> list[IqHandler]:
    return [
        IqHandler("get", PING_NS, "ping", server_ping, target="server"),
        IqHandler("get", PING_NS, "ping", account_ping, target="account"),
    ]


@hookimpl
def casper_disco_features(target: str) -> list[str]:
    return [PING_NS] if target == "server" else []


async def server_ping(request: IqRequest) -> Element | None:
    return None


async def account_ping(request: IqRequest) -> Element | None:
    if request.from_self:
        return None
    raise StanzaError("service-unavailable")
