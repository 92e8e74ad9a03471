"""An experiment's units: journeys' entries into the arms of split nodes (`split_entry`),
written as the tick routes them, and counted per split and arm with the conversions
inside each entry's horizon."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, select
from sqlmodel import Session

from orchestrator.store.models import Event, SplitEntry
from orchestrator.store.repo.base import utc

_ENTRY: Any = SplitEntry.__table__  # type: ignore[attr-defined]
_EVENT: Any = Event.__table__  # type: ignore[attr-defined]


def add_split_entries(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(insert(_ENTRY), rows)


def split_counts(
    session: Session, *, campaign: str, goal: str, now: datetime
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(split, arm) -> (entries, entries whose horizon is over, of those the converted):
    an entry converts when its subscriber has a `goal` event from its entry to its
    horizon's end. Only entries whose horizon is over are measured, so a running test
    never counts a journey that may still convert as one that did not."""
    converted = exists().where(
        _EVENT.c.subscriber_id == _ENTRY.c.subscriber_id,
        _EVENT.c.name == goal,
        _EVENT.c.at >= _ENTRY.c.entered_at,
        _EVENT.c.at <= _ENTRY.c.horizon_end,
    )
    over = _ENTRY.c.horizon_end <= now
    rows = session.execute(
        select(
            _ENTRY.c.split,
            _ENTRY.c.arm,
            func.count(),
            func.sum(case((over, 1), else_=0)),
            func.sum(case((and_(over, converted), 1), else_=0)),
        )
        .where(_ENTRY.c.campaign == campaign)
        .group_by(_ENTRY.c.split, _ENTRY.c.arm)
    ).all()
    return {(str(s), str(a)): (int(n), int(m or 0), int(k or 0)) for s, a, n, m, k in rows}


def _ranked(campaign: str, split: str, goal: str, now: datetime) -> Any:
    """The split's measured entries with whether each converted and its rank within its
    arm, earliest first (ties by subscriber, so the order does not depend on row ids)."""
    converted = exists().where(
        _EVENT.c.subscriber_id == _ENTRY.c.subscriber_id,
        _EVENT.c.name == goal,
        _EVENT.c.at >= _ENTRY.c.entered_at,
        _EVENT.c.at <= _ENTRY.c.horizon_end,
    )
    order = (_ENTRY.c.entered_at, _ENTRY.c.subscriber_id, _ENTRY.c.id)
    return (
        select(
            _ENTRY.c.arm.label("arm"),
            _ENTRY.c.entered_at.label("entered_at"),
            _ENTRY.c.subscriber_id.label("subscriber_id"),
            case((converted, 1), else_=0).label("hit"),
            func.row_number().over(partition_by=_ENTRY.c.arm, order_by=order).label("rank"),
        )
        .where(
            _ENTRY.c.campaign == campaign,
            _ENTRY.c.split == split,
            _ENTRY.c.horizon_end <= now,
        )
        .subquery()
    )


def split_counts_first(
    session: Session, *, campaign: str, split: str, goal: str, now: datetime, first: int
) -> dict[str, tuple[int, int]]:
    """arm -> (measured, converted) over each arm's `first` measured entries, earliest
    first: the fixed sample a planned test is judged on, which later entries do not
    change."""
    ranked = _ranked(campaign, split, goal, now)
    rows = session.execute(
        select(ranked.c.arm, func.count(), func.sum(ranked.c.hit))
        .where(ranked.c.rank <= first)
        .group_by(ranked.c.arm)
    ).all()
    return {str(arm): (int(n), int(k or 0)) for arm, n, k in rows}


def split_first_entries(
    session: Session, *, campaign: str, split: str, goal: str, now: datetime, first: int
) -> dict[str, list[tuple[str, str, int]]]:
    """arm -> (entered at, subscriber, converted 0/1) of each arm's `first` measured
    entries, earliest first: what `split_counts_first` counts, for merging the samples
    of several databases (a simulation's workers)."""
    ranked = _ranked(campaign, split, goal, now)
    rows = session.execute(
        select(ranked.c.arm, ranked.c.entered_at, ranked.c.subscriber_id, ranked.c.hit)
        .where(ranked.c.rank <= first)
        .order_by(ranked.c.arm, ranked.c.rank)
    ).all()
    out: dict[str, list[tuple[str, str, int]]] = {}
    for arm, at, subscriber, hit in rows:
        moment = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        stamp = utc(moment).astimezone(UTC).replace(tzinfo=None).isoformat()  # sorts as text
        out.setdefault(str(arm), []).append((stamp, str(subscriber), int(hit)))
    return out


def split_inflow(session: Session, *, campaign: str, since: datetime) -> dict[str, int]:
    """Journeys each split node of the campaign has routed since `since`."""
    rows = session.execute(
        select(_ENTRY.c.split, func.count())
        .where(_ENTRY.c.campaign == campaign, _ENTRY.c.entered_at >= since)
        .group_by(_ENTRY.c.split)
    ).all()
    return {str(split): int(n) for split, n in rows}
