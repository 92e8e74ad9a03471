"""`campaign bench-experiments`' bandit run: does a bandit split move its journeys to the
better arm, and what does that gain?

Subscribers sign up at random moments over `weeks` (a population file, one `signup`
each); each signup starts a journey at a bandit split (`mode: bandit`, `explore: 10%`)
between two notifications the simulator converts at 10 % (`a`) and 14 % (`b`), simulated
through the real tick. The same population then goes through a plain 50/50 split of the
same campaign id, so the weights' hash routes the explored journeys alike and the
simulator's draws (keyed by subscriber, node, step and moment) are shared wherever the
two runs agree. The figures: each arm's share of the entries of every simulated week
(from the trace), each arm's entries and conversions, the conversions of both runs and
their difference, and the gain the bandit's allocation is worth at the true rates
(without the draws' noise), beside the most any allocation could gain.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.sim.simulate import simulate

CAMPAIGN = """
campaign: bandit
title: Bandit
goal: click
settings: {{window: 1d, followup_cap: 0}}
subcampaigns:
  signups:
    trigger: {{event: signup}}
    start: pick
    nodes:
      pick: {{split: {split}}}
      a: {{notification: {{title: A, url: "https://example.com/a"}}}}
      b: {{notification: {{title: B, url: "https://example.com/b"}}}}
"""
BANDIT_SPLIT = "{arms: {a: 50, b: 50}, mode: bandit, explore: 10%}"
EVEN_SPLIT = "{a: 50, b: 50}"
RATES = {"a": 0.10, "b": 0.14}
WEEK = timedelta(days=7)


def bench_bandit(
    folder: Path, *, journeys: int, weeks: int, start: datetime, seed: int = 1
) -> dict[str, Any]:
    """The bandit's figures, its files and traces in `folder`."""
    started = time.perf_counter()
    population = folder / "signups.jsonl"
    _population(population, journeys=journeys, weeks=weeks, start=start, seed=seed)
    bandit = _run(folder / "bandit", BANDIT_SPLIT, population, start=start, seed=seed)
    even = _run(folder / "even", EVEN_SPLIT, population, start=start, seed=seed)
    entered = {arm: bandit["arms"][arm][0] for arm in RATES}
    uniform = journeys * sum(RATES.values()) / len(RATES)
    shares = bandit["weeks"]
    return {
        "journeys": journeys,
        "weeks": weeks,
        "true_rates": RATES,
        "explore": 0.10,
        "share_by_week": shares,
        "arms": {arm: {"entered": n, "converted": k} for arm, (n, k) in bandit["arms"].items()},
        "conversions": bandit["conversions"],
        "even_split_conversions": even["conversions"],
        "gained": bandit["conversions"] - even["conversions"],
        "expected_gain": round(sum(entered[a] * RATES[a] for a in RATES) - uniform, 1),
        "best_possible_gain": round(journeys * max(RATES.values()) - uniform, 1),
        "leans_to_better": entered["b"] > entered["a"],
        "wall_s": round(time.perf_counter() - started, 2),
    }


def _population(path: Path, *, journeys: int, weeks: int, start: datetime, seed: int) -> None:
    rng = random.Random(f"bandit:{seed}")
    span = (weeks * WEEK).total_seconds()
    with path.open("w", encoding="utf-8") as out:
        for i in range(journeys):
            at = start + timedelta(seconds=rng.uniform(0, span))
            event = {"name": "signup", "at": at.isoformat(), "properties": {}}
            line = {"id": f"sub-{i:06d}", "timezone": "UTC", "events": [event]}
            out.write(json.dumps(line) + "\n")


def _run(folder: Path, split: str, population: Path, *, start: datetime, seed: int) -> Any:
    """One simulation: conversions, each arm's [entered, converted], and each week's
    entries with each arm's share."""
    folder.mkdir()
    path = folder / "bandit.yaml"
    path.write_text(CAMPAIGN.format(split=split), encoding="utf-8")
    trace = folder / "trace.jsonl"
    result = simulate(
        path,
        population=population,
        seed=seed,
        rates=RATES,
        start=start,
        resolution=timedelta(hours=1),
        trace=trace,
    )
    by_week: dict[int, dict[str, int]] = {}
    with trace.open(encoding="utf-8") as lines:
        for raw in lines:
            line = json.loads(raw)
            if line["type"] == "route" and line["node"] == "pick":
                week = (datetime.fromisoformat(line["t"]) - start) // WEEK
                tally = by_week.setdefault(week, dict.fromkeys(RATES, 0))
                tally[line["to"]] += 1
    weeks = []
    for week, tally in sorted(by_week.items()):
        total = sum(tally.values())
        weeks.append(
            {"week": week, "entries": total, **{a: round(n / total, 3) for a, n in tally.items()}}
        )
    assert result.experiments is not None
    arms = result.experiments["pick"]["arms"]
    return {
        "conversions": result.conversions,
        "arms": {arm: (arms[arm][0], arms[arm][2]) for arm in RATES},
        "weeks": weeks,
    }
