"""Drivers for the built-in invisibility strategies, and the protocol helpers drivers use.

A driver tells the conformance suite how a strategy's client hides (see
:mod:`casper.testing.conformance`). Every method returns once the server has processed
what it sent: :func:`request` waits for the IQ reply, :func:`roundtrip` for a round trip.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol
from xml.etree.ElementTree import Element

from casper.testing.client import TestClient

C = "{jabber:client}"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SYNC_NS = "urn:casper:conformance:sync"  # nobody answers it: the server replies with an error

# ---------------------------------------------------------------- protocol helpers


async def roundtrip(client: TestClient) -> list[Element]:
    """A round trip to the server; return what ``client`` received before the answer.

    The server handles a client's stanzas in order, so when this returns, everything
    ``client`` sent before has been processed and all it caused is queued for others.
    """
    iq_id = f"sync-{secrets.token_hex(4)}"
    await client.send(
        f"<iq type='get' id='{iq_id}' to='{client.domain}'><q xmlns='{SYNC_NS}'/></iq>"
    )
    received: list[Element] = []
    while True:
        element = await client.recv()
        if (
            element.tag == f"{C}iq"
            and element.get("id") == iq_id
            and element.get("type") in ("result", "error")
        ):
            return received
        received.append(element)


async def request(client: TestClient, payload: str, *, to: str | None = None, type_: str = "set",
                  check: bool = True) -> Element:  # fmt: skip
    """Send an IQ carrying ``payload`` and return its reply; with ``check``, an error
    reply raises ``AssertionError`` naming its condition."""
    iq_id = f"req-{secrets.token_hex(4)}"
    address = f" to='{to}'" if to else ""
    await client.send(f"<iq type='{type_}' id='{iq_id}'{address}>{payload}</iq>")
    reply = await client.expect(
        lambda e: (
            e.tag == f"{C}iq" and e.get("id") == iq_id and e.get("type") in ("result", "error")
        )
    )
    if check and reply.get("type") != "result":
        raise AssertionError(f"{payload} was refused: {condition(reply)}")
    return reply


def condition(element: Element) -> str | None:
    """The defined condition of an error stanza, or ``None``."""
    for child in element.iterfind(f"{C}error/*"):
        if child.tag.startswith(f"{{{STANZAS_NS}}}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


async def send(client: TestClient, xml: str) -> None:
    """Send one stanza and wait until the server has processed it (:func:`roundtrip`)."""
    await client.send(xml)
    await roundtrip(client)


# ---------------------------------------------------------------- drivers


class Driver(Protocol):
    """What the suite needs from a strategy (see the module docstring)."""

    plugins: Sequence[str]

    async def go_invisible(self, client: TestClient) -> None: ...

    async def show_to(self, client: TestClient, contact: str) -> None: ...

    async def go_visible(self, client: TestClient) -> None: ...


class InvisibilityDriver:
    """Base class for drivers: the optional parts, and ``plugins`` overridable per instance
    (to run a strategy on a server that also enables others)."""

    plugins: tuple[str, ...] = ()
    hides_full_jid_iqs: bool = False
    plugin_settings: Mapping[str, Mapping[str, object]] = MappingProxyType({})
    workers: int = 1  # > 1: the scenarios run on a cluster of that many workers

    def __init__(self, *, plugins: Sequence[str] | None = None, workers: int = 1) -> None:
        if plugins is not None:
            self.plugins = tuple(plugins)
        self.workers = workers

    def __repr__(self) -> str:
        extra = f", workers={self.workers}" if self.workers > 1 else ""
        return f"{type(self).__name__}(plugins={self.plugins!r}{extra})"

    async def go_invisible(self, client: TestClient) -> None:
        raise NotImplementedError

    async def show_to(self, client: TestClient, contact: str) -> None:
        raise NotImplementedError

    async def go_visible(self, client: TestClient) -> None:
        raise NotImplementedError

    async def change_presence(self, client: TestClient, payload: str) -> None:
        await send(client, f"<presence>{payload}</presence>")


class DirectedPresenceDriver(InvisibilityDriver):
    """``directed-presence``: invisible = no broadcast presence (unavailable if there was
    one); shown by directed presence; visible = broadcast presence. While invisible, a
    status change goes by directed presence to those shown (there is no broadcast)."""

    plugins = ("directed-presence",)

    def __init__(self, *, plugins: Sequence[str] | None = None, workers: int = 1) -> None:
        super().__init__(plugins=plugins, workers=workers)
        self._shown: weakref.WeakKeyDictionary[TestClient, list[str]] = weakref.WeakKeyDictionary()

    async def go_invisible(self, client: TestClient) -> None:
        self._shown[client] = []
        await send(client, "<presence type='unavailable'/>")

    async def show_to(self, client: TestClient, contact: str) -> None:
        self._shown.setdefault(client, []).append(contact)
        await send(client, f"<presence to='{contact}'/>")

    async def go_visible(self, client: TestClient) -> None:
        self._shown.pop(client, None)
        await send(client, "<presence/>")

    async def change_presence(self, client: TestClient, payload: str) -> None:
        if client not in self._shown:
            await super().change_presence(client, payload)
            return
        for contact in self._shown[client]:
            await client.send(f"<presence to='{contact}'>{payload}</presence>")
        await roundtrip(client)


class Xep0018Driver(InvisibilityDriver):
    """``xep0018``: ``<presence type='invisible'/>``, directed ``type='visible'``,
    ``<presence type='visible'/>``."""

    plugins = ("xep0018",)

    async def go_invisible(self, client: TestClient) -> None:
        await send(client, "<presence type='invisible'/>")

    async def show_to(self, client: TestClient, contact: str) -> None:
        await send(client, f"<presence to='{contact}' type='visible'/>")

    async def go_visible(self, client: TestClient) -> None:
        await send(client, "<presence type='visible'/>")


class InvisibleCommandDriver(InvisibilityDriver):
    """``invisible-command`` (XEP-0186): ``<invisible probe='true'/>`` then presence (kept,
    not broadcast); shown by directed presence; ``<visible/>`` then presence."""

    plugins = ("invisible-command",)
    NS = "urn:xmpp:invisible:1"

    async def go_invisible(self, client: TestClient) -> None:
        await request(client, f"<invisible xmlns='{self.NS}' probe='true'/>")
        await send(client, "<presence/>")

    async def show_to(self, client: TestClient, contact: str) -> None:
        await send(client, f"<presence to='{contact}'/>")

    async def go_visible(self, client: TestClient) -> None:
        await request(client, f"<visible xmlns='{self.NS}'/>")
        await send(client, "<presence/>")


class PrivacyListsDriver(InvisibilityDriver):
    """``privacy-lists`` as XEP-0126 describes: invisible = an active list denying
    ``presence-out`` set before presence; shown = an allow ``jid`` item before the deny;
    visible = the active list declined, then presence.

    :param block_iqs: the deny item also names ``<iq/>``, so IQs to the full JID from
        those hidden from are answered as for an offline resource (XEP-0126 §5).
    """

    plugins = ("privacy-lists",)
    NS = "jabber:iq:privacy"
    LIST = "invisible"

    def __init__(self, *, block_iqs: bool = False, plugins: Sequence[str] | None = None,
                 workers: int = 1) -> None:  # fmt: skip
        super().__init__(plugins=plugins, workers=workers)
        self.hides_full_jid_iqs = block_iqs
        self._shown: weakref.WeakKeyDictionary[TestClient, list[str]] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        extra = f", workers={self.workers}" if self.workers > 1 else ""
        return (f"PrivacyListsDriver(block_iqs={self.hides_full_jid_iqs}, "
                f"plugins={self.plugins!r}{extra})")  # fmt: skip

    async def _put_list(self, client: TestClient) -> None:
        kinds = "<presence-out/><iq/>" if self.hides_full_jid_iqs else "<presence-out/>"
        shown = self._shown.get(client, [])
        items = [f"<item type='jid' value='{c}' action='allow' order='{i}'>{kinds}</item>"
                 for i, c in enumerate(shown, 1)]  # fmt: skip
        items.append(f"<item action='deny' order='{len(shown) + 1}'>{kinds}</item>")
        payload = f"<list name='{self.LIST}'>{''.join(items)}</list>"
        await request(client, f"<query xmlns='{self.NS}'>{payload}</query>")

    async def go_invisible(self, client: TestClient) -> None:
        self._shown[client] = []
        await self._put_list(client)
        await request(client, f"<query xmlns='{self.NS}'><active name='{self.LIST}'/></query>")
        await send(client, "<presence/>")

    async def show_to(self, client: TestClient, contact: str) -> None:
        self._shown.setdefault(client, []).append(contact)
        await self._put_list(client)  # the active list, edited: applied at once

    async def go_visible(self, client: TestClient) -> None:
        self._shown.pop(client, None)
        await request(client, f"<query xmlns='{self.NS}'><active/></query>")
        await send(client, "<presence/>")
