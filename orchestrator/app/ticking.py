"""A tick: enrol (`orchestrator.app.enrolment`), then advance every due journey in batches,
sending what is due.

Exactly-once: a batch claims its journeys and writes a ledger row for every
send in one transaction, before anything leaves the process; delivery happens
after the commit and its outcomes are written back in one statement per batch.

Isolation: a journey whose advance raises ends (`error`) and the batch goes on;
a send that cannot be rendered or built is skipped (`template_error`, `bad_url`,
`payload_too_large`); a campaign whose tick raises is reported in
`TickReport.failed` and the next campaign runs (docs/reliability.md, "Isolation").

Throttling: under a rate limit a claim takes at most what it leaves (`throttle`) and
the batches are paced on the tick's clock (`pacing`; docs/engine.md, "Throttling").
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any

from orchestrator import engine
from orchestrator.app import control, journeys, ledger, outcomes, pacing, sendtimes, tick_report
from orchestrator.app.bandits import tallies_for
from orchestrator.app.service import CampaignLoad, Context, campaign_paths, load_current
from orchestrator.app.throttle import Clock, Throttle, Timeline, throttle_for
from orchestrator.app.tick_report import BatchResult, CampaignTick, ClaimedBatch, TickReport
from orchestrator.delivery import SendOutcome, SendRequest, describe, submit
from orchestrator.engine import Action, EventView
from orchestrator.language import urls
from orchestrator.language.spec import BranchNode, Campaign, NotificationNode
from orchestrator.store import repo, segments
from orchestrator.store.db import Row, Session
from orchestrator.store.failures import DatabaseError
from orchestrator.store.models import Journey, Send

log = logging.getLogger("campaign.tick")


def tick(
    ctx: Context,
    *,
    now: datetime,
    names: list[str] | None = None,
    batch_size: int = 500,
    on_batch: Callable[[str, BatchResult], None] | None = None,
    clock: Clock | None = None,
) -> TickReport:
    """One pass over the named campaigns (default: every file in the graphs folder).

    A campaign whose tick raises is in `failed` (and `errors`), logged, and the next
    campaign runs; what the failed one committed is kept.

    Campaigns without a rate limit tick one after the other; those under one then take
    turns on `clock` (`pacing.take_turns`; default `pacing.clock_for`)."""
    report = TickReport()
    timeline = Timeline(now, clock or pacing.clock_for(ctx))
    paced: list[pacing.PacedRun] = []
    for path in campaign_paths(ctx, names):
        name = path.stem
        try:
            load = load_current(ctx, path)
            if load.problem is not None or load.version_id is None:
                report.refused[str(path)] = load.problem or "not loaded"
                continue
            if load.loaded is not None and load.loaded.campaign is not None:
                name = load.loaded.campaign.campaign
                throttle = throttle_for(
                    ctx.config, load.loaded.campaign, timeline=timeline, batch_size=batch_size
                )
                if throttle is not None:  # its batches take turns, below
                    batches = _paced(ctx, name, throttle, batch_size)
                    paced += pacing.begin_paced(ctx, load, report, throttle, batches, batch_size)
                    continue
            report.campaigns.append(
                tick_campaign(ctx, load, now=now, batch_size=batch_size, on_batch=on_batch)
            )
        except Exception as exc:
            tick_report.note_failure(report, name, exc)
    if paced:
        pacing.take_turns(report, paced, timeline=timeline, on_batch=on_batch)
    return report


def tick_campaign(
    ctx: Context,
    load: CampaignLoad,
    *,
    now: datetime,
    batch_size: int = 500,
    on_batch: Callable[[str, BatchResult], None] | None = None,
    enrol_segments: bool = True,
    clock: Clock | None = None,
) -> CampaignTick:
    """`pacing.begin_campaign`, then the due journeys in batches (paced on `clock`)."""
    started = time.perf_counter()
    result = pacing.begin_campaign(
        ctx, load, now=now, batch_size=batch_size, enrol_segments=enrol_segments
    )
    if result.held is None:
        assert load.loaded is not None and load.loaded.campaign is not None
        campaign = load.loaded.campaign
        throttle = pacing.throttle_of(ctx, campaign, now=now, batch_size=batch_size, clock=clock)
        for batch in run_batches(
            ctx, campaign=campaign.campaign, now=now, batch_size=batch_size, throttle=throttle
        ):
            result.add(batch)
            if on_batch:
                on_batch(campaign.campaign, batch)
        if throttle is not None:
            pacing.note_held(result, throttle)
    result.seconds = time.perf_counter() - started
    return result


def run_batches(
    ctx: Context,
    *,
    campaign: str,
    now: datetime,
    batch_size: int = 500,
    throttle: Throttle | None = None,
) -> Iterator[BatchResult]:
    """Every due batch, overlapped: while earlier batches' pushes are on the wire (the push
    client's thread or the delivery processes), the next batch is claimed and advanced;
    answers are recorded as they come, oldest batch first, with at most `pacing.IN_FLIGHT`
    sent and not yet recorded. Each claim still commits before its sends leave.

    Before each claim the campaign's state is read: once it is paused or stopped, no
    further batch is claimed.

    A batch whose delivery fails as a whole (a delivery process died) stops the claims;
    the batches already on the wire are recorded, then its error is raised (its sends
    stay claimed and go again after the claim grace).

    With a `throttle` (`pacing.throttle_of`), `pacing.paced_batches` on its timeline."""
    if throttle is not None:
        yield from pacing.waited(_paced(ctx, campaign, throttle, batch_size), throttle)
        return
    in_flight: deque[tuple[ClaimedBatch, Future[list[SendOutcome]]]] = deque()
    more = True
    failed: Exception | None = None
    while more or in_flight:
        claimed = None
        if more and not control.sending(ctx, campaign):
            more = False  # paused or stopped meanwhile: what is on the wire is recorded
        if more:
            try:
                claimed = claim_batch(ctx, campaign=campaign, now=now, batch_size=batch_size)
            except Exception as exc:
                if not in_flight:
                    raise
                failed = exc  # record what is on the wire first
        if claimed is None:
            more = False
        else:
            more = claimed.more
            in_flight.append((claimed, submit(ctx.delivery, claimed.requests)))
        while in_flight and (
            not more or len(in_flight) > pacing.IN_FLIGHT or in_flight[0][1].done()
        ):
            batch, answers = in_flight.popleft()
            try:
                answered = answers.result()
            except Exception as exc:
                failed, more = failed or exc, False
                continue
            yield finish_batch(ctx, batch, answered, now=now)
    if failed is not None:
        raise failed


def _paced(
    ctx: Context, campaign: str, throttle: Throttle, batch_size: int
) -> Iterator[BatchResult | pacing.Wait]:
    """`pacing.paced_batches` with this module's batch steps."""
    return pacing.paced_batches(
        ctx,
        campaign=campaign,
        throttle=throttle,
        claim=lambda at: claim_batch(
            ctx, campaign=campaign, now=at, batch_size=batch_size, throttle=throttle
        ),
        finish=lambda batch, answers, at: finish_batch(ctx, batch, answers, now=at),
    )


