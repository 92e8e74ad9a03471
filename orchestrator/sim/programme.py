"""A programme's figures: several campaigns simulated together on one clock and one population.

Each worker process holds a share of the subscribers and every campaign of theirs, so
a share's figures (`Part`) are computed where the journeys ran and shares add up
(`merge`): no subscriber is in two shares.

- sends per subscriber per week: over every subscriber sent to at least once and
  every week of the run (7-day periods from the start, the last one possibly partial),
  weeks without a send counted as 0;
- sends deferred by the frequency cap: `defer` trace lines with reason `frequency_cap`,
  per campaign (a send deferred twice counts twice);
- subscribers reached by more than one campaign: sent to by two campaigns or more;
- invariant violations: each campaign's trace checked by the engine's invariants
  (`orchestrator.engine.invariants.TraceChecker`); a journey still open at the end
  (`--until`) is unfinished, not a violation;
- frequency-cap violations: every send, in the order the sends were made, of a campaign
  that sets `frequency_cap` is checked against the subscriber's sends of every campaign:
  at most `max` inside the `per` window that ends with it (itself included). This is the
  rule the engine applies before a send; a campaign without a cap may send past another
  campaign's cap, and that is no violation.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.engine.invariants import TraceChecker
from orchestrator.language.spec import Campaign, format_duration

WEEK = timedelta(days=7)
SHOWN_PROBLEMS = 10  # problems listed in the figures; all are counted


@dataclass
class Part:
    """One worker's share of a programme's figures."""

    weeks: list[dict[int, int]] = field(
        default_factory=list
    )  # a reached subscriber's sends by week
    reached_by_several: int = 0
    cap_deferred: dict[str, int] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=dict)
    cap_violations: int = 0
    problems: list[str] = field(default_factory=list)


Sends = dict[str, list[tuple[datetime, int]]]  # subscriber → (moment, campaign index), as made


def part_of(
    campaigns: list[Campaign],
    lines: list[dict[str, Any]],
    sends: Sends,
    *,
    timezones: dict[str, str],
    start: datetime,
) -> Part:
    """A share's figures from its time-ordered trace lines (every campaign's) and the sends
    that left, per subscriber in the order they were made."""
    part = Part()
    for made in sends.values():
        by_week: dict[int, int] = {}
        for at, _ in made:
            week = (at - start) // WEEK
            by_week[week] = by_week.get(week, 0) + 1
        part.weeks.append(by_week)
        if len({index for _, index in made}) > 1:
            part.reached_by_several += 1
    for campaign in campaigns:
        name = campaign.campaign
        mine = [line for line in lines if line.get("campaign") == name and "subscriber" in line]
        part.cap_deferred[name] = sum(
            1 for line in mine if line["type"] == "defer" and line.get("reason") == "frequency_cap"
        )
        checker = TraceChecker(campaign, timezones)
        checker.feed(mine)
        found = list(checker.problems)  # before `finish` adds the journeys still open
        checker.finish()
        part.violations[name] = len(found)
        part.problems += [f"{name}: {problem}" for problem in found[:SHOWN_PROBLEMS]]
    capped = cap_problems(campaigns, sends)
    part.cap_violations = len(capped)
    part.problems += capped[:SHOWN_PROBLEMS]
    return part


def cap_problems(campaigns: list[Campaign], sends: Sends) -> list[str]:
    """Every send of a capped campaign that made more than its cap's `max` sends (of any
    campaign) inside the `per` window ending with it."""
    out: list[str] = []
    for sid, made in sends.items():
        times = [at for at, _ in made]
        for i, (at, index) in enumerate(made):
            cap = campaigns[index].settings.frequency_cap
            if cap is None:
                continue
            inside = i + 1 - bisect.bisect_right(times, at - cap.per, 0, i + 1)
            if inside > cap.max:
                out.append(
                    f"{sid}: {campaigns[index].campaign} sent at {at.isoformat()}, "
                    f"{inside} sends within {format_duration(cap.per)} "
                    f"(frequency_cap {cap.max} per {format_duration(cap.per)})"
                )
    return out


def merge(parts: list[Part]) -> Part:
    out = Part()
    for part in parts:
        out.weeks += part.weeks
        out.reached_by_several += part.reached_by_several
        out.cap_violations += part.cap_violations
        out.problems += part.problems
        for into, more in (
            (out.cap_deferred, part.cap_deferred),
            (out.violations, part.violations),
        ):
            for name, count in more.items():
                into[name] = into.get(name, 0) + count
    return out


def weekly(part: Part, *, weeks: int) -> dict[str, Any]:
    """Mean, p50, p95 and max sends per reached subscriber per week, over `weeks` weeks."""
    values = sorted(by_week.get(week, 0) for by_week in part.weeks for week in range(weeks))
    if not values:
        return {"mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    return {
        "mean": round(sum(values) / len(values), 2),
        "p50": _rank(values, 0.50),
        "p95": _rank(values, 0.95),
        "max": values[-1],
    }


def _rank(ordered: list[int], share: float) -> int:
    """The nearest-rank percentile of sorted values."""
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def figures(part: Part, campaigns: list[str], *, start: datetime, end: datetime) -> dict[str, Any]:
    """The programme block of `campaign simulate`'s output (without the run's totals)."""
    weeks = (end - start) // WEEK + 1
    violations = sum(part.violations.values())
    return {
        "weeks": weeks,
        "reached": len(part.weeks),
        "reached_by_several": part.reached_by_several,
        "sends_per_subscriber_week": weekly(part, weeks=weeks),
        "deferred_by_frequency_cap": {name: part.cap_deferred.get(name, 0) for name in campaigns},
        "invariant_violations": {name: part.violations.get(name, 0) for name in campaigns},
        "frequency_cap_violations": part.cap_violations,
        "problems": part.problems[:SHOWN_PROBLEMS],
        "ok": violations == 0 and part.cap_violations == 0,
    }


class Needed:
    """The journeys a programme needs: every journey from a trigger event and each
    subscriber's first journey in each segment sub-campaign (a re-entry from a segment is
    not needed). Fed the trace lines as they come; one journey per subscriber and
    campaign at a time."""

    def __init__(self, campaigns: list[Campaign]) -> None:
        self.triggered = {
            (c.campaign, name)
            for c in campaigns
            for name, sub in c.subcampaigns.items()
            if sub.trigger is not None
        }
        self.entered: set[tuple[str, str, str]] = set()  # campaign, sub-campaign, subscriber
        self.open: dict[tuple[str, str], bool] = {}  # (campaign, subscriber): needed
        self.running = 0  # needed journeys in flight

    def feed(self, lines: list[dict[str, Any]]) -> None:
        for line in lines:
            kind, sid, name = line["type"], line.get("subscriber"), line.get("campaign")
            if sid is None or name is None or kind not in ("enroll", "exit"):
                continue
            if kind == "enroll":
                sub = str(line.get("subcampaign"))
                first = (name, sub, sid) not in self.entered
                self.entered.add((name, sub, sid))
                needed = first or (name, sub) in self.triggered
                self.open[(name, sid)] = needed
                self.running += needed
            elif self.open.pop((name, sid), False):
                self.running -= 1
