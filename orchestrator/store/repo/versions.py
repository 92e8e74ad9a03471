"""Campaign versions (one row per distinct content of a campaign file) and moving journeys
between them (`campaign migrate`)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, col

from orchestrator.store.models import CampaignVersion, Journey, utcnow
from orchestrator.store.repo.base import dialect_insert


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
        stmt = dialect_insert(session, CampaignVersion).values(
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


def journeys_off_version(session: Session, *, campaign: str, version_id: int) -> list[Journey]:
    """The campaign's journeys in flight on another version than `version_id`, by id."""
    query = (
        select(Journey)
        .where(
            col(Journey.campaign) == campaign,
            col(Journey.phase) != "ended",
            col(Journey.version_id) != version_id,
        )
        .order_by(col(Journey.id))
    )
    return list(session.execute(query).scalars().all())


def in_flight_by_node(session: Session, *, campaign: str) -> dict[str, int]:
    """The campaign's journeys in flight (any version), counted by the node they are at."""
    query = (
        select(col(Journey.node), func.count())
        .where(col(Journey.campaign) == campaign, col(Journey.phase) != "ended")
        .group_by(col(Journey.node))
    )
    return {str(node): int(n) for node, n in session.execute(query)}


def move_journey(
    session: Session, journey_id: int, *, from_version: int, values: dict[str, Any]
) -> bool:
    """Set `values` on the journey if it is still in flight on `from_version` (a journey that
    changed meanwhile is left alone); whether it was."""
    done = cast(
        CursorResult[Any],
        session.execute(
            update(Journey)
            .where(
                col(Journey.id) == journey_id,
                col(Journey.version_id) == from_version,
                col(Journey.phase) != "ended",
            )
            .values(**values)
        ),
    )
    return bool(done.rowcount)
