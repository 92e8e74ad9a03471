"""`campaign soak`: every example campaign simulated over a large population, checked.

For each campaign file of the graphs folder: `simulate` (the real engine and storage on
a virtual clock, the population split over worker processes) until every journey has
ended, with the trace written to a temporary file; the trace is then read back in time
order and every journey is checked against the engine's invariants
(`orchestrator.engine.invariants`), holding only journeys in flight. Memory is reported as
this process's resident set at the start and at the end, and the workers' peak.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.engine.invariants import TraceChecker
from orchestrator.errors import CampaignError
from orchestrator.language import loader
from orchestrator.sim.population import synthesize
from orchestrator.sim.simulate import simulate


def rss_mb() -> float:
    """This process's resident set now (not its peak)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def soak(
    graphs: Path,
    *,
    subscribers: int = 100_000,
    seed: int = 0,
    start: datetime,
    resolution: timedelta = timedelta(hours=1),
    default_rate: float = 0.1,
) -> dict[str, Any]:
    files = sorted(graphs.glob("*.yaml"))
    if not files:
        raise CampaignError(f"no campaign files in {graphs}")
    began, rss_start = time.perf_counter(), rss_mb()
    campaigns = []
    for path in files:
        loaded = loader.load(path)
        if loaded.campaign is None:
            raise CampaignError(f"{path} does not validate")
        with tempfile.TemporaryDirectory(prefix="campaign-soak-") as tmp:
            trace = Path(tmp) / "trace.jsonl"
            result = simulate(
                path,
                subscribers=subscribers,
                seed=seed,
                default_rate=default_rate,
                start=start,
                trace=trace,
                resolution=resolution,
            )
            people = synthesize(loaded.campaign, count=subscribers, seed=seed, start=start)
            checker = TraceChecker(
                loaded.campaign, {str(p["id"]): str(p.get("timezone", "UTC")) for p in people}
            )
            del people
            with trace.open(encoding="utf-8") as lines:
                checker.feed(json.loads(line) for line in lines)
            unended = checker.finish()
        campaigns.append(
            {
                "campaign": result.campaign,
                "subscribers": result.subscribers,
                "virtual_days": round((result.end - result.start).total_seconds() / 86400, 1),
                "journeys": checker.journeys,
                "steps": result.steps,
                "sent": result.sends,
                "conversions": result.conversions,
                "steps_per_s": round(result.steps / result.seconds, 1) if result.seconds else None,
                "unfinished_journeys": result.unfinished + unended,
                "invariant_violations": len(checker.problems) - unended,
                "first_problems": checker.problems[:5],
                "rss_mb_after": rss_mb(),
            }
        )
    rss_end = rss_mb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "subscribers_per_campaign": subscribers,
        "campaigns": campaigns,
        "journeys": sum(c["journeys"] for c in campaigns),
        "steps": sum(c["steps"] for c in campaigns),
        "unfinished_journeys": sum(c["unfinished_journeys"] for c in campaigns),
        "invariant_violations": sum(c["invariant_violations"] for c in campaigns),
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "worker_peak_rss_mb": round(children, 1),
        "seconds": round(time.perf_counter() - began, 1),
        "ok": all(
            c["unfinished_journeys"] == 0 and c["invariant_violations"] == 0 for c in campaigns
        ),
    }
