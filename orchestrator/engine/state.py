"""What the engine reads and returns: a journey's state, the subscriber's and the events'
views, the actions that happened, and the stable hash that fixes splits and arms.
`machine` holds the rules over them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Literal

from orchestrator.engine import bandit
from orchestrator.language.spec import (
    END,
    AnyNode,
    BranchNode,
    Campaign,
    NotificationNode,
    SplitNode,
    WaitNode,
)

Phase = Literal["arrive", "timed", "wait", "await", "ended"]  # timed: its send moment is chosen
MAX_STEPS_PER_ADVANCE = 256  # routing without a send can't loop: the validator forbids it


class MembershipsNeeded(Exception):
    """`advance` was given `memberships=None` and arrived at a branch node: look the
    subscriber's segment memberships up and advance again from the same state (the
    engine is pure, so nothing of the first attempt is kept)."""


@dataclass(frozen=True)
class JourneyState:
    """Where one journey is. `last_send_at` is the campaign's latest send to the subscriber:
    this journey's, or before its first send an earlier journey's (spacing is per campaign
    and subscriber, not per journey)."""

    subscriber_id: str
    subcampaign: str
    node: str
    phase: Phase
    due_at: datetime | None
    entered_at: datetime
    followups: int = 0
    pending_followup: bool = False
    sends: int = 0
    step: int = 0
    last_send_at: datetime | None = None
    last_send_id: int | None = None
    arm: str | None = None
    holdout: bool = False
    via: str | None = None
    exit_reason: str | None = None
    ended_at: datetime | None = None
    trigger: dict[str, Any] | None = None
    seen_until: datetime | None = None  # events up to this instant have been acted on

    def unseen(self, event: EventView) -> bool:
        if self.seen_until is None:
            return event.at >= self.entered_at
        return event.at > self.seen_until

    @property
    def ended(self) -> bool:
        return self.phase == "ended"

    def evolve(self, changes: dict[str, Any]) -> JourneyState:
        """A copy with `changes` (what `dataclasses.replace` does, without re-running
        `__init__` field by field: the engine makes two of these per step)."""
        unknown = changes.keys() - _STATE_FIELDS
        if unknown:
            raise TypeError(f"JourneyState has no field {', '.join(sorted(unknown))}")
        new = object.__new__(JourneyState)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    @classmethod
    def of(cls, values: dict[str, Any]) -> JourneyState:
        """From a complete dict of fields (as stored), without `__init__`'s per-field setattr."""
        if values.keys() != _STATE_FIELDS:
            return cls(**values)  # let __init__ say what is missing or extra
        new = object.__new__(cls)
        new.__dict__.update(values)
        return new


_STATE_FIELDS = frozenset(f.name for f in fields(JourneyState))


@dataclass(frozen=True)
class SubscriberView:
    id: str
    timezone: str = "UTC"
    # active | unsubscribed | deleted | merged | unreachable (the push services reported
    # every subscription of theirs gone: no subscription, whatever an import stores later)
    status: str = "active"
    has_subscription: bool = True
    paused_until: datetime | None = None


@dataclass(frozen=True)
class EventView:
    """What the engine reads of an event: goals and exits match by name (and a click by its
    send); properties matter to trigger enrolment and templates, not here, so the tick
    does not read them."""

    name: str
    at: datetime
    send_id: int | None = None


@dataclass(frozen=True)
class Action:
    """One thing that happened to a journey. `type` follows the trace format of the interfaces spec."""

    type: Literal["enroll", "send", "skip", "convert", "no_convert", "defer", "exit", "route"]
    at: datetime
    node: str
    to: str | None = None
    reason: str | None = None
    step: int | None = None
    until: datetime | None = None
    holdout: bool = False
    timing: str | None = None  # a send of a `send_time: best` node: best | explore | immediate


@dataclass(frozen=True)
class Result:
    """The state after an advance and what happened. `before_send`: the state just before
    this advance's send (an advance makes at most one), what `skip_send` goes on from if
    the send cannot be built."""

    state: JourneyState
    actions: list[Action]
    before_send: JourneyState | None = None


# ------------------------------------------------------------------ helpers


def stable_fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by its inputs: re-running never reshuffles."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def edge_targets(node: AnyNode) -> dict[str, set[str]]:
    """Where each kind of step may lead from `node` (`END` included)."""
    if isinstance(node, NotificationNode):
        return {
            "convert": {node.on_convert.to if node.on_convert else END},
            "no_convert": {node.on_no_convert.to if node.on_no_convert else END},
        }
    if isinstance(node, SplitNode):
        return {"route": set(node.arms)}
    if isinstance(node, BranchNode):
        return {"route": {c.target for c in node.branch}}
    assert isinstance(node, WaitNode)
    return {"route": {node.next}}


def pick_split(
    campaign: Campaign,
    node_id: str,
    node: SplitNode,
    subscriber_id: str,
    *,
    at: datetime | None = None,
    tallies: bandit.SplitTallies | None = None,
) -> str:
    """The arm a journey takes: the promoted winner when the split has one; for a bandit
    (`mode: bandit`) arriving at `at`, Thompson sampling over `tallies` (`bandit.sample`),
    except for its explore share (a stable fraction of campaign, node, subscriber and
    `at`) and while no arm has a measured journey; else a stable hash of (campaign, node,
    subscriber) laid over the weights."""
    options = node.options
    if options.winner is not None:
        return options.winner
    if options.mode == "bandit" and at is not None:
        counts = bandit.measured(tallies, node_id, options.arms)
        if counts is not None:
            keys = (campaign.campaign, node_id, subscriber_id, _moment(at))
            if stable_fraction(*keys, "explore") >= options.exploration:
                return bandit.sample(counts, bandit.generator(*keys, "thompson"))
    point = stable_fraction(campaign.campaign, node_id, subscriber_id) * sum(options.arms.values())
    running = 0.0
    target = next(iter(options.arms))
    for target, weight in options.arms.items():
        running += weight
        if point < running:
            return target
    return target


def _moment(at: datetime) -> str:
    """`at` as text that names the instant, whatever its timezone."""
    return at.astimezone(UTC).isoformat() if at.tzinfo is not None else at.isoformat()
