"""The catalogue runner against Casper servers it starts itself, with verdicts pinned.

``login-invisible`` exercises every leak channel; its whole column is pinned for each
built-in strategy, so a change that makes a strategy leak (or stop leaking, or lose
usability) fails here with the exact cells that moved. ``none`` (no hiding at all) is
pinned too: it proves each channel can see an online user, i.e. that ``hidden`` is
measured, not assumed.
"""

from __future__ import annotations

import pytest
from casper.compare.catalogue import load_catalogue, select
from casper.compare.report import Report
from casper.compare.runner import Runner, casper_plan, default_strategies
from casper.compare.servers import local_tls

BUILT_IN = ("none", "directed-presence", "xep0018", "invisible-command", "privacy-lists")
P = "login-invisible/while-invisible/"
A = "login-invisible/after-logout/"
# Full-JID IQs reach the client, which answers: no strategy hides them (each one says so).
CLIENT_IQS = {f"{P}{c}/friend" for c in ("iq-version", "iq-time", "iq-ping", "iq-disco-info")}
CLIENT_IQS.add(f"{P}iq-version/stranger")
# Receipts and chat states the client sends back: only privacy-lists drops them.
CLIENT_REPLIES = {f"{P}chat-states/friend", f"{P}receipts/friend", f"{P}receipts/stranger"}
ONLINE = {
    f"{P}{c}/friend" for c in ("presence", "probe", "client-probe", "last-activity", "disco-items")
} | {
    f"{P}presence/colleague",
    f"{A}logoff/friend",
    f"{A}last-activity/friend",
    f"{A}logoff/colleague",
}

LEAKS = {
    "none": ONLINE | CLIENT_IQS | CLIENT_REPLIES,
    "directed-presence": CLIENT_IQS | CLIENT_REPLIES,
    "xep0018": CLIENT_IQS | CLIENT_REPLIES,
    "invisible-command": CLIENT_IQS | CLIENT_REPLIES,
    "privacy-lists": CLIENT_IQS,
}
USABILITY = {  # sees-contacts, receives-messages (a bare-JID message from a contact, live)
    "none": ("works", "works"),
    # no initial presence: no probes, so the user does not see its contacts
    "directed-presence": ("fails", "fails"),
    # hidden from the sender: bare-JID messages take the offline path (stored until later)
    "xep0018": ("works", "fails"),
    "invisible-command": ("works", "fails"),
    "privacy-lists": ("works", "fails"),
}


async def compare(scenarios: list[str], strategies: list[str]) -> Report:
    with local_tls() as tls:
        runner = Runner(
            select(load_catalogue(), scenarios), [casper_plan(s) for s in strategies], tls=tls
        )
        return await runner.run()


def expected_column(report: Report, strategy: str) -> dict[str, str]:
    usability = dict(
        zip((f"{P}sees-contacts/user", f"{P}receives-messages/friend"), USABILITY[strategy])
    )
    out = {}
    for _, check in report.rows():
        if check.kind == "usability":
            out[check.id] = usability[check.id]
        else:
            out[check.id] = "leaks" if check.id in LEAKS[strategy] else "hidden"
    return out


def test_every_built_in_strategy_is_installed_and_runs_by_default() -> None:
    assert default_strategies() == list(BUILT_IN)


@pytest.mark.parametrize("strategy", BUILT_IN)
async def test_login_invisible_verdicts_are_pinned(strategy: str) -> None:
    report = await compare(["login-invisible"], [strategy])
    got = {c.id: report.cell(c.id, strategy).verdict for _, c in report.rows()}
    want = expected_column(report, strategy)
    moved = {
        k: f"{want[k]} -> {got[k]} ({report.cell(k, strategy).detail})"
        for k in want
        if got[k] != want[k]
    }
    assert not moved, moved


async def test_invisible_after_online_room_and_contacts() -> None:
    report = await compare(
        ["invisible-after-online"], ["directed-presence", "xep0018", "privacy-lists"]
    )
    base = "invisible-after-online/after-going-invisible/"
    for strategy in ("directed-presence", "xep0018", "privacy-lists"):
        # going invisible looks exactly like logging out to contacts and the server's answers
        for channel in (
            "presence",
            "probe",
            "client-probe",
            "last-activity",
            "disco-items",
            "message-bare",
        ):
            assert report.cell(f"{base}{channel}/friend", strategy).verdict == "hidden", (
                strategy,
                channel,
            )
    # XEP-0018 invisibility is consumed before routing: the user stays in the room,
    # which an offline account would have left (documented by the muc plugin)
    assert report.cell(f"{base}room-occupancy/stranger", "xep0018").verdict == "leaks"
    assert report.cell(f"{base}in-room/user", "xep0018").verdict == "works"
    # directed presence and XEP-0126 send unavailable first: the room sees the user leave
    for strategy in ("directed-presence", "privacy-lists"):
        assert report.cell(f"{base}room-occupancy/stranger", strategy).verdict == "hidden"
        assert report.cell(f"{base}in-room/user", strategy).verdict == "fails"


async def test_invisible_command_rooms_and_chat_with_the_shown_contact() -> None:
    report = await compare(["visible-to-contact", "invisible-after-online"], ["invisible-command"])
    # XEP-0186 invisibility after being online withdraws directed presence too: the room
    # sees the user leave, as it would see an offline account leave
    base = "invisible-after-online/after-going-invisible/"
    cell = report.cell(f"{base}room-occupancy/stranger", "invisible-command")
    assert cell.verdict == "hidden", cell
    assert report.cell(f"{base}in-room/user", "invisible-command").verdict == "fails"
    # the contact the user showed itself to (directed presence) reaches it at the bare JID
    chat = report.cell("visible-to-contact/visible-to-friend-only/chat/friend", "invisible-command")
    assert chat.verdict == "works", chat


async def test_combination_runs_both_plugins_and_every_column_has_its_flows() -> None:
    report = await compare(
        ["come-back", "visible-to-group"], ["xep0018+privacy-lists", "privacy-lists"]
    )
    assert [c.id for c in report.columns] == ["xep0018+privacy-lists", "privacy-lists"]
    assert report.columns[0].plugins[:2] == ("xep0018", "privacy-lists")
    summary = report.summary()
    assert summary["xep0018+privacy-lists"]["error"] == 0
    assert summary["privacy-lists"]["error"] == 0
    for _, check in report.rows():
        if check.kind == "usability":
            assert report.cell(check.id, "xep0018+privacy-lists").verdict == "works", check.id
    for scenario in ("come-back", "visible-to-group"):
        assert set(report.flows[scenario]) == {"xep0018+privacy-lists", "privacy-lists", "offline"}
        events = report.flows[scenario]["privacy-lists"]
        assert events and all(not e["xml"].count("urn:casper:compare:sync") for e in events)