# ------------------------------------------------------------------ batches


def work_due(ctx: Context, *, campaign: str, now: datetime) -> tuple[bool, bool]:
    """(journeys are due, sends are due again) — lets the flow skip task runs with nothing to do."""
    with ctx.session() as s:
        return repo.work_due(s, campaign=campaign, now=now)


def run_batch(
    ctx: Context, *, campaign: str, now: datetime, batch_size: int = 500
) -> BatchResult | None:
    """Claim, advance and send one batch of due journeys; None when nothing is due."""
    claimed = claim_batch(ctx, campaign=campaign, now=now, batch_size=batch_size)
    if claimed is None:
        return None
    answers = ctx.delivery.deliver(claimed.requests) if claimed.requests else []
    return finish_batch(ctx, claimed, answers, now=now)


def claim_batch(
    ctx: Context,
    *,
    campaign: str,
    now: datetime,
    batch_size: int = 500,
    throttle: Throttle | None = None,
) -> ClaimedBatch | None:
    """Claim and advance one batch; the ledger rows commit here, before any send.

    If something of one row breaks the batch's shared reads (say, a subscriber's stored
    JSON that does not parse), the rows are advanced again one by one, each in its own
    savepoint, and the row that still raises ends (`error`).

    With a `throttle`, at most what its limits leave (`Throttle.room`); with none left while
    journeys are due, an empty batch that says when there is room (`room_at`)."""
    ctx.secret()  # read or create it before the batch transaction takes the write lock
    counts: Counter[tuple[str, str]] = Counter()
    trace: list[tuple[Row[Any], list[Action]]] = []
    with ctx.session() as s, s.begin():
        limit, room_at = (
            throttle.room(s, now=now, wanted=batch_size) if throttle else (batch_size, None)
        )
        if room_at is not None:
            return ClaimedBatch(campaign, 0, [], True, room_at=room_at)
        rows = _claim_due(s, campaign=campaign, now=now, limit=limit, counts=counts, trace=trace)
        if not rows and not trace:
            return None
        requests: list[SendRequest] = []
        due_again = False
        if rows:
            try:
                with s.begin_nested():
                    requests, more_counts, more_trace, due_again = advance_rows(
                        ctx, s, rows, now=now
                    )
            except DatabaseError:
                raise
            except Exception as exc:
                log.warning(
                    "%s: %d journeys could not be advanced together (%s); one by one instead",
                    campaign,
                    len(rows),
                    describe(exc),
                )
                requests, more_counts, more_trace, due_again = _advance_each(ctx, s, rows, now=now)
            counts.update(more_counts)
            trace.extend(more_trace)
        repo.bump(s, campaign=campaign, counts=counts)
    journeys.audit_rows(ctx, campaign, trace)
    steps = journeys.step_summary(a for _, actions in trace for a in actions)
    return ClaimedBatch(campaign, len(rows), requests, len(rows) == limit or due_again, steps)


