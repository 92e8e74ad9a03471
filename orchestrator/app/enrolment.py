"""Enrolment: new journeys for segment members (priority order, incrementally) and for
trigger events (with their delay, `where` properties and optional segment).

Segment entry is incremental: only subscribers changed, or with new events, since
the previous pass are looked at (`EnrolMark`), with a full pass on the first tick,
when the clock goes backwards, and hourly for rules that change with time alone.
A unique index on active journeys keeps one journey per subscriber and campaign,
however many ticks enrol at once.

A broadcast (`settings.schedule: once …`) enrols its segments' members once, each at their
own moment, under a claim (`orchestrator.app.broadcasts`) that keeps any later tick,
version or deployment from enrolling again (docs/engine.md, "Broadcasts").
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from orchestrator import engine
from orchestrator.app import broadcasts, control, journeys
from orchestrator.app.service import Context
from orchestrator.engine import Action, Past
from orchestrator.language.spec import Campaign
from orchestrator.store import repo, segments
from orchestrator.store.db import Session
from orchestrator.store.models import EnrolMark, Journey, utcnow

ENROL_CHUNK = 5000
# how long an event id may still be committing on PostgreSQL after a larger one is seen
TRIGGER_SETTLE = timedelta(minutes=1)

log = logging.getLogger("campaign.tick")


@dataclass(frozen=True)
class Entry:
    """A journey to start: at the tick's time (segment entry) or its trigger event's."""

    subscriber_id: str
    at: datetime
    trigger: dict[str, Any] | None = None  # the template's `trigger`
    event_id: int | None = None  # the trigger event
    last_send_at: datetime | None = None  # the campaign's latest send to the subscriber


def enrol(
    ctx: Context, *, campaign: Campaign, version_id: int, now: datetime, segments_too: bool = True
) -> tuple[int, int]:
    """New journeys, sub-campaign by sub-campaign in file (priority) order: segment members
    and trigger events. Returns (enrolled, holdout).

    Consecutive segment sub-campaigns are looked at in one pass over the subscribers
    (each is given to the first of them whose segment they are in).
    `segments_too=False` skips re-evaluating segment membership (the simulator does it daily).
    A broadcast enrols once (`enrol_broadcast`), whatever `segments_too` says."""
    if campaign.settings.broadcast_at is not None:
        return enrol_broadcast(ctx, campaign=campaign, version_id=version_id, now=now)
    enrolled = holdout = 0
    by_segment = groupby(
        campaign.subcampaigns, key=lambda n: campaign.subcampaigns[n].trigger is None
    )
    for segment_entry, group in by_segment:
        run = list(group)
        if not segment_entry:
            for name in run:
                e, h = _enrol_triggered(
                    ctx, campaign=campaign, version_id=version_id, subcampaign=name, now=now
                )
                enrolled, holdout = enrolled + e, holdout + h
            continue
        if not segments_too:
            continue
        members, marks = _eligible_members(ctx, campaign=campaign, subcampaigns=run, now=now)
        for name in run:
            last_sends = _last_sends(ctx, campaign, members[name])
            e, h = _insert_journeys(
                ctx,
                campaign=campaign,
                version_id=version_id,
                subcampaign=name,
                entries=[
                    Entry(sid, now, last_send_at=last_sends.get(sid)) for sid in members[name]
                ],
                now=now,
            )
            enrolled, holdout = enrolled + e, holdout + h
        with ctx.session() as s, s.begin():  # only once the journeys are in
            for mark in marks:
                repo.save_enrol_mark(s, mark)
    return enrolled, holdout


def _last_sends(ctx: Context, campaign: Campaign, ids: Sequence[str]) -> dict[str, datetime]:
    """The campaign's latest send to each of these subscribers in an earlier journey (only
    with `reentry` set: otherwise an earlier journey keeps them from entering at all)."""
    if campaign.settings.reentry is None or not ids:
        return {}
    with ctx.session() as s:
        pasts = _pasts(s, campaign, ids)
    return {sid: p.last_send_at for sid, p in pasts.items() if p.last_send_at is not None}


def _pasts(s: Session, campaign: Campaign, ids: Iterable[str]) -> dict[str, Past]:
    return {
        row.subscriber_id: Past(
            in_flight=bool(row.in_flight),
            ended_at=repo.aware(row.ended_at),
            last_send_at=repo.aware(row.last_send_at),
        )
        for row in repo.journey_pasts(s, campaign=campaign.campaign, ids=ids)
    }


def _eligible_members(
    ctx: Context, *, campaign: Campaign, subcampaigns: Sequence[str], now: datetime
) -> tuple[dict[str, list[str]], list[EnrolMark]]:
    """The members of each segment sub-campaign who may enrol now (`repo.eligible_members`:
    one incremental query for the run); in a simulation, subscribers need no push
    subscription."""
    with ctx.session() as s:
        return repo.eligible_members(
            s,
            campaign=campaign,
            subcampaigns=subcampaigns,
            now=now,
            subscribed_only=not ctx.simulated,
        )


def _insert_journeys(
    ctx: Context,
    *,
    campaign: Campaign,
    version_id: int,
    subcampaign: str,
    entries: Sequence[Entry],
    now: datetime,
) -> tuple[int, int]:
    """Store the journeys of these entries. A journey first due after `now` whose
    subscriber has an event it acts on (`engine.wake_names`) stored from its entry on is
    claimable from that event's time: an order placed after the cart, stored before a
    late tick, ends the journey in that tick. (A journey due by `now` is advanced in this
    tick, which sees those events itself.)"""
    enrolled = holdout = 0
    names = engine.wake_names(campaign)
    for start in range(0, len(entries), ENROL_CHUNK):
        chunk = entries[start : start + ENROL_CHUNK]
        rows: list[dict[str, Any]] = []
        trace: list[tuple[str, list[Action]]] = []
        later: list[tuple[Entry, dict[str, Any]]] = []
        for entry in chunk:
            result = engine.enroll(
                campaign=campaign,
                subcampaign=subcampaign,
                subscriber_id=entry.subscriber_id,
                at=entry.at,
                trigger=entry.trigger,
                last_send_at=entry.last_send_at,
            )
            row = journeys.row_values(result.state)
            row.update(
                campaign=campaign.campaign, version_id=version_id, trigger_event_id=entry.event_id
            )
            if row["claim_at"] is not None and row["claim_at"] > now:
                later.append((entry, row))
            rows.append(row)
            trace.append((entry.subscriber_id, result.actions))
        if later and names:
            with ctx.session() as s:
                wakes = _wakes(s, [entry for entry, _ in later], names)
            for (_, row), wake in zip(later, wakes, strict=True):
                if wake is not None:
                    row["claim_at"] = min(row["claim_at"], wake)
        with ctx.session() as s, s.begin():
            stmt = repo.insert_ignoring(s, Journey)
            repo.core(s).execute(stmt, rows)
            counts: Counter[tuple[str, str]] = Counter()
            for _, actions in trace:
                journeys.count(actions, counts)
            repo.bump(s, campaign=campaign.campaign, counts=counts)
        enrolled += len(rows)
        holdout += sum(1 for r in rows if r["holdout"])
        journeys.audit(ctx, campaign.campaign, subcampaign, trace)
    return enrolled, holdout


def _wakes(s: Session, entries: Sequence[Entry], names: frozenset[str]) -> list[datetime | None]:
    """For each entry, the time of the first event its journey acts on stored from its
    entry on (the trigger event itself aside), or None."""
    if not entries or not names:
        return [None] * len(entries)
    since = min(e.at for e in entries)
    found: dict[str, list[tuple[int, datetime]]] = {}
    for row in repo.named_events(s, (e.subscriber_id for e in entries), names=names, since=since):
        found.setdefault(row.subscriber_id, []).append((row.id, repo.utc(row.at)))
    return [
        next(
            (
                at
                for event_id, at in found.get(entry.subscriber_id, ())
                if at >= entry.at and event_id != entry.event_id
            ),
            None,
        )
        for entry in entries
    ]


def _enrol_triggered(
    ctx: Context, *, campaign: Campaign, version_id: int, subcampaign: str, now: datetime
) -> tuple[int, int]:
    """Enrol from the trigger events not handled yet: those the cursor passed while they
    were dated later and that are due now, then every due one beyond the cursor.

    The cursor (an event id) then moves as far as it safely can: not past an event stored
    in the last TRIGGER_SETTLE (on PostgreSQL an event with a smaller id may still be
    committing; the events handled beyond the cursor are marked, and skipped when read
    again), and past an event dated later only by marking it, to be enrolled when due.
    The simulator, one process on its own database, needs no settling time."""
    sub = campaign.subcampaigns[subcampaign]
    assert sub.trigger is not None
    name = sub.trigger.event
    keys = {"campaign": campaign.campaign, "subcampaign": subcampaign}
    enrolled = holdout = 0
    seen: list[int] = []  # every id read beyond the cursor, ascending
    beyond: list[tuple[int, datetime]] = []  # (id, at) handled beyond the cursor

    def read(
        s: Session, after: int, also: Sequence[Any] = ()
    ) -> tuple[list[Any], list[Any], list[Entry]]:
        """The next due events beyond `after`, those not handled yet, and the journeys they
        (with `also`) start."""
        events = repo.trigger_events(s, name=name, after_id=after, until=now, limit=ENROL_CHUNK)
        fresh = [e for e in events if e.id not in handled]
        return events, fresh, _entries(ctx, s, campaign, subcampaign, [*also, *fresh], now=now)

    with ctx.session() as s:
        start = repo.cursor(s, **keys)
        marks = repo.trigger_marks(s, **keys)
        handled = {i for i, _, done in marks if done}
        due = [i for i, at, done in marks if not done and at <= now]
        due_marked = repo.events_by_id(s, due)  # an erased subscriber's events are gone
        events, fresh, entries = read(s, start, due_marked)
        s.commit()
    while True:
        e_count, h_count = _insert_journeys(
            ctx,
            campaign=campaign,
            version_id=version_id,
            subcampaign=subcampaign,
            entries=entries,
            now=now,
        )
        enrolled, holdout = enrolled + e_count, holdout + h_count
        seen.extend(e.id for e in events)
        beyond.extend((e.id, repo.utc(e.at)) for e in fresh)
        if len(events) < ENROL_CHUNK:  # that read took every due event there was
            break
        with ctx.session() as s:
            events, fresh, entries = read(s, seen[-1])
            s.commit()
    if not seen and not marks:
        return enrolled, holdout
    with ctx.session() as s, s.begin():
        to = seen[-1] if seen else start
        if not ctx.simulated and seen:
            recent = repo.first_recorded_after(
                s, name=name, after_id=start, recorded_after=utcnow() - TRIGGER_SETTLE
            )
            if recent is not None:  # not past an id below it that may still be committing
                to = max((i for i in seen if i < recent), default=start)
        later = repo.dated_after(s, name=name, after_id=start, up_to=to, moment=now)
        repo.mark_triggers(s, **keys, later=later, handled=[(i, at) for i, at in beyond if i > to])
        repo.move_cursor(s, **keys, to=to)
        if marks or later:
            repo.unmark_triggers(s, **keys, upto=to, done=due)
    return enrolled, holdout


def _entries(
    ctx: Context,
    s: Session,
    campaign: Campaign,
    subcampaign: str,
    events: Sequence[Any],
    *,
    now: datetime,
) -> list[Entry]:
    """The journeys these trigger events start: those that the trigger's `where`, its
    segment and staleness let in, judged in the order they happened, each at its own
    time (`engine.may_enter`) against the subscriber's journeys, the ones these events
    start included: a journey in flight keeps later events out; a holdout journey ends
    at once, so a later event may enter once re-entry allows."""
    if not events:
        return []
    sub = campaign.subcampaigns[subcampaign]
    assert sub.trigger is not None
    stale_before = now - sub.trigger.delay - campaign.settings.window
    wanted = sorted(
        (
            e
            for e in events
            if all(e.properties.get(k) == v for k, v in sub.trigger.where.items())
            and repo.utc(e.at) >= stale_before
        ),
        key=lambda e: (repo.utc(e.at), e.id),
    )
    ids = {e.subscriber_id for e in wanted}
    if sub.segment is not None and ids:
        member = segments.is_member_of(
            s, sorted(ids), [sub.segment], segments=campaign.segments, now=now
        )
        ids = {sid for sid in ids if sub.segment in member.get(sid, set())}
    if not ctx.simulated:
        ids &= set(repo.subscription_counts(s, ids))
    pasts = _pasts(s, campaign, ids) if ids else {}
    entries: list[Entry] = []
    for e in wanted:
        sid = e.subscriber_id
        at = repo.utc(e.at)
        past = pasts.get(sid)
        if sid not in ids or not engine.may_enter(campaign, past, at):
            continue
        assert e.id is not None
        context = {"event": e.name, "properties": e.properties, "at": at.isoformat()}
        last_send_at = past.last_send_at if past else None
        entries.append(Entry(sid, at, context, e.id, last_send_at))
        held_out = engine.in_holdout(campaign, sid)
        pasts[sid] = Past(
            in_flight=not held_out,
            ended_at=at if held_out else (past.ended_at if past else None),
            last_send_at=last_send_at,
        )
    return entries


# ------------------------------------------------------------------ broadcasts


def enrol_broadcast(
    ctx: Context, *, campaign: Campaign, version_id: int, now: datetime
) -> tuple[int, int]:
    """A broadcast's enrolment (`orchestrator.app.broadcasts`): nothing before its first
    moment; at the first tick on or after it, under the tick's claim, every member of its
    segment sub-campaigns (the segments as they are then, each member in the first
    sub-campaign that holds them) gets a journey starting at their own moment, except
    those whose moment is more than BROADCAST_LATE before the tick; then never again.
    Returns (enrolled, holdout).

    A tick that fails on the way drops its claim, and the next one begins again: those
    already in are not enrolled twice."""
    moment = campaign.settings.broadcast_at
    assert moment is not None
    if now < broadcasts.broadcast_window(moment)[0]:
        return 0, 0
    record = broadcasts.claim(ctx, campaign, moment, now=now)
    if record is None:
        return 0, 0
    assert record.value is not None  # a claim taken over keeps its own moment
    try:
        enrolled, holdout, late = _broadcast_journeys(
            ctx, campaign=campaign, version_id=version_id, moment=record.value, now=now
        )
    except Exception:
        broadcasts.release(ctx, campaign.campaign, record)
        raise
    record = broadcasts.finish(ctx, campaign.campaign, record, late=late)
    log.info("%s: broadcast %s", campaign.campaign, record.sentence())
    if late:
        log.warning(
            "%s: broadcast once %s: %d members not sent it, their moment more than %d h "
            "before this tick (%s UTC)",
            campaign.campaign,
            record.moment,
            late,
            broadcasts.BROADCAST_LATE // timedelta(hours=1),
            f"{now:%Y-%m-%d %H:%M}",
        )
    if ctx.audit is not None:
        ctx.audit(
            [
                {
                    "t": now.isoformat(),
                    "type": control.BROADCAST,
                    "campaign": campaign.campaign,
                    "moment": record.moment,
                    "enrolled": record.enrolled,
                    "holdout": record.holdout,
                    "late": late,
                }
            ]
        )
    return enrolled, holdout


def _broadcast_journeys(
    ctx: Context, *, campaign: Campaign, version_id: int, moment: datetime, now: datetime
) -> tuple[int, int, int]:
    """Store the broadcast's journeys; (enrolled, holdout, too late)."""
    names = [name for name, sub in campaign.subcampaigns.items() if sub.trigger is None]
    with ctx.session() as s:
        members = repo.broadcast_members(
            s, campaign=campaign, subcampaigns=names, now=now, subscribed_only=not ctx.simulated
        )
    enrolled = holdout = late = 0
    for name in names:
        timed: list[tuple[str, datetime]] = []
        for sid, tz_name in members[name]:
            at = broadcasts.broadcast_instant(moment, broadcasts.zone_of(tz_name, campaign))
            if now - at > broadcasts.BROADCAST_LATE:
                late += 1
            else:
                timed.append((sid, at))
        last_sends = _last_sends(ctx, campaign, [sid for sid, _ in timed])
        e, h = _insert_journeys(
            ctx,
            campaign=campaign,
            version_id=version_id,
            subcampaign=name,
            entries=[Entry(sid, at, last_send_at=last_sends.get(sid)) for sid, at in timed],
            now=now,
        )
        enrolled, holdout = enrolled + e, holdout + h
    return enrolled, holdout, late
