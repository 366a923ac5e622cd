"""XEP-0126 (Invisibility) over privacy lists, every listing in the XEP's order.

The XEP's chronological scenario: bilbo logs in invisible (3.1), becomes visible to
some by JID, group and subscription (3.2), to all (3.3), invisible to some by JID, group
and subscription (3.4), and to all again (3.5). The IQs and presences below are the
listings' own stanzas, sent from ``bilbo@tolkien.lit/shire``.

Cast (bilbo's roster): frodo and sam (``both``, group Bagginses), gandalf (``both``,
group Wizards), pippin (``from``: subscribed to bilbo, bilbo not to him). All four are
online before bilbo logs in. After each step, every contact's view of bilbo is checked:
the status they were sent, ``unavailable``, or nothing at all.

Each test replays the scenario up to one section, so a section fails on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import pytest
from casper.testing import TestClient

from tests.plugins.privacy_lists.privacy_kit import (
    CLIENT,
    error_condition,
    is_push,
    link,
    open_privacy_server,
    sync,
)

DOMAIN = "tolkien.lit"
BILBO = f"bilbo@{DOMAIN}"
SHIRE = f"{BILBO}/shire"
CONTACTS = ("frodo", "sam", "gandalf", "pippin")
HIDING = "I'm not really here, you understand!"
BACK = "I'm back!"
UNAVAILABLE = "unavailable"


@dataclass
class Scene:
    bilbo: TestClient
    contacts: dict[str, TestClient] = field(default_factory=dict)


async def listing(scene: Scene, xml: str) -> Element:
    """Send one of the XEP's IQ listings; it must succeed."""
    element_id = xml.split("id='", 1)[1].split("'", 1)[0]
    await scene.bilbo.send(xml)
    reply = await scene.bilbo.expect(
        lambda e: (
            e.get("id") == element_id and e.tag == f"{{{CLIENT}}}iq" and e.get("type") != "set"
        )
    )
    assert reply.get("type") == "result", error_condition(reply)
    return reply


async def views(scene: Scene) -> dict[str, list[str]]:
    """What each contact was sent about bilbo since the last look: the status of each
    available presence, or ``'unavailable'``."""
    await sync(scene.bilbo)
    seen: dict[str, list[str]] = {}
    for name, client in scene.contacts.items():
        got = []
        for element in await sync(client):
            if element.tag == f"{{{CLIENT}}}presence" and (element.get("from") or "").startswith(
                BILBO
            ):
                if element.get("type") == UNAVAILABLE:
                    got.append(UNAVAILABLE)
                else:
                    got.append(element.findtext(f"{{{CLIENT}}}status") or "")
        seen[name] = got
    return seen


def only(names: str, what: list[str]) -> dict[str, list[str]]:
    """The expected views: ``names`` (space separated) were sent ``what``; others nothing."""
    chosen = names.split()
    return {name: what if name in chosen else [] for name in CONTACTS}


def available(status: str) -> str:
    return f"<presence from='{SHIRE}'><status>{status}</status></presence>"


def unavailable() -> str:
    return f"<presence from='{SHIRE}' type='{UNAVAILABLE}'/>"


def selective_list(iq_id: str, name: str, item: str, action: str, rest: str) -> str:
    return (
        f"<iq from='{SHIRE}' type='set' id='{iq_id}'><query xmlns='jabber:iq:privacy'>"
        f"<list name='{name}'>{item.replace('ACTION', action)}"
        f"<item action='{rest}' order='2'><presence-out/></item></list></query></iq>"
    )


def active(iq_id: str, name: str | None) -> str:
    inner = "<active/>" if name is None else f"<active name='{name}'/>"
    return f"<iq from='{SHIRE}' type='set' id='{iq_id}'><query xmlns='jabber:iq:privacy'>{inner}</query></iq>"


def item(type_: str, value: str) -> str:
    return f"<item type='{type_}' value='{value}' action='ACTION' order='1'><presence-out/></item>"


# ---------------------------------------------------------------- the sections, in order


async def log_in_globally_invisible(scene: Scene) -> None:
    # Listing 1, after authentication and bind, before initial presence
    await listing(scene, f"<iq from='{SHIRE}' type='set' id='inv1'><query xmlns='jabber:iq:privacy'>"
                         "<list name='invisible'><item action='deny' order='1'><presence-out/>"
                         "</item></list></query></iq>")  # fmt: skip
    await scene.bilbo.expect(is_push("invisible"))
    await listing(scene, active("active1", "invisible"))
    # Listing 2: initial presence, broadcast to nobody
    await scene.bilbo.send(available(HIDING))
    # bilbo himself is online: his contacts' presence reaches him
    got = await sync(scene.bilbo)
    assert {(e.get("from") or "").split("@")[0] for e in got if e.tag == f"{{{CLIENT}}}presence"} >= {
        "frodo", "sam", "gandalf"}  # fmt: skip
    assert await views(scene) == only("", [])


async def visible_by_jid(scene: Scene) -> None:
    await listing(scene, selective_list("inv2", "visible-to-Frodo",
                                        item("jid", f"frodo@{DOMAIN}"), "allow", "deny"))  # fmt: skip
    await listing(scene, active("active2", "visible-to-Frodo"))
    assert await views(scene) == only("frodo", [HIDING])  # applied at once
    await scene.bilbo.send(available(HIDING))  # Listing 4
    assert await views(scene) == only("frodo", [HIDING])


