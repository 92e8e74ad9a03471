"""Who may enter a segment sub-campaign now: the eligible-members query of enrolment.

One query for a run of consecutive segment sub-campaigns: the journey check (an index
probe that rules out most subscribers before any rule is looked at), then each
sub-campaign's segment as a 0/1 flag, so each subscriber goes to the first sub-campaign
(in priority order) whose segment holds them. Incremental per sub-campaign (`EnrolMark`):
only subscribers changed or with new events since its last pass are looked at, except
for a full pass on the first tick, after FULL_PASS_EVERY when the rule changes with time
alone, and when the clock goes backwards (`--now` back-fills).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlmodel import Session, col

from orchestrator.language.spec import Campaign
from orchestrator.store import segments
from orchestrator.store.models import EnrolMark, Event, Journey, PushSubscription, Subscriber
from orchestrator.store.repo.base import aware, core, dialect
from orchestrator.store.repo.journeys import blocking_journey

FULL_PASS_EVERY = timedelta(hours=1)  # for segments whose rules change with time alone


def _blocked(campaign: Campaign, now: datetime) -> Any:
    reentry = campaign.settings.reentry
    return exists(
        select(col(Journey.id)).where(
            col(Journey.subscriber_id) == Subscriber.id,
            blocking_journey(
                campaign=campaign.campaign,
                now=now,
                reentry_seconds=reentry.total_seconds() if reentry else None,
            ),
        )
    )


def eligible_members(
    s: Session,
    *,
    campaign: Campaign,
    subcampaigns: Sequence[str],
    now: datetime,
    subscribed_only: bool,
) -> tuple[dict[str, list[str]], list[EnrolMark]]:
    """For each of these segment sub-campaigns (in priority order), the members of its entry
    segment who may enrol and are not taken by an earlier one; and the marks to store once
    their journeys are in. `subscribed_only` keeps subscribers with a push subscription."""
    newest_sub = s.execute(select(func.max(col(Subscriber.updated_at)))).scalar()
    newest_event = int(s.execute(select(func.max(col(Event.id)))).scalar() or 0)
    name_of_dialect = dialect(s)
    flags: list[Any] = []
    marks: list[EnrolMark] = []
    for name in subcampaigns:
        segment = campaign.subcampaigns[name].segment
        assert segment is not None
        old = s.get(EnrolMark, (campaign.campaign, name))
        last_full = aware(old.full_at) if old else None
        full = (
            old is None
            or last_full is None
            or now < last_full
            or (
                segments.changes_with_time(segment, segments=campaign.segments)
                and now - last_full >= FULL_PASS_EVERY
            )
        )
        member = segments.membership(segment, segments=campaign.segments, dialect=name_of_dialect)
        if not full:
            assert old is not None
            changed: list[Any] = [
                col(Subscriber.id).in_(
                    select(col(Event.subscriber_id)).where(col(Event.id) > old.event_id)
                )
            ]
            if old.subscribers_at is not None:
                changed.append(col(Subscriber.updated_at) >= old.subscribers_at)
            member = and_(or_(*changed), member)
        flags.append(member)
        marks.append(
            EnrolMark(
                campaign=campaign.campaign,
                subcampaign=name,
                full_at=now if full else last_full,
                subscribers_at=newest_sub,
                event_id=newest_event,
            )
        )
    query = select(col(Subscriber.id), *(case((flag, 1), else_=0) for flag in flags)).where(
        ~_blocked(campaign, now), or_(*flags)
    )
    if subscribed_only:
        query = query.where(
            exists(
                select(col(PushSubscription.id)).where(
                    col(PushSubscription.subscriber_id) == Subscriber.id
                )
            )
        )
    members: dict[str, list[str]] = {name: [] for name in subcampaigns}
    with segments.as_of(now):
        for sid, *matched in core(s).execute(query):
            first = next(i for i, flag in enumerate(matched) if flag)
            members[subcampaigns[first]].append(sid)
    return members, marks


def broadcast_members(
    s: Session,
    *,
    campaign: Campaign,
    subcampaigns: Sequence[str],
    now: datetime,
    subscribed_only: bool,
) -> dict[str, list[tuple[str, str]]]:
    """A broadcast's audience: for each of these segment sub-campaigns (in priority order),
    (id, timezone) of the members of its segment as it is at `now` who may enrol and are
    not taken by an earlier one. One full pass, no marks: a broadcast enrols once."""
    name_of_dialect = dialect(s)
    flags: list[Any] = []
    for name in subcampaigns:
        segment = campaign.subcampaigns[name].segment
        assert segment is not None
        flags.append(
            segments.membership(segment, segments=campaign.segments, dialect=name_of_dialect)
        )
    members: dict[str, list[tuple[str, str]]] = {name: [] for name in subcampaigns}
    if not flags:
        return members
    query = select(
        col(Subscriber.id), col(Subscriber.timezone), *(case((flag, 1), else_=0) for flag in flags)
    ).where(~_blocked(campaign, now), or_(*flags))
    if subscribed_only:
        query = query.where(
            exists(
                select(col(PushSubscription.id)).where(
                    col(PushSubscription.subscriber_id) == Subscriber.id
                )
            )
        )
    with segments.as_of(now):
        for sid, tz_name, *matched in core(s).execute(query.order_by(col(Subscriber.id))):
            first = next(i for i, flag in enumerate(matched) if flag)
            members[subcampaigns[first]].append((sid, tz_name))
    return members
