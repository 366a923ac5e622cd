"""The administrator's invisibility policy (``[invisibility]`` and ``[groups]``), per strategy.

``casper.policy`` sits inside the core's visibility decision, so every enforcement point
honours it; the strategies also refuse a forbidden request to hide with ``not-allowed``
(XEP-0018 as a presence error, XEP-0186 as an IQ error, privacy lists when a list denying
``presence-out`` is made active or default) and change nothing.

The directed-presence strategy has no request to refuse: a session that sends no
broadcast presence is offline by RFC 6121, for everyone, whatever the policy; nothing
can force a client to send presence. What the policy does guarantee there is that the
server never answers beyond the RFC: what it says on the account's behalf (probes, last
activity, disco#items, the next broadcast) follows the session's actual presence.

Cast over real TCP: ``romeo`` hides, ``nurse`` tries to, ``juliet`` watches both (romeo,
juliet and nurse are each other's contacts); ``tybalt`` is a stranger.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from casper.config import Config, ConfigError, load_config
from casper.policy import InvisibilityPolicy
from casper.storage.base import RosterItem
from casper.testing import TestClient, open_test_server

from tests.helpers import BaseCast, Heard, error_condition, new_id, nobody_else, query, sync

C = "{jabber:client}"
ROMEO, R1 = "romeo@localhost", "romeo@localhost/r1"
ACCOUNTS = ("romeo", "juliet", "nurse", "tybalt")
PAIRS = (("romeo", "juliet"), ("romeo", "nurse"), ("nurse", "juliet"))
STRATEGIES = ("xep0018", "invisible-command", "privacy-lists")
AN_HOUR = 3600.0
LAST_QUERY = "<query xmlns='jabber:iq:last'/>"
ITEMS = "http://jabber.org/protocol/disco#items"


def heard_as(element: Element) -> Heard:
    show, status = element.findtext(f"{C}show"), element.findtext(f"{C}status")
    return (element.get("from"), element.get("type") or "available", show, status)


def of(user: str, type_: str = "available", show: str | None = None) -> Heard:
    return (f"{user}@localhost/r1", type_, show, None)


class Cast(BaseCast):
    async def log_in(self, name: str, *, presence: bool = False) -> TestClient:
        client = await super().log_in(name, presence=presence)
        await sync(client)
        return client

    async def heard(self, *, first: str | None = None) -> dict[str, list[Heard]]:
        """Presence each actor received since last asked (``first`` read first, not returned)."""
        if first is not None:
            await sync(self.clients[first])
        return {name: [heard_as(e) for e in await sync(c) if e.tag == f"{C}presence"]
                for name, c in self.clients.items() if name != first}  # fmt: skip

    async def says(self, name: str, xml: str) -> dict[str, list[Heard]]:
        await self.clients[name].send(xml)
        return await self.heard(first=name)


@asynccontextmanager
async def open_cast(plugins: tuple[str, ...], **config: Any) -> AsyncIterator[Cast]:
    """The server with ``plugins`` and the policy ``config``; mutual rosters seeded."""
    async with open_test_server(plugins=plugins, accounts=ACCOUNTS, tcp=True, **config) as srv:
        rosters = srv.server.rosters
        for a, b in PAIRS:
            await rosters.put(
                srv.jid(a), RosterItem(str(srv.jid(b)), subscription="both"), push=False
            )
            await rosters.put(
                srv.jid(b), RosterItem(str(srv.jid(a)), subscription="both"), push=False
            )
        stamp = time.time() - AN_HOUR
        await srv.server.db(srv.server.storage.set_last_activity, ROMEO, stamp, "Gone fishing")
        cast = Cast(srv)
        try:
            yield cast
        finally:
            await cast.aclose()


# ---------------------------------------------------------------- each strategy's request


async def iq_set(client: TestClient, payload: str) -> str | None:
    """An IQ set to the user's own server; the error condition, or ``None`` for a result."""
    iq_id = new_id("pol")
    await client.send(f"<iq type='set' id='{iq_id}'>{payload}</iq>")
    reply = await client.expect(lambda e: e.tag == f"{C}iq" and e.get("id") == iq_id)
    return error_condition(reply)


async def hide_xep0018(client: TestClient, to: str | None = None) -> str | None:
    presence_id, address = new_id("inv"), "" if to is None else f" to='{to}'"
    await client.send(f"<presence type='invisible' id='{presence_id}'{address}/>")
    back = [error_condition(e) for e in await sync(client) if e.get("id") == presence_id]
    return back[0] if back else None


