"""`campaign bench-experiments`: do the experiments' statistics find a true lift, and do
they keep their false-positive rate when there is none?

- **Known lift**: a 50/50 split simulated through the real tick (`campaign simulate`)
  with conversion rates 10 % (control) and 12 % (b) over `journeys` subscribers, its
  plan each arm's first 45 % of them; the report is the judged experiment's own figures
  (is b named the winner, does the lift's interval hold the true 2 points).
- **A/A through the pipeline**: the same split at 10 % in both arms, `pipeline_seeds`
  simulations of `journeys / 4` subscribers, each judged: how many declare a difference.
- **A/A at scale**: `seeds` draws of binomial outcomes (numpy, seeded) for two and for
  three arms of `journeys / arms` each at 10 %, judged by the same functions
  (`experiment_stats`: score test, Holm): the share that declares any difference, with
  its 95 % Wilson interval. It should hold the stated 5 %.
- **Peeking**: `seeds` A/A tests of two arms looked at 20 times as their journeys come
  in: the share a reader who stops at the first look below alpha declares, against the
  fixed horizon's (the last look only). It shows what the experiment page's "not yet"
  prevents.
- **Bandit** (`bench.bandit`): `bandit_journeys` signups over `bandit_weeks` weeks into a
  bandit split of 10 % against 14 %, simulated through the tick: each arm's share of
  every week's entries, and the conversions gained over a 50/50 split of the same
  journeys. It should lean to the better arm.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.app import experiment_stats as stats
from orchestrator.bench.bandit import bench_bandit
from orchestrator.sim.simulate import simulate

CAMPAIGN = """
campaign: known-lift
title: Known lift
goal: click
settings: {window: 1d, followup_cap: 0}
segments:
  everyone: {match: {attr: first_name, exists: true}}
subcampaigns:
  all:
    segment: everyone
    start: test
    nodes:
      test: {split: {arms: {control: 50, b: 50}, plan: {journeys: PLANNED}}}
      control: {notification: {title: Control, url: "https://example.com/a"}}
      b: {notification: {title: B, url: "https://example.com/b"}}
