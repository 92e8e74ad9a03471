"""Journeys and their sends in flight: claiming what is due, retries, what blocks an entry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Row,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlmodel import Session, col

from orchestrator.delivery import Outcome
from orchestrator.store.models import (
    Journey,
    Send,
)
from orchestrator.store.repo.base import aware, core, dialect, fetch

_JOURNEY: Any = Journey.__table__  # type: ignore[attr-defined]
_SEND: Any = Send.__table__  # type: ignore[attr-defined]

_RECENT_SENDS = select(_SEND.c.subscriber_id, _SEND.c.claimed_at).where(
    _SEND.c.subscriber_id.in_(bindparam("ids", expanding=True)),
    _SEND.c.claimed_at > bindparam("since"),
    _SEND.c.outcome != Outcome.SKIPPED,
)


def recent_sends(
    session: Session, ids: Iterable[str], *, since: datetime
) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    rows = fetch(session, _RECENT_SENDS, chunk="ids", ids=list(set(ids)), since=since)
    for sid, at in rows:
        moment = aware(at)
        assert moment is not None
        out.setdefault(sid, []).append(moment)
    return out


# On PostgreSQL due rows are locked with SKIP LOCKED, so two ticks never take the same
# one; SQLite has no row locks (its compiler leaves the clause out): the caller holds
# the write lock (BEGIN IMMEDIATE).
_CLAIM_DUE = (
    select(_JOURNEY)
    .where(_JOURNEY.c.campaign == bindparam("campaign"), _JOURNEY.c.claim_at <= bindparam("now"))
    .order_by(_JOURNEY.c.claim_at, _JOURNEY.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_NEXT_CLAIM = (
    select(_JOURNEY.c.claim_at)
    .where(_JOURNEY.c.campaign == bindparam("campaign"), _JOURNEY.c.claim_at.is_not(None))
    .order_by(_JOURNEY.c.claim_at)
    .limit(1)
)
_CLAIM_RETRIES = (
    select(_SEND)
    .where(
        _SEND.c.campaign == bindparam("campaign"),
        _SEND.c.retry_at <= bindparam("now"),
        _SEND.c.outcome.in_((Outcome.CLAIMED, Outcome.RETRY)),
    )
    .order_by(_SEND.c.retry_at, _SEND.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)


def claim_due(session: Session, *, campaign: str, now: datetime, limit: int) -> list[Row[Any]]:
    """Due journeys of a campaign, oldest first: one range scan of ix_journey_claim.

    Locked with SKIP LOCKED where the database has row locks (see `_CLAIM_DUE`)."""
    return fetch(session, _CLAIM_DUE, campaign=campaign, now=now, limit=limit)


def next_claim(session: Session, *, campaign: str) -> datetime | None:
    """When the campaign's next journey is due (None: none is waiting); one index probe."""
    rows = fetch(session, _NEXT_CLAIM, campaign=campaign)
    return aware(rows[0].claim_at) if rows else None


def work_due(session: Session, *, campaign: str, now: datetime) -> tuple[bool, bool]:
    """(a journey is due, a send is due again): two index probes, nothing locked or read."""
    journeys = Journey.__table__  # type: ignore[attr-defined]
    sends = Send.__table__  # type: ignore[attr-defined]
    journey = (
        core(session)
        .execute(
            select(journeys.c.id)
            .where(journeys.c.campaign == campaign, journeys.c.claim_at <= now)
            .limit(1)
        )
        .first()
    )
    again = (
        core(session)
        .execute(
            select(sends.c.id)
            .where(
                sends.c.campaign == campaign,
                sends.c.retry_at <= now,
                sends.c.outcome.in_((Outcome.CLAIMED, Outcome.RETRY)),
            )
            .limit(1)
        )
        .first()
    )
    return journey is not None, again is not None


def claim_retries(session: Session, *, campaign: str, now: datetime, limit: int) -> list[Row[Any]]:
    """Sends due to go out again (a retry, or a claim whose process never wrote an outcome)."""
    return fetch(session, _CLAIM_RETRIES, campaign=campaign, now=now, limit=limit)


