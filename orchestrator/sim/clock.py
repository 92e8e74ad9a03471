"""The simulation's clock: when a campaign next has anything due (`NextMoment`), and the
virtual ticks it moves by (`ceil_to`)."""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import Any

from orchestrator.app.broadcasts import broadcast_window
from orchestrator.language.spec import Campaign
from orchestrator.store import repo


class NextMoment:
    """When anything is next due: a journey, a trigger event after `now`, or a broadcast's
    first moment (`schedule: once …`, in the earliest timezone) before it has come.

    Trigger events are read once, and after that only the ones stored since (by id:
    the events table only grows during a simulation or a demo); their times wait in
    a heap. Asking SQL for `min(at) … at > now` instead read every later event of
    those names at every virtual tick (no index serves it: an (name, at) index
    would mislead SQLite's plans for segment event rules)."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign.campaign
        self.triggers = sorted(
            {sub.trigger.event for sub in campaign.subcampaigns.values() if sub.trigger}
        )
        self.read_to = 0  # the last event id looked at
        self.later: list[datetime] = []  # trigger times after the last `now` (a heap)
        moment = campaign.settings.broadcast_at
        self.broadcast = broadcast_window(moment)[0] if moment is not None else None

    def __call__(self, ctx: Any, *, now: datetime) -> datetime | None:
        with ctx.session() as s:
            due = repo.next_claim(s, campaign=self.campaign)
            if self.triggers:
                for event_id, at in repo.event_times(s, self.triggers, after_id=self.read_to):
                    self.read_to = event_id
                    heapq.heappush(self.later, at)
        while self.later and self.later[0] <= now:
            heapq.heappop(self.later)
        if self.broadcast is not None and self.broadcast <= now:
            self.broadcast = None  # the tick at `now` has broadcast
        moments = self.later[:1] + ([due] if due is not None else [])
        if self.broadcast is not None:
            moments.append(self.broadcast)
        return min(moments, default=None)


def ceil_to(moment: datetime, *, start: datetime, step: timedelta) -> datetime:
    steps = -(-(moment - start) // step)
    return start + steps * step
