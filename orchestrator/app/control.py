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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.app.service import Context
from orchestrator.errors import CampaignError
from orchestrator.language.records import RecordError, check_text
from orchestrator.store import repo

RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"
STATE_AFTER = {"pause": PAUSED, "resume": RUNNING, "stop": STOPPED}
MAX_REASON = 1000
MAX_BY = 128


class ControlError(CampaignError):
    """An action that cannot be taken: an unknown campaign, or one already in that state."""


@dataclass(frozen=True)
class Control:
    campaign: str
    state: str
    at: datetime | None = None
    by: str = ""
    reason: str = ""

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
        }


def state(ctx: Context, campaign: str) -> Control:
    with ctx.session() as s:
        latest = repo.latest_action(s, campaign)
    if latest is None:
        return Control(campaign, RUNNING)
    return Control(
        campaign, STATE_AFTER[latest.action], repo.aware(latest.at), latest.by, latest.reason
    )


def sending(ctx: Context, campaign: str) -> bool:
    """Whether the campaign may enrol and send now (not paused, not stopped)."""
    return state(ctx, campaign).sending


def act(
    ctx: Context, campaign: str, action: str, *, by: str, reason: str, now: datetime
) -> tuple[Control, dict[str, int]]:
    """Take `action` (pause, resume, stop); the new state, and for a stop the journeys it
    ended at each node."""
    if action not in STATE_AFTER:
        raise ControlError(f"{action!r}: the actions are pause, resume and stop")
    try:
        by = check_text(by, "by", max_chars=MAX_BY, what="who acts")
        reason = (
            check_text(reason, "reason", max_chars=MAX_REASON, what="the reason") if reason else ""
        )
    except RecordError as exc:
        raise ControlError(str(exc)) from None
    ended: dict[str, int] = {}
    with ctx.session() as s, s.begin():
        known = (ctx.config.graphs / f"{campaign}.yaml").exists() or (
            repo.latest_version(s, campaign) is not None
        )
        if not known:
            raise ControlError(f"{campaign!r}: no such campaign (no file, never ticked)")
        latest = repo.latest_action(s, campaign)
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
                }
            ]
        )
    return Control(campaign, wanted, now, by, reason), ended


def history(ctx: Context, campaign: str, *, limit: int = 20) -> list[dict[str, Any]]:
    """The campaign's latest actions, newest first."""
    with ctx.session() as s:
        rows = repo.actions(s, campaign, limit=limit)
        return [
            {
                "action": r.action,
                "at": (repo.aware(r.at) or r.at).isoformat(),
                "by": r.by,
                "reason": r.reason,
            }
            for r in rows
        ]