async def hide_invisible_command(client: TestClient) -> str | None:
    return await iq_set(client, "<invisible xmlns='urn:xmpp:invisible:1' probe='true'/>")


PRIVACY = "jabber:iq:privacy"
INVISIBLE_LIST = (
    "<list name='invisible'><item action='deny' order='1'><presence-out/></item></list>"
)


async def hide_privacy_lists(client: TestClient, how: str = "active") -> str | None:
    assert await iq_set(client, f"<query xmlns='{PRIVACY}'>{INVISIBLE_LIST}</query>") is None
    return await iq_set(client, f"<query xmlns='{PRIVACY}'><{how} name='invisible'/></query>")


HIDE: dict[str, Callable[[TestClient], Awaitable[str | None]]] = {
    "xep0018": hide_xep0018,
    "invisible-command": hide_invisible_command,
    "privacy-lists": hide_privacy_lists,
}


async def visible_to_juliet(cast: Cast, name: str) -> dict[str, list[Heard]]:
    """``name`` (romeo or nurse) logs in and sends presence, juliet already online."""
    if "juliet" not in cast.clients:
        await cast.log_in("juliet", presence=True)
    await cast.log_in(name)
    return await cast.says(name, "<presence/>")


async def last_activity_seconds(client: TestClient, of_: str = ROMEO) -> str | None:
    reply = await query(client, of_, LAST_QUERY)
    payload = reply.find("{jabber:iq:last}query")
    return error_condition(reply) if payload is None else payload.get("seconds")


async def disco_items(client: TestClient) -> list[str | None]:
    reply = await query(client, ROMEO, f"<query xmlns='{ITEMS}'/>")
    return [item.get("jid") for item in reply.iter(f"{{{ITEMS}}}item")]


async def probe_answer(cast: Cast, name: str) -> list[Heard]:
    """``name`` logs off and on again with presence: what its probe learnt of romeo."""
    await cast.leave(name)
    client = await cast.log_in(name)
    await client.send("<presence/>")
    return [heard_as(e) for e in await sync(client) if (e.get("from") or "").startswith(ROMEO)]


# ---------------------------------------------------------------- invisibility disabled


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_disabled_refuses_every_strategys_request_to_hide_with_not_allowed(
    strategy: str,
) -> None:
    async with open_cast(STRATEGIES, invisibility=False) as cast:
        await visible_to_juliet(cast, "romeo")
        assert await HIDE[strategy](cast.clients["romeo"]) == "not-allowed"
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard)  # juliet was told nothing: romeo is still online
        heard = await cast.says("romeo", "<presence><show>away</show></presence>")
        assert heard == nobody_else(heard, juliet=[of("romeo", show="away")])
        juliet = cast.clients["juliet"]
        assert await last_activity_seconds(juliet) == "0"
        assert await disco_items(juliet) == [R1]


async def test_disabled_refuses_xep0018_initial_invisible_presence_and_romeo_stays_offline() -> (
    None
):
    async with open_cast(("xep0018",), invisibility=False) as cast:
        await cast.log_in("juliet", presence=True)
        romeo = await cast.log_in("romeo")
        assert await hide_xep0018(romeo) == "not-allowed"
        assert await last_activity_seconds(cast.clients["juliet"]) != "0"  # not available
        heard = await cast.says("romeo", "<presence/>")
        assert heard == nobody_else(heard, juliet=[of("romeo")])


async def test_disabled_refuses_xep0018_invisible_to_one_contact() -> None:
    async with open_cast(("xep0018",), invisibility=False) as cast:
        await visible_to_juliet(cast, "romeo")
        assert await hide_xep0018(cast.clients["romeo"], to="juliet@localhost") == "not-allowed"
        heard = await cast.says("romeo", "<presence><show>dnd</show></presence>")
        assert heard == nobody_else(heard, juliet=[of("romeo", show="dnd")])


@pytest.mark.parametrize("how", ["active", "default"])
async def test_disabled_refuses_a_privacy_list_denying_presence_out_as_active_or_default(
    how: str,
) -> None:
    async with open_cast(("privacy-lists",), invisibility=False) as cast:
        await visible_to_juliet(cast, "romeo")
        assert await hide_privacy_lists(cast.clients["romeo"], how) == "not-allowed"
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard)


