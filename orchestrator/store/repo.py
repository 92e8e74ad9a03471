"""Queries: plain functions with keyword arguments over a Session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from orchestrator.delivery import Outcome
from orchestrator.language.records import EventRecord, SubscriberRecord
from orchestrator.store import plain
from orchestrator.store.models import (
    CampaignVersion,
    Cursor,
    EnrolMark,
    Event,
    Journey,
    NodeStat,
    PushSubscription,
    Send,
    Setting,
    Subscriber,
    TriggerMark,
    utcnow,
)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def core(session: Session) -> Connection:
    """The session's connection, in its transaction: hot statements run at the Core level,
    without the ORM's per-statement and per-row machinery (measured: docs/benchmarks.md)."""
    return session.connection()


def _insert(session: Session, table: Any) -> Any:
    return pg_insert(table) if dialect(session) == "postgresql" else sqlite_insert(table)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they are UTC."""
    return None if moment is None else utc(moment)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# ------------------------------------------------------------------ subscribers


def existing_subscribers(
    session: Session, ids: Iterable[str]
) -> dict[str, tuple[str, dict[str, Any], list[str]]]:
    """(timezone, attributes, tags) of the stored subscribers among `ids`."""
    return {
        row[0]: (row[1], row[2], row[3])
        for row in session.execute(
            select(
                col(Subscriber.id),
                col(Subscriber.timezone),
                col(Subscriber.attributes),
                col(Subscriber.tags),
            ).where(col(Subscriber.id).in_(list(set(ids))))
        )
    }


def known_subscriptions(
    session: Session, endpoints: Iterable[str]
) -> dict[str, tuple[int, str, str, str]]:
    """endpoint -> (row id, subscriber id, p256dh, auth) of the stored ones among `endpoints`."""
    return {
        row[1]: (row[0], row[2], row[3], row[4])
        for row in session.execute(
            select(
                col(PushSubscription.id),
                col(PushSubscription.endpoint),
                col(PushSubscription.subscriber_id),
                col(PushSubscription.p256dh),
                col(PushSubscription.auth),
            ).where(col(PushSubscription.endpoint).in_(list(set(endpoints))))
        )
    }


def upsert_subscribers(
    session: Session,
    records: Sequence[SubscriberRecord],
    *,
    existing: dict[str, tuple[str, dict[str, Any], list[str]]] | None = None,
    known: dict[str, tuple[int, str, str, str]] | None = None,
) -> tuple[int, int]:
    """Add or update subscribers and their subscriptions. Returns (added, changed); same data = no write.

    Bulk statements (one INSERT and one UPDATE per batch), so a million-line import stays fast.
    A caller that already read `existing_subscribers` / `known_subscriptions` passes them in."""
    if not records:
        return 0, 0
    if existing is None:
        existing = existing_subscribers(session, (r.id for r in records))
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for r in records:
        values = {"timezone": r.timezone, "attributes": r.attributes, "tags": list(r.tags)}
        old = existing.get(r.id)
        if old is None:
            inserts.append(
                {"id": r.id, **values, "status": "active", "created_at": now, "updated_at": now}
            )
        elif old != (r.timezone, r.attributes, list(r.tags)):
            updates.append({"id": r.id, **values, "updated_at": now})
    if inserts:  # Core executemany: the ORM's bulk insert costs more per row
        session.execute(insert(Subscriber.__table__), inserts)  # type: ignore[attr-defined]
    if updates:
        session.execute(update(Subscriber), updates)
    _upsert_subscriptions(
        session, records, now=now, known=known, inserted=[row["id"] for row in inserts]
    )
    return len(inserts), len(updates)


def _upsert_subscriptions(
    session: Session,
    records: Sequence[SubscriberRecord],
    *,
    now: datetime,
    known: dict[str, tuple[int, str, str, str]] | None,
    inserted: Iterable[str] = (),
) -> None:
    pairs = {s.endpoint: (r.id, s) for r in records for s in r.subscriptions}  # the last line wins
    if not pairs:
        return
    if known is None:
        known = known_subscriptions(session, pairs)
    inserts, updates = [], []
    for endpoint, (sid, s) in pairs.items():
        old = known.get(endpoint)
        if old is None:
            inserts.append(
                {
                    "subscriber_id": sid,
                    "endpoint": endpoint,
                    "p256dh": s.p256dh,
                    "auth": s.auth,
                    "created_at": now,
                }
            )
        elif old[1:] != (sid, s.p256dh, s.auth):
            updates.append({"id": old[0], "subscriber_id": sid, "p256dh": s.p256dh, "auth": s.auth})
    if inserts:
        session.execute(insert(PushSubscription.__table__), inserts)  # type: ignore[attr-defined]
    if updates:
        session.execute(update(PushSubscription), updates)
    # (subscribers inserted by this same call already carry updated_at = now)
    touched = {row["subscriber_id"] for row in [*inserts, *updates]} - set(inserted)
    if touched:  # a new device can make a subscriber eligible: enrolment looks at updated_at
        session.execute(
            update(Subscriber).where(col(Subscriber.id).in_(sorted(touched))).values(updated_at=now)
        )


def subscribers(session: Session, ids: Iterable[str]) -> dict[str, Row[Any]]:
    """Subscriber rows by id (plain rows: attribute access, no ORM bookkeeping): what the
    engine reads (id, timezone, status, paused_until); no JSON is decoded."""
    return _by_id(session, ("id", "timezone", "status", "paused_until"), ids)


def profiles(session: Session, ids: Iterable[str]) -> dict[str, Row[Any]]:
    """(id, attributes, tags) by id: what templates read, fetched only for those sent to."""
    return _by_id(session, ("id", "attributes", "tags"), ids)


def _by_id(session: Session, columns: Sequence[str], ids: Iterable[str]) -> dict[str, Row[Any]]:
    table = Subscriber.__table__  # type: ignore[attr-defined]
    id_list = list(set(ids))
    if dialect(session) == "sqlite":
        rows: Iterable[Row[Any]] = plain.select_in(core(session), table, columns, "id", id_list)
    else:
        query = select(*(table.c[name] for name in columns)).where(table.c.id.in_(id_list))
        rows = core(session).execute(query)
    return {row.id: row for row in rows}


def known_subscribers(session: Session, ids: Iterable[str]) -> set[str]:
    """Which of these ids are stored subscribers (ids only: no attributes decoded)."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    return set(
        core(session).execute(select(table.c.id).where(table.c.id.in_(list(set(ids))))).scalars()
    )


