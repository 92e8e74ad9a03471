"""`campaign simulate`: the real engine and storage on a virtual clock, no sends leaving the process.

A temporary SQLite database, a synthetic (or given) population, conversion
rates per node. The clock jumps to the next moment anything is due, in steps
of `resolution` (the scheduled deployment's tick). Same seed, same result.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import multiprocessing
import random
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.app.service import (
    CampaignLoad,
    drawing_counts,
    load_current,
    open_context,
    read_jsonl,
    status,
)
from orchestrator.app.ticking import tick_campaign
from orchestrator.config import Config
from orchestrator.errors import CampaignError
from orchestrator.language import loader
from orchestrator.language.records import (
    EventRecord,
    RecordError,
    parse_population_events,
    parse_subscriber,
)
from orchestrator.language.spec import Campaign, NotificationNode
from orchestrator.sim.population import synthesize
from orchestrator.store import repo
from orchestrator.testing.fakes import RecordingDelivery

SEGMENT_ENROL_EVERY = timedelta(days=1)
MAX_TICKS = 200_000
SHARD_FROM = 4000  # subscribers from which the simulation runs on WORKERS processes
WORKERS = 2


@dataclass
class SimulationResult:
    campaign: str
    subscribers: int
    start: datetime
    end: datetime
    ticks: int = 0
    steps: int = 0
    sends: int = 0
    conversions: int = 0
    seconds: float = 0.0
    funnel: dict[str, Any] = field(default_factory=dict)
    unfinished: int = 0
    # per-node figures for the flowchart (`app.service.drawing_counts`); not in as_dict
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "subscribers": self.subscribers,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "ticks": self.ticks,
            "steps": self.steps,
            "sent": self.sends,
            "conversions": self.conversions,
            "unfinished_journeys": self.unfinished,
            "seconds": round(self.seconds, 3),
            "steps_per_s": round(self.steps / self.seconds, 1) if self.seconds else None,
            **self.funnel,
        }


@dataclass
class _Collector:
    lines: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, lines: list[dict[str, Any]]) -> None:
        self.lines.extend(lines)


def _population(
    campaign: Campaign,
    *,
    path: Path | None,
    count: int,
    seed: int,
    start: datetime,
    repeat_days: int = 0,
) -> list[dict[str, Any]]:
    if path is None:
        return synthesize(campaign, count=count, seed=seed, start=start, repeat_days=repeat_days)
    lines = []
    for number, raw in read_jsonl(path):
        if isinstance(raw, RecordError):
            raise CampaignError(f"{path}:{number}: {raw}")
        lines.append(raw)
    return lines


def _store_population(ctx: Any, lines: list[dict[str, Any]]) -> int:
    records, events = [], []
    for number, raw in enumerate(lines, start=1):
        try:
            body = {k: v for k, v in raw.items() if k != "events"} if isinstance(raw, dict) else raw
            record = parse_subscriber(body, allowed=())
            events += parse_population_events(record.id, raw.get("events", []))
        except (RecordError, KeyError, TypeError, AttributeError) as exc:
            raise CampaignError(f"population line {number}: {exc}") from None
        records.append(record)
    with ctx.session() as s, s.begin():
        for i in range(0, len(records), 5000):
            repo.upsert_subscribers(s, records[i : i + 5000])
        repo.add_events(s, sorted(events, key=lambda e: e.at), ids_wanted=False)
    return len(records)


def draw_conversions(
    campaign: Campaign,
    requests: list[Any],
    *,
    now: datetime,
    seed: int,
    rates: dict[str, float],
    default_rate: float,
) -> list[EventRecord]:
    out = []
    for r in requests:
        # keyed by subscriber, node, step and moment (not the journey's row id), so a
        # subscriber converts the same way whichever worker simulates them
        rng = random.Random(f"{seed}:{r.subscriber_id}:{r.node}:{r.step}:{now.isoformat()}")
        if rng.random() >= rates.get(r.node, default_rate):
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


class NextMoment:
    """When anything is next due: a journey, or a trigger event after `now`.

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

    def __call__(self, ctx: Any, *, now: datetime) -> datetime | None:
        with ctx.session() as s:
            due = repo.next_claim(s, campaign=self.campaign)
            if self.triggers:
                for event_id, at in repo.event_times(s, self.triggers, after_id=self.read_to):
                    self.read_to = event_id
                    heapq.heappush(self.later, at)
        while self.later and self.later[0] <= now:
            heapq.heappop(self.later)
        moments = self.later[:1] + ([due] if due is not None else [])
        return min(moments, default=None)


def _ceil(moment: datetime, *, start: datetime, step: timedelta) -> datetime:
    steps = -(-(moment - start) // step)
    return start + steps * step


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
) -> SimulationResult:
    """Subscribers never share journey state, so the population is split by a stable hash
    of the subscriber id over `workers` processes, each with its own temporary SQLite
    and virtual clock; funnels and traces are merged. `repeat_days`: synthetic subscribers
    repeat their trigger events and send exit events over that many days
    (`population.repeat`)."""
    loaded = loader.load(path)
    if not loaded.ok or loaded.campaign is None:
        first = next((d.format() for d in loaded.errors), "does not validate")
        raise CampaignError(f"{path} does not validate: {first}")
    campaign = loaded.campaign
    unknown = sorted(set(rates or {}) - set(campaign.all_nodes()))
    if unknown:
        raise CampaignError(f"--rate names no node of {campaign.campaign}: {', '.join(unknown)}")
    if population is not None and repeat_days:
        raise CampaignError("repeat days apply to the synthetic population, not to a file")
    lines = _population(
        campaign,
        path=population,
        count=subscribers,
        seed=seed,
        start=start,
        repeat_days=repeat_days,
    )
    count = workers or default_workers(len(lines))
    job = _Job(path, seed, rates or {}, default_rate, start, until, resolution)
    with tempfile.TemporaryDirectory(prefix="campaign-sim-") as tmp:
        if count <= 1:
            result = _simulate_shard(
                job, lines, Path(tmp), trace=trace, progress=progress, campaign=campaign
            )
        else:
            result = _simulate_sharded(
                job, lines, Path(tmp), count=count, trace=trace, campaign=campaign
            )
    return result