async def test_disabled_accepts_a_privacy_block_and_the_block_still_hides_presence() -> None:
    """Blocking is not hiding: the list is accepted, and juliet, blocked from everything,
    sees romeo go offline and no update after (only never_hidden_from overrides a block)."""
    block = (
        "<list name='b'><item type='jid' value='juliet@localhost' action='deny' order='1'/></list>"
    )
    async with open_cast(("privacy-lists",), invisibility=False) as cast:
        await visible_to_juliet(cast, "romeo")
        romeo = cast.clients["romeo"]
        assert await iq_set(romeo, f"<query xmlns='{PRIVACY}'>{block}</query>") is None
        assert await iq_set(romeo, f"<query xmlns='{PRIVACY}'><active name='b'/></query>") is None
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard, juliet=[of("romeo", "unavailable")])
        heard = await cast.says("romeo", "<presence><show>away</show></presence>")
        assert heard == nobody_else(heard)


# ---------------------------------------------------------------- allowed to a group only

STAFF = {"invisibility_allowed": ("staff",), "account_groups": {"staff": (ROMEO,)}}


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_allowed_group_member_hides_and_a_non_member_is_not_allowed(strategy: str) -> None:
    async with open_cast((strategy,), **STAFF) as cast:
        await visible_to_juliet(cast, "romeo")
        await visible_to_juliet(cast, "nurse")
        await cast.heard()
        assert await HIDE[strategy](cast.clients["romeo"]) is None
        heard = await cast.heard(first="romeo")
        gone = [of("romeo", "unavailable")]
        assert heard == nobody_else(heard, juliet=gone, nurse=gone)
        assert await HIDE[strategy](cast.clients["nurse"]) == "not-allowed"
        heard = await cast.says("nurse", "<presence><show>xa</show></presence>")
        assert heard["juliet"] == [of("nurse", show="xa")]


# ---------------------------------------------------------------- never hidden from a group

MANAGERS = {
    "never_hidden_from": ("managers",),
    "account_groups": {"managers": ("juliet@localhost",)},
}


async def hide_from_login(client: TestClient, strategy: str) -> None:
    """Hide before any presence, then send initial presence (kept from those hidden from);
    XEP-0018's invisible presence is itself the initial presence."""
    assert await HIDE[strategy](client) is None
    if strategy != "xep0018":
        await client.send("<presence/>")


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_never_hidden_from_member_sees_the_hidden_user_and_others_do_not(
    strategy: str,
) -> None:
    """romeo hides from login; juliet is a manager: presence, probes, last activity and
    disco#items all show him to her; nurse, a plain contact, gets the offline answers."""
    async with open_cast((strategy,), **MANAGERS) as cast:
        juliet = await cast.log_in("juliet", presence=True)
        nurse = await cast.log_in("nurse", presence=True)
        romeo = await cast.log_in("romeo")
        await cast.heard()
        await hide_from_login(romeo, strategy)
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard, juliet=[of("romeo")])
        heard = await cast.says("romeo", "<presence><show>away</show></presence>")
        assert heard == nobody_else(heard, juliet=[of("romeo", show="away")])
        assert await last_activity_seconds(juliet) == "0"
        assert await disco_items(juliet) == [R1]
        assert int(await last_activity_seconds(nurse) or 0) >= AN_HOUR - 5
        assert await disco_items(nurse) == []
        assert await probe_answer(cast, "juliet") == [of("romeo", show="away")]
        assert [h[:2] for h in await probe_answer(cast, "nurse")] == [(ROMEO, "unavailable")]


async def test_xep0018_invisible_to_a_never_hidden_from_member_is_not_allowed() -> None:
    async with open_cast(("xep0018",), **MANAGERS) as cast:
        await cast.log_in("nurse", presence=True)
        await visible_to_juliet(cast, "romeo")
        romeo = cast.clients["romeo"]
        assert await hide_xep0018(romeo, to="juliet@localhost") == "not-allowed"
        assert await hide_xep0018(romeo, to="nurse@localhost") is None  # not a manager
        heard = await cast.heard(first="romeo")
        assert heard == nobody_else(heard, nurse=[of("romeo", "unavailable")])


# ---------------------------------------------------------------- directed presence


