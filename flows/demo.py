"""`campaign demo`: every example campaign, a few thousand synthetic subscribers, real Web Push
to a local push service, walked by Prefect on a fast-forward clock until every journey ends.

One Prefect flow run ("campaign-demo") whose virtual steps tick each campaign that has work
due as a task run; the same tick code as production, the same ledger, real encrypted
pushes that the local push service decrypts.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.tick import publish
from orchestrator.app.insights import horizon
from orchestrator.app.service import (
    FROM_API,
    CampaignLoad,
    Context,
    drawing_counts,
    load_current,
    open_context,
    status,
)
from orchestrator.app.tick_report import tick_lines
from orchestrator.app.ticking import tick_campaign
from orchestrator.config import Config
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.language import loader
from orchestrator.language.records import EventRecord, parse_population_events, parse_subscriber
from orchestrator.language.spec import Campaign
from orchestrator.push.setup import WebPushDelivery
from orchestrator.push.vapid import VapidKey
from orchestrator.render import to_html
from orchestrator.sim.population import synthesize
from orchestrator.sim.simulate import NextMoment, draw_conversions
from orchestrator.store import repo
from orchestrator.testing.receiver import Receiver

DAYS_BACK = 26  # the demo's clock starts this many days ago


def demo_start(today: datetime | None = None) -> datetime:
    """09:00 UTC, DAYS_BACK days ago: the dashboard's last 30 days show the opt-ins and the sends."""
    day = (today or datetime.now(UTC)).astimezone(UTC)
    return day.replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=DAYS_BACK)


STEP = timedelta(hours=8)  # the fast-forward clock's tick
MAX_STEPS = 5000
CONVERSION_RATE = 0.15  # of delivered notifications, inside their window
BASELINE_RATE = 0.06  # of held-out journeys, with no notification at all


@dataclass
class Watching:
    """Wraps the real delivery to see what was sent (for the demo's simulated conversions)."""

    inner: WebPushDelivery
    fresh: list[tuple[SendRequest, SendOutcome]] = field(default_factory=list)

    def deliver(self, requests: Any) -> list[SendOutcome]:
        outcomes = self.inner.deliver(requests)
        by_id = {r.send_id: r for r in requests}
        self.fresh.extend((by_id[o.send_id], o) for o in outcomes)
        return outcomes


@task(
    name="tick",
    task_run_name="tick {load.path.stem} at {now:%Y-%m-%d %H:%M}",
    cache_policy=NO_CACHE,
)
def tick_task(ctx: Context, load: CampaignLoad, now: datetime, segments_too: bool) -> int:
    """One campaign's tick at the demo's clock, logged as a deployed tick logs it."""
    logger = get_run_logger()
    result = tick_campaign(ctx, load, now=now, enrol_segments=segments_too, batch_size=1000)
    line, warnings = tick_lines(result, now=now)
    logger.info(line)
    for warning in warnings:
        logger.warning(warning)
    return result.sends


def _population(
    ctx: Context,
    campaigns: list[Campaign],
    receiver: Receiver,
    per_campaign: int,
    *,
    start: datetime,
) -> int:
    """Synthetic subscribers with real subscriptions on the local push service; each opted in
    (a `subscribed` event, source `api`: as a browser would) some time in the three days
    before the campaigns start."""
    records, events = [], []
    rng = random.Random(3)
    for campaign in campaigns:
        for line in synthesize(campaign, count=per_campaign, seed=11, start=start):
            line["id"] = f"{campaign.campaign}-{line['id']}"
            line["subscription"] = receiver.subscribe()
            raw_events = line.pop("events")
            record = parse_subscriber(line, allowed=ctx.config.push_allowed_origins)
            records.append(record)
            opted_in = start - timedelta(seconds=rng.uniform(0, 3 * 86400))
            events.append(EventRecord(record.id, "subscribed", opted_in, {"source": FROM_API}))
            events += parse_population_events(record.id, raw_events)
    with ctx.session() as s, s.begin():
        for i in range(0, len(records), 2000):
            repo.upsert_subscribers(s, records[i : i + 2000])
        repo.add_events(s, sorted(events, key=lambda e: e.at))
    return len(records)


@flow(name="campaign-demo", flow_run_name="demo: every example campaign", log_prints=False)
def demo_flow(
    workdir: str,
    graphs: str = "campaign_graphs",
    per_campaign: int = 500,
    progress: Any = None,
    start: datetime | None = None,
) -> dict[str, Any]:
    start = start or demo_start()
    folder = Path(workdir)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    key = folder / "vapid_private.pem"
    VapidKey.generate().save(key)
    with Receiver(keep=False) as receiver:
        config = Config(
            db=f"sqlite:///{folder / 'campaign.db'}",
            graphs=Path(graphs),
            vapid_private_key=str(key),
            vapid_subject="mailto:demo@example.com",
            push_allowed_origins=(receiver.origin,),
            public_url="http://127.0.0.1:8000",
        )
        delivery = Watching(WebPushDelivery(config))
        ctx = open_context(config, delivery=delivery)
        try:
            loads = [load_current(ctx, p) for p in loader.campaign_files([Path(graphs)])]
            loads = [ld for ld in loads if ld.problem is None and ld.loaded and ld.loaded.campaign]
            campaigns = [ld.loaded.campaign for ld in loads if ld.loaded and ld.loaded.campaign]
            people = _population(ctx, campaigns, receiver, per_campaign, start=start)
            logger = get_run_logger()
            logger.info(
                "%d campaigns, %d synthetic subscribers with real subscriptions on the local "
                "push service %s; the clock starts at %s",
                len(campaigns),
                people,
                receiver.origin,
                f"{start:%Y-%m-%d %H:%M} UTC",
            )
            steps = _walk(ctx, loads, delivery, progress, start=start)
            logger.info(
                "every journey has ended after %d steps of %s; %d pushes delivered",
                steps,
                STEP,
                receiver.stats().get("delivered", 0),
            )
            for ld in loads:
                publish(ctx, ld, always=True)
            report = _report(ctx, campaigns, folder)
            funnels = {c.campaign: status(ctx, c.campaign) for c in campaigns}
            stats = receiver.stats()
        finally:
            delivery.inner.close()
            ctx.engine.dispose()
    return {
        "subscribers": people,
        "steps": steps,
        "report": str(report),
        "receiver": stats,
        "funnels": funnels,
        "db": config.db,
        "graphs": str(graphs),
    }


