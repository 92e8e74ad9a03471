"""The tick under rate limits (`orchestrator.app.throttle`): a campaign's tick up to its
batches (`begin_campaign`), its batches paced by its limits (`paced_batches`), and the
throttled campaigns of one `ticking.tick` taking turns while they wait (`take_turns`).

The batch steps themselves (claim, record) are `ticking`'s, handed in: this module
decides when a claim is made, how large, and when the tick stops waiting.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from orchestrator.app import control, journeys, outcomes
from orchestrator.app.enrolment import enrol
from orchestrator.app.service import CampaignLoad, Context
from orchestrator.app.throttle import (
    RATE_LIMIT,
    Clock,
    RealClock,
    Throttle,
    Timeline,
    VirtualClock,
    throttle_for,
)
from orchestrator.app.tick_report import (
    BatchResult,
    CampaignTick,
    ClaimedBatch,
    TickReport,
    note_failure,
)
from orchestrator.delivery import SendOutcome, submit
from orchestrator.engine import Action
from orchestrator.language.spec import Campaign
from orchestrator.store import repo
from orchestrator.store.db import Session

IN_FLIGHT = 2  # batches on the wire while the next one is claimed

Claim = Callable[[datetime], ClaimedBatch | None]  # a claim at this moment
Finish = Callable[[ClaimedBatch, Sequence[SendOutcome], datetime], BatchResult]


def clock_for(ctx: Context) -> Clock:
    """What a tick's waits for a rate limit run on: the simulator's ticks on virtual time
    (a wait returns at once), the others on the process's clock."""
    return VirtualClock() if ctx.simulated else RealClock()


def throttle_of(
    ctx: Context,
    campaign: Campaign,
    *,
    now: datetime,
    batch_size: int = 500,
    clock: Clock | None = None,
) -> Throttle | None:
    """The campaign's limits for a tick at `now` (None: no limit applies)."""
    timeline = Timeline(now, clock or clock_for(ctx))
    return throttle_for(ctx.config, campaign, timeline=timeline, batch_size=batch_size)


def note_held(result: CampaignTick, throttle: Throttle) -> None:
    """What the limit held back goes into the tick's report (`deferred:rate_limit`)."""
    held = sum(throttle.held.values())
    if held:
        result.steps[f"deferred:{RATE_LIMIT}"] += held


def begin_campaign(
    ctx: Context,
    load: CampaignLoad,
    *,
    now: datetime,
    batch_size: int = 500,
    enrol_segments: bool = True,
) -> CampaignTick:
    """A campaign's tick up to its batches: its state (a paused or stopped one is `held`
    and does nothing), enrolment, and the sends due again."""
    assert (
        load.loaded is not None and load.loaded.campaign is not None and load.version_id is not None
    )
    campaign = load.loaded.campaign
    result = CampaignTick(campaign.campaign, load.version_id)
    now_state = control.state(ctx, campaign.campaign)
    if not now_state.sending:  # paused or stopped: journeys keep their place
        result.held = now_state.state
        return result
    result.enrolled, result.holdout = enrol(
        ctx, campaign=campaign, version_id=load.version_id, now=now, segments_too=enrol_segments
    )
    while True:
        again = outcomes.resend_due(ctx, campaign=campaign.campaign, now=now, limit=batch_size)
        if again is None:
            break
        result.resent += again.sends
        result.outcomes.update(again.outcomes)
    return result


@dataclass(frozen=True)
class Wait:
    """A throttled campaign's limits leave no room before `until`."""

    until: datetime