def subscriber_status(session: Session, ids: Iterable[str]) -> dict[str, str]:
    """id -> status of the stored subscribers among these ids."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    return {
        sid: status
        for sid, status in core(session).execute(
            select(table.c.id, table.c.status).where(table.c.id.in_(list(set(ids))))
        )
    }


def subscription_counts(session: Session, ids: Iterable[str]) -> Counter[str]:
    rows = (
        core(session)
        .execute(
            select(col(PushSubscription.subscriber_id), func.count())
            .where(col(PushSubscription.subscriber_id).in_(list(set(ids))))
            .group_by(PushSubscription.subscriber_id)
        )
        .all()
    )
    return Counter({sid: n for sid, n in rows})


def subscriptions_of(session: Session, ids: Iterable[str]) -> dict[str, list[Row[Any]]]:
    table = PushSubscription.__table__  # type: ignore[attr-defined]
    out: dict[str, list[Row[Any]]] = {}
    wanted = list(set(ids))
    rows: Iterable[Row[Any]]
    if dialect(session) == "sqlite":
        rows = plain.select_in(core(session), table, None, "subscriber_id", wanted)
    else:
        rows = core(session).execute(select(table).where(table.c.subscriber_id.in_(wanted)))
    for row in rows:
        out.setdefault(row.subscriber_id, []).append(row)
    return out


# ------------------------------------------------------------------ events


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


def events_for(
    session: Session, ids: Iterable[str], *, since: datetime, until: datetime | None = None
) -> dict[str, list[Row[Any]]]:
    """Events of these subscribers from `since` (to `until`, if given), oldest first (plain
    rows, without properties: the engine matches by name and send)."""
    table = Event.__table__  # type: ignore[attr-defined]
    out: dict[str, list[Row[Any]]] = {}
    columns = ("subscriber_id", "name", "at", "send_id")
    rows: Iterable[Row[Any]]
    if dialect(session) == "sqlite":
        rows = plain.select_in(
            core(session),
            table,
            columns,
            "subscriber_id",
            list(set(ids)),
            also="at >= ?" if until is None else "at >= ? AND at <= ?",
            params=(plain.bind_time(since),)
            if until is None
            else (plain.bind_time(since), plain.bind_time(until)),
            order="at, id",
        )
    else:
        rows = core(session).execute(
            select(*(table.c[name] for name in columns))
            .where(
                table.c.subscriber_id.in_(list(set(ids))),
                table.c.at >= since,
                *([] if until is None else [table.c.at <= until]),
            )
            .order_by(table.c.at, table.c.id)
        )
    for row in rows:
        out.setdefault(row.subscriber_id, []).append(row)
    return out


def named_events(
    session: Session, ids: Iterable[str], *, names: Iterable[str], since: datetime
) -> list[Row[Any]]:
    """(subscriber_id, id, name, at) of these subscribers' events named one of `names`,
    dated at or after `since`, oldest first: what wakes their journeys."""
    table = Event.__table__  # type: ignore[attr-defined]
    values, wanted = sorted(set(ids)), sorted(set(names))
    out: list[Row[Any]] = []
    for i in range(0, len(values), _IN_CHUNK):
        out.extend(
            core(session).execute(
                select(table.c.subscriber_id, table.c.id, table.c.name, table.c.at)
                .where(
                    table.c.subscriber_id.in_(values[i : i + _IN_CHUNK]),
                    table.c.at >= since,
                    table.c.name.in_(wanted),
                )
                .order_by(table.c.at, table.c.id)
            )
        )
    return out


_IN_CHUNK = 10_000  # ids per IN list: well under SQLite's bound-value limit


def recent_sends(
    session: Session, ids: Iterable[str], *, since: datetime
) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    rows: Iterable[Any]
    if dialect(session) == "sqlite":
        rows = plain.select_in(
            core(session),
            Send.__table__,  # type: ignore[attr-defined]
            ("subscriber_id", "claimed_at"),
            "subscriber_id",
            list(set(ids)),
            also="claimed_at > ? AND outcome != 'skipped'",
            params=(plain.bind_time(since),),
        )
    else:
        rows = core(session).execute(
            select(col(Send.subscriber_id), col(Send.claimed_at)).where(
                col(Send.subscriber_id).in_(list(set(ids))),
                col(Send.claimed_at) > since,
                col(Send.outcome) != Outcome.SKIPPED,
            )
        )
    for sid, at in rows:
        moment = aware(at)
        assert moment is not None
        out.setdefault(sid, []).append(moment)
    return out


# ------------------------------------------------------------------ versions


def ensure_version(
    session: Session, *, campaign: str, content_hash: str, source: dict[str, Any]
) -> int:
    row = session.execute(
        select(CampaignVersion).where(
            col(CampaignVersion.campaign) == campaign,
            col(CampaignVersion.content_hash) == content_hash,
        )
    ).scalar_one_or_none()
    if row is None:
        stmt = _insert(session, CampaignVersion).values(
            campaign=campaign, content_hash=content_hash, source=source, created_at=utcnow()
        )
        session.execute(stmt.on_conflict_do_nothing(index_elements=["campaign", "content_hash"]))
        session.flush()
        row = session.execute(
            select(CampaignVersion).where(
                col(CampaignVersion.campaign) == campaign,
                col(CampaignVersion.content_hash) == content_hash,
            )
        ).scalar_one()
    assert row.id is not None
    return int(row.id)


def version(session: Session, version_id: int) -> CampaignVersion:
    row = session.get(CampaignVersion, version_id)
    if row is None:
        raise KeyError(version_id)
    return row


def latest_version(session: Session, campaign: str) -> CampaignVersion | None:
    return session.execute(
        select(CampaignVersion)
        .where(col(CampaignVersion.campaign) == campaign)
        .order_by(col(CampaignVersion.id).desc())
        .limit(1)
    ).scalar_one_or_none()


# ------------------------------------------------------------------ journeys


def update_by_id(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE … WHERE id = :id for many rows, as plain executemany (no ORM bookkeeping)."""
    table = model.__table__
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:  # rows built alike list their keys alike: no sorting needed
        groups.setdefault(tuple(k for k in row if k != "id"), []).append(row)
    sqlite = dialect(session) == "sqlite"
    for keys, group in groups.items():
        binders = plain.binders(table, (*keys, "id")) if sqlite else None
        if binders is not None:
            # the driver's executemany with values as SQLAlchemy would bind them: half the
            # CPU per row of a compiled statement (docs/benchmarks.md)
            sql = f"UPDATE {table.name} SET {', '.join(f'{k} = ?' for k in keys)} WHERE id = ?"
            plain.executemany(core(session), sql, plain.bind_rows(binders, (*keys, "id"), group))
            continue
        stmt = (
            table.update()
            .where(table.c.id == bindparam("_id"))
            .values({k: bindparam(k) for k in keys})
        )
        core(session).execute(stmt, [{"_id": r["id"], **{k: r[k] for k in keys}} for r in group])


