"""Behavioural tests of the hooks that add to what the server advertises.

``casper_stream_features`` (negotiation): a contributed stream feature is offered after
authentication, beside bind, and not before; ``casper_disco_features`` (discovery): a
contributed disco#info feature is listed for the server or for an account, as asked.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper.hookspecs import hookimpl
from casper.stanza import qname
from casper.testing import open_test_server
from casper.testing.client import closing

from tests.helpers import with_id

ROMEO = "romeo@localhost"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
TEST_NS = "urn:casper:test:hooks"

# ---------------------------------------------------------------- negotiation


class OffersFeature:
    @hookimpl
    def casper_stream_features(self, server: Any) -> list[Element]:
        return [Element(qname(TEST_NS, "shiny"))]


async def test_hook_stream_features() -> None:
    """A contributed feature is offered after authentication, beside bind, and not before."""
    async with open_test_server(
        default_plugins=False, extra_plugins=[(OffersFeature(), "shiny")]
    ) as srv:
        client = await srv.connect()
        async with closing(client):
            before_auth = await client.open_stream()
            await client.starttls(srv.client_context)
            await client.authenticate("romeo", "secret")
            after_auth = client.features
            assert after_auth is not None
            await client.bind("r1")
    tags = [child.tag for child in after_auth]
    assert qname(TEST_NS, "shiny") in tags
    assert "{urn:ietf:params:xml:ns:xmpp-bind}bind" in tags
    assert qname(TEST_NS, "shiny") not in [child.tag for child in before_auth]


# ---------------------------------------------------------------- discovery


class ContributesFeatures:
    @hookimpl
    def casper_disco_features(self, target: str) -> list[str]:
        return [f"{TEST_NS}:{target}"]


@pytest.mark.parametrize("target", ["server", "account"])
async def test_hook_disco_features(target: str) -> None:
    to = "localhost" if target == "server" else ROMEO
    other = "account" if target == "server" else "server"
    async with (
        open_test_server(
            default_plugins=False,
            plugins=("disco",),
            extra_plugins=[(ContributesFeatures(), "features")],
        ) as srv,
        srv.client("romeo", resource="r1") as romeo,
    ):
        await romeo.send(f"<iq type='get' to='{to}' id='i1'><query xmlns='{DISCO_INFO}'/></iq>")
        reply = await romeo.expect(with_id("i1"))
    features = {f.get("var") for f in reply.iter(qname(DISCO_INFO, "feature"))}
    assert f"{TEST_NS}:{target}" in features
    assert f"{TEST_NS}:{other}" not in features