def end_unreadable_journeys(session: Session, *, campaign: str, now: datetime) -> list[Row[Any]]:
    """End (`error`) the due journeys of a campaign whose stored trigger is not JSON, so that
    the rest can be claimed; their id, campaign, subcampaign, subscriber_id and node. The
    trigger is cleared, so that the row can be read again (the tick logs what it was not).
    Only SQLite can hold such a row (PostgreSQL's jsonb refuses it): elsewhere, none."""
    if dialect(session) != "sqlite":
        return []
    table = Journey.__table__  # type: ignore[attr-defined]
    stmt = (
        update(table)
        .where(
            table.c.campaign == campaign,
            table.c.claim_at <= now,
            table.c.trigger.is_not(None),
            func.json_valid(table.c.trigger) == 0,
        )
        .values(
            phase="ended",
            exit_reason="error",
            ended_at=now,
            due_at=None,
            claim_at=None,
            trigger=None,
        )
        .returning(
            table.c.id, table.c.campaign, table.c.subcampaign, table.c.subscriber_id, table.c.node
        )
    )
    return list(core(session).execute(stmt).all())


def blocking_journey(
    *, campaign: str, now: datetime, reentry_seconds: float | None, subcampaign: str | None = None
) -> Any:
    """A condition on Journey: this journey keeps its subscriber from enrolling again."""
    conditions = [col(Journey.campaign) == campaign]
    if subcampaign is not None:
        conditions.append(col(Journey.subcampaign) == subcampaign)
    if reentry_seconds is None:
        keep: Any = True
    else:
        keep = or_(
            col(Journey.ended_at).is_(None),
            col(Journey.ended_at) > now - timedelta(seconds=reentry_seconds),
        )
    return and_(*conditions, keep)


_JOURNEY_PASTS = (
    select(
        _JOURNEY.c.subscriber_id,
        func.max(case((_JOURNEY.c.ended_at.is_(None), 1), else_=0)).label("in_flight"),
        func.max(_JOURNEY.c.ended_at).label("ended_at"),
        func.max(_JOURNEY.c.last_send_at).label("last_send_at"),
    )
    .where(
        _JOURNEY.c.campaign == bindparam("campaign"),
        _JOURNEY.c.subscriber_id.in_(bindparam("ids", expanding=True)),
    )
    .group_by(_JOURNEY.c.subscriber_id)
)


def journey_pasts(session: Session, *, campaign: str, ids: Iterable[str]) -> list[Row[Any]]:
    """For each of these subscribers with a journey in `campaign`: (subscriber_id,
    in_flight, ended_at, last_send_at) — whether a journey of theirs has not ended, when
    the latest ended, and the campaign's latest send to them."""
    return fetch(session, _JOURNEY_PASTS, chunk="ids", ids=sorted(set(ids)), campaign=campaign)


def journeys_awaiting(session: Session, send_ids: Iterable[int]) -> list[Row[Any]]:
    """Journeys still waiting (phase `await`) on one of these sends, whole rows."""
    table = Journey.__table__  # type: ignore[attr-defined]
    query = select(table).where(table.c.last_send_id.in_(list(send_ids)), table.c.phase == "await")
    return list(core(session).execute(query).all())


def journeys_by_id(session: Session, ids: Iterable[int]) -> dict[int, Row[Any]]:
    """Whole journey rows by id."""
    table = Journey.__table__  # type: ignore[attr-defined]
    query = select(table).where(table.c.id.in_(list(ids)))
    return {j.id: j for j in core(session).execute(query).all()}


def unfinished_journeys(session: Session, campaign: str) -> int:
    """Journeys of the campaign that have not ended."""
    query = (
        select(func.count())
        .select_from(Journey)
        .where(col(Journey.campaign) == campaign, col(Journey.phase) != "ended")
    )
    return int(session.execute(query).scalar() or 0)


def holdout_entries(
    session: Session, *, campaign: str, after: datetime, until: datetime
) -> list[str]:
    """Subscribers whose held-out journeys of the campaign began in (after, until]."""
    query = select(col(Journey.subscriber_id)).where(
        col(Journey.campaign) == campaign,
        col(Journey.holdout).is_(True),
        col(Journey.entered_at) > after,
        col(Journey.entered_at) <= until,
    )
    return list(session.execute(query).scalars())


def entered_since(session: Session, *, campaign: str, since: datetime) -> tuple[int, int]:
    """(journeys, of them held out) of the campaign that entered at or after `since`."""
    query = select(
        func.count(), func.coalesce(func.sum(case((col(Journey.holdout), 1), else_=0)), 0)
    ).where(col(Journey.campaign) == campaign, col(Journey.entered_at) >= since)
    journeys, holdout = session.execute(query).one()
    return int(journeys), int(holdout)