@dataclass(frozen=True)
class _Job:
    path: Path
    seed: int
    rates: dict[str, float]
    default_rate: float
    start: datetime
    until: datetime | None
    resolution: timedelta


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
    campaign: Campaign,
) -> SimulationResult:
    shards: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for line in lines:
        shards[_shard_of(line, count)].append(line)
    traces = [tmp / f"trace-{i}.jsonl" for i in range(count)]
    started = time.perf_counter()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        futures = [
            pool.submit(_shard_job, job, shard, tmp / f"shard-{i}", traces[i], campaign)
            for i, shard in enumerate(shards)
        ]
        parts = [f.result() for f in futures]
    merged = _merge(parts)
    merged.seconds = time.perf_counter() - started
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
    return merged


def _shard_job(
    job: _Job, lines: list[dict[str, Any]], folder: Path, trace: Path, campaign: Campaign
) -> SimulationResult:
    """One worker's share; the campaign as the parent loaded it (it pickles in under a
    millisecond; loading the file again costs tens)."""
    folder.mkdir()
    return _simulate_shard(job, lines, folder, trace=trace, progress=None, campaign=campaign)


def _merge(parts: list[SimulationResult]) -> SimulationResult:
    first = parts[0]
    out = SimulationResult(first.campaign, 0, first.start, first.start)
    funnel: dict[str, Any] = {}
    for part in parts:
        out.subscribers += part.subscribers
        out.end = max(out.end, part.end)
        out.ticks = max(out.ticks, part.ticks)
        out.steps += part.steps
        out.sends += part.sends
        out.conversions += part.conversions
        out.unfinished += part.unfinished
        _add_counts(funnel, part.funnel)
        _add_counts(out.counts, part.counts)
    out.funnel = funnel
    return out


def _add_counts(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict):
            _add_counts(into.setdefault(key, {}), value)
        elif isinstance(value, int) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
        else:
            into.setdefault(key, value)


def _simulate_shard(
    job: _Job,
    lines: list[dict[str, Any]],
    folder: Path,
    *,
    trace: Path | None,
    progress: Callable[[datetime, int], None] | None,
    campaign: Campaign,
) -> SimulationResult:
    """One process's share of the population."""
    config = Config(db=f"sqlite:///{folder / 'simulation.db'}", graphs=job.path.parent)
    collector = _Collector()
    delivery = RecordingDelivery()
    ctx = open_context(config, delivery=delivery, audit=collector, simulated=True)
    result = SimulationResult(
        campaign.campaign, _store_population(ctx, lines), job.start, job.start
    )
    load = load_current(ctx, job.path)
    if load.problem:
        raise CampaignError(load.problem)
    started = time.perf_counter()
    _run(
        ctx,
        load,
        campaign,
        result=result,
        delivery=delivery,
        seed=job.seed,
        rates=job.rates,
        default_rate=job.default_rate,
        until=job.until,
        resolution=job.resolution,
        progress=progress,
    )
    result.seconds = time.perf_counter() - started
    result.steps = len(collector.lines)
    result.funnel = status(ctx, campaign.campaign)
    result.counts = drawing_counts(ctx, campaign)
    with ctx.session() as s:
        result.unfinished = repo.unfinished_journeys(s, campaign.campaign)
    if trace is not None:
        collector.lines.sort(key=lambda line: line["t"])
        with trace.open("w", encoding="utf-8") as out:
            for line in collector.lines:
                out.write(json.dumps(line) + "\n")
    ctx.engine.dispose()
    return result


def _run(
    ctx: Any,
    load: CampaignLoad,
    campaign: Campaign,
    *,
    result: SimulationResult,
    delivery: RecordingDelivery,
    seed: int,
    rates: dict[str, float],
    default_rate: float,
    until: datetime | None,
    resolution: timedelta,
    progress: Callable[[datetime, int], None] | None,
) -> None:
    now = result.start
    next_moment = NextMoment(campaign)
    last_segment_enrol: datetime | None = None
    seen = 0
    for _ in range(MAX_TICKS):
        enrol_segments = (
            last_segment_enrol is None or now - last_segment_enrol >= SEGMENT_ENROL_EVERY
        )
        if enrol_segments:
            last_segment_enrol = now
        tick_campaign(ctx, load, now=now, enrol_segments=enrol_segments)
        result.ticks += 1
        fresh = delivery.requests[seen:]
        seen = len(delivery.requests)
        result.sends += len(fresh)
        conversions = draw_conversions(
            campaign, fresh, now=now, seed=seed, rates=rates, default_rate=default_rate
        )
        if conversions:
            with ctx.session() as s, s.begin():
                repo.add_events(s, conversions, ids_wanted=False)
            result.conversions += len(conversions)
        delivery.requests.clear()
        seen = 0
        result.end = now
        if progress:
            progress(now, result.sends)
        nxt = next_moment(ctx, now=now)
        if nxt is None:
            return
        now = max(now + resolution, _ceil(nxt, start=result.start, step=resolution))
        if until is not None and now > until:
            return
    raise CampaignError(f"simulation did not finish within {MAX_TICKS} ticks")
