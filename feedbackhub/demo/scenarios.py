"""The demo's scenario banks, one JSON file per product domain in ``data/`` (``data/demo.json`` lists them).

A domain has a system prompt, weighted end-user roles, model and app versions, channels, slot values and scenarios;
a scenario has an opener in a few wordings, a good answer and a weak one, why the weak one is weak (feedback
categories, complaints, the user's own correction), follow-ups, the knowledge-base articles a retriever would find
and a tool call. ``{slot}`` markers in any text are filled from the domain's slot values.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Doc:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Tool:
    name: str
    arguments: dict
    result: dict


@dataclass(frozen=True)
class Scenario:
    topic: str
    openers: tuple[str, ...]
    good: str
    weak: str
    #: Why the weak answer is weak: feedback categories, an end user's complaint, and the user's own correction.
    problems: tuple[str, ...]
    complaints: tuple[str, ...]
    correction: str
    rephrase: str
    followups: tuple[tuple[str, str], ...] = ()
    docs: tuple[Doc, ...] = ()
    tool: Tool | None = None
    praise: tuple[str, ...] = ("Thanks, that's exactly what I needed.",)


@dataclass(frozen=True)
class Domain:
    key: str
    product: str
    system_prompt: str
    roles: tuple[tuple[str, int], ...]
    model_versions: tuple[str, ...]
    app_versions: tuple[str, ...]
    channels: tuple[str, ...]
    slots: dict[str, tuple[str, ...]]
    scenarios: tuple[Scenario, ...]
    closings: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class DemoSet:
    source: str
    base_date: dt.datetime
    environments: tuple[tuple[str, int], ...]
    domains: tuple[Domain, ...]
    weights: tuple[int, ...]


def _pairs(rows: list[list[Any]]) -> tuple[tuple[Any, ...], ...]:
    return tuple(tuple(row) for row in rows)


def _scenario(raw: dict[str, Any]) -> Scenario:
    return Scenario(
        topic=raw["topic"],
        openers=tuple(raw["openers"]),
        good=raw["good"],
        weak=raw["weak"],
        problems=tuple(raw["problems"]),
        complaints=tuple(raw["complaints"]),
        correction=raw["correction"],
        rephrase=raw["rephrase"],
        followups=_pairs(raw.get("followups", [])),
        docs=tuple(Doc(**doc) for doc in raw.get("docs", [])),
        tool=Tool(**raw["tool"]) if raw.get("tool") else None,
        praise=tuple(raw.get("praise", Scenario.praise)),
    )


def _domain(raw: dict[str, Any]) -> Domain:
    return Domain(
        key=raw["key"],
        product=raw["product"],
        system_prompt=raw["system_prompt"],
        roles=_pairs(raw["roles"]),
        model_versions=tuple(raw["model_versions"]),
        app_versions=tuple(raw["app_versions"]),
        channels=tuple(raw["channels"]),
        slots={name: tuple(values) for name, values in raw["slots"].items()},
        scenarios=tuple(_scenario(s) for s in raw["scenarios"]),
        closings=_pairs(raw.get("closings", [])),
    )


@functools.cache
def demo_set() -> DemoSet:
    """The scenario banks and the set's fixed parameters, read once per process."""
    meta = json.loads((DATA_DIR / "demo.json").read_text(encoding="utf-8"))
    domains = tuple(
        _domain(json.loads((DATA_DIR / f"{entry['domain']}.json").read_text(encoding="utf-8")))
        for entry in meta["domains"]
    )
    return DemoSet(
        source=meta["source"],
        base_date=dt.datetime.fromisoformat(meta["base_date"]),
        environments=_pairs(meta["environments"]),
        domains=domains,
        weights=tuple(entry["weight"] for entry in meta["domains"]),
    )
