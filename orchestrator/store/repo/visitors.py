"""What a visitor's requests read and change: subscriber rows by id, subscriptions by
endpoint, status and profile changes, merging an anonymous browser into a site's id, a
subscriber's whole record (their export) and erasing it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlmodel import Session, col

from orchestrator.store.models import Event, Journey, PushSubscription, Send, Subscriber
from orchestrator.store.repo.events import wake_many


def subscriber(session: Session, sid: str) -> Subscriber | None:
    return session.get(Subscriber, sid)


def subscriber_rows(session: Session, ids: Iterable[str]) -> dict[str, Any]:
    """id -> (id, timezone, attributes, tags, status, token_version) of stored subscribers."""
    rows = session.execute(
        select(
            col(Subscriber.id),
            col(Subscriber.timezone),
            col(Subscriber.attributes),
            col(Subscriber.tags),
            col(Subscriber.status),
            col(Subscriber.token_version),
        ).where(col(Subscriber.id).in_(list(ids)))
    )
    return {row.id: row for row in rows}


def update_subscriber(session: Session, sid: str, **values: Any) -> None:
    session.execute(update(Subscriber).where(col(Subscriber.id) == sid).values(**values))


def update_living(session: Session, sid: str, **values: Any) -> bool:
    """Update a subscriber who has not deleted their data; whether there was one."""
    changed = session.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == sid, col(Subscriber.status) != "deleted")
        .values(**values)
    )
    return bool(changed.rowcount == 1)  # type: ignore[attr-defined]


def revive(session: Session, ids: Iterable[str], *, now: datetime) -> list[str]:
    """Subscribers who subscribe again are active, not paused; the ids among `ids` that
    were not active before (each of them an opt-in). The status is checked in the UPDATE
    itself, so of two requests at once only one brings a subscriber back."""
    changed = session.execute(
        update(Subscriber)
        .where(col(Subscriber.id).in_(list(ids)), col(Subscriber.status) != "active")
        .values(status="active", paused_until=None, updated_at=now)
        .returning(col(Subscriber.id))
    )
    return [str(sid) for sid in changed.scalars()]


def deactivate(session: Session, ids: Iterable[str], *, status: str, now: datetime) -> list[str]:
    """Active subscribers among `ids` take `status` (`unsubscribed`, `deleted`); the ids
    that were active (each of them an opt-out), checked in the UPDATE itself as `revive`
    does. Subscribers already inactive keep their status."""
    changed = session.execute(
        update(Subscriber)
        .where(col(Subscriber.id).in_(list(ids)), col(Subscriber.status) == "active")
        .values(status=status, updated_at=now)
        .returning(col(Subscriber.id))
    )
    return [str(sid) for sid in changed.scalars()]


def retire(session: Session, sid: str, *, status: str, now: datetime) -> None:
    """The subscriber row stays as a tombstone (`deleted`, `merged`): no attributes, tags
    or pause, every profile link made before revoked; their journeys end at once."""
    session.execute(
        update(Subscriber)
        .where(col(Subscriber.id) == sid)
        .values(
            status=status,
            attributes={},
            tags=[],
            paused_until=None,
            updated_at=now,
            token_version=Subscriber.token_version + 1,
        )
    )
    wake_many(session, {sid: now})


def has_subscription(session: Session, sid: str) -> bool:
    return (
        session.execute(
            select(col(PushSubscription.id)).where(col(PushSubscription.subscriber_id) == sid)
        ).first()
        is not None
    )


def subscription_owner(session: Session, endpoint: str) -> tuple[str, str] | None:
    """(subscriber id, auth secret) of the subscription with this endpoint."""
    row = session.execute(
        select(col(PushSubscription.subscriber_id), col(PushSubscription.auth)).where(
            col(PushSubscription.endpoint) == endpoint
        )
    ).first()
    return None if row is None else (row[0], row[1])


def move_events(
    session: Session, *, source: str, into: str, dropping: tuple[str, ...] = ()
) -> None:
    """Give `source`'s events to `into`, except those whose client id `into` already has
    (an event sent twice, once under each id, stays once); `source`'s events named in
    `dropping` are deleted instead."""
    if dropping:
        session.execute(
            delete(Event).where(col(Event.subscriber_id) == source, col(Event.name).in_(dropping))
        )
    taken = select(col(Event.client_id)).where(
        col(Event.subscriber_id) == into, col(Event.client_id).is_not(None)
    )
    session.execute(
        update(Event)
        .where(
            col(Event.subscriber_id) == source,
            col(Event.client_id).is_(None) | col(Event.client_id).not_in(taken),
        )
        .values(subscriber_id=into)
    )


def everything_about(session: Session, sid: str) -> dict[str, list[Any]] | None:
    """A subscriber's row, subscriptions, events (by time), journeys and sends (by id)."""
    row = session.get(Subscriber, sid)
    if row is None:
        return None
    return {
        "subscriber": [row],
        "subscriptions": list(
            session.execute(
                select(PushSubscription).where(col(PushSubscription.subscriber_id) == sid)
            ).scalars()
        ),
        "events": list(
            session.execute(
                select(Event).where(col(Event.subscriber_id) == sid).order_by(col(Event.at))
            ).scalars()
        ),
        "journeys": list(
            session.execute(
                select(Journey).where(col(Journey.subscriber_id) == sid).order_by(col(Journey.id))
            ).scalars()
        ),
        "sends": list(
            session.execute(
                select(Send).where(col(Send.subscriber_id) == sid).order_by(col(Send.id))
            ).scalars()
        ),
    }


def erase(session: Session, sid: str, *, now: datetime) -> None:
    """Delete a subscriber's subscriptions and events and the contents of their
    notifications; the row stays as a `deleted` tombstone (`retire`)."""
    session.execute(delete(PushSubscription).where(col(PushSubscription.subscriber_id) == sid))
    session.execute(delete(Event).where(col(Event.subscriber_id) == sid))
    session.execute(
        update(Send).where(col(Send.subscriber_id) == sid).values(payload=None, target_url=None)
    )
    retire(session, sid, status="deleted", now=now)
