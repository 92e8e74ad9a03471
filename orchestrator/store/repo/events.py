"""Events: storing them (with wake-ups of their journeys) and reading them per subscriber."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    bindparam,
    insert,
    select,
    update,
)
from sqlmodel import Session

from orchestrator.language.records import EventRecord
from orchestrator.store.models import (
    Event,
    Journey,
    utcnow,
)
from orchestrator.store.repo.base import core, fetch, utc


def add_events(
    session: Session, records: Sequence[EventRecord], *, ids_wanted: bool = True
) -> list[int]:
    """Store events and wake the subscribers' journeys so conversions and exits are seen at once.

    One multi-row INSERT … RETURNING (ids in the order given) and one executemany
    UPDATE for the wake-ups, however many events there are. `ids_wanted=False` (the
    simulator) returns no ids: on SQLite, ids in the order given cost one INSERT per row.
    An event whose `client_id` is already stored for its subscriber (or repeated in
    `records`) is not stored again: its id is the stored one's."""
    return store_events(session, records, ids_wanted=ids_wanted)[0]


def store_events(
    session: Session, records: Sequence[EventRecord], *, ids_wanted: bool = True
) -> tuple[list[int], list[bool]]:
    """`add_events`, also saying of each record whether it repeated an event stored before
    (or earlier in `records`) and so was not stored."""
    if not records:
        return [], []
    keyed = [(r.subscriber_id, r.client_id) for r in records if r.client_id is not None]
    known: dict[tuple[str, str], int] = _client_ids(session, keyed) if keyed else {}
    fresh: list[EventRecord] = []
    slots: list[int | tuple[str, str]] = []  # index into fresh, or the key of an earlier event
    first: dict[tuple[str, str], int] = {}
    for r in records:
        key = (r.subscriber_id, r.client_id) if r.client_id is not None else None
        if key is not None and (key in known or key in first):
            slots.append(key)
            continue
        if key is not None:
            first[key] = len(fresh)
        slots.append(len(fresh))
        fresh.append(r)
    rows = _event_rows(fresh)
    table = Event.__table__  # type: ignore[attr-defined]
    ids: list[int] = []
    if rows and not ids_wanted and not keyed:
        core(session).execute(insert(table), rows)
    elif rows:
        for i in range(0, len(rows), 5000):
            result = core(session).execute(
                insert(table).returning(table.c.id, sort_by_parameter_order=True),
                rows[i : i + 5000],
            )
            ids.extend(int(x) for x in result.scalars())
    earliest: dict[str, datetime] = {}
    for r in fresh:
        earliest[r.subscriber_id] = min(r.at, earliest.get(r.subscriber_id, r.at))
    wake_many(session, earliest)
    repeated = [not isinstance(slot, int) for slot in slots]
    if not ids_wanted or (not ids and not known):
        return [], repeated
    out = [
        ids[slot] if isinstance(slot, int) else known.get(slot) or ids[first[slot]]
        for slot in slots
    ]
    return out, repeated


