"""Entity time: tell clients the server's clock (XEP-0202).

Implements XEP-0202 for the server's domain: ``<time xmlns='urn:xmpp:time'>`` with
``<tzo>+00:00</tzo>`` (the server reports UTC and no local zone) and ``<utc/>`` in the
XEP-0082 DateTime profile, to the second. IQs to accounts' bare JIDs are not answered here:
the time of a user's client is the client's to give.

Hooks: ``casper_iq_handlers``, ``casper_disco_features`` (``urn:xmpp:time`` for the server).
Config keys: none.
"""

from __future__ import annotations

import datetime
from xml.etree.ElementTree import Element, SubElement

from casper.hookspecs import hookimpl
from casper.iq import IqHandler, IqRequest
from casper.stanza import qname

CLUSTER_READY = True  # keeps no state about other accounts' sessions (casper.cluster)

TIME_NS = "urn:xmpp:time"


@hookimpl
def casper_iq_handlers() -> list[IqHandler]:
    return [IqHandler("get", TIME_NS, "time", answer, target="server")]


@hookimpl
def casper_disco_features(target: str) -> list[str]:
    return [TIME_NS] if target == "server" else []


def utc_now() -> str:
    """The current wall-clock time as an XEP-0082 DateTime in UTC."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def answer(request: IqRequest) -> Element:
    time_el = Element(qname(TIME_NS, "time"))
    SubElement(time_el, qname(TIME_NS, "tzo")).text = "+00:00"
    SubElement(time_el, qname(TIME_NS, "utc")).text = utc_now()
    return time_el
