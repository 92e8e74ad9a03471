"""Rate limits' reads over the sends ledger and the due journeys (`orchestrator.app.throttle`):
the sends a sliding window holds, the campaigns that share the installation's limit, the
journeys a limit holds back; and the lock that makes a claim's count and its ledger rows
one step."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, func, select, text, tuple_
from sqlmodel import Session

from orchestrator.store.models import CampaignAction, CampaignVersion, Journey, Send
from orchestrator.store.repo.base import aware, dialect, fetch

_SEND: Any = Send.__table__  # type: ignore[attr-defined]
_JOURNEY: Any = Journey.__table__  # type: ignore[attr-defined]
_VERSION: Any = CampaignVersion.__table__  # type: ignore[attr-defined]
_ACTION: Any = CampaignAction.__table__  # type: ignore[attr-defined]

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def lock_pace(session: Session, name: str) -> None:
    """Until the transaction ends, no other transaction takes the lock of `name`: a claim
    counts the ledger and writes its own rows before the next claim under the same limit
    counts. On PostgreSQL an advisory transaction lock; a SQLite transaction holds the
    database's write lock from its start."""
    if dialect(session) == "postgresql":
        digest = hashlib.sha256(f"campaign-flow:pace:{name}".encode()).digest()
        session.execute(_LOCK, {"key": int.from_bytes(digest[:8], "big", signed=True)})


@dataclass(frozen=True)
class Tally:
    """Ledger rows in a window: how many, and the oldest one's `claimed_at`."""

    count: int
    oldest: datetime | None


@dataclass(frozen=True)
class LedgerWindow:
    """The sends of `campaigns` claimed after `since` (`wide`) and after `recent`
    (`narrow`); and of them, `own`'s."""

    wide: Tally
    narrow: Tally
    own_wide: Tally
    own_narrow: Tally


_SINCE: Any = bindparam("since")
_RECENT: Any = bindparam("recent")
_MINE = _SEND.c.campaign == bindparam("own")
_RECENTLY = _SEND.c.claimed_at > _RECENT


def _tally(condition: Any) -> list[Any]:
    return [
        func.coalesce(func.sum(case((condition, 1), else_=0)), 0),
        func.min(case((condition, _SEND.c.claimed_at))),
    ]


_LEDGER_WINDOW = select(
    func.count(),
    func.min(_SEND.c.claimed_at),
    *_tally(_RECENTLY),
    *_tally(_MINE),
    *_tally(_MINE & _RECENTLY),
).where(
    _SEND.c.campaign.in_(bindparam("campaigns", expanding=True)),
    _SEND.c.claimed_at > _SINCE,
)


def ledger_window(
    session: Session, *, campaigns: Sequence[str], own: str, since: datetime, recent: datetime
) -> LedgerWindow:
    """Every ledger row counts, a skipped send's too. One range scan of
    `ix_send_campaign_claimed` per campaign named (`recent` is not before `since`)."""
    (row,) = fetch(
        session, _LEDGER_WINDOW, campaigns=list(campaigns), own=own, since=since, recent=recent
    )
    values = list(row)
    tallies = [Tally(int(values[i] or 0), aware(values[i + 1])) for i in range(0, len(values), 2)]
    return LedgerWindow(*tallies)


_CAMPAIGNS = select(_VERSION.c.campaign).distinct()


def campaign_names(session: Session) -> list[str]:
    """Every campaign that ever ticked (has a stored version)."""
    return sorted(str(c) for c in session.execute(_CAMPAIGNS).scalars())


_LATEST_STATE = (
    select(_ACTION.c.action)
    .where(
        _ACTION.c.campaign == _VERSION.c.campaign,
        _ACTION.c.action.in_(("pause", "resume", "stop")),
    )
    .order_by(_ACTION.c.id.desc())
    .limit(1)
    .correlate(_VERSION)
    .scalar_subquery()
)
_WAITING = (
    select(_VERSION.c.campaign)
    .distinct()
    .where(
        exists(
            select(1).where(
                _JOURNEY.c.campaign == _VERSION.c.campaign, _JOURNEY.c.claim_at <= bindparam("now")
            )
        ),
        func.coalesce(_LATEST_STATE, "resume") == "resume",
    )
)


