"""Shared actors and steps for the privacy-lists conversation tests.

Servers run over real loopback TCP+TLS (``tcp=True``). Rosters are seeded straight into
the server (both sides, mirrored subscriptions) before anyone logs in, so a test starts
with no pushes or presence pending. Privacy IQs are sent without ``to``, as XEP-0016's
examples do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any
from xml.etree.ElementTree import Element

from casper.storage.base import RosterItem
from casper.testing import TestClient, TestServer, open_test_server

from tests.helpers import error_condition, new_id, sync

NS = "jabber:iq:privacy"
CLIENT = "jabber:client"
MIRROR = {"both": "both", "to": "from", "from": "to", "none": "none"}

__all__ = [
    "CLIENT",
    "NS",
    "error_condition",
    "iq",
    "is_presence",
    "is_push",
    "link",
    "open_privacy_server",
    "set_active",
    "set_default",
    "set_list",
    "sync",
]


def open_privacy_server(
    accounts: Iterable[str] = ("romeo", "juliet", "nurse"),
    *,
    domain: str = "localhost",
    settings: dict[str, Any] | None = None,
    plugins: tuple[str, ...] = (),
    plugin_settings: dict[str, dict[str, Any]] | None = None,
    **config: Any,
) -> AbstractAsyncContextManager[TestServer]:
    """A server with ``privacy-lists`` (configured by ``settings``) and ``plugins``."""
    return open_test_server(
        plugins=("privacy-lists", *plugins),
        accounts=tuple(accounts),
        domain=domain,
        tcp=True,
        plugin_settings={"privacy-lists": settings or {}, **(plugin_settings or {})},
        **config,
    )


async def link(srv: TestServer, user: str, contact: str, subscription: str = "both",
               groups: Iterable[str] = (), contact_groups: Iterable[str] = ()) -> None:  # fmt: skip
    """Put ``contact`` in ``user``'s roster with ``subscription`` (and ``user`` in
    ``contact``'s with the mirrored one), without any stanza."""
    user_jid, contact_jid = srv.jid(user), srv.jid(contact)
    rosters = srv.server.rosters
    await rosters.put(user_jid, RosterItem(str(contact_jid), subscription=subscription,
                                           groups=tuple(groups)), push=False)  # fmt: skip
    await rosters.put(contact_jid, RosterItem(str(user_jid), subscription=MIRROR[subscription],
                                              groups=tuple(contact_groups)), push=False)  # fmt: skip


async def iq(client: TestClient, payload: str, type_: str = "set") -> Element:
    """A ``jabber:iq:privacy`` IQ to the account itself; return the reply."""
    iq_id = new_id("priv")
    await client.send(f"<iq type='{type_}' id='{iq_id}'><query xmlns='{NS}'>{payload}</query></iq>")
    return await client.expect(
        lambda e: e.tag == f"{{{CLIENT}}}iq" and e.get("id") == iq_id and e.get("type") != "set"
    )


def _ok(reply: Element) -> Element:
    assert reply.get("type") == "result", (reply.attrib, error_condition(reply))
    return reply


async def set_list(client: TestClient, name: str, items: str) -> Element:
    return _ok(await iq(client, f"<list name='{name}'>{items}</list>"))


async def set_active(client: TestClient, name: str | None) -> Element:
    payload = "<active/>" if name is None else f"<active name='{name}'/>"
    return _ok(await iq(client, payload))


async def set_default(client: TestClient, name: str | None) -> Element:
    payload = "<default/>" if name is None else f"<default name='{name}'/>"
    return _ok(await iq(client, payload))


def is_push(name: str | None = None) -> Callable[[Element], bool]:
    """A privacy list push (of list ``name``, if given)."""

    def predicate(element: Element) -> bool:
        if element.tag != f"{{{CLIENT}}}iq" or element.get("type") != "set":
            return False
        lists = element.findall(f"{{{NS}}}query/{{{NS}}}list")
        return len(lists) == 1 and (name is None or lists[0].get("name") == name)

    return predicate


def is_presence(sender: str | None = None, type_: str | None = "any") -> Callable[[Element], bool]:
    """Presence from ``sender`` (bare or full JID prefix match) of ``type_`` (``None`` for
    available; ``"any"`` for every type)."""

    def predicate(element: Element) -> bool:
        if element.tag != f"{{{CLIENT}}}presence":
            return False
        if type_ != "any" and element.get("type") != type_:
            return False
        frm = element.get("from") or ""
        return sender is None or frm == sender or frm.split("/")[0] == sender

    return predicate
