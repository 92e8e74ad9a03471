"""The engine's invariants, checked on what journeys actually did (their actions).

Used by the property tests, the simulation tests and `campaign soak`:
- no two sends of the campaign to one subscriber closer than `spacing`, in one journey
  or across re-entries (every send that left counts; a `skip` never left and does not);
- nothing sent in quiet hours (in the subscriber's timezone);
- at most `max_sends` sends, none at all for the holdout group;
- never more than `followup_cap` no-convert follow-ups in a row;
- every step follows an edge of the graph from the node the journey is at;
- every journey ends (`TraceChecker.finish` reports those that did not).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator import engine
from orchestrator.engine import Action, edge_targets
from orchestrator.language.spec import END, Campaign, WaitNode


def journey_problems(
    campaign: Campaign,
    timezone: str,
    actions: list[Action],
    *,
    previous_send: datetime | None = None,
) -> list[str]:
    """Every invariant one journey's actions break (empty: none). `previous_send`: the
    campaign's last send to the subscriber in an earlier journey."""
    problems: list[str] = []
    s = campaign.settings
    sends = [a for a in actions if a.type == "send"]
    times = ([previous_send] if previous_send is not None else []) + [a.at for a in sends]
    for a, b in itertools.pairwise(times):
        if b - a < s.spacing:
            problems.append(f"spacing: sends at {a} and {b}")
    for send in sends:
        if engine.quiet_until(s.quiet_hours, timezone, send.at) is not None:
            problems.append(f"quiet hours: send at {send.at} ({timezone})")
    if s.max_sends is not None and len(sends) > s.max_sends:
        problems.append(f"max_sends: {len(sends)} sends")
    if actions and actions[0].holdout and sends:
        problems.append("holdout: a held-out journey was sent to")
    followups, pending = 0, False
    current: str | None = None
    for action in actions:
        if action.type == "enroll":
            current = action.node
            continue
        if action.type == "exit" and current == END:
            continue  # an edge to end: the exit names the node that led there
        while current not in (None, END) and action.node != current:
            node = campaign.node(current)  # a wait node moves on without an action of its own
            if not isinstance(node, WaitNode):
                return [*problems, f"{action.type} at {action.node} but journey is at {current}"]
            current = node.next
        if action.node != current:
            return [*problems, f"{action.type} at {action.node} but journey is at {current}"]
        if action.type == "convert":
            followups, pending = 0, False
        elif action.type == "no_convert":
            pending = True
        elif action.type == "send":
            if pending:
                followups += 1
                pending = False
            if followups > s.followup_cap:
                problems.append(f"follow-up cap: follow-up {followups} at {action.at}")
        if action.type in ("route", "convert", "no_convert"):
            kind = "route" if action.type == "route" else action.type
            if action.to not in edge_targets(campaign.node(action.node))[kind]:
                problems.append(f"{action.type} from {action.node} to {action.to}: no such edge")
            current = action.to
    return problems


def action_of(line: dict[str, Any]) -> Action:
    """A trace line (the interfaces spec's format) back as the engine's Action."""
    return Action(
        type=line["type"],
        at=datetime.fromisoformat(str(line["t"])),
        node=str(line["node"]),
        to=line.get("to"),
        reason=line.get("reason"),
        holdout=bool(line.get("holdout", False)),
        timing=line.get("timing"),
    )


@dataclass
class TraceChecker:
    """Checks a time-ordered trace journey by journey, holding the journeys in flight and
    each subscriber's last send (spacing holds across a subscriber's journeys)."""

    campaign: Campaign
    timezones: dict[str, str]
    journeys: int = 0
    lines: int = 0
    problems: list[str] = field(default_factory=list)
    _open: dict[str, list[Action]] = field(default_factory=dict)
    _last_send: dict[str, datetime] = field(default_factory=dict)

    def feed(self, lines: Iterable[dict[str, Any]]) -> None:
        for line in lines:
            self.lines += 1
            sid = str(line["subscriber"])
            action = action_of(line)
            if action.type == "enroll":
                if sid in self._open:
                    self.problems.append(f"{sid}: enrolled again before the journey ended")
                self._open[sid] = [action]
                continue
            journey = self._open.get(sid)
            if journey is None:
                self.problems.append(f"{sid}: {action.type} outside any journey")
                continue
            journey.append(action)
            if action.type == "exit":
                self._check(sid, self._open.pop(sid))

    def _check(self, sid: str, actions: list[Action]) -> None:
        self.journeys += 1
        tz = self.timezones.get(sid, "UTC")
        previous = self._last_send.get(sid)
        self.problems.extend(
            f"{sid}: {p}"
            for p in journey_problems(self.campaign, tz, actions, previous_send=previous)
        )
        sends = [a.at for a in actions if a.type == "send"]
        if sends:
            self._last_send[sid] = sends[-1]

    def finish(self) -> int:
        """The journeys that never ended (also added to `problems`)."""
        for sid in self._open:
            self.problems.append(f"{sid}: the journey never ended")
        return len(self._open)