def _client_ids(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The stored events among these (subscriber, client id) pairs: pair -> event id."""
    table = Event.__table__  # type: ignore[attr-defined]
    out: dict[tuple[str, str], int] = {}
    wanted = set(keys)
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        rows = core(session).execute(
            select(table.c.subscriber_id, table.c.client_id, table.c.id).where(
                table.c.client_id.in_({c for _, c in chunk}),
                table.c.subscriber_id.in_({s for s, _ in chunk}),
            )
        )
        out.update({(sid, cid): eid for sid, cid, eid in rows if (sid, cid) in wanted})
    return out


def note_events(session: Session, records: Sequence[EventRecord]) -> None:
    """Store events nobody waits on (opt-ins, pauses): one executemany, no ids, no wake-ups."""
    if records:
        core(session).execute(insert(Event.__table__), _event_rows(records))  # type: ignore[attr-defined]


def _event_rows(records: Sequence[EventRecord]) -> list[dict[str, Any]]:
    recorded = utcnow()
    return [
        {
            "subscriber_id": r.subscriber_id,
            "name": r.name,
            "at": r.at,
            "properties": r.properties,
            "send_id": r.send_id,
            "client_id": r.client_id,
            "recorded_at": recorded,
        }
        for r in records
    ]


def wake(session: Session, *, subscriber_id: str, at: datetime) -> None:
    wake_many(session, {subscriber_id: at})


_WAKE = (
    update(Journey.__table__)  # type: ignore[attr-defined]
    .where(
        Journey.__table__.c.subscriber_id == bindparam("_sid"),  # type: ignore[attr-defined]
        Journey.__table__.c.claim_at > bindparam("_at"),  # type: ignore[attr-defined]
    )
    .values(claim_at=bindparam("_at"))
)


def wake_many(session: Session, moments: dict[str, datetime]) -> None:
    """Bring forward the next claim of these subscribers' journeys (one executemany)."""
    if moments:
        core(session).execute(_WAKE, [{"_sid": sid, "_at": at} for sid, at in moments.items()])


_EVENT: Any = Event.__table__  # type: ignore[attr-defined]
_EVENTS_FOR = (
    select(_EVENT.c.subscriber_id, _EVENT.c.name, _EVENT.c.at, _EVENT.c.send_id)
    .where(
        _EVENT.c.subscriber_id.in_(bindparam("ids", expanding=True)),
        _EVENT.c.at >= bindparam("since"),
    )
    .order_by(_EVENT.c.at, _EVENT.c.id)
)
_EVENTS_BETWEEN = _EVENTS_FOR.where(_EVENT.c.at <= bindparam("until"))
_NAMED_EVENTS = (
    select(_EVENT.c.subscriber_id, _EVENT.c.id, _EVENT.c.name, _EVENT.c.at)
    .where(
        _EVENT.c.subscriber_id.in_(bindparam("ids", expanding=True)),
        _EVENT.c.at >= bindparam("since"),
        _EVENT.c.name.in_(bindparam("names", expanding=True)),
    )
    .order_by(_EVENT.c.at, _EVENT.c.id)
)
_EVENT_TIMES = (
    select(_EVENT.c.id, _EVENT.c.at)
    .where(
        _EVENT.c.name.in_(bindparam("names", expanding=True)),
        _EVENT.c.id > bindparam("after_id"),
    )
    .order_by(_EVENT.c.id)
)
_EVENTS_BY_ID = (
    select(_EVENT).where(_EVENT.c.id.in_(bindparam("ids", expanding=True))).order_by(_EVENT.c.id)
)
_DATED_AFTER = select(_EVENT.c.id, _EVENT.c.at).where(
    _EVENT.c.name == bindparam("name"),
    _EVENT.c.id > bindparam("after_id"),
    _EVENT.c.id <= bindparam("up_to"),
    _EVENT.c.at > bindparam("moment"),
)


def events_for(
    session: Session, ids: Iterable[str], *, since: datetime, until: datetime | None = None
) -> dict[str, list[Row[Any]]]:
    """Events of these subscribers from `since` (to `until`, if given), oldest first (plain
    rows, without properties: the engine matches by name and send)."""
    out: dict[str, list[Row[Any]]] = {}
    wanted = list(set(ids))
    if until is None:
        rows = fetch(session, _EVENTS_FOR, chunk="ids", ids=wanted, since=since)
    else:
        rows = fetch(session, _EVENTS_BETWEEN, chunk="ids", ids=wanted, since=since, until=until)
    for row in rows:
        out.setdefault(row.subscriber_id, []).append(row)
    return out


def named_events(
    session: Session, ids: Iterable[str], *, names: Iterable[str], since: datetime
) -> list[Row[Any]]:
    """(subscriber_id, id, name, at) of these subscribers' events named one of `names`,
    dated at or after `since`, oldest first: what wakes their journeys."""
    values, wanted = sorted(set(ids)), sorted(set(names))
    return fetch(session, _NAMED_EVENTS, chunk="ids", ids=values, names=wanted, since=since)


def event_times(
    session: Session, names: Sequence[str], *, after_id: int
) -> list[tuple[int, datetime]]:
    """(id, at) of the events of these names stored after `after_id`, in id order."""
    rows = fetch(session, _EVENT_TIMES, names=list(names), after_id=after_id)
    return [(int(r.id), utc(r.at)) for r in rows]


def events_by_id(session: Session, ids: Sequence[int]) -> list[Row[Any]]:
    """These events (plain rows, as `trigger_events` gives them), in id order."""
    if not ids:
        return []
    return sorted(fetch(session, _EVENTS_BY_ID, chunk="ids", ids=sorted(ids)), key=lambda r: r.id)


def first_recorded_after(
    session: Session, *, name: str, after_id: int, recorded_after: datetime
) -> int | None:
    """The first event of this name above `after_id` stored after `recorded_after`."""
    table = Event.__table__  # type: ignore[attr-defined]
    return (
        core(session)
        .execute(
            select(table.c.id)
            .where(
                table.c.name == name, table.c.id > after_id, table.c.recorded_at > recorded_after
            )
            .order_by(table.c.id)
            .limit(1)
        )
        .scalar()
    )


def dated_after(
    session: Session, *, name: str, after_id: int, up_to: int, moment: datetime
) -> list[tuple[int, datetime]]:
    """(id, at) of the events of this name with ids in (after_id, up_to] dated after `moment`."""
    if up_to <= after_id:
        return []
    rows = fetch(session, _DATED_AFTER, name=name, after_id=after_id, up_to=up_to, moment=moment)
    return [(int(r.id), utc(r.at)) for r in rows]