def _claim_due(
    s: Session,
    *,
    campaign: str,
    now: datetime,
    limit: int,
    counts: Counter[tuple[str, str]],
    trace: list[tuple[Row[Any], list[Action]]],
) -> list[Row[Any]]:
    """`repo.claim_due`; when a due row cannot even be read (on SQLite, a stored trigger
    that is not JSON), those journeys end (`error`) and the claim is made again."""
    try:
        return repo.claim_due(s, campaign=campaign, now=now, limit=limit)
    except ValueError as exc:
        ended = repo.end_unreadable_journeys(s, campaign=campaign, now=now)
        if not ended:
            raise
        for row in ended:
            journeys.end_with_error(row, exc, now=now, counts=counts, trace=trace)
    return repo.claim_due(s, campaign=campaign, now=now, limit=limit)


def _advance_each(
    ctx: Context, s: Session, rows: list[Row[Any]], *, now: datetime
) -> tuple[list[SendRequest], Counter[tuple[str, str]], list[tuple[Row[Any], list[Action]]], bool]:
    """`advance_rows` one row at a time, each in a savepoint; a row that raises ends."""
    requests: list[SendRequest] = []
    counts: Counter[tuple[str, str]] = Counter()
    trace: list[tuple[Row[Any], list[Action]]] = []
    due_again = False
    for row in rows:
        try:
            with s.begin_nested():
                more, more_counts, more_trace, again = advance_rows(ctx, s, [row], now=now)
        except DatabaseError:
            raise
        except Exception as exc:
            end = journeys.end_with_error(row, exc, now=now, counts=counts, trace=trace)
            repo.update_by_id(s, Journey, [end])
            continue
        requests.extend(more)
        counts.update(more_counts)
        trace.extend(more_trace)
        due_again = due_again or again
    return requests, counts, trace, due_again


def finish_batch(
    ctx: Context, claimed: ClaimedBatch, answers: Sequence[SendOutcome], *, now: datetime
) -> BatchResult:
    """Record the push services' answers to a claimed batch."""
    tally: Counter[str] = Counter()
    if answers:
        tally = outcomes.record(
            ctx,
            campaign=claimed.campaign,
            requests=claimed.requests,
            outcomes=answers,
            attempts={r.send_id: 1 for r in claimed.requests},
            now=now,
        )
    by_id = {r.send_id: r for r in claimed.requests}
    origins: Counter[tuple[str, str]] = Counter(
        (urls.origin_of(by_id[a.send_id].targets[0].endpoint), a.outcome)
        for a in answers
        if a.send_id in by_id and by_id[a.send_id].targets
    )
    return BatchResult(
        journeys=claimed.journeys,
        sends=len(claimed.requests),
        outcomes=tally,
        steps=claimed.steps,
        origins=origins,
    )