def insert_returning(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], returning: Sequence[str]
) -> list[tuple[Any, ...]]:
    """INSERT many rows (same keys) and return `returning` of each, in no particular order.

    On SQLite a multi-row VALUES … RETURNING through the driver, with values bound as
    SQLAlchemy would bind them (docs/benchmarks.md); elsewhere SQLAlchemy's own."""
    if not rows:
        return []
    table = model.__table__
    keys = list(rows[0])
    binders = plain.binders(table, keys) if dialect(session) == "sqlite" else None
    if binders is None:
        stmt = insert(table).returning(*(table.c[name] for name in returning))
        return [tuple(r) for r in core(session).execute(stmt, list(rows))]
    out: list[tuple[Any, ...]] = []
    per_statement = plain.VARIABLES // len(keys)
    one = f"({', '.join('?' * len(keys))})"
    for i in range(0, len(rows), per_statement):
        chunk = rows[i : i + per_statement]
        sql = (
            f"INSERT INTO {table.name} ({', '.join(keys)}) VALUES "
            f"{', '.join([one] * len(chunk))} RETURNING {', '.join(returning)}"
        )
        values = [v for bound in plain.bind_rows(binders, keys, chunk) for v in bound]
        out.extend(tuple(r) for r in plain.execute(core(session), sql, values))
    return out


