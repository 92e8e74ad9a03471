"""How a journey begins: whether a subscriber may enter a campaign (re-entry, a journey
in flight), the holdout group that exits at once, the events a journey acts on, and the
state a new journey starts in at its sub-campaign's start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator.engine.machine import Action, JourneyState, Result, stable_fraction
from orchestrator.language.spec import Campaign, NotificationNode


def in_holdout(campaign: Campaign, subscriber_id: str) -> bool:
    holdout = campaign.settings.holdout
    return holdout > 0 and stable_fraction(campaign.campaign, subscriber_id, "holdout") < holdout


@dataclass(frozen=True)
class Past:
    """What a subscriber's earlier journeys in a campaign leave for a new one."""

    in_flight: bool = False  # one of them has not ended
    ended_at: datetime | None = None  # when the latest of them ended
    last_send_at: datetime | None = None  # the campaign's latest send to the subscriber


def may_enter(campaign: Campaign, past: Past | None, at: datetime) -> bool:
    """Whether an entry at `at` (a trigger event's own time, or the tick's for a segment)
    is allowed: never while a journey is in flight; after one has ended, only with
    `reentry` set and once `at` is that long after the end."""
    if past is None:
        return True
    if past.in_flight:
        return False
    reentry = campaign.settings.reentry
    if reentry is None:
        return False
    return past.ended_at is None or at >= past.ended_at + reentry


def wake_names(campaign: Campaign) -> frozenset[str]:
    """The events a journey of this campaign acts on: its `exit_on` events and its goals.
    A journey is woken at the time of the first one stored for its subscriber."""
    goals = {campaign.goal}
    goals.update(
        node.goal
        for node in campaign.all_nodes().values()
        if isinstance(node, NotificationNode) and node.goal
    )
    return frozenset(campaign.settings.exit_on) | frozenset(goals)


def enroll(
    *,
    campaign: Campaign,
    subcampaign: str,
    subscriber_id: str,
    at: datetime,
    trigger: dict[str, Any] | None = None,
    last_send_at: datetime | None = None,
) -> Result:
    """A new journey at the sub-campaign's start (or straight to the holdout exit).

    `last_send_at`: the campaign's latest send to this subscriber in an earlier journey;
    the new journey's first send keeps `spacing` from it."""
    sub = campaign.subcampaigns[subcampaign]
    delay = sub.trigger.delay if sub.trigger else timedelta(0)
    start = sub.start
    state = JourneyState(
        subscriber_id=subscriber_id,
        subcampaign=subcampaign,
        node=start,
        phase="arrive",
        due_at=at + delay,
        entered_at=at,
        trigger=trigger,
        last_send_at=last_send_at,
    )
    node = campaign.node(start)
    if isinstance(node, NotificationNode) and node.delay:
        state = replace(state, due_at=at + delay + node.delay)
    if in_holdout(campaign, subscriber_id):
        ended = replace(
            state, phase="ended", due_at=None, holdout=True, exit_reason="holdout", ended_at=at
        )
        return Result(
            ended,
            [
                Action("enroll", at, start, holdout=True),
                Action("exit", at, start, reason="holdout"),
            ],
        )
    return Result(state, [Action("enroll", at, start)])
