"""Campaign versions: one row per distinct content of a campaign file."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    select,
)
from sqlmodel import Session, col

from orchestrator.store.models import (
    CampaignVersion,
    utcnow,
)
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
