"""What the send-time optimiser reads from the send ledger: sends and conversions by the
hour of the subscriber's local week (`send.local_slot`), per subscriber and per node of a
campaign, and the arms of `send_time: best` sends for the dashboard's lift."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlmodel import Session

from orchestrator.delivery import Outcome
from orchestrator.store.models import Send
from orchestrator.store.repo.base import aware, fetch

_SEND: Any = Send.__table__  # type: ignore[attr-defined]
_COUNTS = (func.count().label("sends"), func.count(_SEND.c.converted_at).label("conversions"))
_LEARNED = (_SEND.c.local_slot.is_not(None), _SEND.c.outcome != Outcome.SKIPPED)

_BY_SUBSCRIBER = (
    select(_SEND.c.subscriber_id, _SEND.c.local_slot, *_COUNTS)
    .where(
        _SEND.c.subscriber_id.in_(bindparam("ids", expanding=True)),
        _SEND.c.claimed_at > bindparam("since"),
        *_LEARNED,
    )
    .group_by(_SEND.c.subscriber_id, _SEND.c.local_slot)
)
_BY_NODE = (
    select(_SEND.c.node, _SEND.c.local_slot, *_COUNTS)
    .where(
        _SEND.c.campaign == bindparam("campaign"),
        _SEND.c.claimed_at > bindparam("since"),
        *_LEARNED,
    )
    .group_by(_SEND.c.node, _SEND.c.local_slot)
)
_BY_ARM = (
    select(_SEND.c.timing, *_COUNTS)
    .where(
        _SEND.c.campaign == bindparam("campaign"),
        _SEND.c.timing.is_not(None),
        _SEND.c.outcome != Outcome.SKIPPED,
    )
    .group_by(_SEND.c.timing)
)


def slot_tallies(
    session: Session, ids: Iterable[str], *, since: datetime
) -> dict[str, dict[int, tuple[int, int]]]:
    """Each subscriber's sends (any campaign) since `since` by local week slot: (sends,
    conversions)."""
    out: dict[str, dict[int, tuple[int, int]]] = {}
    for sid, slot, n, k in fetch(
        session, _BY_SUBSCRIBER, chunk="ids", ids=sorted(set(ids)), since=since
    ):
        out.setdefault(sid, {})[int(slot)] = (int(n), int(k))
    return out


def node_slot_tallies(
    session: Session, *, campaign: str, since: datetime
) -> dict[str, dict[int, tuple[int, int]]]:
    """The campaign's sends since `since` by node and local week slot: (sends, conversions)."""
    out: dict[str, dict[int, tuple[int, int]]] = {}
    for node, slot, n, k in fetch(session, _BY_NODE, campaign=campaign, since=since):
        out.setdefault(node, {})[int(slot)] = (int(n), int(k))
    return out


_TIMED = select(
    _SEND.c.timing, _SEND.c.claimed_at, _SEND.c.converted_at.is_not(None).label("converted")
).where(
    _SEND.c.campaign == bindparam("campaign"),
    _SEND.c.timing.is_not(None),
    _SEND.c.outcome != Outcome.SKIPPED,
)


def timed_sends(session: Session, *, campaign: str) -> list[tuple[str, datetime, bool]]:
    """Every send of the campaign's `send_time: best` nodes: (arm, claimed at, converted)."""
    out = []
    for arm, at, converted in fetch(session, _TIMED, campaign=campaign):
        moment = aware(at)
        assert moment is not None  # claimed_at is never empty
        out.append((str(arm), moment, bool(converted)))
    return out


def timing_arms(session: Session, *, campaign: str) -> dict[str, tuple[int, int]]:
    """Sends of the campaign's `send_time: best` nodes by arm: (sends, conversions)."""
    return {arm: (int(n), int(k)) for arm, n, k in fetch(session, _BY_ARM, campaign=campaign)}
