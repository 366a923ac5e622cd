"""Setting a world up over the wire, so that it works on any server.

The user puts *friend* (group ``Friends``) and *colleague* (group ``Work``) in its roster
and both sides subscribe to each other (RFC 6121 handshake, both directions); a stranger
left in the roster by an earlier run is removed; the observers log in with presence; the
stranger creates the room (an instant room) if the scenario has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element

from .actor import Actor, bare, error_condition, q
from .catalogue import GROUPS

if TYPE_CHECKING:
    from .world import World

MUC_NS = "http://jabber.org/protocol/muc"
MUC_USER = f"{MUC_NS}#user"
ROSTER_NS = "jabber:iq:roster"
ROSTER_GROUPS = {role: group for group, roles in GROUPS.items() for role in roles}


def status_codes(element: Element) -> set[int]:
    """The muc#user status codes of a presence."""
    path = f"{{{MUC_USER}}}x/{{{MUC_USER}}}status"
    return {int(s.get("code", "0")) for s in element.iterfind(path)}


async def roster_items(user: Actor) -> dict[str, str | None]:
    """The user's roster: bare JID -> subscription."""
    roster = await user.request(
        f"<iq type='get' id='{user.new_id('r')}'><query xmlns='{ROSTER_NS}'/></iq>"
    )
    return {
        i.get("jid", "").lower(): i.get("subscription") for i in roster.iter(q("item", ROSTER_NS))
    }


async def provision(world: World) -> list[Actor]:
    """Rosters and subscriptions; the observers end up online. Return the observers.

    :raises RuntimeError: if the server refuses the roster or the subscriptions.
    """
    jids = world.jids
    user = await world.connect("user", "setup")
    observers = [await world.connect(role, "obs") for role in ("friend", "colleague", "stranger")]
    if jids["stranger"] in await roster_items(user):
        await user.request(
            f"<iq type='set' id='{user.new_id('r')}'><query xmlns='{ROSTER_NS}'>"
            f"<item jid='{jids['stranger']}' subscription='remove'/></query></iq>"
        )
    for contact in observers[:2]:
        reply = await user.request(
            f"<iq type='set' id='{user.new_id('r')}'><query xmlns='{ROSTER_NS}'><item jid='{jids[contact.role]}'>"
            f"<group>{ROSTER_GROUPS[contact.role]}</group></item></query></iq>"
        )
        if reply.get("type") != "result":
            raise RuntimeError(f"roster set refused: {error_condition(reply)}")
        for asker, approver in ((user, contact), (contact, user)):
            await asker.send(f"<presence type='subscribe' to='{jids[approver.role]}'/>")
            await asker.sync()
            await approver.send(f"<presence type='subscribed' to='{jids[asker.role]}'/>")
            await approver.sync()
    subscriptions = await roster_items(user)
    for role in ("friend", "colleague"):
        if subscriptions.get(jids[role]) != "both":
            state = subscriptions.get(jids[role])
            raise RuntimeError(
                f"could not set up a mutual subscription with {role}: it is {state!r}"
            )
    if world.prime:  # a shared account: same history in every world, nothing left stored
        await user.send("<presence/>")
        await world.settle()
    await user.logout()
    del world.actors[user.name]
    for observer in observers:
        await observer.send("<presence/>")
    return observers


async def create_room(world: World, owner: Actor) -> None:
    """Join the room as its first occupant and accept the default configuration; a
    refusal leaves the reason in ``world.room_problem``."""
    room = world.room
    assert room is not None
    start = len(owner.log)
    await owner.send(f"<presence to='{room}/{owner.role}'><x xmlns='{MUC_NS}'/></presence>")
    answer = await owner.wait_for(
        lambda e: (
            e.direction == "in"
            and e.element.tag == q("presence")
            and bare(e.element.get("from")) == room
            and (e.element.get("type") == "error" or 110 in status_codes(e.element))
        ),
        since=start,
        timeout=world.timeout,
    )
    if answer.element.get("type") == "error":
        world.room_problem = f"cannot create a room: {error_condition(answer.element)}"
        return
    if 201 in status_codes(answer.element):
        reply = await owner.request(
            f"<iq type='set' id='{owner.new_id('cfg')}' to='{room}'><query xmlns='{MUC_NS}#owner'>"
            "<x xmlns='jabber:x:data' type='submit'/></query></iq>"
        )
        if reply.get("type") != "result":
            world.room_problem = f"cannot configure the room: {error_condition(reply)}"
