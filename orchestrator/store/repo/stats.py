"""Per-node counters and the figures `campaign status` and the dashboard read."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlmodel import Session, col

from orchestrator.store.models import Event, Journey, NodeStat, PushSubscription, Send, Subscriber
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


def ledger_summary(session: Session) -> dict[str, Any]:
    """The whole send ledger at a glance: rows by outcome and by attempts, journeys ended
    because their subscriptions were gone, subscriptions left (bench-faults' checks)."""
    by_outcome = dict(
        session.execute(select(col(Send.outcome), func.count()).group_by(col(Send.outcome))).all()
    )
    attempts = dict(
        session.execute(select(col(Send.attempts), func.count()).group_by(col(Send.attempts))).all()
    )
    ended_gone = session.execute(
        select(func.count())
        .select_from(Journey)
        .where(col(Journey.exit_reason) == "subscription_gone")
    ).scalar_one()
    subscriptions = session.execute(select(func.count()).select_from(PushSubscription)).scalar_one()
    return {
        "by_outcome": by_outcome,
        "attempts": attempts,
        "ended_gone": ended_gone,
        "subscriptions": subscriptions,
    }


def stored_counts(session: Session, *, event_name: str) -> dict[str, int]:
    """Subscribers, subscriptions, events named `event_name` and their distinct properties
    (bench-web's check that every accepted request is stored exactly once)."""
    named = col(Event.name) == event_name

    def one(query: Any) -> int:
        return int(session.execute(query).scalar() or 0)

    return {
        "subscribers": one(select(func.count()).select_from(Subscriber)),
        "subscriptions": one(select(func.count()).select_from(PushSubscription)),
        "events": one(select(func.count()).select_from(Event).where(named)),
        "distinct_events": one(select(func.count(func.distinct(Event.properties))).where(named)),
    }
