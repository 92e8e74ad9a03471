"""`campaign simulate`: the real engine and storage on a virtual clock, no sends leaving the process.

A temporary SQLite database, a synthetic (or given) population, conversion
rates per node. The clock jumps to the next moment anything is due, in steps
of `resolution` (the scheduled deployment's tick). Same seed, same result.

A programme (`simulate_programme`) is several campaigns on one clock, one population
and one database: each virtual tick ticks every campaign in the order given, as the
production tick does, so the frequency cap counts every campaign's sends.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import multiprocessing
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.app.bandits import uses_bandit
from orchestrator.app.experiments import tallies_at_end
from orchestrator.app.sendtimes import uses_best
from orchestrator.app.service import (
    CampaignLoad,
    drawing_counts,
    load_current,
    open_context,
    status,
)
from orchestrator.app.ticking import tick_campaign
from orchestrator.config import Config
from orchestrator.errors import CampaignError
from orchestrator.language.records import (
    EventRecord,
)
from orchestrator.language.spec import Campaign, NotificationNode
from orchestrator.sim import inputs, programme
from orchestrator.sim.clock import NextMoment as NextMoment, ceil_to
from orchestrator.sim.inputs import (
    MAX_CAMPAIGNS as MAX_CAMPAIGNS,
    Curves,
    campaign_files as campaign_files,
    load_campaigns as load_campaigns,
)
from orchestrator.sim.response import weight
from orchestrator.sim.results import ProgrammeResult, SimulationResult, merge_results
from orchestrator.store import repo
from orchestrator.testing.fakes import RecordingDelivery

SEGMENT_ENROL_EVERY = timedelta(days=1)
MAX_TICKS = 200_000
SHARD_FROM = 4000  # subscribers from which the simulation runs on WORKERS processes
WORKERS = 2


@dataclass
class _Collector:
    lines: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, lines: list[dict[str, Any]]) -> None:
        self.lines.extend(lines)


def draw_conversions(
    campaign: Campaign,
    requests: list[Any],
    *,
    now: datetime,
    seed: int,
    rates: dict[str, float],
    default_rate: float,
    curves: Curves | None = None,
) -> list[EventRecord]:
    """The conversions of `requests` sent at `now`: each with its node's rate, times the
    subscriber's response at the local hour of `now` when they have a curve."""
    out = []
    for r in requests:
        # keyed by subscriber, node, step and moment (not the journey's row id), so a
        # subscriber converts the same way whichever worker simulates them
        rng = random.Random(f"{seed}:{r.subscriber_id}:{r.node}:{r.step}:{now.isoformat()}")
        rate = rates.get(r.node, default_rate)
        found = curves.get(r.subscriber_id) if curves else None
        if found is not None:
            rate = min(1.0, rate * weight(found[1], now, found[0]))
        if rng.random() >= rate:
            continue
        node = campaign.node(r.node)
        assert isinstance(node, NotificationNode)
        window = node.window or campaign.settings.window
        at = now + timedelta(seconds=rng.uniform(1, max(window.total_seconds() - 1, 2)))
        goal = node.goal or campaign.goal
        if goal == "click":
            out.append(EventRecord(r.subscriber_id, "click", at, {}, r.send_id))
        else:
            out.append(EventRecord(r.subscriber_id, goal, at, {"send": r.send_id}))
    return out


def default_workers(subscribers: int) -> int:
    """Worker processes for a population: fixed by its size (not by the machine), so the
    same seed gives the same result everywhere."""
    return 1 if subscribers < SHARD_FROM else WORKERS


def simulate(
    path: Path,
    *,
    subscribers: int = 1000,
    population: Path | None = None,
    seed: int = 0,
    rates: dict[str, float] | None = None,
    default_rate: float = 0.1,
    start: datetime,
    until: datetime | None = None,
    trace: Path | None = None,
    resolution: timedelta = timedelta(minutes=5),
    progress: Callable[[datetime, int], None] | None = None,
    workers: int | None = None,
    repeat_days: int = 0,
    active_hours: bool = False,
) -> SimulationResult:
    """Subscribers never share journey state, so the population is split by a stable hash
    of the subscriber id over `workers` processes, each with its own temporary SQLite
    and virtual clock; funnels and traces are merged. A bandit split (`mode: bandit`)
    learns from every subscriber's journeys, so a campaign with one runs in one process
    unless `workers` is given. `repeat_days`: synthetic subscribers repeat their trigger
    events and send exit events over that many days (`population.repeat`)."""
    return simulate_programme(
        [path],
        subscribers=subscribers,
        population=population,
        seed=seed,
        rates=rates,
        default_rate=default_rate,
        start=start,
        until=until,
        trace=trace,
        resolution=resolution,
        progress=progress,
        workers=workers,
        repeat_days=repeat_days,
        active_hours=active_hours,
        files_only=True,
    ).campaigns[0]


