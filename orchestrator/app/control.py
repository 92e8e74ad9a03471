"""Pause, resume and stop a whole campaign: `campaign pause|resume|stop`.

- **pause**: no enrolment and no sends from the next batch on (a tick reads the state
  before every batch it claims); journeys keep their place and their due times;
- **resume**: ticks go on where they were, due journeys in due order;
- **stop**: every journey in flight ends at once with reason `stopped`, and the campaign
  stays paused (no new journeys) until it is resumed.

Each action is recorded with who, when and why (`campaign_action`); the latest is the
campaign's state. An action that changes nothing (pausing a paused campaign, resuming a
running one, stopping a stopped one) is refused with the state it is in, and nothing is
written.

The same table holds a broadcast's records (`BROADCAST`, `MISSED`: written by the tick,
`orchestrator.app.enrolment`) and a split's promoted winner (`PROMOTE`:
`orchestrator.app.promote`); they are in the history and leave the state as it is.

Given a `ScheduleSwitch` (the caller's: the Prefect API is not this layer's), an action
also pauses (pause, stop) or resumes (resume) the campaign's deployment in Prefect, once
the action is recorded. The record stands whatever the switch says: a tick refuses to
enrol or send while the campaign is held, wherever it runs from.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from orchestrator.app.service import Context
from orchestrator.errors import CampaignError
from orchestrator.language.records import RecordError, check_text
from orchestrator.store import repo
from orchestrator.store.db import Session

RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"
STATE_AFTER = {"pause": PAUSED, "resume": RUNNING, "stop": STOPPED}
MAX_REASON = 1000
MAX_BY = 128

ScheduleSwitch = Callable[[str, bool], str]
"""`switch(campaign, running)`: pauses (`running` False) or resumes the campaign's
deployment, and says what became of it: `paused`, `resumed`, `not deployed`, or
`unreachable: why`. It never raises for an unreachable or unexpected server."""


class ControlError(CampaignError):
    """An action that cannot be taken: an unknown campaign, or one already in that state."""


@dataclass(frozen=True)
class Control:
    campaign: str
    state: str
    at: datetime | None = None
    by: str = ""
    reason: str = ""
    schedule: str | None = None  # what the ScheduleSwitch said; None without one

    @property
    def sending(self) -> bool:
        return self.state == RUNNING

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "state": self.state,
            "at": self.at.isoformat() if self.at else None,
            "by": self.by,
            "reason": self.reason,
            "schedule": self.schedule,
        }


def state(ctx: Context, campaign: str) -> Control:
    with ctx.session() as s:
        latest = repo.latest_state_action(s, campaign)
    if latest is None:
        return Control(campaign, RUNNING)
    return Control(
        campaign, STATE_AFTER[latest.action], repo.aware(latest.at), latest.by, latest.reason
    )


def sending(ctx: Context, campaign: str) -> bool:
    """Whether the campaign may enrol and send now (not paused, not stopped)."""
    return state(ctx, campaign).sending


_BY = re.compile(r"[^\x00-\x1f\x7f]+")  # shown on one line: no control characters
_REASON = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f]*")  # tab and newline allowed


def checked_words(by: str, reason: str) -> tuple[str, str]:
    """Who took an action and why, as recorded: `by` a name of at most MAX_BY characters
    without control characters, `reason` at most MAX_REASON (tab and newline allowed);
    ControlError otherwise."""
    try:
        by = check_text(
            by, "by", max_chars=MAX_BY, pattern=_BY, what="a name (no control characters)"
        )
        reason = (
            check_text(
                reason,
                "reason",
                max_chars=MAX_REASON,
                pattern=_REASON,
                what="a reason (no control characters but tab and newline)",
            )
            if reason
            else ""
        )
    except RecordError as exc:
        raise ControlError(str(exc)) from None
    return by, reason


def act(
    ctx: Context,
    campaign: str,
    action: str,
    *,
    by: str,
    reason: str,
    now: datetime,
    schedule: ScheduleSwitch | None = None,
) -> tuple[Control, dict[str, int]]:
    """Take `action` (pause, resume, stop); the new state (with what `schedule` did to the
    campaign's deployment, once the action is recorded), and for a stop the journeys it
    ended at each node."""
    if action not in STATE_AFTER:
        raise ControlError(f"{action!r}: the actions are pause, resume and stop")
    by, reason = checked_words(by, reason)
    ended: dict[str, int] = {}
    with ctx.session() as s, s.begin():
        known = (ctx.config.graphs / f"{campaign}.yaml").exists() or (
            repo.latest_version(s, campaign) is not None
        )
        if not known:
            raise ControlError(f"{campaign!r}: no such campaign (no file, never ticked)")
        latest = repo.latest_state_action(s, campaign)
        current = RUNNING if latest is None else STATE_AFTER[latest.action]
        wanted = STATE_AFTER[action]
        if current == wanted or (action == "pause" and current == STOPPED):
            raise ControlError(f"{campaign}: already {current}; nothing changed")
        repo.record_action(s, campaign=campaign, action=action, at=now, by=by, reason=reason)
        if action == "stop":
            ended = repo.end_journeys(s, campaign=campaign, reason="stopped", at=now)
            counts: Counter[tuple[str, str]] = Counter(
                {(node, "exit:stopped"): n for node, n in ended.items()}
            )
            repo.bump(s, campaign=campaign, counts=counts)
    switched = schedule(campaign, wanted == RUNNING) if schedule is not None else None
    if ctx.audit is not None:
        ctx.audit(
            [
                {
                    "t": now.isoformat(),
                    "type": action,
                    "campaign": campaign,
                    "by": by,
                    "reason": reason,
                    **({"ended": sum(ended.values())} if action == "stop" else {}),
                    **({"schedule": switched} if switched is not None else {}),
                }
            ]
        )
    return Control(campaign, wanted, now, by, reason, switched), ended


def history(ctx: Context, campaign: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """The campaign's latest actions, newest first (a broadcast's records and promotions
    among them, their reason in words)."""
    with ctx.session() as s:
        rows = repo.actions(s, campaign, limit=limit)
        return [
            {
                "action": r.action,
                "at": (repo.aware(r.at) or r.at).isoformat(),
                "by": r.by,
                "reason": _in_words(r),
            }
            for r in rows
        ]


PROMOTE = "promote"  # a split's winner promoted (`orchestrator.app.promote`)


def _in_words(row: Any) -> str:
    if row.action in BROADCAST_KINDS:
        return _record(row).sentence()
    if row.action == PROMOTE:
        details = row.details if isinstance(row.details, dict) else {}
        done = f"promoted {details.get('arm', '?')} on split {details.get('split', '?')}"
        return f"{done}: {row.reason}" if row.reason else done
    return str(row.reason)


# ------------------------------------------------------------------ broadcast records

BROADCAST, MISSED = "broadcast", "missed"
BROADCAST_KINDS = (BROADCAST, MISSED)
BY_TICK = "tick"


@dataclass(frozen=True)
class BroadcastRecord:
    """A tick's record of a broadcast (`settings.schedule: once …`): `broadcast` once a
    tick has claimed it, with its counts once its journeys are in; `missed` when the first
    tick came too late for every subscriber. The details are JSON in the action's reason."""

    id: int
    kind: str
    at: datetime  # the time of the tick that wrote it
    moment: str  # the schedule's moment as written after `once`
    value: datetime | None = None  # that moment read: naive (a wall-clock time) or in UTC
    enrolled: int | None = None  # None: claimed, its journeys not all in yet
    holdout: int | None = None
    late: int | None = None  # members not enrolled: their moment was too long before the tick

    @property
    def done(self) -> bool:
        return self.kind == BROADCAST and self.enrolled is not None

    def details(self) -> str:
        fields: dict[str, Any] = {"moment": self.moment}
        if self.value is not None:
            fields["value"] = self.value.isoformat()
        if self.enrolled is not None:
            fields.update(enrolled=self.enrolled, holdout=self.holdout or 0, late=self.late or 0)
        return json.dumps(fields)

    def sentence(self) -> str:
        """The record in words, for the history."""
        if self.kind == MISSED:
            return f"once {self.moment}: too late for every subscriber; nothing sent"
        if self.enrolled is None:
            return f"once {self.moment}: started, its journeys not all in yet"
        late = f", {self.late:,} too late" if self.late else ""
        return (
            f"once {self.moment}: {self.enrolled:,} enrolled ({self.holdout or 0:,} held out){late}"
        )