def claim_due(session: Session, *, campaign: str, now: datetime, limit: int) -> list[Row[Any]]:
    """Due journeys of a campaign, oldest first: one range scan of ix_journey_claim.

    On PostgreSQL the rows are locked with SKIP LOCKED, so two ticks never take
    the same journey; on SQLite the caller holds the write lock (BEGIN IMMEDIATE).
    """
    table = Journey.__table__  # type: ignore[attr-defined]
    if dialect(session) == "sqlite":
        return plain.select(
            core(session),
            table,
            None,
            "WHERE campaign = ? AND claim_at <= ? ORDER BY claim_at, id LIMIT ?",
            (campaign, plain.bind_time(now), limit),
        )
    stmt = (
        select(table)
        .where(col(Journey.campaign) == campaign, col(Journey.claim_at) <= now)
        .order_by(col(Journey.claim_at), col(Journey.id))
        .limit(limit)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(core(session).execute(stmt).all())


def next_claim(session: Session, *, campaign: str) -> datetime | None:
    """When the campaign's next journey is due (None: none is waiting); one index probe."""
    table = Journey.__table__  # type: ignore[attr-defined]
    if dialect(session) == "sqlite":
        rows = plain.select(
            core(session),
            table,
            ("claim_at",),
            "WHERE campaign = ? AND claim_at IS NOT NULL ORDER BY claim_at LIMIT 1",
            (campaign,),
        )
        return rows[0].claim_at if rows else None
    return aware(
        core(session)
        .execute(
            select(func.min(table.c.claim_at)).where(
                table.c.campaign == campaign, table.c.claim_at.is_not(None)
            )
        )
        .scalar()
    )


def event_times(
    session: Session, names: Sequence[str], *, after_id: int
) -> list[tuple[int, datetime]]:
    """(id, at) of the events of these names stored after `after_id`, in id order."""
    table = Event.__table__  # type: ignore[attr-defined]
    rows: Sequence[Any]
    if dialect(session) == "sqlite":
        rows = plain.select(
            core(session),
            table,
            ("id", "at"),
            f"WHERE name IN ({plain.placeholders(len(names))}) AND id > ? ORDER BY id",
            (*names, after_id),
        )
    else:
        rows = (
            core(session)
            .execute(
                select(table.c.id, table.c.at)
                .where(table.c.name.in_(list(names)), table.c.id > after_id)
                .order_by(table.c.id)
            )
            .all()
        )
    return [(int(r.id), utc(r.at)) for r in rows]


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
    table = Send.__table__  # type: ignore[attr-defined]
    if dialect(session) == "sqlite":
        return plain.select(
            core(session),
            table,
            None,
            "WHERE campaign = ? AND retry_at <= ? AND outcome IN ('claimed', 'retry') "
            "ORDER BY retry_at, id LIMIT ?",
            (campaign, plain.bind_time(now), limit),
        )
    stmt = (
        select(table)
        .where(
            table.c.campaign == campaign,
            table.c.retry_at <= now,
            table.c.outcome.in_((Outcome.CLAIMED, Outcome.RETRY)),
        )
        .order_by(table.c.retry_at, table.c.id)
        .limit(limit)
    )
    if dialect(session) == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(core(session).execute(stmt).all())


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
        from datetime import timedelta

        keep = or_(
            col(Journey.ended_at).is_(None),
            col(Journey.ended_at) > now - timedelta(seconds=reentry_seconds),
        )
    return and_(*conditions, keep)


def journey_pasts(session: Session, *, campaign: str, ids: Iterable[str]) -> list[Row[Any]]:
    """For each of these subscribers with a journey in `campaign`: (subscriber_id,
    in_flight, ended_at, last_send_at) — whether a journey of theirs has not ended, when
    the latest ended, and the campaign's latest send to them."""
    table = Journey.__table__  # type: ignore[attr-defined]
    values = sorted(set(ids))
    out: list[Row[Any]] = []
    for i in range(0, len(values), _IN_CHUNK):
        out.extend(
            core(session).execute(
                select(
                    table.c.subscriber_id,
                    func.max(case((table.c.ended_at.is_(None), 1), else_=0)).label("in_flight"),
                    func.max(table.c.ended_at).label("ended_at"),
                    func.max(table.c.last_send_at).label("last_send_at"),
                )
                .where(
                    table.c.campaign == campaign,
                    table.c.subscriber_id.in_(values[i : i + _IN_CHUNK]),
                )
                .group_by(table.c.subscriber_id)
            )
        )
    return out


def setting_once(session: Session, key: str, value: str) -> str:
    """The stored value of `key`, storing `value` first if there is none (race-free)."""
    stmt = _insert(session, Setting).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    stored = session.execute(select(col(Setting.value)).where(col(Setting.key) == key)).scalar_one()
    return str(stored)


def setting(session: Session, key: str) -> str | None:
    stored = session.execute(select(col(Setting.value)).where(col(Setting.key) == key))
    value = stored.scalar_one_or_none()
    return None if value is None else str(value)


def put_setting(session: Session, key: str, value: str) -> None:
    stmt = _insert(session, Setting).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def save_enrol_mark(session: Session, mark: EnrolMark) -> None:
    """Upsert: two ticks finishing enrolment together must not collide on the key."""
    values = {
        "campaign": mark.campaign,
        "subcampaign": mark.subcampaign,
        "full_at": mark.full_at,
        "subscribers_at": mark.subscribers_at,
        "event_id": mark.event_id,
    }
    stmt = _insert(session, EnrolMark).values(values)
    keys = ("full_at", "subscribers_at", "event_id")
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["campaign", "subcampaign"], set_={k: stmt.excluded[k] for k in keys}
        )
    )