def _walk(
    ctx: Context,
    loads: list[CampaignLoad],
    delivery: Watching,
    progress: Callable[[datetime], None] | None,
    *,
    start: datetime,
) -> int:
    now, last_segments = start, None
    previous = start - timedelta(seconds=1)
    rng = random.Random(5)
    next_moments = [
        (ld, NextMoment(ld.loaded.campaign)) for ld in loads if ld.loaded and ld.loaded.campaign
    ]
    for step in range(MAX_STEPS):
        segments_too = last_segments is None or now - last_segments >= timedelta(days=1)
        if segments_too:
            last_segments = now
        for ld, next_moment in next_moments:
            due = next_moment(ctx, now=now)
            if segments_too or (due and due <= now):  # a campaign with nothing due is not ticked
                tick_task(ctx, ld, now, segments_too)
        _convert(ctx, loads, delivery, now=now, rng=rng)
        _baseline(ctx, loads, since=previous, now=now, rng=rng)
        previous = now
        if progress:
            progress(now)
        moments = [m for _, next_moment in next_moments if (m := next_moment(ctx, now=now))]
        if not moments:
            return step + 1
        now = max(now + STEP, start + -(-(min(moments) - start) // STEP) * STEP)
    return MAX_STEPS


def _convert(
    ctx: Context,
    loads: list[CampaignLoad],
    delivery: Watching,
    *,
    now: datetime,
    rng: random.Random,
) -> None:
    """Some subscribers act on what they received: goal events or clicks inside the window."""
    by_campaign = {
        ld.loaded.campaign.campaign: ld.loaded.campaign
        for ld in loads
        if ld.loaded and ld.loaded.campaign
    }
    delivered = [r for r, o in delivery.fresh if o.outcome == "delivered"]
    delivery.fresh.clear()
    events: list[EventRecord] = []
    for name, campaign in by_campaign.items():
        mine = [r for r in delivered if r.campaign == name]
        events += draw_conversions(
            campaign,
            mine,
            now=now,
            seed=rng.randint(0, 10**9),
            rates={},
            default_rate=CONVERSION_RATE,
        )
    if events:
        with ctx.session() as s, s.begin():
            repo.add_events(s, events)


def _baseline(
    ctx: Context,
    loads: list[CampaignLoad],
    *,
    since: datetime,
    now: datetime,
    rng: random.Random,
) -> None:
    """People also convert with no push at all: held-out journeys that began since the last step
    reach the goal at BASELINE_RATE some time inside the campaign's horizon, so the dashboard's
    holdout lift has a real baseline."""
    events: list[EventRecord] = []
    for ld in loads:
        campaign = ld.loaded.campaign if ld.loaded else None
        if campaign is None or not campaign.settings.holdout or campaign.goal == "click":
            continue
        with ctx.session() as s:
            held = repo.holdout_entries(s, campaign=campaign.campaign, after=since, until=now)
            for sid in held:
                if rng.random() < BASELINE_RATE:
                    at = now + timedelta(seconds=rng.uniform(60, horizon(campaign).total_seconds()))
                    events.append(EventRecord(sid, campaign.goal, at, {"baseline": True}))
    if events:
        with ctx.session() as s, s.begin():
            repo.add_events(s, events)


def _report(ctx: Context, campaigns: list[Campaign], folder: Path) -> Path:
    pages = []
    for campaign in campaigns:
        live = status(ctx, campaign.campaign)
        page = folder / f"{campaign.campaign}.html"
        page.write_text(
            to_html(campaign, counts=drawing_counts(ctx, campaign), exits=live["exits"]),
            encoding="utf-8",
        )
        pages.append(page)
    index = folder / "index.html"
    links = "".join(f'<li><a href="{p.name}">{p.stem}</a></li>' for p in pages)
    index.write_text(
        f"<!doctype html><meta charset=utf-8><title>campaign-flow demo</title><h1>campaign-flow demo</h1><ul>{links}</ul>",
        encoding="utf-8",
    )
    return index


def quiet_prefect() -> None:
    """The demo's terminal shows our progress, not Prefect's run logs or shutdown noise.

    The run loggers keep their level and go to the API only (not on to the console), so
    the runs' logs are still in Prefect's UI."""
    for name in ("prefect", "prefect.events", "prefect._internal", "httpx", "uvicorn", "docket"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        runs = logging.getLogger(name)
        runs.setLevel(logging.INFO)
        runs.propagate = False
