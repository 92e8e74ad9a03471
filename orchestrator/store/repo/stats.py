"""Per-node counters and the figures `campaign status` and the dashboard read."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlmodel import Session, col

from orchestrator.store.models import (
    Journey,
    NodeStat,
    Send,
)
from orchestrator.store.repo.base import core, dialect, dialect_insert


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
        stmt = dialect_insert(session, NodeStat)
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
