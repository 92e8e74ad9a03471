"""`campaign bench-faults`: every send of a large run ends delivered, pruned or failed.

A local push service in its own process answers a random 5 % of pushes 503, 2 % 429
with `Retry-After: 1`, 1 % 410 (and that subscription stays gone), each after a random
0–200 ms. The tick runs on a virtual clock, every two minutes (the retry backoff's
base), until no send waits for another attempt and no journey is due. Then the
figures are checked against each other: the ledger's outcomes add up to the sends,
what the ledger calls delivered is exactly what the push service accepted (counted
once per subscription and Topic), pruned subscribers' journeys have ended, and
nothing is left waiting.
"""

from __future__ import annotations

import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.app.ticking import tick_campaign, work_due
from orchestrator.bench.throughput import T0, ReceiverProcess, world
from orchestrator.delivery import Outcome
from orchestrator.push.vapid import VapidKey
from orchestrator.store import repo

STEP = timedelta(minutes=2)
MAX_TICKS = 120  # four virtual hours: far beyond the last retry (2+4+8+16 minutes)


def _faults(server_errors: float, rate_limited: float, gone: float) -> list[str]:
    """Receiver --fault options giving these overall shares (each fault is drawn only
    when the ones before it were not)."""
    out, left = [], 1.0
    for status, share, extra in (
        (503, server_errors, ""),
        (429, rate_limited, ":1"),
        (410, gone, ""),
    ):
        out += ["--fault", f"{status}:{share / left:.6f}{extra}"]
        left -= share
    return out


def bench_faults(
    *,
    sends: int = 100_000,
    server_errors: float = 0.05,
    rate_limited: float = 0.02,
    gone: float = 0.01,
    seed: int = 1,
    batch_size: int = 1000,
) -> dict[str, Any]:
    started = time.perf_counter()
    receiver = ReceiverProcess(
        100.0,
        "--jitter-ms",
        "100",  # 0–200 ms
        "--seed",
        str(seed),
        *_faults(server_errors, rate_limited, gone),
    )
    try:
        subs = receiver.subscriptions(sends)
        with tempfile.TemporaryDirectory(prefix="campaign-faults-") as tmp:
            folder = Path(tmp)
            key = VapidKey.generate()
            key.save(folder / "vapid.pem")
            ctx, load, close = world(subs, folder / "vapid.pem", receiver.origin, folder / "run")
            try:
                prepared = time.perf_counter()
                figures = _run(ctx, load, sends=sends, batch_size=batch_size)
                figures["seconds"] = round(time.perf_counter() - prepared, 1)
            finally:
                close()
        stats = receiver.stats()
    finally:
        receiver.close()
    answers = stats["by_status"]
    figures["push_service"] = {
        "requests": stats["requests"],
        "accepted": stats["delivered"],
        "accepted_distinct": stats["distinct"],
        "answered_503": answers.get("503", 0),
        "answered_429": answers.get("429", 0),
        "answered_410": answers.get("410", 0),
    }
    figures["duplicates"] = stats["delivered"] - stats["distinct"]
    figures["checks"] = {
        "outcomes_add_up": figures["delivered"] + figures["pruned"] + figures["failed"] == sends,
        "ledger_delivered_is_what_arrived": figures["delivered"] == stats["distinct"],
        "no_duplicates": figures["duplicates"] == 0,
        "pruned_journeys_ended": figures["pruned_journeys_ended"] == figures["pruned"],
        "nothing_waiting": figures["waiting"] == 0,
    }
    figures["ok"] = all(figures["checks"].values())
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def _run(ctx: Any, load: Any, *, sends: int, batch_size: int) -> dict[str, Any]:
    now, ticks = T0, 0
    while True:
        tick_campaign(ctx, load, now=now, batch_size=batch_size)
        ticks += 1
        due, again = work_due(ctx, campaign="bench", now=now + STEP)
        if not due and not again:
            break
        if ticks >= MAX_TICKS:
            break  # reported as waiting: the check fails
        now += STEP
    with ctx.session() as s:
        ledger = repo.ledger_summary(s)
    by_outcome, attempts = ledger["by_outcome"], ledger["attempts"]
    ended_gone, subscriptions = ledger["ended_gone"], ledger["subscriptions"]
    return {
        "sends": sends,
        "ledger_rows": sum(by_outcome.values()),
        "delivered": by_outcome.get(Outcome.DELIVERED, 0),
        "pruned": by_outcome.get(Outcome.GONE, 0),
        "failed": by_outcome.get(Outcome.FAILED, 0),
        "waiting": by_outcome.get(Outcome.CLAIMED, 0) + by_outcome.get(Outcome.RETRY, 0),
        "ledger_attempts": {str(k): v for k, v in sorted(attempts.items())},
        "pruned_journeys_ended": ended_gone,
        "subscriptions_left": subscriptions,
        "ticks": ticks,
        "virtual_minutes": int((now - T0).total_seconds() // 60),
    }
