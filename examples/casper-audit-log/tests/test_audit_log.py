"""The audit log: what it records, where, and that it never changes what anyone gets."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from xml.etree.ElementTree import tostring

import pytest
import trio
from casper.config import ConfigError
from casper.hookspecs import hookimpl
from casper.jid import JID
from casper.stanza import Stanza
from casper.testing import TestClient, open_test_server, parse_xml
from casper.verdicts import Bounce
from casper_audit_log import AuditLog, Config

JULIET = "juliet@localhost"
BALCONY = f"{JULIET}/balcony"
DISCO = "http://jabber.org/protocol/disco"

# What tybalt sends, and whether the audit log records it (kind, target).
PROBES: list[tuple[str, tuple[str, str] | None]] = [
    (f"<presence type='probe' to='{JULIET}' id='p1'/>", ("presence-probe", JULIET)),
    (
        f"<iq type='get' to='{JULIET}' id='p2'><query xmlns='jabber:iq:last'/></iq>",
        ("last-activity", JULIET),
    ),
    (
        f"<iq type='get' to='{JULIET}' id='p3'><query xmlns='{DISCO}#items'/></iq>",
        ("disco-items", JULIET),
    ),
    (
        f"<iq type='get' to='{JULIET}' id='p4'><query xmlns='{DISCO}#info'/></iq>",
        ("disco-info", JULIET),
    ),
    (
        f"<iq type='get' to='{BALCONY}' id='p5'><query xmlns='jabber:iq:version'/></iq>",
        ("version", BALCONY),
    ),
    (
        f"<iq type='get' to='{BALCONY}' id='p6'><time xmlns='urn:xmpp:time'/></iq>",
        ("time", BALCONY),
    ),
    (
        f"<iq type='get' to='{BALCONY}' id='p7'><ping xmlns='urn:xmpp:ping'/></iq>",
        ("ping", BALCONY),
    ),
    (
        f"<iq type='get' to='{JULIET}/guessed' id='p8'><ping xmlns='urn:xmpp:ping'/></iq>",
        ("ping", f"{JULIET}/guessed"),
    ),
    # not probes of another account:
    ("<iq type='get' to='tybalt@localhost' id='n1'><ping xmlns='urn:xmpp:ping'/></iq>", None),
    ("<iq type='get' to='localhost' id='n2'><query xmlns='jabber:iq:version'/></iq>", None),
    ("<iq type='get' id='n3'><query xmlns='jabber:iq:roster'/></iq>", None),
    (f"<message to='{JULIET}' type='chat' id='n4'><body>hi</body></message>", None),
    (f"<presence to='{JULIET}' type='subscribe' id='n5'/>", None),
    (f"<iq type='get' to='{JULIET}' id='n6'><vCard xmlns='vcard-temp'/></iq>", None),
]
RECORDED = [(i, *expected) for i, (_, expected) in enumerate(PROBES) if expected is not None]


async def sync(client: TestClient) -> None:
    """A round trip to the server: everything sent before has been processed."""
    await client.send("<iq type='get' to='localhost' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
    await client.expect(lambda e: e.get("id") == "sync")


async def probe(tybalt: TestClient) -> None:
    for xml, _ in PROBES:
        await tybalt.send(xml)
    await sync(tybalt)


def summary(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    return [(r["prober"], r["target"], r["account"], r["probe"], r["id"]) for r in records]


EXPECTED = [
    (
        "tybalt@localhost/knife",
        target,
        target.split("/")[0],
        kind,
        PROBES[i][0].split("id='")[1][:2],
    )
    for i, kind, target in RECORDED
]


@pytest.fixture
def casper_plugins() -> list[str]:
    return ["audit-log"]


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def casper_plugin_settings(audit_file: Path) -> dict[str, Any]:
    return {"audit-log": {"path": str(audit_file)}}


@pytest.fixture
def audit(casper_server: Any) -> AuditLog:
    return casper_server.server.pm.get_plugin("audit-log.state")


async def test_probes_are_recorded_in_the_file_and_in_storage(
    casper_client: Any, audit: AuditLog, audit_file: Path
) -> None:
    await casper_client("juliet", resource="balcony", presence=True)
    tybalt = await casper_client("tybalt", resource="knife")
    await probe(tybalt)
    with trio.fail_after(5):
        await audit.wait_written()
    lines = audit_file.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert summary(records) == EXPECTED
    assert all(r["time"].endswith("+00:00") for r in records)
    assert summary(await audit.records_about(JULIET)) == EXPECTED
    assert await audit.records_about("tybalt@localhost") == []
    assert audit.dropped == 0


async def test_a_probe_another_plugin_blocks_is_still_recorded(
    casper_client: Any, audit: AuditLog
) -> None:
    class RefusesProbes:
        @hookimpl
        def casper_filter_outgoing(self, stanza: Stanza) -> Bounce | None:
            return Bounce("not-allowed") if stanza.kind == "iq" and stanza.to else None

    audit.server.pm.register(RefusesProbes(), "refuses")
    try:
        tybalt = await casper_client("tybalt", resource="knife")
        await tybalt.send(
            f"<iq type='get' to='{JULIET}' id='b1'><query xmlns='jabber:iq:last'/></iq>"
        )
        reply = await tybalt.expect(lambda e: e.get("id") == "b1")
        assert reply.get("type") == "error"
        with trio.fail_after(5):
            await audit.wait_written()
        assert [r["id"] for r in await audit.records_about(JULIET)] == ["b1"]
    finally:
        audit.server.pm.unregister(name="refuses")


async def _conversation(plugins: tuple[str, ...], settings: dict[str, Any]) -> list[list[str]]:
    """The probes, on a fresh server; everything tybalt and juliet received, as XML."""
    async with (
        open_test_server(
            plugins=plugins, plugin_settings=settings, accounts=("juliet", "tybalt")
        ) as srv,
        srv.client("juliet", resource="balcony", presence=True) as juliet,
        srv.client("tybalt", resource="knife") as tybalt,
    ):
        await probe(tybalt)
        await sync(juliet)
        received = []
        for client in (tybalt, juliet):
            got = []
            with trio.move_on_after(0.3):
                while True:
                    got.append(tostring(await client.recv()).decode())
            received.append(got)
        if plugins:
            with trio.fail_after(5):
                await srv.server.pm.get_plugin("audit-log.state").wait_written()
        return received


async def test_every_answer_is_the_same_with_and_without_the_plugin(tmp_path: Path) -> None:
    settings = {"audit-log": {"path": str(tmp_path / "a.jsonl")}}
    without = await _conversation((), {})
    with_log = await _conversation(("audit-log",), settings)
    assert with_log == without
    assert any("jabber:iq:version" in x for x in without[1])  # juliet got the full-JID IQs
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == len(RECORDED)


def _session(jid: str) -> Any:
    full = JID.parse(jid)
    return SimpleNamespace(jid=full, account=full.bare)


async def test_the_filter_never_returns_a_verdict_and_a_full_queue_drops_records() -> None:
    server: Any = SimpleNamespace(storage=None)
    audit = AuditLog(server, Config.from_mapping({"queue_size": 2, "storage": False}))
    tybalt = _session("tybalt@localhost/knife")
    for xml, _ in PROBES * 2:
        stanza = Stanza.from_element(parse_xml(xml))
        assert audit.casper_filter_outgoing(stanza, tybalt) is None
    assert (audit.queued, audit.dropped) == (2, 2 * len(RECORDED) - 2)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"path": 3}, "path"),
        ({"path": ""}, "path"),
        ({"storage": "yes"}, "storage"),
        ({"queue_size": 0}, "queue_size"),
        ({"queue_size": True}, "queue_size"),
        ({"file": "x"}, "file"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"plugin.audit-log.{key}"):
        Config.from_mapping(settings)
