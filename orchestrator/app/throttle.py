"""Throttling: a campaign's `settings.rate_limit` and the installation's
`CAMPAIGN_MAX_SENDS_PER_MINUTE`, counted over the sends ledger and kept by the tick's
claims (`ticking.claim_batch`, paced by `pacing.paced_batches`; docs/engine.md,
"Throttling").

A limit is a `Pace`, two sliding windows over the ledger's `claimed_at`: the **limit
window** (at most the rate's sends in any minute; in any hour for a rate that is not a
whole number a minute) and the **step window** (`k` sends in any `k / rate` seconds,
with `k / rate` between STEP_MIN_S and STEP_MAX_S where the rate allows, one second
for a rate written per second, `k` at most the batch size), so that a tick claims batches no faster than the rate instead of a
minute's sends at once. Before each claim, in the claim's transaction, `Throttle.room`
counts what the windows hold and the claim takes at most what is left; with nothing
left, the tick waits (on its `Clock`) until the oldest send counted leaves a full
window, unless that moment is at or after the campaign's next scheduled tick: then the
journeys still due keep their place for that tick (`Throttle.hold`, counted as deferred
with reason `rate_limit`).

The installation's limit is shared: each claim counts the sends of every campaign, and
a campaign may hold at most `ceil(cap / n)` of either window, n being the campaigns with
a journey due that are neither paused nor stopped (itself included).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from orchestrator.config import Config
from orchestrator.language.spec import Campaign
from orchestrator.store import repo
from orchestrator.store.db import Session

RATE_LIMIT = "rate_limit"  # the reason of a deferral by a limit
STEP_MIN_S = 1.0  # the step window's length where the rate allows
STEP_MAX_S = 5.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ time


class Clock(Protocol):
    """What a tick's waits run on: seconds that only go forward, and a way to let them pass."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The process's own clock: a wait sleeps."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass
class VirtualClock:
    """Time that passes only when it is slept: a wait returns at once, later (the
    simulator's clock, the benchmark's and the tests')."""

    seconds: float = 0.0
    sleeps: int = 0

    def monotonic(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.seconds += seconds
            self.sleeps += 1


class Timeline:
    """A tick's moments: its `now`, plus the time its clock has run since the tick began."""

    def __init__(self, now: datetime, clock: Clock) -> None:
        self.start = now
        self.clock = clock
        self.origin = clock.monotonic()
        self._latest = now

    def moment(self) -> datetime:
        at = self.start + timedelta(seconds=self.clock.monotonic() - self.origin)
        self._latest = max(self._latest, at)
        return self._latest

    def wait_until(self, until: datetime) -> None:
        delay = (until - self.moment()).total_seconds()
        if delay > 0:
            self.clock.sleep(delay)
        self._latest = max(self._latest, until)


def next_tick(campaign: Campaign, *, after: datetime) -> datetime:
    """When the campaign's schedule (`settings.tick_cron`, in `settings.timezone`) next
    starts a tick after `after`."""
    local = after.astimezone(ZoneInfo(campaign.settings.timezone))
    following: datetime = croniter(campaign.settings.tick_cron, local).get_next(datetime)
    return following.astimezone(UTC)


# ------------------------------------------------------------------ paces


@dataclass(frozen=True)
class Window:
    """At most `cap` sends claimed in any `length`."""

    cap: int
    length: timedelta


@dataclass(frozen=True)
class Pace:
    limit: Window
    step: Window


def pace(count: int, seconds: int, *, batch_size: int) -> Pace:
    """`count` sends per `seconds` as a limit window and a step window."""
    if count * 60 % seconds == 0:
        limit = Window(count * 60 // seconds, timedelta(minutes=1))
    elif count * 3600 % seconds == 0:
        limit = Window(count * 3600 // seconds, timedelta(hours=1))
    else:
        limit = Window(count, timedelta(seconds=seconds))
    per_second = count / seconds
    # a rate written per second is kept per second: a push service counts it so
    target = (
        STEP_MIN_S if seconds == 1 else min(max(batch_size / per_second, STEP_MIN_S), STEP_MAX_S)
    )
    k = max(1, min(batch_size, limit.cap, round(per_second * target)))
    return Pace(limit, Window(k, timedelta(seconds=k * seconds / count)))


# ------------------------------------------------------------------ a campaign's limits


@dataclass
class Throttle:
    """One campaign's limits during one tick: its own (`own`) and the installation's
    (`shared`), the tick's `timeline`, and the moment its next scheduled tick starts
    (`deadline`), after which no wait may end."""

    campaign: str
    own: Pace | None
    shared: Pace | None
    timeline: Timeline
    deadline: datetime
    held: Counter[str] = field(default_factory=Counter)  # node: journeys left due, at the end
    waits: int = 0

    def room(self, s: Session, *, now: datetime, wanted: int) -> tuple[int, datetime | None]:
        """How many journeys the claim at `now` may take (at most `wanted`), and when it may
        take none while a journey is due, the moment a window has room again. In the
        claim's transaction, before it claims: the lock keeps the next claim under the
        same limit from counting before this one's ledger rows commit."""
        if self.shared is not None:
            repo.lock_pace(s, "installation")
        if self.own is not None:
            repo.lock_pace(s, f"campaign:{self.campaign}")
        free = wanted
        wakes: list[datetime] = []

        def fit(window: Window, tally: repo.Tally) -> None:
            nonlocal free
            left = window.cap - tally.count
            if left <= 0 and tally.oldest is not None:
                wakes.append(tally.oldest + window.length)
            free = min(free, max(left, 0))

        if self.own is not None:
            mine = repo.ledger_window(
                s,
                campaigns=[self.campaign],
                own=self.campaign,
                since=now - self.own.limit.length,
                recent=now - self.own.step.length,
            )
            fit(self.own.limit, mine.wide)
            fit(self.own.step, mine.narrow)
        if self.shared is not None:
            names = sorted({*repo.campaign_names(s), self.campaign})
            sharing = len({*repo.campaigns_due(s, now=now), self.campaign})
            every = repo.ledger_window(
                s,
                campaigns=names,
                own=self.campaign,
                since=now - self.shared.limit.length,
                recent=now - self.shared.step.length,
            )
            fit(self.shared.limit, every.wide)
            fit(self.shared.step, every.narrow)
            fit(share(self.shared.limit, sharing), every.own_wide)
            fit(share(self.shared.step, sharing), every.own_narrow)
        if free > 0:
            return free, None
        due = repo.next_claim(s, campaign=self.campaign)
        if due is None or due > now:
            return 0, None  # nothing is due: nothing is held back
        return 0, max(wakes) if wakes else now + timedelta(seconds=STEP_MIN_S)

    def hold(self, s: Session, *, now: datetime) -> datetime:
        """The journeys still due at `now` wait for the next tick, in their order: each is
        counted deferred (`deferred` and `deferred:rate_limit` at its node) once for each
        time it falls due, however many ticks hold it back; `held` is all of them. Returns
        the moment up to which earlier ticks counted them (those due after it are new)."""
        key = _held_key(self.campaign)
        stored = repo.setting(s, key)
        after = datetime.fromisoformat(stored) if stored else _EPOCH
        counts: Counter[tuple[str, str]] = Counter()
        for node, (due, new) in repo.due_by_node(
            s, campaign=self.campaign, now=now, after=after
        ).items():
            self.held[node] += due
            counts[(node, "deferred")] += new
            counts[(node, f"deferred:{RATE_LIMIT}")] += new
        repo.bump(s, campaign=self.campaign, counts=counts)
        repo.put_setting(s, key, max(after, now).isoformat())
        return after


def share(window: Window, campaigns: int) -> Window:
    """One campaign's share of an installation window among `campaigns`."""
    return Window(math.ceil(window.cap / max(campaigns, 1)), window.length)


def _held_key(campaign: str) -> str:
    return "rate-limit-held:" + hashlib.sha256(campaign.encode()).hexdigest()[:40]


def throttle_for(
    config: Config,
    campaign: Campaign,
    *,
    timeline: Timeline,
    batch_size: int,
) -> Throttle | None:
    """The campaign's limits for a tick on `timeline`; None when neither the campaign nor the
    installation has one."""
    rate = campaign.settings.rate_limit
    own = pace(rate.count, rate.seconds, batch_size=batch_size) if rate is not None else None
    installation = config.max_sends_per_minute
    shared = pace(installation, 60, batch_size=batch_size) if installation else None
    if own is None and shared is None:
        return None
    return Throttle(
        campaign.campaign,
        own,
        shared,
        timeline,
        deadline=next_tick(campaign, after=timeline.start),
    )
