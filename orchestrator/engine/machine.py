"""The journey state machine: pure, no I/O, given `now`.

`advance(state, campaign=…, subscriber=…, events=…, memberships=…, recent_sends=…, now=…)`
returns the new state and the actions that happened (sends to make, routes,
conversions, deferrals, exits), which are also the audit trail. The service
makes the actions real; the simulator and tests only record them.

Times: a journey is *due* at `due_at`; a tick at `now >= due_at` processes it.
Sends happen at `now`. Transitions caused by a known instant (a goal event, a
window running out) are dated at that instant, so a late tick does not stretch
the edges' delays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Literal

from orchestrator.engine.timing import frequency_until, next_local, quiet_until
from orchestrator.language.spec import (
    END,
    AnyNode,
    BranchNode,
    Campaign,
    EdgeSpec,
    NotificationNode,
    SplitNode,
    WaitNode,
)

Phase = Literal["arrive", "wait", "await", "ended"]
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
    status: str = "active"  # active | unsubscribed | deleted
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
        return {"route": set(node.split)}
    if isinstance(node, BranchNode):
        return {"route": {c.target for c in node.branch}}
    assert isinstance(node, WaitNode)
    return {"route": {node.next}}


def pick_split(campaign: Campaign, node_id: str, node: SplitNode, subscriber_id: str) -> str:
    point = stable_fraction(campaign.campaign, node_id, subscriber_id) * sum(node.split.values())
    running = 0.0
    target = next(iter(node.split))
    for target, weight in node.split.items():
        running += weight
        if point < running:
            return target
    return target


# ------------------------------------------------------------------ the machine


@dataclass
class _Run:
    campaign: Campaign
    subscriber: SubscriberView
    events: Sequence[EventView]
    memberships: frozenset[str] | None  # None: not looked up (MembershipsNeeded at a branch)
    recent_sends: list[datetime]
    now: datetime
    state: JourneyState
    actions: list[Action] = field(default_factory=list)
    before_send: JourneyState | None = None

    def emit(self, action: Action) -> None:
        self.actions.append(action)

    def set(self, **changes: Any) -> None:
        self.state = self.state.evolve(changes)

    def end(self, reason: str, at: datetime) -> None:
        self.emit(Action("exit", at, self.state.node, reason=reason))
        self.set(phase="ended", due_at=None, exit_reason=reason, ended_at=at)


def advance(
    state: JourneyState,
    *,
    campaign: Campaign,
    subscriber: SubscriberView,
    events: Sequence[EventView],
    memberships: frozenset[str] | None = frozenset(),
    recent_sends: Sequence[datetime] = (),
    now: datetime,
) -> Result:
    """Move one journey as far as it can go at `now`.

    `memberships`: the segments (of the campaign's branch cases) the subscriber is in;
    None when not looked up yet, and MembershipsNeeded is raised if a branch needs them
    (most advances never reach a branch, so a caller looks up only for those that do)."""
    run = _Run(campaign, subscriber, events, memberships, list(recent_sends), now, state)
    if state.ended or state.due_at is None:
        return Result(state, [])
    if _exit_check(run):
        return Result(run.state, run.actions)
    for _ in range(MAX_STEPS_PER_ADVANCE):
        due = run.state.due_at
        if run.state.ended or due is None:
            break
        if run.state.phase == "await":
            if not _await(run):
                break
            continue
        if due > now:
            break
        if run.state.phase == "wait":
            node = campaign.node(run.state.node)
            assert isinstance(node, WaitNode)
            run.emit(Action("route", due, run.state.node, to=node.next))
            _move(run, node.next, at=due, via="next")
            continue
        if not _arrive(run):
            break
    return Result(run.state, run.actions, run.before_send)


def _exit_check(run: _Run) -> bool:
    """Unsubscribe, gone subscriptions and exit_on events end a journey at once."""
    s = run.subscriber
    if s.status != "active":  # unsubscribed, deleted, or merged into a site's own id
        run.end("merged" if s.status == "merged" else "unsubscribed", run.now)
        return True
    if not s.has_subscription and not run.state.holdout:
        run.end("subscription_gone", run.now)
        return True
    if not run.events:
        return False
    exit_on = set(run.campaign.settings.exit_on)
    awaited = _awaited_goal(run)
    for event in sorted(run.events, key=lambda e: e.at):
        if event.name in exit_on and run.state.unseen(event) and event.at <= run.now:
            if event.name == awaited:
                continue  # a conversion first: _await takes it
            run.end("exit_event", event.at)
            return True
    return False


def _awaited_goal(run: _Run) -> str | None:
    if run.state.phase != "await":
        return None
    node = run.campaign.node(run.state.node)
    return _goal(run, node) if isinstance(node, NotificationNode) else None


def _goal(run: _Run, node: NotificationNode) -> str:
    return node.goal or run.campaign.goal


def _window(run: _Run, node: NotificationNode) -> timedelta:
    return node.window or run.campaign.settings.window


def _await(run: _Run) -> bool:
    """After a send: convert on a goal event inside the window, no-convert when it runs out."""
    state = run.state
    node = run.campaign.node(state.node)
    assert isinstance(node, NotificationNode) and state.last_send_at is not None
    window_end = state.last_send_at + _window(run, node)
    goal = _goal(run, node)
    conversion = None
    for event in sorted(run.events, key=lambda e: e.at):
        if not (state.last_send_at <= event.at <= min(window_end, run.now)) or not state.unseen(
            event
        ):
            continue
        if goal == "click":
            if (
                event.name == "click"
                and event.send_id is not None
                and event.send_id == state.last_send_id
            ):
                conversion = event
                break
        elif event.name == goal:
            conversion = event
            break
    if conversion is not None:
        run.emit(Action("convert", conversion.at, state.node, to=_target(node.on_convert)))
        run.set(followups=0, pending_followup=False, seen_until=conversion.at)
        _follow(run, node.on_convert, at=conversion.at, via="convert")
        return True
    if run.now >= window_end:
        _no_convert(run, node, at=window_end)
        return True
    run.set(due_at=window_end)
    return False


def _no_convert(
    run: _Run, node: NotificationNode, *, at: datetime, reason: str | None = None
) -> None:
    run.emit(
        Action("no_convert", at, run.state.node, to=_target(node.on_no_convert), reason=reason)
    )
    run.set(pending_followup=True, seen_until=at)
    _follow(run, node.on_no_convert, at=at, via="no_convert")


def _target(edge: EdgeSpec | None) -> str:
    return edge.to if edge else END


def _follow(run: _Run, edge: EdgeSpec | None, *, at: datetime, via: str) -> None:
    """Take `edge`: after its delay, and at its `at` (the subscriber's next local wall-clock
    time) when it has one."""
    if edge is None:
        _move(run, END, at=at, via=via)
        return
    moment = at + edge.delay
    if edge.at is not None and edge.to != END:
        moment = next_local(edge.at, _timezone(run), moment)
    _move(run, edge.to, at=moment, via=via)


def _timezone(run: _Run) -> str:
    """The subscriber's timezone, else the campaign's."""
    return run.subscriber.timezone or run.campaign.settings.timezone


MAX_SKIPS = 10  # sends skipped in one journey before it ends (`skip_limit`)


def skip_send(
    before: JourneyState,
    *,
    campaign: Campaign,
    subscriber: SubscriberView,
    reason: str,
    now: datetime,
) -> Result:
    """A send that could not be built (template error, bad url, payload too large) and never
    left: from `before` (the state just before the send, `Result.before_send`) the journey
    records a `skip` and takes its no-convert edge at once. The skip neither starts the
    spacing clock nor counts toward the follow-up cap or `max_sends`; only the step number
    moves on (it keys the send ledger). A journey that has skipped MAX_SKIPS sends ends
    (`skip_limit`): a loop of nodes that all fail to render would otherwise go round
    without time passing."""
    node = campaign.node(before.node)
    assert isinstance(node, NotificationNode) and before.phase == "arrive"
    step = before.step + 1
    run = _Run(campaign, subscriber, (), frozenset(), [], now, before.evolve({"step": step}))
    run.emit(Action("skip", now, before.node, reason=reason, step=step))
    if step - before.sends > MAX_SKIPS:
        run.end("skip_limit", now)
    else:
        _no_convert(run, node, at=now, reason=reason)
    return Result(run.state, run.actions)


def abandon_send(
    state: JourneyState,
    *,
    campaign: Campaign,
    subscriber: SubscriberView,
    reason: str,
    now: datetime,
) -> Result:
    """A send that was made and will never arrive (every push service refused it for good):
    the journey takes its no-convert edge at once instead of waiting for the window. The
    send counts (it left), as spacing and caps see it."""
    run = _Run(campaign, subscriber, (), frozenset(), [], now, state)
    node = campaign.node(state.node)
    assert isinstance(node, NotificationNode) and state.phase == "await"
    _no_convert(run, node, at=now, reason=reason)
    return Result(run.state, run.actions)


def _move(run: _Run, target: str, *, at: datetime, via: str) -> None:
    if target == END:
        run.end("converted" if via == "convert" else "completed", at)
        return
    node = run.campaign.node(target)
    due = at + node.delay if isinstance(node, NotificationNode) else at
    run.set(node=target, phase="arrive", due_at=due, via=via)


def _arrive(run: _Run) -> bool:
    """Process the node the journey is at; False when it has to wait."""
    state = run.state
    node = run.campaign.node(state.node)
    assert state.due_at is not None
    at = state.due_at
    if isinstance(node, SplitNode):
        target = pick_split(run.campaign, state.node, node, run.subscriber.id)
        run.emit(Action("route", at, state.node, to=target))
        run.set(arm=target if state.arm is None else state.arm)
        _move(run, target, at=at, via=state.via or "split")
        return True
    if isinstance(node, BranchNode):
        if run.memberships is None:
            raise MembershipsNeeded(state.node)
        target = next(
            c.target for c in node.branch if c.else_ is not None or c.segment in run.memberships
        )
        run.emit(Action("route", at, state.node, to=target))
        _move(run, target, at=at, via=state.via or "branch")
        return True
    if isinstance(node, WaitNode):
        run.set(phase="wait", due_at=at + node.wait)
        return False
    assert isinstance(node, NotificationNode)
    if node.at is not None:
        moment = next_local(node.at, _timezone(run), at)
        if moment > at:  # not yet the node's wall-clock time: wait for it
            if moment > run.now:
                run.emit(Action("defer", run.now, state.node, reason="at", until=moment))
            run.set(due_at=moment)
            return moment <= run.now
    return _send(run, node)


def _send(run: _Run, node: NotificationNode) -> bool:
    state, settings, now = run.state, run.campaign.settings, run.now
    if state.pending_followup and state.followups + 1 > settings.followup_cap:
        run.end("followup_cap", now)
        return True
    if settings.max_sends is not None and state.sends >= settings.max_sends:
        run.end("max_sends", now)
        return True
    until = _deferral(run)
    if until is not None:
        return False
    step = state.step + 1
    run.before_send = state
    run.emit(Action("send", now, state.node, step=step))
    run.recent_sends.append(now)
    run.set(
        phase="await",
        due_at=now + _window(run, node),
        step=step,
        sends=state.sends + 1,
        followups=state.followups + (1 if state.pending_followup else 0),
        pending_followup=False,
        last_send_at=now,
        last_send_id=None,
    )
    return True


def _deferral(run: _Run) -> datetime | None:
    """Quiet hours, spacing, pauses and the frequency cap: the latest 'not before' wins."""
    state, settings, now = run.state, run.campaign.settings, run.now
    tz = _timezone(run)
    candidates: list[tuple[datetime, str]] = []
    quiet = quiet_until(settings.quiet_hours, tz, now)
    if quiet is not None:
        candidates.append((quiet, "quiet_hours"))
    if state.last_send_at is not None and state.last_send_at + settings.spacing > now:
        candidates.append((state.last_send_at + settings.spacing, "spacing"))
    freq = frequency_until(run.campaign, run.recent_sends, now)
    if freq is not None:
        candidates.append((freq, "frequency_cap"))
    paused = run.subscriber.paused_until
    if paused is not None and paused > now:
        candidates.append((paused, "paused"))
    if not candidates:
        return None
    until, reason = max(candidates)
    run.emit(Action("defer", now, state.node, reason=reason, until=until))
    run.set(due_at=until)
    return until