async def visible_by_group(scene: Scene) -> None:
    await listing(scene, selective_list("inv3", "visible-to-Bagginses",
                                        item("group", "Bagginses"), "allow", "deny"))  # fmt: skip
    await listing(scene, active("active3", "visible-to-Bagginses"))
    assert await views(scene) == only("sam", [HIDING])
    await scene.bilbo.send(available(HIDING))  # Listing 6
    assert await views(scene) == only("frodo sam", [HIDING])


async def visible_by_subscription(scene: Scene) -> None:
    await listing(scene, selective_list("inv4", "visible-to-both",
                                        item("subscription", "both"), "allow", "deny"))  # fmt: skip
    await listing(scene, active("active4", "visible-to-both"))
    assert await views(scene) == only("gandalf", [HIDING])
    await scene.bilbo.send(available(HIDING))  # Listing 8
    assert await views(scene) == only("frodo sam gandalf", [HIDING])


async def globally_visible(scene: Scene) -> None:
    # Listing 9: a 'visible' list ...
    await listing(scene, f"<iq from='{SHIRE}' type='set' id='inv5'><query xmlns='jabber:iq:privacy'>"
                         "<list name='visible'><item action='allow' order='1'><presence-out/>"
                         "</item></list></query></iq>")  # fmt: skip
    await listing(scene, active("active5", "visible"))
    assert await views(scene) == only("pippin", [HIDING])
    # ... or, more simply, Listing 10: decline any active list
    await listing(scene, active("active6", None))
    assert await views(scene) == only("", [])
    await scene.bilbo.send(available(BACK))  # Listing 11
    assert await views(scene) == only("frodo sam gandalf pippin", [BACK])


async def invisible_by_jid(scene: Scene) -> None:
    await scene.bilbo.send(unavailable())  # Listing 12
    assert await views(scene) == only("frodo sam gandalf pippin", [UNAVAILABLE])
    await listing(scene, selective_list("inv6", "invisible-to-Gandalf",
                                        item("jid", f"gandalf@{DOMAIN}"), "deny", "allow"))  # fmt: skip
    await listing(scene, active("active7", "invisible-to-Gandalf"))
    assert await views(scene) == only("", [])
    await scene.bilbo.send(available(BACK))  # Listing 14
    assert await views(scene) == only("frodo sam pippin", [BACK])


async def invisible_by_group(scene: Scene) -> None:
    await scene.bilbo.send(unavailable())  # Listing 15
    assert await views(scene) == only("frodo sam pippin", [UNAVAILABLE])
    await listing(scene, selective_list("inv7", "invisible-to-Wizards",
                                        item("group", "Wizards"), "deny", "allow"))  # fmt: skip
    await listing(scene, active("active8", "invisible-to-Wizards"))
    await scene.bilbo.send(available(BACK))  # Listing 17
    assert await views(scene) == only("frodo sam pippin", [BACK])


async def invisible_by_subscription(scene: Scene) -> None:
    await scene.bilbo.send(unavailable())  # Listing 18
    assert await views(scene) == only("frodo sam pippin", [UNAVAILABLE])
    await listing(scene, selective_list("inv8", "invisible-to-from",
                                        item("subscription", "from"), "deny", "allow"))  # fmt: skip
    await listing(scene, active("active9", "invisible-to-from"))
    await scene.bilbo.send(available(BACK))  # Listing 20
    assert await views(scene) == only("frodo sam gandalf", [BACK])


async def globally_invisible(scene: Scene) -> None:
    await scene.bilbo.send(unavailable())  # Listing 21
    assert await views(scene) == only("frodo sam gandalf", [UNAVAILABLE])
    await listing(scene, active("active10", "invisible"))  # Listing 22
    await scene.bilbo.send(available(HIDING))  # Listing 23
    assert await views(scene) == only("", [])


SECTIONS: list[tuple[str, Callable[[Scene], Awaitable[None]]]] = [
    ("3.1 log in as globally invisible", log_in_globally_invisible),
    ("3.2.1 visible by JID", visible_by_jid),
    ("3.2.2 visible by roster group", visible_by_group),
    ("3.2.3 visible by subscription", visible_by_subscription),
    ("3.3 globally visible", globally_visible),
    ("3.4.1 invisible by JID", invisible_by_jid),
    ("3.4.2 invisible by roster group", invisible_by_group),
    ("3.4.3 invisible by subscription", invisible_by_subscription),
    ("3.5 globally invisible", globally_invisible),
]


@pytest.mark.parametrize("upto", range(len(SECTIONS)), ids=[name for name, _ in SECTIONS])
async def test_xep0126_scenario(upto):
    async with open_privacy_server(("bilbo", *CONTACTS), domain=DOMAIN) as srv:
        await link(srv, "bilbo", "frodo", "both", groups=["Bagginses"])
        await link(srv, "bilbo", "sam", "both", groups=["Bagginses"])
        await link(srv, "bilbo", "gandalf", "both", groups=["Wizards"])
        await link(srv, "bilbo", "pippin", "from")
        async with AsyncExitStack() as stack:
            contacts = {name: await stack.enter_async_context(srv.client(name, presence=True))
                        for name in CONTACTS}  # fmt: skip
            bilbo = await stack.enter_async_context(srv.client("bilbo", resource="shire"))
            scene = Scene(bilbo, contacts)
            await views(scene)  # the offline answers to their login probes
            for _, step in SECTIONS[: upto + 1]:
                await step(scene)