def _record(row: Any) -> BroadcastRecord:
    try:
        fields = json.loads(row.reason)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        fields = {}

    def count(key: str) -> int | None:
        value = fields.get(key)
        return value if isinstance(value, int) else None

    try:
        read: datetime | None = datetime.fromisoformat(str(fields.get("value")))
    except ValueError:
        read = None
    return BroadcastRecord(
        id=int(row.id),
        kind=str(row.action),
        at=repo.aware(row.at) or row.at,
        moment=str(fields.get("moment", "")),
        value=read,
        enrolled=count("enrolled"),
        holdout=count("holdout"),
        late=count("late"),
    )


def broadcast_records(s: Session, campaign: str) -> list[BroadcastRecord]:
    """The campaign's broadcast records, oldest first."""
    return [_record(row) for row in repo.actions_of(s, campaign, BROADCAST_KINDS)]


def write_broadcast(s: Session, campaign: str, record: BroadcastRecord) -> BroadcastRecord:
    """Store a new record (its `id` is ignored); the record with its id."""
    found = repo.add_action(
        s, campaign=campaign, action=record.kind, at=record.at, by=BY_TICK, reason=record.details()
    )
    return replace(record, id=found)


def update_broadcast(s: Session, record: BroadcastRecord) -> None:
    repo.update_action(s, record.id, at=record.at, reason=record.details())
