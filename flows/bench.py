"""The Prefect leg of `campaign bench`: the tick flow against the direct service call.

Both legs tick the same campaign over identical fresh databases in the same run;
the flow runs on the API in `PREFECT_API_URL`, or Prefect's ephemeral one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prefect import flow

from flows.demo import quiet_prefect
from flows.tick import run_tick
from orchestrator.app.service import CampaignLoad, Context
from orchestrator.app.ticking import tick_campaign


@flow(name="campaign-bench-warmup")
def _warmup() -> None:
    """Starts the (ephemeral) API before anything is timed."""


def direct_tick(ctx: Context, load: CampaignLoad, *, now: datetime, batch_size: int) -> int:
    report = tick_campaign(ctx, load, now=now, batch_size=batch_size)
    return int(report.outcomes.get("delivered", 0))


def prefect_leg(
    prepare: Callable[[str], tuple[Context, CampaignLoad, Callable[[], None]]],
    *,
    now: datetime,
    batch_size: int,
    expected: int,
) -> dict[str, Any]:
    """Sends/s of the direct tick and of the tick flow, and the flow's idle tick, in seconds."""
    quiet_prefect()
    _warmup()
    ctx, load, close = prepare("direct")
    try:
        started = time.perf_counter()
        delivered = direct_tick(ctx, load, now=now, batch_size=batch_size)
        direct = time.perf_counter() - started
        assert delivered == expected, f"direct: {delivered} of {expected} delivered"
    finally:
        close()
    ctx, load, close = prepare("prefect")
    try:
        assert load.loaded is not None and load.loaded.campaign is not None
        started = time.perf_counter()
        summary = run_tick(
            campaign=load.path.stem, now=now.isoformat(), batch_size=batch_size, ctx=ctx
        )
        through_flow = time.perf_counter() - started
        delivered = int(summary["outcomes"].get("delivered", 0))
        assert delivered == expected, f"flow: {delivered} of {expected} delivered"
        started = time.perf_counter()
        idle = run_tick(
            campaign=load.path.stem, now=now.isoformat(), batch_size=batch_size, ctx=ctx
        )
        idle_s = time.perf_counter() - started
        assert idle["sends"] == 0, idle
    finally:
        close()
    return {
        "direct_tick_sends_per_s": round(expected / direct, 1),
        "prefect_tick_sends_per_s": round(expected / through_flow, 1),
        "prefect_vs_direct": round(direct / through_flow, 2),
        "prefect_idle_tick_s": round(idle_s, 3),
    }