def cursor(session: Session, *, campaign: str, subcampaign: str) -> int:
    """The last event id a sub-campaign's trigger enrolment has read, the cursor created at 0
    if missing (safe under concurrent ticks). Core statements: this runs every tick."""
    table = Cursor.__table__  # type: ignore[attr-defined]
    where = (table.c.campaign == campaign, table.c.subcampaign == subcampaign)
    if dialect(session) == "sqlite":
        rows = plain.select(
            core(session),
            table,
            ("last_event_id",),
            "WHERE campaign = ? AND subcampaign = ?",
            (campaign, subcampaign),
        )
        found = rows[0].last_event_id if rows else None
    else:
        found = core(session).execute(select(table.c.last_event_id).where(*where)).scalar()
    if found is None:
        stmt = _insert(session, Cursor).values(
            campaign=campaign, subcampaign=subcampaign, last_event_id=0
        )
        core(session).execute(
            stmt.on_conflict_do_nothing(index_elements=["campaign", "subcampaign"])
        )
        found = core(session).execute(select(table.c.last_event_id).where(*where)).scalar_one()
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
    table = Event.__table__  # type: ignore[attr-defined]
    if dialect(session) == "sqlite":
        return plain.select(
            core(session),
            table,
            None,
            "WHERE name = ? AND id > ? AND at <= ? ORDER BY id LIMIT ?",
            (name, after_id, plain.bind_time(until), limit),
        )
    return list(
        core(session)
        .execute(
            select(table)
            .where(table.c.name == name, table.c.id > after_id, table.c.at <= until)
            .order_by(table.c.id)
            .limit(limit)
        )
        .all()
    )