def paced_batches(
    ctx: Context, *, campaign: str, throttle: Throttle, claim: Claim, finish: Finish
) -> Iterator[BatchResult | Wait]:
    """`ticking.run_batches` under the campaign's limits, on the throttle's timeline: each
    claim, at the timeline's moment, takes at most the journeys `Throttle.room` leaves it
    (its sends' ledger rows are claimed at that moment). With no room, the batches on
    the wire are recorded, then a `Wait` says until when: the caller lets the timeline
    reach it (or gives other campaigns their turn) and asks for the next item. A wait
    that would end at or after the campaign's next scheduled tick (`Throttle.deadline`)
    is not taken: the run ends and the journeys still due keep their place and due time
    for a later tick (`Throttle.hold`)."""
    in_flight: deque[tuple[ClaimedBatch, datetime, Future[list[SendOutcome]]]] = deque()
    more = True
    failed: Exception | None = None

    def record(everything: bool) -> Iterator[BatchResult]:
        nonlocal failed, more
        while in_flight and (
            everything or not more or len(in_flight) > IN_FLIGHT or in_flight[0][2].done()
        ):
            batch, at, answers = in_flight.popleft()
            try:
                answered = answers.result()
            except Exception as exc:
                failed, more = failed or exc, False
                continue
            yield finish(batch, answered, at)

    while more or in_flight:
        at = throttle.timeline.moment()
        claimed = None
        if more and not control.sending(ctx, campaign):
            more = False  # paused or stopped meanwhile: what is on the wire is recorded
        if more:
            try:
                claimed = claim(at)
            except Exception as exc:
                if not in_flight:
                    raise
                failed = exc  # record what is on the wire first
        if claimed is not None and claimed.room_at is not None:
            yield from record(everything=True)
            if not more:
                continue  # a delivery failed meanwhile
            if claimed.room_at >= throttle.deadline:
                with ctx.session() as s, s.begin():
                    after = throttle.hold(s, now=at)
                    if ctx.audit is not None:
                        _audit_held(ctx, s, throttle, now=at, after=after)
                more = False
                continue
            throttle.waits += 1
            yield Wait(claimed.room_at)
            continue
        if claimed is None:
            more = False
        else:
            more = claimed.more
            in_flight.append((claimed, at, submit(ctx.delivery, claimed.requests)))
        yield from record(everything=False)
    if failed is not None:
        raise failed


def waited(batches: Iterator[BatchResult | Wait], throttle: Throttle) -> Iterator[BatchResult]:
    """`paced_batches` of one campaign, its waits taken as they come."""
    for item in batches:
        if isinstance(item, Wait):
            throttle.timeline.wait_until(item.until)
        else:
            yield item


def _audit_held(
    ctx: Context, s: Session, throttle: Throttle, *, now: datetime, after: datetime
) -> None:
    """A `defer` line (reason `rate_limit`, until the campaign's next scheduled tick) for
    each journey held back that no earlier tick held back at this due time, page by page."""
    start: tuple[datetime, int] | None = None
    while rows := repo.due_journeys(
        s, campaign=throttle.campaign, now=now, after=after, start=start
    ):
        defer = [
            (row, [Action("defer", now, row.node, reason=RATE_LIMIT, until=throttle.deadline)])
            for row in rows
        ]
        journeys.audit_rows(ctx, throttle.campaign, defer)
        start = (repo.utc(rows[-1].claim_at), rows[-1].id)


@dataclass
class PacedRun:
    """A throttled campaign's tick in `ticking.tick`, between its turns."""

    result: CampaignTick
    throttle: Throttle
    batches: Iterator[BatchResult | Wait]
    started: float


def begin_paced(
    ctx: Context,
    load: CampaignLoad,
    report: TickReport,
    throttle: Throttle,
    batches: Iterator[BatchResult | Wait],
    batch_size: int = 500,
) -> list[PacedRun]:
    """`begin_campaign` at the throttle's start, its result in the report; the run whose
    `batches` are to take turns (none when the campaign is held)."""
    started = time.perf_counter()
    result = begin_campaign(ctx, load, now=throttle.timeline.start, batch_size=batch_size)
    report.campaigns.append(result)
    return [PacedRun(result, throttle, batches, started)] if result.held is None else []


def take_turns(
    report: TickReport,
    runs: list[PacedRun],
    *,
    timeline: Timeline,
    on_batch: Callable[[str, BatchResult], None] | None,
) -> None:
    """The throttled campaigns' batches in turns: one batch each, in order; a campaign that
    must wait steps aside until its moment (the longest waiting first among equal
    moments), and the timeline waits only when every one of them does. A campaign whose
    batches raise leaves the report's campaigns for its `failed`; the others go on."""
    ready = deque(runs)
    waiting: list[tuple[datetime, int, PacedRun]] = []
    order = itertools.count()
    while ready or waiting:
        if not ready:
            until = waiting[0][0]
            timeline.wait_until(until)
            while waiting and waiting[0][0] <= until:
                ready.append(heapq.heappop(waiting)[2])
        run = ready.popleft()
        try:
            item = next(run.batches)
        except StopIteration:
            note_held(run.result, run.throttle)
            run.result.seconds = time.perf_counter() - run.started
            continue
        except Exception as exc:
            report.campaigns.remove(run.result)
            note_failure(report, run.result.campaign, exc)
            continue
        if isinstance(item, Wait):
            heapq.heappush(waiting, (item.until, next(order), run))
            continue
        run.result.add(item)
        if on_batch:
            on_batch(run.result.campaign, item)
        ready.append(run)
