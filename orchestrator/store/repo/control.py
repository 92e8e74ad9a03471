"""Pause, resume and stop of whole campaigns: the actions recorded, and the state they
leave (the latest of them; none: running). A broadcast's records and a split's promoted
winner are actions of other kinds, which leave the state as it is."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlmodel import Session, col

from orchestrator.store.models import CampaignAction, Journey
from orchestrator.store.repo.base import dialect, fetch

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


# The actions that set a campaign's state; the table also records other kinds (a
# broadcast's, `orchestrator.app.control`; a promotion, `orchestrator.app.promote`),
# which leave the state as it is.
STATE_ACTIONS = ("pause", "resume", "stop")
_LATEST_STATE = (
    select(_ACTION.c.action, _ACTION.c.at, _ACTION.c.by, _ACTION.c.reason)
    .where(
        _ACTION.c.campaign == bindparam("campaign"),
        _ACTION.c.action.in_(STATE_ACTIONS),
    )
    .order_by(_ACTION.c.id.desc())
    .limit(1)
)


def latest_state_action(session: Session, campaign: str) -> Any | None:
    """(action, at, by, reason) of the campaign's latest pause, resume or stop; None if
    there is none. Read before every batch a tick claims: the index on (campaign, id)
    walked back from the newest row, past the few rows of other kinds."""
    rows = fetch(session, _LATEST_STATE, campaign=campaign)
    return rows[0] if rows else None


def actions_of(session: Session, campaign: str, kinds: Sequence[str]) -> list[CampaignAction]:
    """The campaign's actions of these kinds, oldest first."""
    query = (
        select(CampaignAction)
        .where(col(CampaignAction.campaign) == campaign, col(CampaignAction.action).in_(kinds))
        .order_by(col(CampaignAction.id))
    )
    return list(session.execute(query).scalars())


def lock_actions(session: Session) -> None:
    """Until the transaction ends, no other transaction writes campaign_action (reads go
    on): what one writer reads there stays true until it commits. On PostgreSQL a table
    lock; a SQLite transaction holds the database's write lock from its start."""
    if dialect(session) == "postgresql":
        session.execute(text("LOCK TABLE campaign_action IN SHARE ROW EXCLUSIVE MODE"))


def update_action(session: Session, action_id: int, *, at: datetime, reason: str) -> None:
    session.execute(
        update(CampaignAction)
        .where(col(CampaignAction.id) == action_id)
        .values(at=at, reason=reason)
    )


def delete_action(session: Session, action_id: int) -> None:
    session.execute(delete(CampaignAction).where(col(CampaignAction.id) == action_id))


def add_action(
    session: Session,
    *,
    campaign: str,
    action: str,
    at: datetime,
    by: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> int:
    """Record an action (`details`: what its kind keeps beyond the reason, as JSON); its id."""
    row = CampaignAction(
        campaign=campaign, action=action, at=at, by=by, reason=reason, details=details
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id