def trigger_marks(
    session: Session, *, campaign: str, subcampaign: str
) -> list[tuple[int, datetime, bool]]:
    """(event id, at, handled) of the sub-campaign's marked trigger events (see TriggerMark)."""
    table = TriggerMark.__table__  # type: ignore[attr-defined]
    rows: Sequence[Any]
    if dialect(session) == "sqlite":
        rows = plain.select(
            core(session),
            table,
            ("event_id", "at", "handled"),
            "WHERE campaign = ? AND subcampaign = ?",
            (campaign, subcampaign),
        )
    else:
        rows = (
            core(session)
            .execute(
                select(table.c.event_id, table.c.at, table.c.handled).where(
                    table.c.campaign == campaign, table.c.subcampaign == subcampaign
                )
            )
            .all()
        )
    return [(int(r.event_id), utc(r.at), bool(r.handled)) for r in rows]


def events_by_id(session: Session, ids: Sequence[int]) -> list[Row[Any]]:
    """These events (plain rows, as `trigger_events` gives them), in id order."""
    if not ids:
        return []
    table = Event.__table__  # type: ignore[attr-defined]
    if dialect(session) == "sqlite":
        rows = plain.select_in(core(session), table, None, "id", sorted(ids))
        return sorted(rows, key=lambda r: r.id)
    return list(
        core(session).execute(select(table).where(table.c.id.in_(sorted(ids))).order_by(table.c.id))
    )


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
    table = Event.__table__  # type: ignore[attr-defined]
    if up_to <= after_id:
        return []
    rows: Sequence[Any]
    if dialect(session) == "sqlite":
        rows = plain.select(
            core(session),
            table,
            ("id", "at"),
            "WHERE name = ? AND id > ? AND id <= ? AND at > ?",
            (name, after_id, up_to, plain.bind_time(moment)),
        )
    else:
        rows = (
            core(session)
            .execute(
                select(table.c.id, table.c.at).where(
                    table.c.name == name,
                    table.c.id > after_id,
                    table.c.id <= up_to,
                    table.c.at > moment,
                )
            )
            .all()
        )
    return [(int(r.id), utc(r.at)) for r in rows]


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


def insert_ignoring(session: Session, table: Any) -> Any:
    """INSERT that skips rows violating a unique index (e.g. a second active journey)."""
    return _insert(session, table).on_conflict_do_nothing()


def delete_subscriptions(session: Session, endpoints: Sequence[str]) -> None:
    session.execute(
        delete(PushSubscription).where(col(PushSubscription.endpoint).in_(list(endpoints)))
    )


# ------------------------------------------------------------------ counters


def bump(session: Session, *, campaign: str, counts: Counter[tuple[str, str]]) -> None:
    """Add to the per-node counters: one upsert statement, executed for each distinct
    node and metric (the same statement every time, so it is compiled once)."""
    rows = [
        {"campaign": campaign, "node": node, "metric": metric, "count": n}
        for (node, metric), n in sorted(counts.items())  # one lock order for concurrent ticks
        if n
    ]
    if not rows:
        return
    name = dialect(session)
    stmt = _BUMP.get(name)
    if stmt is None:  # built once: a new statement object costs its cache key every time
        stmt = _insert(session, NodeStat)
        stmt = _BUMP[name] = stmt.on_conflict_do_update(
            index_elements=["campaign", "node", "metric"],
            set_={"count": col(NodeStat.count) + stmt.excluded["count"]},
        )
    core(session).execute(stmt, rows)


_BUMP: dict[str, Any] = {}


def node_stats(session: Session, campaign: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in session.execute(
        select(NodeStat).where(col(NodeStat.campaign) == campaign)
    ).scalars():
        out.setdefault(row.node, {})[row.metric] = row.count
    return out


def send_outcomes(session: Session, campaign: str) -> dict[str, int]:
    rows = session.execute(
        select(col(Send.outcome), func.count())
        .where(col(Send.campaign) == campaign)
        .group_by(Send.outcome)
    ).all()
    return {outcome: n for outcome, n in rows}


def journey_phases(session: Session, campaign: str) -> dict[str, int]:
    rows = session.execute(
        select(col(Journey.phase), func.count())
        .where(col(Journey.campaign) == campaign)
        .group_by(Journey.phase)
    ).all()
    return {phase: n for phase, n in rows}


def exit_reasons(session: Session, campaign: str) -> dict[str, int]:
    rows = session.execute(
        select(col(Journey.exit_reason), func.count())
        .where(col(Journey.campaign) == campaign, col(Journey.exit_reason).is_not(None))
        .group_by(Journey.exit_reason)
    ).all()
    return {str(reason): n for reason, n in rows}
