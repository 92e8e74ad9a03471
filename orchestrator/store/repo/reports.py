"""The dashboard's figures, counted in the database (GROUP BY queries): A/B arms, the
holdout comparison, sends by day, opt-ins and opt-outs, sends per subscriber, and
segments nobody was notified in. Callers only shape the rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, func, select
from sqlmodel import Session, col

from orchestrator.delivery import Outcome
from orchestrator.language.spec import Segment
from orchestrator.store import segments as segment_sql
from orchestrator.store.models import Event, Journey, Send, Subscriber
from orchestrator.store.repo.base import dialect
from orchestrator.store.repo.subscribers import IMPORTED, OPT_IN_NAMES, OPTED_IN, OPTED_OUT


def as_date(value: Any) -> date:
    """A day as both databases give it back (a date, or ISO text on SQLite)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def holdout_counts(
    session: Session, *, campaign: str, goal: str | None, span: timedelta
) -> dict[tuple[str, bool], tuple[int, int]]:
    """(sub-campaign, held out?) -> (journeys, journeys whose subscriber had a `goal` event
    within `span` of entering)."""
    if dialect(session) == "postgresql":
        within = col(Event.at) <= col(Journey.entered_at) + span
    else:  # SQLite stores times as text: compare as Julian days
        within = (
            func.julianday(col(Event.at)) - func.julianday(col(Journey.entered_at))
            <= span.total_seconds() / 86400
        )
    reached = exists().where(
        col(Event.subscriber_id) == col(Journey.subscriber_id),
        col(Event.name) == goal,
        col(Event.at) >= col(Journey.entered_at),
        within,
    )
    rows = session.execute(
        select(
            col(Journey.subcampaign),
            col(Journey.holdout),
            func.count(),
            func.sum(case((reached, 1), else_=0)),
        )
        .where(col(Journey.campaign) == campaign)
        .group_by(col(Journey.subcampaign), col(Journey.holdout))
    ).all()
    return {(str(sub), bool(h)): (int(n), int(c or 0)) for sub, h, n, c in rows}


def daily_sends(
    session: Session, *, campaign: str | None, since: datetime
) -> list[tuple[date, int, int]]:
    """(day, sends that left, conversions credited to them) by the day they were sent, from
    `since` on; one campaign's or all."""
    day = func.date(col(Send.claimed_at))
    conditions = [col(Send.claimed_at) >= since, col(Send.outcome) != Outcome.SKIPPED]
    if campaign is not None:
        conditions.append(col(Send.campaign) == campaign)
    rows = session.execute(
        select(day, func.count(), func.count(col(Send.converted_at)))
        .where(*conditions)
        .group_by(day)
        .order_by(day)
    ).all()
    return [(as_date(d), int(n), int(c)) for d, n, c in rows]


def subscription_days(
    session: Session, *, since: datetime
) -> list[tuple[str, date, str | None, int]]:
    """(event name, day, source, count) of opt-ins (`subscribed`; an import's `imported`
    counts as one) and opt-outs (`unsubscribed`) from `since` on; the source is the event's `source` property (None
    for an event without one)."""
    day = func.date(col(Event.at))
    source = col(Event.properties)["source"].as_string()
    rows = session.execute(
        select(col(Event.name), day, source, func.count())
        .where(col(Event.name).in_((*OPT_IN_NAMES, OPTED_OUT)), col(Event.at) >= since)
        .group_by(col(Event.name), day, source)
        .order_by(day)
    ).all()
    return [
        (
            OPTED_IN if name == IMPORTED else str(name),
            as_date(d),
            None if s is None else str(s),
            int(n),
        )
        for name, d, s, n in rows
    ]


def sends_per_subscriber(session: Session, *, since: datetime) -> list[tuple[int, int]]:
    """(sends, subscribers who got that many) for sends that left from `since` on."""
    per_subscriber = (
        select(col(Send.subscriber_id), func.count().label("n"))
        .where(col(Send.claimed_at) >= since, col(Send.outcome) != Outcome.SKIPPED)
        .group_by(col(Send.subscriber_id))
        .subquery()
    )
    rows = session.execute(
        select(per_subscriber.c.n, func.count()).group_by(per_subscriber.c.n)
    ).all()
    return [(int(n), int(subscribers)) for n, subscribers in rows]


def active_subscribers(session: Session) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Subscriber).where(col(Subscriber.status) == "active")
        ).scalar_one()
    )


def segment_reach(
    session: Session,
    name: str,
    *,
    segments: Mapping[str, Segment],
    since: datetime,
    now: datetime,
) -> tuple[int, int]:
    """(members of the segment at `now`, members sent a notification from `since` on)."""
    members = segment_sql.members_query(
        name, segments=segments, dialect=dialect(session)
    ).subquery()
    notified = exists().where(
        col(Send.subscriber_id) == members.c.id,
        col(Send.claimed_at) >= since,
        col(Send.outcome) != Outcome.SKIPPED,
    )
    with segment_sql.as_of(now):
        total, reached = session.execute(
            select(func.count(), func.sum(case((notified, 1), else_=0))).select_from(members)
        ).one()
    return int(total or 0), int(reached or 0)