def simulate_programme(
    paths: list[Path],
    *,
    subscribers: int = 1000,
    population: Path | None = None,
    seed: int = 0,
    rates: dict[str, float] | None = None,
    default_rate: float = 0.1,
    start: datetime,
    until: datetime | None = None,
    trace: Path | None = None,
    resolution: timedelta = timedelta(minutes=5),
    progress: Callable[[datetime, int], None] | None = None,
    workers: int | None = None,
    repeat_days: int = 0,
    active_hours: bool = False,
    files_only: bool = False,
) -> ProgrammeResult:
    """The campaigns of `paths` (`campaign_files`; with `files_only`, the paths as they are)
    on one virtual clock, one database and one population, ticked in that order at every
    virtual tick until none has anything due (or `until`). The synthetic population is the
    union of each campaign's; a worker process holds all campaigns of its subscribers.
    Several campaigns get the programme's checks (`orchestrator.sim.programme`)."""
    files = list(paths) if files_only else inputs.campaign_files(paths)
    campaigns = inputs.load_campaigns(files)
    rates_of = inputs.rates_of(campaigns, rates or {})
    if population is not None and repeat_days:
        raise CampaignError("repeat days apply to the synthetic population, not to a file")
    if population is not None and active_hours:
        raise CampaignError(
            "--active-hours applies to the synthetic population; a population file gives "
            "each line's own active_hours or response"
        )
    lines = inputs.population_of(
        campaigns,
        path=population,
        count=subscribers,
        seed=seed,
        start=start,
        repeat_days=repeat_days,
        active_hours=active_hours,
    )
    # a bandit learns from every journey of its split, as from one database: one process
    bandit = any(uses_bandit(c) for c in campaigns)
    count = workers or (1 if bandit else default_workers(len(lines)))
    job = _Job(tuple(files), seed, tuple(rates_of), default_rate, start, until, resolution)
    with tempfile.TemporaryDirectory(prefix="campaign-sim-") as tmp:
        if count <= 1:
            share = _simulate_shard(
                job, lines, Path(tmp), trace=trace, progress=progress, campaigns=campaigns
            )
            shares, seconds = [share], share.seconds
        else:
            shares, seconds = _simulate_sharded(
                job, lines, Path(tmp), count=count, trace=trace, campaigns=campaigns
            )
    results = [merge_results([s.results[i] for s in shares]) for i in range(len(campaigns))]
    if count > 1 and len(campaigns) == 1:
        results[0].seconds = seconds  # the workers' wall time, not their sum
    parts = [s.part for s in shares if s.part is not None]
    return ProgrammeResult(
        results,
        sum(s.subscribers for s in shares),
        start,
        max(s.end for s in shares),
        resolution,
        ticks=max(s.ticks for s in shares),
        seconds=seconds,
        part=programme.merge(parts) if parts else None,
    )


@dataclass(frozen=True)
class _Job:
    paths: tuple[Path, ...]
    seed: int
    rates: tuple[dict[str, float], ...]  # per campaign
    default_rate: float
    start: datetime
    until: datetime | None
    resolution: timedelta


@dataclass
class _Share:
    """What one process simulated: its subscribers, every campaign."""

    results: list[SimulationResult]  # per campaign, in the job's order
    subscribers: int
    ticks: int
    end: datetime
    seconds: float
    part: programme.Part | None


def _shard_of(line: Any, count: int) -> int:
    sid = str(line.get("id", "")) if isinstance(line, dict) else ""
    return int.from_bytes(hashlib.blake2b(sid.encode(), digest_size=4).digest(), "big") % count


