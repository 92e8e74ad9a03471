"""Synthetic subscribers for simulation and the demo, drawn from a campaign's own segment rules.

Each subscriber is made to satisfy one entry segment (or none), and, at random,
the segments the campaign branches on, so every path of the flowchart gets
traffic. Triggered sub-campaigns get trigger events with the properties their
templates use. With `repeat_days`, subscribers go on doing things for that many
days: trigger events again and again (now and then two close together) and the
campaign's `exit_on` events, which exercises re-entry, spacing across journeys
and several trigger events in one tick. Several campaigns simulated together share
one population: each campaign's, joined by subscriber id (`union`).
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from typing import Any

from orchestrator.language.spec import (
    AllRule,
    AnyRule,
    AnyRuleModel,
    AttrRule,
    BranchNode,
    Campaign,
    EventRule,
    NotificationNode,
    NotRule,
    SegmentRef,
    TagRule,
)

TIMEZONES = (
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
)
_TRIGGER_PROP = re.compile(r"trigger\.properties\.([A-Za-z_][A-Za-z0-9_]*)")


class _Person:
    def __init__(self, sid: str, rng: random.Random) -> None:
        self.id = sid
        self.timezone = rng.choice(TIMEZONES)
        self.attributes: dict[str, Any] = {
            "first_name": rng.choice(["Ana", "Ben", "Chen", "Dara", "Eli"])
        }
        self.tags: list[str] = []
        self.events: list[dict[str, Any]] = []

    def line(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timezone": self.timezone,
            "attributes": self.attributes,
            "tags": self.tags,
            "events": self.events,
        }


def _other(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    return f"{value}-other"


def _satisfy(
    rule: AnyRuleModel,
    p: _Person,
    campaign: Campaign,
    rng: random.Random,
    start: datetime,
    depth: int = 0,
) -> None:
    if depth > 20:
        return
    if isinstance(rule, AllRule):
        for child in rule.all:
            _satisfy(child, p, campaign, rng, start, depth + 1)
    elif isinstance(rule, AnyRule):
        _satisfy(rng.choice(rule.any), p, campaign, rng, start, depth + 1)
    elif isinstance(rule, NotRule):
        return
    elif isinstance(rule, SegmentRef):
        _satisfy(campaign.segments[rule.segment].match, p, campaign, rng, start, depth + 1)
    elif isinstance(rule, TagRule):
        if rule.tag not in p.tags:
            p.tags.append(rule.tag)
    elif isinstance(rule, AttrRule):
        _satisfy_attr(rule, p, rng)
    elif isinstance(rule, EventRule):
        window = rule.within or timedelta(days=30)
        for _ in range(rule.at_least):
            at = start - timedelta(seconds=rng.uniform(60, max(window.total_seconds() - 60, 61)))
            p.events.append(
                {"name": rule.event, "at": at.isoformat(), "properties": dict(rule.where)}
            )


def _satisfy_attr(rule: AttrRule, p: _Person, rng: random.Random) -> None:
    op, value, name = rule.op, rule.value, rule.attr
    if op == "eq":
        p.attributes[name] = value
    elif op == "ne":
        p.attributes[name] = _other(value)
    elif op == "in":
        p.attributes[name] = rng.choice(value)
    elif op in ("gt", "gte", "lt", "lte"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            step = rng.randint(0, 20) if op in ("gte", "lte") else rng.randint(1, 20)
            p.attributes[name] = value + step if op.startswith("g") else value - step
        else:
            p.attributes[name] = f"{value}z" if op.startswith("g") else str(value)[:-1] or ""
    elif op == "contains":
        current = p.attributes.get(name)
        if isinstance(current, list):
            if value not in current:
                current.append(value)
        elif isinstance(value, str) and isinstance(current, str):
            p.attributes[name] = current + " " + value
        else:
            p.attributes[name] = [value]
    elif op == "exists":
        if value:
            p.attributes.setdefault(name, "yes")
        else:
            p.attributes.pop(name, None)


def _trigger_props(campaign: Campaign, sub_name: str) -> set[str]:
    names: set[str] = set()
    for node in campaign.subcampaigns[sub_name].nodes.values():
        if isinstance(node, NotificationNode):
            for text in node.notification.model_dump().values():
                if isinstance(text, str):
                    names.update(_TRIGGER_PROP.findall(text))
    return names


def _prop_value(name: str, rng: random.Random, index: int) -> str:
    if name.endswith("url"):
        return f"https://shop.example.com/{name.replace('_url', '')}/{index}"
    return rng.choice(
        ["Trail running shoes", "Espresso grinder", "Linen shirt", "Desk lamp", "Yoga mat"]
    )


def synthesize(
    campaign: Campaign, *, count: int, seed: int, start: datetime, repeat_days: int = 0
) -> list[dict[str, Any]]:
    """`count` population lines (the `simulate --population` format), the same for the same
    seed; `repeat_days`: add `repeat` behaviour over that many days."""
    rng = random.Random(f"{seed}:{campaign.campaign}")
    entries = [name for name, sub in campaign.subcampaigns.items() if sub.trigger is None]
    triggered = [name for name, sub in campaign.subcampaigns.items() if sub.trigger is not None]
    branch_segments = sorted(
        {
            c.segment
            for n in campaign.all_nodes().values()
            if isinstance(n, BranchNode)
            for c in n.branch
            if c.segment
        }
    )
    lines = []
    for i in range(count):
        p = _Person(f"sim-{i:06d}", rng)
        if entries and rng.random() < 0.85:
            sub = campaign.subcampaigns[rng.choice(entries)]
            assert sub.segment is not None
            _satisfy(campaign.segments[sub.segment].match, p, campaign, rng, start)
        for name in branch_segments:
            if rng.random() < 0.4:
                _satisfy(campaign.segments[name].match, p, campaign, rng, start)
        for name in triggered:
            sub = campaign.subcampaigns[name]
            assert sub.trigger is not None
            if rng.random() < 0.6:
                if sub.segment is not None:
                    _satisfy(campaign.segments[sub.segment].match, p, campaign, rng, start)
                props: dict[str, Any] = {
                    k: _prop_value(k, rng, i) for k in sorted(_trigger_props(campaign, name))
                }
                props.update(sub.trigger.where)
                at = start + timedelta(seconds=rng.uniform(0, 3 * 86400))
                p.events.append(
                    {"name": sub.trigger.event, "at": at.isoformat(), "properties": props}
                )
        lines.append(p.line())
    if repeat_days:
        repeat(campaign, lines, seed=seed, start=start, days=repeat_days)
    return lines


def repeat(
    campaign: Campaign, lines: list[dict[str, Any]], *, seed: int, start: datetime, days: int
) -> None:
    """Adds to each line, over `days` from `start`: its trigger events again, about every
    40 hours (15 % of them with a second one within 20 minutes), and, for a third of the
    subscribers, one of each `exit_on` event other than `unsubscribe` (the same for the
    same seed)."""
    rng = random.Random(f"{seed}:{campaign.campaign}:repeat")
    triggers = sorted({s.trigger.event for s in campaign.subcampaigns.values() if s.trigger})
    exits = [name for name in campaign.settings.exit_on if name != "unsubscribe"]
    end = start + timedelta(days=days)
    for line in lines:
        events: list[dict[str, Any]] = line["events"]
        for name in triggers:
            shown = [e for e in events if e["name"] == name]
            if not shown:
                continue
            moment = start + timedelta(hours=rng.uniform(0, 48))
            while True:
                moment += timedelta(hours=rng.expovariate(1 / 40))
                if moment >= end:
                    break
                again = {**shown[0], "at": moment.isoformat()}
                events.append(again)
                if rng.random() < 0.15:
                    soon = moment + timedelta(minutes=rng.uniform(1, 20))
                    events.append({**again, "at": soon.isoformat()})
        for name in exits:
            if rng.random() < 0.35:
                at = start + timedelta(seconds=rng.uniform(0, days * 86400))
                events.append({"name": name, "at": at.isoformat(), "properties": {}})
        events.sort(key=lambda e: str(e["at"]))


def union(populations: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several campaigns' synthetic populations (`synthesize`, same ids `sim-NNNNNN`) as one,
    joined by subscriber id, so one subscriber is what every campaign wanted of them: the
    first population's timezone, every population's tags and events (events in time
    order), and each attribute as the first population that sets it has it (where two
    campaigns want different values, the earlier campaign's stays)."""
    joined: dict[str, dict[str, Any]] = {}
    for lines in populations:
        for line in lines:
            into = joined.get(line["id"])
            if into is None:
                joined[line["id"]] = {
                    **line,
                    "attributes": dict(line["attributes"]),
                    "tags": list(line["tags"]),
                    "events": list(line["events"]),
                }
                continue
            for name, value in line["attributes"].items():
                into["attributes"].setdefault(name, value)
            into["tags"] += [tag for tag in line["tags"] if tag not in into["tags"]]
            into["events"] += line["events"]
    for line in joined.values():
        line["events"].sort(key=lambda e: str(e["at"]))
    return list(joined.values())
