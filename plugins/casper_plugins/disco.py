"""Service discovery: what the server and its accounts support (XEP-0030).

Implements XEP-0030 disco#info and disco#items for the server's domain and, on each
account's behalf, for accounts' bare JIDs (RFC 6120 §10.5.3.1).

- Server info: identity ``server/im`` named "Casper"; the features are disco's own, every
  ``casper_disco_features(target="server")`` contribution and every namespace with a server
  IQ handler. Server items: the services registered on subdomains (``server.components``).
- Account info: identity ``account/registered`` and the ``casper_disco_features(
  target="account")`` contributions. It is shown to anyone who may address the account:
  it is the same whether the account is online, offline or hidden, so it reveals nothing
  about presence.
- Account items: the account's resources, but only those the requester may know are
  online, as the core's visibility decision says
  (:meth:`casper.visibility.Visibility.sessions_known_to`: the account itself sees all;
  others need a from/both subscription or directed presence, and no strategy hiding the
  session). Whoever may see none gets an empty list, which is exactly what an account
  without sessions answers. The requester's *bare*
  JID is what is asked about, so directed presence to one full JID reveals nothing to the
  requester's other resources (privacy over availability).

Nodes: these entities have none; a query with any ``node`` gets ``item-not-found``.

Hooks: implements ``casper_iq_handlers``; calls ``casper_disco_features``. Config keys: none.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from casper.errors import StanzaError
from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.plugins import call_safely
from casper.stanza import qname

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

INFO_NS = "http://jabber.org/protocol/disco#info"
ITEMS_NS = "http://jabber.org/protocol/disco#items"
SERVER_NAME = "Casper"


@hookimpl
def casper_iq_handlers() -> list[IqHandler]:
    return [
        IqHandler("get", INFO_NS, "query", server_info, target="server"),
        IqHandler("get", ITEMS_NS, "query", server_items, target="server"),
        IqHandler("get", INFO_NS, "query", account_info, target="account"),
        IqHandler("get", ITEMS_NS, "query", account_items, target="account"),
    ]


def _check_no_node(request: IqRequest) -> None:
    if request.payload.get("node") is not None:
        raise StanzaError("item-not-found", "no such node")


def _contributed_features(request: IqRequest, target: str) -> set[str]:
    features = {INFO_NS, ITEMS_NS}
    # a crashing contributor is logged; the answer then lacks contributed features
    for result in call_safely(request.server.pm, "casper_disco_features", [], target=target):
        features.update(result or ())
    return features


def _info(category: str, type_: str, name: str | None, features: set[str]) -> Element:
    query = Element(qname(INFO_NS, "query"))
    identity = SubElement(query, qname(INFO_NS, "identity"), {"category": category, "type": type_})
    if name is not None:
        identity.set("name", name)
    for feature in sorted(features):
        SubElement(query, qname(INFO_NS, "feature"), {"var": feature})
    return query


async def server_info(request: IqRequest) -> Element:
    """disco#info of the domain: identity plus every enabled feature."""
    _check_no_node(request)
    features = _contributed_features(request, "server")
    features |= request.server.iq_table.namespaces("server")
    return _info("server", "im", SERVER_NAME, features)


async def server_items(request: IqRequest) -> Element:
    """disco#items of the domain: the services plugins run on subdomains (e.g. MUC)."""
    _check_no_node(request)
    query = Element(qname(ITEMS_NS, "query"))
    for domain in sorted(request.server.components):
        SubElement(query, qname(ITEMS_NS, "item"), {"jid": domain})
    return query


async def account_info(request: IqRequest) -> Element:
    """disco#info of an account's bare JID; the same whatever the account's presence."""
    _check_no_node(request)
    return _info("account", "registered", None, _contributed_features(request, "account"))


async def account_items(request: IqRequest) -> Element:
    """disco#items of an account: the resources the requester may see online."""
    _check_no_node(request)
    observer = request.requester.bare
    sessions = await request.server.visibility.sessions_known_to(request.target, observer)
    query = Element(qname(ITEMS_NS, "query"))
    for jid in sorted(str(s.jid) for s in sessions):
        SubElement(query, qname(ITEMS_NS, "item"), {"jid": jid})
    return query
