"""Pause, resume and stop of whole campaigns: the actions recorded, and the state they
leave (the latest action; none: running)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session, col

from orchestrator.store.models import CampaignAction, Journey
from orchestrator.store.repo.base import fetch

_ACTION: Any = CampaignAction.__table__  # type: ignore[attr-defined]
_LATEST = (
    select(_ACTION.c.action, _ACTION.c.at, _ACTION.c.by, _ACTION.c.reason)
    .where(_ACTION.c.campaign == bindparam("campaign"))
    .order_by(_ACTION.c.id.desc())
    .limit(1)
)


def latest_action(session: Session, campaign: str) -> Any | None:
    """(action, at, by, reason) of the campaign's latest action; None if there is none.
    One index probe: it is read before every batch a tick claims."""
    rows = fetch(session, _LATEST, campaign=campaign)
    return rows[0] if rows else None


def actions(session: Session, campaign: str, *, limit: int = 50) -> list[CampaignAction]:
    """The campaign's actions, newest first."""
    query = (
        select(CampaignAction)
        .where(col(CampaignAction.campaign) == campaign)
        .order_by(col(CampaignAction.id).desc())
        .limit(limit)
    )
    return list(session.execute(query).scalars())


def record_action(
    session: Session, *, campaign: str, action: str, at: datetime, by: str, reason: str
) -> None:
    session.add(CampaignAction(campaign=campaign, action=action, at=at, by=by, reason=reason))
    session.flush()


def end_journeys(session: Session, *, campaign: str, reason: str, at: datetime) -> dict[str, int]:
    """End every journey of the campaign still in flight (`reason`); how many ended at each
    node."""
    at_node = dict(
        session.execute(
            select(col(Journey.node), func.count())
            .where(col(Journey.campaign) == campaign, col(Journey.phase) != "ended")
            .group_by(col(Journey.node))
        ).all()
    )
    session.execute(
        update(Journey)
        .where(col(Journey.campaign) == campaign, col(Journey.phase) != "ended")
        .values(phase="ended", exit_reason=reason, ended_at=at, due_at=None, claim_at=None)
    )
    return {str(node): int(n) for node, n in at_node.items()}