def _simulate_sharded(
    job: _Job,
    lines: list[dict[str, Any]],
    tmp: Path,
    *,
    count: int,
    trace: Path | None,
    campaigns: list[Campaign],
) -> tuple[list[_Share], float]:
    """A subscriber's lines go to one shard, with every campaign: the frequency cap counts
    a subscriber's sends across campaigns, and they are all in that shard's database."""
    shards: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for line in lines:
        shards[_shard_of(line, count)].append(line)
    traces = [tmp / f"trace-{i}.jsonl" for i in range(count)]
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        futures = [
            pool.submit(_shard_job, job, shard, tmp / f"shard-{i}", traces[i], campaigns)
            for i, shard in enumerate(shards)
        ]
        shares = [f.result() for f in futures]
    seconds = time.perf_counter() - started
    if trace is not None:
        files = [t.open(encoding="utf-8") for t in traces]
        try:
            with trace.open("w", encoding="utf-8") as out:
                # each shard's trace is in time order; ties keep shard order (a subscriber is
                # in exactly one shard, so their own lines keep their order)
                for raw in heapq.merge(*files, key=lambda text: json.loads(text)["t"]):
                    out.write(raw)
        finally:
            for f in files:
                f.close()
    return shares, seconds


def _shard_job(
    job: _Job, lines: list[dict[str, Any]], folder: Path, trace: Path, campaigns: list[Campaign]
) -> _Share:
    """One worker's share; the campaigns as the parent loaded them (a campaign pickles in
    under a millisecond; loading the file again costs tens)."""
    folder.mkdir()
    return _simulate_shard(job, lines, folder, trace=trace, progress=None, campaigns=campaigns)


@dataclass
class _CampaignRun:
    """One campaign in one process's run."""

    campaign: Campaign
    load: CampaignLoad
    rates: dict[str, float]
    result: SimulationResult
    next_moment: NextMoment
    due: datetime | None = None  # when it next has something due, as of the last tick


def _simulate_shard(
    job: _Job,
    lines: list[dict[str, Any]],
    folder: Path,
    *,
    trace: Path | None,
    progress: Callable[[datetime, int], None] | None,
    campaigns: list[Campaign],
) -> _Share:
    """One process's share of the population, every campaign."""
    config = Config(db=f"sqlite:///{folder / 'simulation.db'}", graphs=job.paths[0].parent)
    collector = _Collector()
    delivery = RecordingDelivery()
    ctx = open_context(config, delivery=delivery, audit=collector, simulated=True)
    stored, curves = inputs.store_population(ctx, lines)
    runs: list[_CampaignRun] = []
    for path, campaign, rates in zip(job.paths, campaigns, job.rates, strict=True):
        load = load_current(ctx, path)
        if load.problem:
            raise CampaignError(load.problem)
        result = SimulationResult(campaign.campaign, stored, job.start, job.start)
        runs.append(_CampaignRun(campaign, load, rates, result, NextMoment(campaign)))
    sends: programme.Sends | None = {} if len(runs) > 1 else None
    started = time.perf_counter()
    ticks, end = _run(
        ctx,
        runs,
        collector=collector,
        delivery=delivery,
        seed=job.seed,
        default_rate=job.default_rate,
        start=job.start,
        until=job.until,
        resolution=job.resolution,
        progress=progress,
        sends=sends,
        curves=curves,
    )
    seconds = time.perf_counter() - started
    if len(runs) == 1:
        runs[0].result.seconds = seconds
    steps = Counter(line.get("campaign") for line in collector.lines)
    for run in runs:
        name = run.campaign.campaign
        run.result.steps = steps[name]
        run.result.funnel = status(ctx, name)
        run.result.counts = drawing_counts(ctx, run.campaign)
        with ctx.session() as s:
            run.result.unfinished = repo.unfinished_journeys(s, name)
            if uses_best(run.campaign):
                run.result.send_time = _send_time_tallies(s, name, start=job.start)
        run.result.experiments = tallies_at_end(ctx, run.campaign, end=end) or None
    collector.lines.sort(key=lambda line: line["t"])
    part = None
    if sends is not None:
        part = programme.part_of(
            campaigns,
            collector.lines,
            sends,
            timezones={str(line["id"]): str(line.get("timezone", "UTC")) for line in lines},
            start=job.start,
        )
    if trace is not None:
        with trace.open("w", encoding="utf-8") as out:
            for line in collector.lines:
                out.write(json.dumps(line) + "\n")
    ctx.engine.dispose()
    return _Share([run.result for run in runs], stored, ticks, end, seconds, part)


