"""Subscribers and their push subscriptions: upserts, lookups by id, deletions (the
push services' pruning among them), and the opt-ins and opt-outs recorded when a
subscriber starts or stops being active."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlmodel import Session, col

from orchestrator.language.records import SubscriberRecord
from orchestrator.store.models import (
    Event,
    PushSubscription,
    Subscriber,
    utcnow,
)
from orchestrator.store.repo.base import IN_CHUNK, core, dialect, fetch

OPTED_IN, OPTED_OUT = "subscribed", "unsubscribed"  # the event names of an opt-in, an opt-out
# an opt-in by a bulk import: its own name, so that a campaign triggered by `subscribed`
# does not welcome an existing audience brought in from elsewhere
IMPORTED, IMPORT_SOURCE = "imported", "import"
OPT_IN_NAMES = (OPTED_IN, IMPORTED)
# the status of a subscriber whose last subscription a push service reported gone (404/410)
UNREACHABLE = "unreachable"


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
    opt_in: str | None = None,
) -> tuple[int, int]:
    """Add or update subscribers and their subscriptions. Returns (added, changed); same data = no write.

    Bulk statements (one INSERT and one UPDATE per batch), so a million-line import stays fast.
    A caller that already read `existing_subscribers` / `known_subscriptions` passes them in.
    `opt_in` (a source, e.g. `import`): each subscriber this call adds gets its opt-in
    (`note_opt_ins`); a subscriber already stored gets none, whatever changes."""
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
        if opt_in is not None:
            note_opt_ins(session, [row["id"] for row in inserts], source=opt_in, at=now)
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


def note_opt_ins(session: Session, ids: Iterable[str], *, source: str, at: datetime) -> None:
    """An opt-in (a `subscribed` event with its `source`) for each of these stored
    subscribers, made by the database (`_note_opts`). Callers record one only where a
    subscriber becomes active: added, or brought back from `unsubscribed`, `unreachable`
    or `deleted` (`revive`)."""
    _note_opts(
        session, IMPORTED if source == IMPORT_SOURCE else OPTED_IN, ids, source=source, at=at
    )


def note_opt_outs(session: Session, ids: Iterable[str], *, source: str, at: datetime) -> None:
    """An opt-out (an `unsubscribed` event with its `source`) for each of these stored
    subscribers, as `note_opt_ins`; callers record one only where `deactivate` or
    `prune_subscriptions` changed the subscriber."""
    _note_opts(session, OPTED_OUT, ids, source=source, at=at)


def _note_opts(
    session: Session, name: str, ids: Iterable[str], *, source: str, at: datetime
) -> None:
    """One INSERT … SELECT over the stored subscribers among `ids` (per IN_CHUNK of them):
    no per-row work in Python, so an import batch costs one statement more."""
    wanted = list(dict.fromkeys(ids))
    values = {"name": name, "at": at, "properties": {"source": source}, "recorded": utcnow()}
    for i in range(0, len(wanted), IN_CHUNK):
        core(session).execute(_NOTE_OPTS, {**values, "ids": wanted[i : i + IN_CHUNK]})


def subscribers(session: Session, ids: Iterable[str]) -> dict[str, Row[Any]]:
    """Subscriber rows by id (plain rows: attribute access, no ORM bookkeeping): what the
    engine reads (id, timezone, status, paused_until); no JSON is decoded."""
    return _by_id(session, ("id", "timezone", "status", "paused_until"), ids)


def profiles(session: Session, ids: Iterable[str]) -> dict[str, Row[Any]]:
    """(id, attributes, tags) by id: what templates read, fetched only for those sent to."""
    return _by_id(session, ("id", "attributes", "tags"), ids)


_SUBSCRIBER: Any = Subscriber.__table__  # type: ignore[attr-defined]
_SUBSCRIPTION: Any = PushSubscription.__table__  # type: ignore[attr-defined]
_BY_ID: dict[tuple[str, ...], Any] = {}  # statements built once per column list
_SUBSCRIPTIONS_OF = select(_SUBSCRIPTION).where(
    _SUBSCRIPTION.c.subscriber_id.in_(bindparam("ids", expanding=True))
)
_EVENT: Any = Event.__table__  # type: ignore[attr-defined]
# opt-ins and opt-outs: the event rows made by the database from the subscriber rows
_NOTE_OPTS = insert(_EVENT).from_select(
    ["subscriber_id", "name", "at", "properties", "recorded_at"],
    select(
        _SUBSCRIBER.c.id,
        bindparam("name", type_=_EVENT.c.name.type),
        bindparam("at", type_=_EVENT.c.at.type),
        bindparam("properties", type_=_EVENT.c.properties.type),
        bindparam("recorded", type_=_EVENT.c.recorded_at.type),
    ).where(_SUBSCRIBER.c.id.in_(bindparam("ids", expanding=True))),
)


def _by_id(session: Session, columns: tuple[str, ...], ids: Iterable[str]) -> dict[str, Row[Any]]:
    stmt = _BY_ID.get(columns)
    if stmt is None:
        stmt = _BY_ID[columns] = select(*(_SUBSCRIBER.c[name] for name in columns)).where(
            _SUBSCRIBER.c.id.in_(bindparam("ids", expanding=True))
        )
    return {row.id: row for row in fetch(session, stmt, chunk="ids", ids=list(set(ids)))}


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
    out: dict[str, list[Row[Any]]] = {}
    rows = fetch(session, _SUBSCRIPTIONS_OF, chunk="ids", ids=list(set(ids)))
    for row in rows:
        out.setdefault(row.subscriber_id, []).append(row)
    return out


def delete_subscriptions(session: Session, endpoints: Sequence[str]) -> None:
    session.execute(
        delete(PushSubscription).where(col(PushSubscription.endpoint).in_(list(endpoints)))
    )


def prune_subscriptions(session: Session, endpoints: Iterable[str], *, now: datetime) -> list[str]:
    """Delete the subscriptions a push service reported gone; each active owner left with
    none becomes `unreachable`. Returns those owners' ids (each of them an opt-out).

    The owners' rows are locked (in id order) before the deletion, and the condition
    (active, no subscription left) is checked in the UPDATE itself, as `revive` does: of
    two ticks pruning one subscriber's subscriptions at once, the second waits for the
    first and then sees its deletions, so the subscriber changes once, whether the two
    prune the same endpoint or each one of their last two; an endpoint reported twice in
    one call counts once too."""
    wanted = sorted(set(endpoints))
    owners = sorted(
        set(
            core(session)
            .execute(
                select(_SUBSCRIPTION.c.subscriber_id).where(_SUBSCRIPTION.c.endpoint.in_(wanted))
            )
            .scalars()
        )
    )
    if not owners:  # none of them stored (pruned already, or unsubscribed meanwhile)
        return []
    if dialect(session) != "sqlite":  # SQLite's BEGIN IMMEDIATE serialises writers already
        core(session).execute(
            select(_SUBSCRIBER.c.id)
            .where(_SUBSCRIBER.c.id.in_(owners))
            .order_by(_SUBSCRIBER.c.id)
            .with_for_update()
        )
    core(session).execute(delete(_SUBSCRIPTION).where(_SUBSCRIPTION.c.endpoint.in_(wanted)))
    left = core(session).execute(
        update(_SUBSCRIBER)
        .where(
            _SUBSCRIBER.c.id.in_(owners),
            _SUBSCRIBER.c.status == "active",
            ~exists().where(_SUBSCRIPTION.c.subscriber_id == _SUBSCRIBER.c.id),
        )
        .values(status=UNREACHABLE, updated_at=now)
        .returning(_SUBSCRIBER.c.id)
    )
    return [str(sid) for sid in left.scalars()]