def campaigns_due(session: Session, *, now: datetime) -> list[str]:
    """The campaigns with a journey due at `now` that are neither paused nor stopped: per
    campaign one probe of `ix_journey_claim` and one of `ix_campaign_action_latest`."""
    return sorted(str(c) for c in session.execute(_WAITING, {"now": now}).scalars())


_HELD = (
    select(
        _JOURNEY.c.node,
        func.count(),
        func.coalesce(func.sum(case((_JOURNEY.c.claim_at > bindparam("after"), 1), else_=0)), 0),
    )
    .where(_JOURNEY.c.campaign == bindparam("campaign"), _JOURNEY.c.claim_at <= bindparam("now"))
    .group_by(_JOURNEY.c.node)
)


def due_by_node(
    session: Session, *, campaign: str, now: datetime, after: datetime
) -> dict[str, tuple[int, int]]:
    """The campaign's journeys due at `now`, by node: (all of them, those due after
    `after`). One range scan of `ix_journey_claim`."""
    return {
        str(node): (int(n), int(new or 0))
        for node, n, new in fetch(session, _HELD, campaign=campaign, now=now, after=after)
    }


_HELD_ROWS = (
    select(
        _JOURNEY.c.id,
        _JOURNEY.c.claim_at,
        _JOURNEY.c.subscriber_id,
        _JOURNEY.c.subcampaign,
        _JOURNEY.c.node,
    )
    .where(
        _JOURNEY.c.campaign == bindparam("campaign"),
        _JOURNEY.c.claim_at <= bindparam("now"),
        _JOURNEY.c.claim_at > bindparam("after"),
        tuple_(_JOURNEY.c.claim_at, _JOURNEY.c.id)
        > tuple_(
            bindparam("from_at", type_=_JOURNEY.c.claim_at.type),
            bindparam("from_id", type_=_JOURNEY.c.id.type),
        ),
    )
    .order_by(_JOURNEY.c.claim_at, _JOURNEY.c.id)
    .limit(bindparam("limit"))
)


def due_journeys(
    session: Session,
    *,
    campaign: str,
    now: datetime,
    after: datetime,
    start: tuple[datetime, int] | None = None,
    limit: int = 10_000,
) -> list[Any]:
    """The campaign's journeys due at `now` and after `after`, in due order, from after
    `start` (the last page's last (claim_at, id)): (id, claim_at, subscriber_id,
    subcampaign, node). One range scan of `ix_journey_claim` per page."""
    from_at, from_id = start or (after, 0)
    return fetch(
        session,
        _HELD_ROWS,
        campaign=campaign,
        now=now,
        after=after,
        from_at=from_at,
        from_id=from_id,
        limit=limit,
    )


_BY_MOMENT = (
    select(_SEND.c.claimed_at, func.count())
    .where(_SEND.c.campaign == bindparam("campaign"))
    .group_by(_SEND.c.claimed_at)
    .order_by(_SEND.c.claimed_at)
)
_REACHED = select(func.count(), func.count(_SEND.c.subscriber_id.distinct())).where(
    _SEND.c.campaign == bindparam("campaign")
)


def sends_by_moment(
    session: Session, *, campaign: str
) -> tuple[int, int, list[tuple[datetime, int]]]:
    """The campaign's ledger rows, the subscribers they went to, and the rows claimed at
    each moment, in time order (`campaign bench-throttle`'s checks)."""
    ((sends, reached),) = fetch(session, _REACHED, campaign=campaign)
    moments = [
        (aware_at, int(n))
        for at, n in fetch(session, _BY_MOMENT, campaign=campaign)
        if (aware_at := aware(at)) is not None
    ]
    return int(sends), int(reached), moments