async def test_directed_presence_session_without_broadcast_is_rfc_offline_even_when_disabled() -> (
    None
):
    """Not enforceable: no presence is RFC 6121 offline. With invisibility off, romeo can
    still log in, show himself to juliet by directed presence and look offline to nurse;
    no request exists for the server to refuse."""
    async with open_cast(("directed-presence",), invisibility=False) as cast:
        await cast.log_in("juliet", presence=True)
        nurse = await cast.log_in("nurse", presence=True)
        await cast.log_in("romeo")
        await cast.heard()
        heard = await cast.says("romeo", "<presence to='juliet@localhost'/>")
        assert heard == nobody_else(heard, juliet=[of("romeo")])
        assert await disco_items(nurse) == []
        assert await last_activity_seconds(nurse) not in ("0", None)


async def test_directed_unavailable_to_a_contact_does_not_make_the_server_lie_to_her() -> None:
    """Enforced: romeo, available, sends nurse directed unavailable (plain RFC); she is
    told he left, but the server's own answers and his next broadcast show him online."""
    async with open_cast(("directed-presence",), invisibility=False) as cast:
        nurse = await cast.log_in("nurse", presence=True)
        await visible_to_juliet(cast, "romeo")
        await cast.heard()
        heard = await cast.says("romeo", "<presence to='nurse@localhost' type='unavailable'/>")
        assert heard == nobody_else(heard, nurse=[of("romeo", "unavailable")])
        assert await last_activity_seconds(nurse) == "0"
        assert await disco_items(nurse) == [R1]
        heard = await cast.says("romeo", "<presence><show>chat</show></presence>")
        expected = [of("romeo", show="chat")]
        assert heard == nobody_else(heard, juliet=expected, nurse=expected)


async def test_never_hidden_from_member_shown_nothing_by_a_directed_presence_session() -> None:
    """Not enforceable either: a manager gets the RFC answer for a session that never sent
    her presence, exactly like anyone else."""
    async with open_cast(("directed-presence",), **MANAGERS) as cast:
        juliet = await cast.log_in("juliet", presence=True)
        await cast.log_in("nurse", presence=True)
        await cast.log_in("romeo")
        await cast.heard()
        heard = await cast.says("romeo", "<presence to='nurse@localhost'/>")
        assert heard == nobody_else(heard, nurse=[of("romeo")])
        assert await disco_items(juliet) == []


# ---------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    "config",
    [
        {"invisibility_allowed": ("staff",)},
        {"never_hidden_from": ("managers",)},
        {"invisibility_allowed": ("staff",), "account_groups": {"managers": (ROMEO,)}},
    ],
    ids=["allowed", "never-hidden-from", "other-group-defined"],
)
async def test_unknown_group_in_the_policy_is_a_config_error_at_startup(
    config: dict[str, Any],
) -> None:
    with pytest.RaisesGroup(
        pytest.RaisesExc(ConfigError, match="neither an account JID nor a group"),
        flatten_subgroups=True,
    ):
        async with open_test_server(**config):
            pass  # pragma: no cover


def test_policy_expands_groups_and_accounts_into_bare_jids() -> None:
    config = Config(invisibility_allowed=("staff", "Bob@Example.com/phone"),
                    account_groups={"staff": ["alice@example.com/x"]})  # fmt: skip
    policy = InvisibilityPolicy.from_config(config)
    assert policy.allowed == {"alice@example.com", "bob@example.com"}


@pytest.mark.parametrize(
    "groups",
    [
        'staff = "alice@example.com"',
        "staff = [1, 2]",
        'staff = ["@example.com"]',
        'staff = ["alice@"]',
        "staff = { members = [] }",
    ],
    ids=["string", "numbers", "empty-local", "empty-domain", "table"],
)
def test_malformed_groups_section_is_a_config_error(tmp_path: Path, groups: str) -> None:
    path = tmp_path / "casper.toml"
    path.write_text(f"[groups]\n{groups}\n")
    with pytest.raises(ConfigError, match=r"groups\.staff"):
        load_config(path, {})


def test_groups_that_is_not_a_table_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "casper.toml"
    path.write_text("groups = 5\n")
    with pytest.raises(ConfigError, match=r"\[groups\]"):
        load_config(path, {})


def test_groups_and_policy_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "casper.toml"
    path.write_text(
        '[invisibility]\nenabled = true\nallowed = ["staff"]\n'
        'never_hidden_from = ["carol@example.com"]\n'
        '[groups]\nstaff = ["alice@example.com", "bob@example.com"]\n'
    )
    policy = InvisibilityPolicy.from_config(load_config(path, {}))
    assert policy.allowed == {"alice@example.com", "bob@example.com"}
    assert policy.never_hidden_from == {"carol@example.com"}
