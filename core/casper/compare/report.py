"""The comparison's result: verdicts per check and column, the stanza flows, and the JSON
form documented in ``docs/compare-json-schema.md`` (schema ``casper-compare``, version 1).

Verdicts (:data:`VERDICTS`):

- ``hidden``: a leak check whose observation, normalised, is the same as against the
  truly offline account — the observer cannot tell hiding from offline;
- ``leaks``: it differs;
- ``works`` / ``fails``: a usability check, e.g. the chosen contact sees the user;
- ``not-supported``: the strategy (or the target) cannot do a step the scenario needs,
  or the scenario needs a room and there is none;
- ``error``: the run itself failed (a timeout, a lost connection); the detail says why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .actor import Event
from .catalogue import Action, Check, Scenario
from .normalise import Normaliser
from .observations import Observed

SCHEMA = "casper-compare"
SCHEMA_VERSION = 1
VERDICTS = ("hidden", "leaks", "works", "fails", "not-supported", "error")


@dataclass(frozen=True)
class Column:
    """One column of the matrix: a strategy (or combination) on Casper, or a target."""

    id: str
    strategy: str
    summary: str
    plugins: tuple[str, ...] = ()
    target: Mapping[str, Any] | None = None  # name, host, port, domain, muc

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strategy": self.strategy,
            "summary": self.summary,
            "server": "casper" if self.target is None else "target",
            "plugins": list(self.plugins),
            "target": dict(self.target) if self.target else None,
        }


@dataclass(frozen=True)
class Cell:
    verdict: str
    detail: str = ""
    subject: tuple[str, ...] = ()
    control: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "detail": self.detail,
            "subject": list(self.subject),
            "control": list(self.control),
        }


def verdict(check: Check, subject: Observed | None, control: Observed | None) -> Cell:
    """Decide one cell from the subject and control observations."""
    if subject is None:
        return Cell("error", "the check did not run")
    if subject.status != "done":
        return Cell(subject.status, subject.detail)
    if check.kind == "usability":
        return Cell("works" if subject.ok else "fails", subject.detail)
    if control is None or control.status != "done":
        reason = control.detail if control is not None else "the offline run did not happen"
        return Cell("error", f"offline run: {reason}")
    same = subject.signature == control.signature
    detail = (
        subject.detail
        if subject.detail == control.detail
        else (f"invisible: {subject.detail or '-'}; offline: {control.detail or '-'}")
    )
    return Cell("hidden" if same else "leaks", detail, subject.signature, control.signature)


def flow_json(events: list[Event], norm: Normaliser) -> list[dict[str, Any]]:
    """The stanzas of one world after setup, barrier traffic left out."""
    shown = [e for e in events if e.step >= 0 and not e.sync]
    start = shown[0].t if shown else 0.0
    out = []
    for e in shown:
        el = e.element
        sender, to = el.get("from"), el.get("to")
        out.append(
            {
                "seq": e.seq,
                "t": round(e.t - start, 4),
                "step": e.step,
                "actor": e.actor,
                "direction": e.direction,
                "kind": el.tag.rpartition("}")[2],
                "type": el.get("type"),
                "from": norm.jid(sender) if sender else None,
                "to": norm.jid(to) if to else None,
                "summary": summarise(el),
                "auto": e.auto,
                "check": e.claimed,
                "xml": e.xml,
            }
        )
    return out


def summarise(element: Any) -> str:
    """A few words for a stanza: ``presence unavailable``, ``iq get version``."""
    kind = element.tag.rpartition("}")[2]
    words = [kind]
    if element.get("type"):
        words.append(element.get("type"))
    for child in element:
        local = child.tag.rpartition("}")[2]
        ns = child.tag[1:].partition("}")[0]
        if local in (
            "body",
            "status",
            "priority",
            "delay",
            "x",
            "c",
            "stanza-id",
            "origin-id",
        ) and ns != ("http://jabber.org/protocol/muc#user"):
            continue
        if local == "show":
            words.append(child.text or "")
        elif local == "error":
            words.extend(c.tag.rpartition("}")[2] for c in child if not c.tag.endswith("}text"))
        elif local == "query":
            words.append(ns.rpartition(":")[2].rpartition("/")[2].rpartition("#")[2] or "query")
        else:
            words.append(local)
    if kind == "message" and element.find("{jabber:client}body") is not None:
        words.append("body")
    return " ".join(w for w in words if w)


@dataclass
class Report:
    """Everything one ``casper compare`` run found."""

    scenarios: list[Scenario]
    columns: list[Column]
    cells: dict[str, dict[str, Cell]] = field(default_factory=dict)  # check id -> column id -> cell
    flows: dict[str, dict[str, list[dict[str, Any]]]] = field(
        default_factory=dict
    )  # scenario -> world
    generated: float = field(default_factory=time.time)
    duration: float = 0.0
    casper_version: str = ""

    def rows(self) -> list[tuple[Scenario, Check]]:
        return [(s, c) for s in self.scenarios for c in s.checks]

    def cell(self, check_id: str, column_id: str) -> Cell:
        return self.cells.get(check_id, {}).get(column_id) or Cell("error", "not run")

    def summary(self) -> dict[str, dict[str, int]]:
        counts = {c.id: dict.fromkeys(VERDICTS, 0) for c in self.columns}
        for _, check in self.rows():
            for column in self.columns:
                counts[column.id][self.cell(check.id, column.id).verdict] += 1
        return counts

    def by_channel(self) -> dict[str, dict[str, str]]:
        """Channel -> column -> one word over every scenario: ``hidden`` / ``works`` when
        all its checks are, else ``LEAKS 2/9`` / ``FAILS 1/3`` (and ``n/s``, ``error``)."""
        table: dict[str, dict[str, str]] = {}
        channels = dict.fromkeys(c.channel for _, c in self.rows())
        for channel in channels:
            checks = [c for _, c in self.rows() if c.channel == channel]
            table[channel] = {}
            for column in self.columns:
                verdicts = [self.cell(c.id, column.id).verdict for c in checks]
                bad = next((v for v in ("error", "leaks", "fails") if v in verdicts), None)
                if bad is not None:
                    word = {"error": "error", "leaks": "LEAKS", "fails": "FAILS"}[bad]
                    table[channel][column.id] = f"{word} {verdicts.count(bad)}/{len(verdicts)}"
                elif all(v == "not-supported" for v in verdicts):
                    table[channel][column.id] = "n/s"
                else:
                    table[channel][column.id] = (
                        "works" if checks[0].kind == "usability" else "hidden"
                    )
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.generated)),
            "casper": self.casper_version,
            "duration_seconds": round(self.duration, 2),
            "verdicts": list(VERDICTS),
            "columns": [c.to_json() for c in self.columns],
            "scenarios": [scenario_json(s) for s in self.scenarios],
            "rows": [
                {
                    "id": check.id,
                    "scenario": scenario.id,
                    "step": check.step,
                    "channel": check.channel,
                    "title": check.title,
                    "observer": check.observer,
                    "kind": check.kind,
                    "cells": {c.id: self.cell(check.id, c.id).to_json() for c in self.columns},
                }
                for scenario, check in self.rows()
            ],
            "summary": self.summary(),
            "flows": self.flows,
        }


def scenario_json(scenario: Scenario) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for index, step in enumerate(scenario.steps):
        if isinstance(step, Action):
            entry: dict[str, Any] = {
                "index": index,
                "do": step.action,
                "resource": step.resource,
                "label": step.label,
            }
            if step.contact or step.group:
                entry["contact" if step.contact else "group"] = step.contact or step.group
        else:
            entry = {
                "index": index,
                "observe": step.label,
                "label": f"observe: {step.label}",
                "checks": [c.id for c in step.checks],
            }
        steps.append(entry)
    return {
        "id": scenario.id,
        "title": scenario.title,
        "summary": scenario.summary,
        "resources": list(scenario.resources),
        "room": scenario.room,
        "steps": steps,
    }