def _send_time_tallies(s: Any, campaign: str, *, start: datetime) -> dict[str, Any]:
    """The optimiser's sends by arm, and by week from `start` and arm: [sends, conversions]."""
    arms: dict[str, list[int]] = {}
    weeks: dict[str, dict[str, list[int]]] = {}
    for arm, at, converted in repo.timed_sends(s, campaign=campaign):
        week = str((at - start) // timedelta(days=7))
        for tally in (
            arms.setdefault(arm, [0, 0]),
            weeks.setdefault(week, {}).setdefault(arm, [0, 0]),
        ):
            tally[0] += 1
            tally[1] += int(converted)
    return {"arms": arms, "weeks": weeks}


def _run(
    ctx: Any,
    runs: list[_CampaignRun],
    *,
    collector: _Collector,
    delivery: RecordingDelivery,
    seed: int,
    default_rate: float,
    start: datetime,
    until: datetime | None,
    resolution: timedelta,
    progress: Callable[[datetime, int], None] | None,
    sends: programme.Sends | None,
    curves: Curves | None = None,
) -> tuple[int, datetime]:
    """Tick every campaign, in order, at each virtual tick; then the clock moves to the
    earliest moment any campaign has something due. The ticks run and the last one.

    Segment membership is evaluated once per simulated day. In a programme (`sends`
    given) it is no longer evaluated once every needed journey (`_Needed`) has ended and
    no campaign awaits a trigger event: a segment campaign with `reentry` would re-enrol
    its members for as long as other campaigns keep the clock going (or, with journeys
    about as long as `reentry`, for ever). The journeys running then finish."""
    now = start
    last_segment_enrol: datetime | None = None
    needed = programme.Needed([run.campaign for run in runs]) if sends is not None else None
    segments = True  # segment membership still evaluated
    for tick in range(MAX_TICKS):
        enrol_segments = segments and (
            last_segment_enrol is None or now - last_segment_enrol >= SEGMENT_ENROL_EVERY
        )
        if enrol_segments:
            last_segment_enrol = now
        for index, run in enumerate(runs):
            began, seen = time.perf_counter(), len(collector.lines)
            tick_campaign(ctx, run.load, now=now, enrol_segments=enrol_segments)
            fresh = list(delivery.requests)
            delivery.requests.clear()
            result = run.result
            result.sends += len(fresh)
            conversions = draw_conversions(
                run.campaign,
                fresh,
                now=now,
                seed=seed,
                rates=run.rates,
                default_rate=default_rate,
                curves=curves,
            )
            if conversions:
                with ctx.session() as s, s.begin():
                    repo.add_events(s, conversions, ids_wanted=False)
                result.conversions += len(conversions)
            if sends is not None:
                for request in fresh:
                    sends.setdefault(request.subscriber_id, []).append((now, index))
            if needed is not None:
                needed.feed(collector.lines[seen:])
            # a campaign's own ticks: those it had something due or did something in
            due = run.due is not None and run.due <= now
            if tick == 0 or due or fresh or len(collector.lines) > seen:
                result.ticks += 1
                result.end = now
            result.seconds += time.perf_counter() - began
        if progress:
            progress(now, sum(run.result.sends for run in runs))
        # after every campaign's tick: one campaign's conversions may be another's triggers
        moments = []
        for run in runs:
            began = time.perf_counter()
            run.due = run.next_moment(ctx, now=now)
            run.result.seconds += time.perf_counter() - began
            if run.due is not None:
                moments.append(run.due)
        if not moments:
            return tick + 1, now
        if needed is not None and needed.running == 0:
            segments = segments and any(run.next_moment.later for run in runs)
        last = now
        now = max(now + resolution, ceil_to(min(moments), start=start, step=resolution))
        if until is not None and now > until:
            return tick + 1, last
    raise CampaignError(f"simulation did not finish within {MAX_TICKS} ticks")
