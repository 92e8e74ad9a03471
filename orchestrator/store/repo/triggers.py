"""Trigger enrolment: the cursor over trigger events, marks of events dated later, enrolment marks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    bindparam,
    case,
    delete,
    select,
    update,
)
from sqlmodel import Session

from orchestrator.store.models import (
    Cursor,
    EnrolMark,
    Event,
    TriggerMark,
)
from orchestrator.store.repo.base import core, dialect_insert, fetch, insert_ignoring, utc


def save_enrol_mark(session: Session, mark: EnrolMark) -> None:
    """Upsert: two ticks finishing enrolment together must not collide on the key."""
    values = {
        "campaign": mark.campaign,
        "subcampaign": mark.subcampaign,
        "full_at": mark.full_at,
        "subscribers_at": mark.subscribers_at,
        "event_id": mark.event_id,
    }
    stmt = dialect_insert(session, EnrolMark).values(values)
    keys = ("full_at", "subscribers_at", "event_id")
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["campaign", "subcampaign"], set_={k: stmt.excluded[k] for k in keys}
        )
    )


_CURSOR_TABLE: Any = Cursor.__table__  # type: ignore[attr-defined]
_EVENT: Any = Event.__table__  # type: ignore[attr-defined]
_MARK: Any = TriggerMark.__table__  # type: ignore[attr-defined]
_CURSOR = select(_CURSOR_TABLE.c.last_event_id).where(
    _CURSOR_TABLE.c.campaign == bindparam("campaign"),
    _CURSOR_TABLE.c.subcampaign == bindparam("subcampaign"),
)
_TRIGGER_EVENTS = (
    select(_EVENT)
    .where(
        _EVENT.c.name == bindparam("name"),
        _EVENT.c.id > bindparam("after_id"),
        _EVENT.c.at <= bindparam("until"),
    )
    .order_by(_EVENT.c.id)
    .limit(bindparam("limit"))
)
_TRIGGER_MARKS = select(_MARK.c.event_id, _MARK.c.at, _MARK.c.handled).where(
    _MARK.c.campaign == bindparam("campaign"), _MARK.c.subcampaign == bindparam("subcampaign")
)


def cursor(session: Session, *, campaign: str, subcampaign: str) -> int:
    """The last event id a sub-campaign's trigger enrolment has read, the cursor created at 0
    if missing (safe under concurrent ticks). Core statements: this runs every tick."""
    rows = fetch(session, _CURSOR, campaign=campaign, subcampaign=subcampaign)
    found = rows[0].last_event_id if rows else None
    if found is None:
        stmt = dialect_insert(session, Cursor).values(
            campaign=campaign, subcampaign=subcampaign, last_event_id=0
        )
        core(session).execute(
            stmt.on_conflict_do_nothing(index_elements=["campaign", "subcampaign"])
        )
        found = fetch(session, _CURSOR, campaign=campaign, subcampaign=subcampaign)[0][0]
    return int(found)


def move_cursor(session: Session, *, campaign: str, subcampaign: str, to: int) -> None:
    """Move the cursor forward to `to` (never back: a concurrent tick may be further on)."""
    table = Cursor.__table__  # type: ignore[attr-defined]
    core(session).execute(
        update(table)
        .where(table.c.campaign == campaign, table.c.subcampaign == subcampaign)
        .values(last_event_id=case((table.c.last_event_id < to, to), else_=table.c.last_event_id))
    )


def trigger_events(
    session: Session, *, name: str, after_id: int, until: datetime, limit: int
) -> list[Row[Any]]:
    """Events of this name after the cursor and not after `until`, in id order (plain rows).

    Events dated later are left for a later tick in the query itself: read and thrown
    away in Python, a simulation's future trigger events cost every tick thousands
    of rows (and a cursor stuck behind `limit` of them would never move)."""
    return fetch(session, _TRIGGER_EVENTS, name=name, after_id=after_id, until=until, limit=limit)


def trigger_marks(
    session: Session, *, campaign: str, subcampaign: str
) -> list[tuple[int, datetime, bool]]:
    """(event id, at, handled) of the sub-campaign's marked trigger events (see TriggerMark)."""
    rows = fetch(session, _TRIGGER_MARKS, campaign=campaign, subcampaign=subcampaign)
    return [(int(r.event_id), utc(r.at), bool(r.handled)) for r in rows]


def mark_triggers(
    session: Session,
    *,
    campaign: str,
    subcampaign: str,
    later: Sequence[tuple[int, datetime]] = (),
    handled: Sequence[tuple[int, datetime]] = (),
) -> None:
    """Mark events dated later (enrolled once due) and events handled beyond the cursor;
    a mark already there (a concurrent tick's) is kept."""
    rows = [
        {"campaign": campaign, "subcampaign": subcampaign, "event_id": i, "at": at, "handled": h}
        for marks, h in ((later, False), (handled, True))
        for i, at in marks
    ]
    if rows:
        core(session).execute(insert_ignoring(session, TriggerMark), rows)


def unmark_triggers(
    session: Session, *, campaign: str, subcampaign: str, upto: int, done: Sequence[int] = ()
) -> None:
    """Drop the marks of handled events the cursor has passed, and of the `done` events."""
    table = TriggerMark.__table__  # type: ignore[attr-defined]
    mine = (table.c.campaign == campaign, table.c.subcampaign == subcampaign)
    core(session).execute(
        delete(table).where(*mine, table.c.handled.is_(True), table.c.event_id <= upto)
    )
    for i in range(0, len(done), 5000):
        core(session).execute(
            delete(table).where(*mine, table.c.event_id.in_(list(done[i : i + 5000])))
        )
