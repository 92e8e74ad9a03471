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

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.engine import bandit, sendtime
from orchestrator.engine.state import (
    MAX_STEPS_PER_ADVANCE as MAX_STEPS_PER_ADVANCE,
    Action as Action,
    EventView as EventView,
    JourneyState as JourneyState,
    MembershipsNeeded as MembershipsNeeded,
    Phase as Phase,
    Result as Result,
    SubscriberView as SubscriberView,
    edge_targets as edge_targets,
    pick_split as pick_split,
    stable_fraction as stable_fraction,
)
from orchestrator.engine.timing import frequency_until, next_local, quiet_until
from orchestrator.language.spec import (
    END,
    BranchNode,
    Campaign,
    EdgeSpec,
    NotificationNode,
    SendTimeSpec,
    SplitNode,
    WaitNode,
)

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
    send_times: sendtime.SendTimeData | None = None
    split_tallies: bandit.SplitTallies | None = None
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
    send_times: sendtime.SendTimeData | None = None,
    split_tallies: bandit.SplitTallies | None = None,
) -> Result:
    """Move one journey as far as it can go at `now`.

    `memberships`: the segments (of the campaign's branch cases) the subscriber is in;
    None when not looked up yet, and MembershipsNeeded is raised if a branch needs them
    (most advances never reach a branch, so a caller looks up only for those that do).
    `send_times`: what the send-time optimiser knows of the subscriber (`sendtime`);
    without it a `send_time: best` node has no data and picks the earliest allowed hour.
    `split_tallies`: each (split, arm)'s measured journeys and conversions, what a
    `mode: bandit` split learns from (`bandit`); without them a bandit routes by its
    weights."""
    run = _Run(
        campaign,
        subscriber,
        events,
        memberships,
        list(recent_sends),
        now,
        state,
        send_times,
        split_tallies,
    )
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


UNREACHABLE = "unreachable"  # a subscriber status: see `state.SubscriberView`


def _exit_check(run: _Run) -> bool:
    """Unsubscribe, gone subscriptions and exit_on events end a journey at once."""
    s = run.subscriber
    if s.status not in ("active", UNREACHABLE):  # unsubscribed, deleted, or merged
        run.end("merged" if s.status == "merged" else "unsubscribed", run.now)
        return True
    reachable = s.has_subscription and s.status != UNREACHABLE
    if not reachable and not run.state.holdout:
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
    assert isinstance(node, NotificationNode) and before.phase in ("arrive", "timed")
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
        target = pick_split(
            run.campaign, state.node, node, run.subscriber.id, at=at, tallies=run.split_tallies
        )
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
    if state.phase == "arrive":
        # the send's moment is chosen once, on arrival: the node's wall-clock time, or the
        # optimiser's hour; the usual deferrals then apply to it as to any send
        spec = _best_time(run, node)
        if node.at is not None:
            moment, reason = next_local(node.at, _timezone(run), at), "at"
        elif spec is not None:
            moment = sendtime.choose(
                _arm(run, spec),
                at,
                spec,
                tz_name=_timezone(run),
                data=run.send_times or sendtime.NO_DATA,
                allowed=lambda m: not _blockers(run, m),
                fraction=_fraction(run, "explore"),
            )
            reason = "send_time"
        else:
            return _send(run, node)
        run.set(phase="timed", due_at=max(moment, at))
        if moment > run.now:
            run.emit(Action("defer", run.now, state.node, reason=reason, until=moment))
            return False
    return _send(run, node)


def _best_time(run: _Run, node: NotificationNode) -> SendTimeSpec | None:
    """The node's `send_time` (else the campaign's) when it is `best` and no `at` fixes the
    moment; None otherwise."""
    spec = node.send_time or run.campaign.settings.send_time
    return spec if spec.mode == "best" and node.at is None else None


def _fraction(run: _Run, purpose: str) -> float:
    """A stable fraction for this journey's next send (campaign, subscriber, node, step)."""
    state = run.state
    return stable_fraction(
        run.campaign.campaign, run.subscriber.id, state.node, str(state.step + 1), purpose
    )


def _arm(run: _Run, spec: SendTimeSpec) -> str:
    return sendtime.arm_of(_fraction(run, "send_time"), spec)


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
    spec = _best_time(run, node)
    timing = _arm(run, spec) if spec is not None else None
    step = state.step + 1
    run.before_send = state
    run.emit(Action("send", now, state.node, step=step, timing=timing))
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
    candidates = _blockers(run, run.now)
    if not candidates:
        return None
    until, reason = max(candidates)
    run.emit(Action("defer", run.now, run.state.node, reason=reason, until=until))
    run.set(due_at=until)
    return until


def _blockers(run: _Run, moment: datetime) -> list[tuple[datetime, str]]:
    """What keeps a send from going at `moment`, each with when it would let it go."""
    state, settings = run.state, run.campaign.settings
    out: list[tuple[datetime, str]] = []
    quiet = quiet_until(settings.quiet_hours, _timezone(run), moment)
    if quiet is not None:
        out.append((quiet, "quiet_hours"))
    if state.last_send_at is not None and state.last_send_at + settings.spacing > moment:
        out.append((state.last_send_at + settings.spacing, "spacing"))
    freq = frequency_until(run.campaign, run.recent_sends, moment)
    if freq is not None:
        out.append((freq, "frequency_cap"))
    paused = run.subscriber.paused_until
    if paused is not None and paused > moment:
        out.append((paused, "paused"))
    return out