def advance_rows(
    ctx: Context, s: Session, rows: list[Row[Any]], *, now: datetime
) -> tuple[list[SendRequest], Counter[tuple[str, str]], list[tuple[Row[Any], list[Action]]], bool]:
    """Advance the claimed rows; the last item says whether one of them is due again at `now`
    (a send skipped takes its no-convert edge, and the next batch goes on from there)."""
    ids = [r.subscriber_id for r in rows]
    subs = repo.subscribers(s, ids)
    has_sub = repo.subscription_counts(s, ids) if not ctx.simulated else None
    since = min(repo.utc(r.entered_at) for r in rows)
    assert since is not None
    events = repo.events_for(s, ids, since=since)  # those after `now` wake, below
    # a journey whose advance raises (its version does not load, its stored state does not
    # fit its campaign, ...) ends with `error`; the others go on
    broken: dict[int, Exception] = {}
    campaigns: dict[int, Campaign] = {}
    for version_id in {r.version_id for r in rows}:
        try:
            campaigns[version_id] = ctx.campaign_of_version(version_id, s)
        except DatabaseError:
            raise
        except Exception as exc:
            broken.update((r.id, exc) for r in rows if r.version_id == version_id)
    recent = _recent(s, ids, campaigns, now=now)
    send_times = sendtimes.data_for(ctx, s, rows, campaigns, now=now)
    split_tallies = tallies_for(s, campaigns, now=now, cache=ctx.split_tallies)

    def advance(row: Row[Any], memberships: frozenset[str] | None) -> engine.Result:
        return engine.advance(
            journeys.state_of(row),
            campaign=campaigns[row.version_id],
            subscriber=journeys.subscriber_view(
                subs.get(row.subscriber_id), row.subscriber_id, has_sub
            ),
            events=[
                EventView(e.name, at, e.send_id)
                for e in events.get(row.subscriber_id, [])
                if (at := repo.utc(e.at)) <= now
            ],
            memberships=memberships,
            recent_sends=recent.get(row.subscriber_id, []),
            now=now,
            send_times=send_times.get(row.id),
            split_tallies=split_tallies.get(row.version_id),
        )

    # segment memberships are looked up only for the journeys that arrive at a branch
    # (each subscriber is in a batch once: one journey per subscriber and campaign)
    results: dict[int, engine.Result] = {}
    at_branch: list[Row[Any]] = []
    for row in rows:
        if row.id in broken:
            continue
        try:
            results[row.id] = advance(row, None)
        except engine.MembershipsNeeded:
            at_branch.append(row)
        except Exception as exc:
            broken[row.id] = exc
    if at_branch:
        memberships = _memberships(s, at_branch, campaigns, now=now)
        for row in at_branch:
            try:
                results[row.id] = advance(row, frozenset(memberships.get(row.subscriber_id, ())))
            except Exception as exc:
                broken[row.id] = exc
    counts: Counter[tuple[str, str]] = Counter()
    trace: list[tuple[Row[Any], list[Action]]] = []
    pending: list[ledger.PendingSend] = []
    updates: dict[int, dict[str, Any]] = {}
    converted: list[dict[str, Any]] = []
    for row in rows:
        if row.id in broken:
            end = journeys.end_with_error(row, broken[row.id], now=now, counts=counts, trace=trace)
            updates[row.id] = {k: v for k, v in end.items() if k != "id"}
            continue
        c = campaigns[row.version_id]
        result = results[row.id]
        state, actions = result.state, list(result.actions)
        for action in actions:
            if action.type == "send":
                assert action.step is not None and result.before_send is not None
                node = c.node(action.node)
                assert isinstance(node, NotificationNode)
                pending.append(
                    ledger.PendingSend(
                        row,
                        c,
                        action.node,
                        node,
                        action.step,
                        result.before_send,
                        actions,
                        action.timing,
                    )
                )
                recent.setdefault(row.subscriber_id, []).append(now)
        updates[row.id] = journeys.changes(state)
        converted.extend(
            {"id": row.last_send_id, "converted_at": a.at}
            for a in actions
            if a.type == "convert" and row.last_send_id is not None
        )
        journeys.count(actions, counts)
        trace.append((row, actions))
    requests = ledger.claim_sends(
        ctx, s, pending, subs=subs, now=now, counts=counts, trace=trace, updates=updates
    )
    later = {
        sid: [(e.name, at) for e in rows_of if (at := repo.utc(e.at)) > now]
        for sid, rows_of in events.items()
    }
    journeys.wake_for_later_events(
        (
            (r.subscriber_id, engine.wake_names(campaigns[r.version_id]), updates[r.id])
            for r in rows
            if r.version_id in campaigns and later.get(r.subscriber_id)
        ),
        later,
    )
    journeys.record_split_entries(s, lambda r: campaigns.get(r.version_id), trace)
    repo.update_by_id(s, Journey, [{"id": jid, **values} for jid, values in updates.items()])
    repo.update_by_id(s, Send, converted)
    due_again = any(v["claim_at"] is not None and v["claim_at"] <= now for v in updates.values())
    return requests, counts, trace, due_again


def _memberships(
    s: Session, rows: list[Row[Any]], campaigns: dict[int, Campaign], *, now: datetime
) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for version_id, c in campaigns.items():
        names = sorted(
            {
                case.segment
                for n in c.all_nodes().values()
                if isinstance(n, BranchNode)
                for case in n.branch
                if case.segment
            }
        )
        if not names:
            continue
        ids = sorted({r.subscriber_id for r in rows if r.version_id == version_id})
        if not ids:
            continue
        for sid, found in segments.is_member_of(
            s, ids, names, segments=c.segments, now=now
        ).items():
            out.setdefault(sid, set()).update(found)
    return out


def _recent(
    s: Session, ids: list[str], campaigns: dict[int, Campaign], *, now: datetime
) -> dict[str, list[datetime]]:
    caps = [c.settings.frequency_cap.per for c in campaigns.values() if c.settings.frequency_cap]
    return repo.recent_sends(s, ids, since=now - max(caps)) if caps else {}
