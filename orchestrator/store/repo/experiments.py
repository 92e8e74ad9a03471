"""An experiment's units: journeys' entries into the arms of split nodes (`split_entry`),
written as the tick routes them, and counted per split and arm with the conversions
inside each entry's horizon."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, insert, select
from sqlmodel import Session

from orchestrator.store.models import Event, SplitEntry

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


def split_counts_first(
    session: Session, *, campaign: str, split: str, goal: str, now: datetime, first: int
) -> dict[str, tuple[int, int]]:
    """arm -> (measured, converted) over each arm's `first` measured entries, earliest
    first: the fixed sample a planned test is judged on, which later entries do not
    change."""
    converted = exists().where(
        _EVENT.c.subscriber_id == _ENTRY.c.subscriber_id,
        _EVENT.c.name == goal,
        _EVENT.c.at >= _ENTRY.c.entered_at,
        _EVENT.c.at <= _ENTRY.c.horizon_end,
    )
    ranked = (
        select(
            _ENTRY.c.arm.label("arm"),
            case((converted, 1), else_=0).label("hit"),
            func.row_number()
            .over(partition_by=_ENTRY.c.arm, order_by=(_ENTRY.c.entered_at, _ENTRY.c.id))
            .label("rank"),
        )
        .where(
            _ENTRY.c.campaign == campaign,
            _ENTRY.c.split == split,
            _ENTRY.c.horizon_end <= now,
        )
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.arm, func.count(), func.sum(ranked.c.hit))
        .where(ranked.c.rank <= first)
        .group_by(ranked.c.arm)
    ).all()
    return {str(arm): (int(n), int(k or 0)) for arm, n, k in rows}


def split_inflow(session: Session, *, campaign: str, since: datetime) -> dict[str, int]:
    """Journeys each split node of the campaign has routed since `since`."""
    rows = session.execute(
        select(_ENTRY.c.split, func.count())
        .where(_ENTRY.c.campaign == campaign, _ENTRY.c.entered_at >= since)
        .group_by(_ENTRY.c.split)
    ).all()
    return {str(split): int(n) for split, n in rows}
