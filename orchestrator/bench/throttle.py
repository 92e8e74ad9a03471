"""`campaign bench-throttle`: a launch under a rate limit, on virtual time.

Imports N subscribers (`bench.scale`'s population) into a fresh database and ticks a
one-notification campaign with `settings.rate_limit` on its schedule (every five
minutes) on a virtual clock (`throttle.VirtualClock`: a tick's waits for room pass at
once) until a tick holds nothing back. Sends go to a counting sink. Then the ledger is
checked: every subscriber has exactly one send (none lost, none doubled), and no stretch
of the limit's own window (a minute; an hour for a rate that is not a whole number a
minute) holds more sends than the limit allows.

Prints `{"subscribers", "rate", "per_minute", "db", "ticks", "sends", "virtual_minutes",
"first_send_s", "last_send_s", "max_per_clock_minute", "max_per_sliding_minute",
"limit_window_s", "max_in_limit_window", "lost", "doubled", "over_limit", "ok",
"import_s", "ticks_s", "wall_s"}` (interfaces spec).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter, deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.app.service import import_subscribers
from orchestrator.app.throttle import RATE_LIMIT, VirtualClock, next_tick, pace
from orchestrator.app.ticking import tick
from orchestrator.bench.scale import T0, fresh_world
from orchestrator.language import loader
from orchestrator.language.spec import parse_rate
from orchestrator.store import repo

CAMPAIGN = """
campaign: bench-throttle
title: Bench throttle
goal: signup
settings: {window: 1d, followup_cap: 0, rate_limit: RATE}
segments:
  everyone: {match: {attr: plan, exists: true}}
subcampaigns:
  all:
    segment: everyone
    start: launch
    nodes:
      launch:
        notification:
          title: "Hello {{ subscriber.attributes.first_name | default('there') }}"
          body: "A launch that reaches everyone at the rate the site can take."
          url: https://example.com/launch
"""
MAX_TICKS = 100_000


def bench_throttle(
    *, subscribers: int, rate: str = "10000/min", db_url: str | None = None, batch_size: int = 500
) -> dict[str, Any]:
    limit = parse_rate(rate)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        ctx, delivery, people, url = fresh_world(
            Path(tmp),
            name="bench-throttle",
            campaign=CAMPAIGN.replace("RATE", str(limit)),
            subscribers=subscribers,
            db_url=db_url,
        )
        importing = time.perf_counter()
        report = import_subscribers(ctx, people, batch_size=5000)
        assert not report.bad, report.bad[:3]
        import_s = time.perf_counter() - importing
        campaign = loader.load(ctx.config.graphs / "bench-throttle.yaml").campaign
        assert campaign is not None
        ticking = time.perf_counter()
        now, ticks = T0, 0
        while ticks < MAX_TICKS:
            done = tick(ctx, now=now, batch_size=batch_size, clock=VirtualClock())
            ticks += 1
            assert not done.failed and not done.refused, (done.failed, done.refused)
            if not sum(c.steps[f"deferred:{RATE_LIMIT}"] for c in done.campaigns):
                break  # nothing held back: every journey due has been claimed
            now = next_tick(campaign, after=now)
        ticks_s = time.perf_counter() - ticking
        with ctx.session() as s:
            sends, reached, moments = repo.sends_by_moment(s, campaign="bench-throttle")
        ctx.engine.dispose()
    per_minute = limit.per_minute
    clock_minutes = Counter[int]()
    for at, n in moments:
        clock_minutes[int((at - T0).total_seconds() // 60)] += n
    sliding = most_in_a_window(moments, timedelta(minutes=1))
    window = pace(limit.count, limit.seconds, batch_size=batch_size).limit  # its own window
    in_window = most_in_a_window(moments, window.length)
    last = (moments[-1][0] - T0).total_seconds() if moments else 0.0
    figures = {
        "subscribers": subscribers,
        "rate": str(limit),
        "per_minute": per_minute,
        "db": "postgresql" if url.startswith("postgresql") else "sqlite",
        "ticks": ticks,
        "sends": sends,
        "delivered": delivery.sent,
        # clock minutes from the first tick's start through the last send's
        "virtual_minutes": math.floor(last / 60) + 1 if moments else 0,
        "first_send_s": (moments[0][0] - T0).total_seconds() if moments else None,
        "last_send_s": last,
        "max_per_clock_minute": max(clock_minutes.values(), default=0),
        "max_per_sliding_minute": sliding,
        "limit_window_s": window.length.total_seconds(),
        "max_in_limit_window": in_window,
        "lost": subscribers - reached,
        "doubled": sends - reached,
        "over_limit": in_window > window.cap,
        "import_s": round(import_s, 2),
        "ticks_s": round(ticks_s, 2),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    figures["ok"] = (
        figures["lost"] == 0
        and figures["doubled"] == 0
        and not figures["over_limit"]
        and delivery.sent == subscribers
    )
    return figures


def most_in_a_window(moments: list[tuple[datetime, int]], length: timedelta) -> int:
    """The most sends in any window (t - length, t], from (moment, sends) in time order."""
    inside: deque[tuple[datetime, int]] = deque()
    total = best = 0
    for at, n in moments:
        inside.append((at, n))
        total += n
        while inside[0][0] <= at - length:
            total -= inside.popleft()[1]
        best = max(best, total)
    return best