"""
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BASE, LIFTED = 0.10, 0.12


def bench_experiments(
    *,
    journeys: int = 20_000,
    seeds: int = 1_000,
    pipeline_seeds: int = 10,
    bandit_journeys: int = 20_000,
    bandit_weeks: int = 4,
) -> dict[str, Any]:
    """The figures of every run; `bandit_journeys` 0 leaves the bandit out."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        known = _simulated(Path(tmp), journeys, {"control": BASE, "b": LIFTED}, seed=1)
        lift = known["lifts"][0]
        found = {
            "journeys": journeys,
            "planned_per_arm": known["planned_per_arm"],
            "status": known["status"],
            "true_difference": round(LIFTED - BASE, 4),
            "arms": {a["arm"]: [a["measured"], a["converted"]] for a in known["arms"]},
            "difference": lift["difference"],
            "low": lift["low"],
            "high": lift["high"],
            "p_adjusted": stats.format_p(lift["p_adjusted"]),
            "found": known["leader"] == "b",
            "interval_holds_truth": lift["low"] <= LIFTED - BASE <= lift["high"],
            "sentences": known["sentences"],
        }
        declared = sum(
            any(
                one["significant"]
                for one in _simulated(
                    Path(tmp), journeys // 4, {"control": BASE, "b": BASE}, seed=100 + s
                )["lifts"]
            )
            for s in range(pipeline_seeds)
        )
        bandit = (
            bench_bandit(Path(tmp), journeys=bandit_journeys, weeks=bandit_weeks, start=START)
            if bandit_journeys
            else None
        )
    figures = {
        "known_lift": found,
        "aa_pipeline": {"runs": pipeline_seeds, "journeys": journeys // 4, "declared": declared},
        "aa_two_arms": _aa(seeds, arms=2, journeys=journeys),
        "aa_three_arms_holm": _aa(seeds, arms=3, journeys=journeys),
        "aa_peeking": _peeking(seeds, looks=PEEKS, journeys=journeys),
        **({"bandit": bandit} if bandit is not None else {}),
        "alpha": stats.ALPHA,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    figures["ok"] = bool(
        found["found"]
        and found["interval_holds_truth"]
        and figures["aa_two_arms"]["low"] <= stats.ALPHA  # type: ignore[index]
        and figures["aa_three_arms_holm"]["low"] <= stats.ALPHA  # type: ignore[index]
        and (bandit is None or bandit["leans_to_better"])
    )
    return figures


def _simulated(folder: Path, subscribers: int, rates: dict[str, float], *, seed: int) -> Any:
    """The split's experiment, judged: planned at 45 % of the population per arm, which
    each arm of a 50/50 split reaches with room to spare."""
    path = folder / "known-lift.yaml"
    planned = max(1, int(subscribers * 0.45))
    path.write_text(CAMPAIGN.replace("PLANNED", str(planned)), encoding="utf-8")
    result = simulate(
        path, subscribers=subscribers, seed=seed, rates=rates, start=START, resolution=_HOUR
    )
    experiment = result.as_dict()["experiments"][0]
    if experiment["status"] != "judged":
        raise RuntimeError(f"the benchmark's split is not judged: {experiment['sentences']}")
    return experiment


def _aa(seeds: int, *, arms: int, journeys: int) -> dict[str, Any]:
    """`seeds` A/A tests of `arms` arms at BASE, `journeys / arms` each: how many declare a
    difference (any Holm-corrected comparison with the control below alpha)."""
    import numpy as np

    rng = np.random.default_rng(20_261_205)
    n = journeys // arms
    declared = 0
    for _ in range(seeds):
        k = rng.binomial(n, BASE, size=arms)
        lifts = [stats.lift(f"a{i}", int(k[i]), n, "control", int(k[0]), n) for i in range(1, arms)]
        declared += any(one.significant for one in stats.holm(lifts))
    rate = stats.rate(declared, seeds)
    return {
        "seeds": seeds,
        "per_arm": n,
        "declared": declared,
        "false_positive_rate": rate.rate,
        "low": rate.low,
        "high": rate.high,
    }


def _peeking(seeds: int, *, looks: int, journeys: int) -> dict[str, Any]:
    """`seeds` A/A tests of two arms at BASE, `journeys / 2` each, looked at `looks` times
    as their journeys come in: how many a reader who stops at the first look below alpha
    declares (peeking), against how many the fixed horizon declares (the last look
    only). Why the experiment page names no winner before the planned size."""
    import numpy as np

    rng = np.random.default_rng(20_261_206)
    n = journeys // 2
    step = n // looks
    peeked = fixed = 0
    for _ in range(seeds):
        k = np.cumsum(rng.binomial(step, BASE, size=(looks, 2)), axis=0)
        p = [
            stats.lift("b", int(k[i, 1]), step * (i + 1), "control", int(k[i, 0]), step * (i + 1))
            for i in range(looks)
        ]
        peeked += any(one.p_value is not None and one.p_value < stats.ALPHA for one in p)
        fixed += p[-1].p_value is not None and p[-1].p_value < stats.ALPHA
    peeking, judged = stats.rate(peeked, seeds), stats.rate(fixed, seeds)
    return {
        "seeds": seeds,
        "looks": looks,
        "per_arm": step * looks,
        "declared_peeking": peeked,
        "peeking_rate": peeking.rate,
        "peeking_low": peeking.low,
        "peeking_high": peeking.high,
        "declared_fixed_horizon": fixed,
        "fixed_horizon_rate": judged.rate,
        "fixed_horizon_low": judged.low,
        "fixed_horizon_high": judged.high,
    }


PEEKS = 20  # a daily look over about three weeks
_HOUR = timedelta(hours=1)
