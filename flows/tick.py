"""The tick flow: one campaign, one pass — retries, enrolment, then due journeys in batches.

Thin over `orchestrator.app.ticking`: the flow runs the same pipeline as `campaign tick`
(each batch claimed and committed before it is sent, while the previous one is on
the wire), with no task run per batch and never one run per subscriber. Every run
logs one line of what it did (and warnings), emits Prefect events for automations,
and keeps artifacts with stable keys per campaign: the flowchart as pictures with
live counts (`render.artifact`), the funnel as a table, a progress bar while a
large tick runs, and what the tick did.

If delivering a batch fails as a whole, nothing more is claimed, the batches on the
wire are recorded, the artifacts and events are written, then the flow run fails
naming the campaign and the cause. Each campaign is its own flow run (its own
deployment), so another campaign's runs are not affected.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from orchestrator.app import control, outcomes
from orchestrator.app.enrolment import enrol
from orchestrator.app.pacing import note_held, throttle_of
from orchestrator.app.service import (
    CampaignLoad,
    Context,
    campaign_paths,
    drawing_counts,
    load_current,
    open_context,
    status,
)
from orchestrator.app.tick_report import CampaignTick, failure, tick_lines
from orchestrator.app.ticking import run_batches
from orchestrator.delivery import Outcome
from orchestrator.language.records import parse_time
from orchestrator.render.artifact import flowchart_markdown
from orchestrator.store import repo


def artifact_key(campaign: str, what: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]", "-", f"{campaign}-{what}".lower())


def _funnel_rows(figures: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for node, m in sorted(figures["nodes"].items()):
        exits = ", ".join(
            f"{k.removeprefix('exit:')} {v}" for k, v in sorted(m.items()) if k.startswith("exit:")
        )
        rows.append(
            {
                "node": node,
                "entered": m.get("entered", 0),
                "sent": m.get("sent", 0),
                "delivered": m.get("delivered", 0),
                "converted": m.get("converted", 0),
                "no_convert": m.get("no_convert", 0),
                "deferred": m.get("deferred", 0),
                "exits": exits,
            }
        )
    return rows


def publish(
    ctx: Context, load: CampaignLoad, *, always: bool = False, changed: bool = True
) -> bool:
    """The flowchart as pictures with live counts and the funnel table, under stable keys
    per campaign; written only when the counts changed since they were last written
    (the digest is kept in the database's settings), unless `always`. `changed=False`
    (a tick that did nothing) writes them only if they were never written. True if
    written."""
    assert load.loaded is not None and load.loaded.campaign is not None
    campaign = load.loaded.campaign
    key = "artifacts:" + hashlib.sha256(campaign.campaign.encode()).hexdigest()[:32]
    if not always and not changed:
        with ctx.session() as s:
            if repo.setting(s, key) is not None:
                return False
    figures = status(ctx, campaign.campaign)
    counts = drawing_counts(ctx, campaign)
    dashboard = (
        f"{ctx.config.public_url}/campaigns/{campaign.campaign}"
        if os.environ.get("CAMPAIGN_PUBLIC_URL")
        else None
    )
    digest = hashlib.sha256(
        json.dumps([load.version_id, counts, figures, dashboard], sort_keys=True).encode()
    ).hexdigest()
    with ctx.session() as s:
        if not always and repo.setting(s, key) == digest:
            return False
    create_markdown_artifact(  # type: ignore[call-arg]
        flowchart_markdown(
            campaign, counts=counts, exits=figures["exits"], dashboard_url=dashboard
        ),
        key=artifact_key(campaign.campaign, "flowchart"),
        description=f"{campaign.campaign}: flowchart with live counts",
        _sync=True,  # the tick runs on a thread of an async flow: the sync API, not a coroutine
    )
    create_table_artifact(  # type: ignore[call-arg]
        _funnel_rows(figures),
        key=artifact_key(campaign.campaign, "funnel"),
        description=f"{campaign.campaign}: per-node funnel",
        _sync=True,
    )
    with ctx.session() as s, s.begin():
        repo.put_setting(s, key, digest)
    return True


PROGRESS_EVERY_S = 2.0  # the progress artifact is updated at most this often
FAILURE_RATE = 0.05  # of a tick's sends not delivered: `campaign.failure-rate.high`
FAILURE_MIN_SENDS = 20  # fewer sends say too little for a rate
REFUSALS = (
    Outcome.VAPID_REJECTED,
    Outcome.RATE_LIMITED,
)  # 401/403 and 429 answers of a push service
REFUSAL_MIN = 10  # an origin's refusals in one tick that make `campaign.push-origin.refusing`


class _Progress:
    """The `CAMPAIGN-progress` artifact: created at the first batch (an idle tick has none)
    and updated at most every PROGRESS_EVERY_S, so a large tick is not slowed by it."""

    def __init__(self, campaign: str) -> None:
        self.campaign = campaign
        self.id: UUID | None = None
        self.last = 0.0

    def batch_done(self, batches: int) -> None:
        if self.id is None:
            self.id = create_progress_artifact(  # type: ignore[assignment,call-arg]
                0.0,
                key=artifact_key(self.campaign, "progress"),
                description=f"{self.campaign}: batches",
                _sync=True,
            )
        elif time.monotonic() - self.last >= PROGRESS_EVERY_S:
            update_progress_artifact(  # type: ignore[call-arg]
                self.id, min(99.0, 100.0 * batches / (batches + 1)), _sync=True
            )
        else:
            return
        self.last = time.monotonic()

    def finish(self) -> None:
        if self.id is not None:
            update_progress_artifact(self.id, 100.0, _sync=True)  # type: ignore[call-arg]


@flow(name="campaign-tick", flow_run_name="tick {campaign}", log_prints=False)
async def tick_flow(
    campaign: str, now: str | None = None, batch_size: int = 500, ctx: Any = None
) -> dict[str, Any]:
    """Tick one campaign: `now` (ISO) overrides the clock, for back-fills and the demo's fast-forward.

    `ctx` (an `orchestrator.app.service.Context`) is for in-process callers such as the demo and
    tests; a deployment leaves it out and the flow opens its own from the environment.

    The tick runs in the flow itself, the same pipeline as `campaign tick` (claims
    overlapping deliveries, `ticking.run_batches`): no task run per batch. What it did is
    the run's log (one line, and warnings), its artifacts (written only when the counts
    changed) and Prefect events for automations.

    The flow is async only for Prefect's sake: a sync flow's engine joins its heartbeat
    thread at exit, which sleeps in one-second steps (up to a second per tick); the async
    engine does not wait for it. The tick itself is blocking code and runs on a thread
    (`tick_once`). Call it with `asyncio.run(tick_flow(...))` or `run_tick(...)`."""
    return await asyncio.to_thread(tick_once, campaign, now, batch_size, ctx)


def run_tick(
    campaign: str, now: str | None = None, batch_size: int = 500, ctx: Any = None
) -> dict[str, Any]:
    """`tick_flow` from synchronous code: one flow run, its summary."""
    return asyncio.run(tick_flow(campaign=campaign, now=now, batch_size=batch_size, ctx=ctx))


def _work(
    ctx: Context,
    load: Any,
    result: CampaignTick,
    progress: _Progress,
    *,
    moment: datetime,
    batch_size: int,
) -> None:
    """Enrol, resend what is due again, then the due journeys in batches (under the
    campaign's rate limits, waiting for room until its next scheduled run)."""
    name = result.campaign
    result.enrolled, result.holdout = enrol(
        ctx, campaign=load.loaded.campaign, version_id=load.version_id, now=moment
    )
    while (
        again := outcomes.resend_due(ctx, campaign=name, now=moment, limit=batch_size)
    ) is not None:
        result.resent += again.sends
        result.outcomes.update(again.outcomes)
    throttle = throttle_of(ctx, load.loaded.campaign, now=moment, batch_size=batch_size)
    for batch in run_batches(
        ctx, campaign=name, now=moment, batch_size=batch_size, throttle=throttle
    ):
        result.add(batch)
        progress.batch_done(result.batches)
    if throttle is not None:
        note_held(result, throttle)


def tick_once(campaign: str, now: str | None, batch_size: int, ctx: Any) -> dict[str, Any]:
    """The body of `tick_flow`, inside its flow run."""
    logger = get_run_logger()
    ctx = ctx if isinstance(ctx, Context) else open_context()
    moment = parse_time(now, "now") if now else datetime.now(UTC)
    (path,) = campaign_paths(ctx, [campaign])
    load = load_current(ctx, path)
    if load.problem is not None:
        logger.error("%s refused: %s", campaign, load.problem)
        raise ValueError(f"{campaign}: {load.problem}")
    assert load.loaded is not None and load.loaded.campaign is not None
    assert load.version_id is not None
    name = load.loaded.campaign.campaign
    result = CampaignTick(name, load.version_id)
    progress = _Progress(name)
    started = time.perf_counter()
    failed: str | None = None
    held = control.state(ctx, name)
    if not held.sending:  # paused or stopped: nothing enrolled or sent
        result.held = held.state
    try:
        if result.held is None:
            _work(ctx, load, result, progress, moment=moment, batch_size=batch_size)
    except Exception as exc:
        failed = failure(exc)
    result.seconds = time.perf_counter() - started
    progress.finish()
    line, warnings = tick_lines(result, now=moment)
    logger.info(line)
    for warning in warnings:
        logger.warning(warning)
    summary = {
        "campaign": name,
        "now": moment.isoformat(),
        "enrolled": result.enrolled,
        "holdout": result.holdout,
        "resent": result.resent,
        "batches": result.batches,
        "journeys": result.journeys,
        "sends": result.sends,
        "outcomes": dict(result.outcomes),
        "steps": dict(result.steps),
    }
    if failed:
        summary["failed"] = failed
    busy = bool(result.enrolled or result.resent or result.journeys or failed)
    publish(ctx, load, changed=busy)
    if busy:
        create_table_artifact(  # type: ignore[call-arg]
            [{k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in summary.items()}],
            key=artifact_key(name, "tick"),
            description=f"{name}: what this tick did",
            _sync=True,
        )
    emit_tick_events(ctx, result, summary, busy=busy)
    if failed:
        logger.error("%s: the tick failed: %s", name, failed)
        raise RuntimeError(
            f"{name}: the tick failed ({failed}); batches already recorded are kept, sends "
            "claimed but not answered go out again after the claim grace"
        )
    return summary


def emit_tick_events(
    ctx: Context, result: CampaignTick, summary: dict[str, Any], *, busy: bool
) -> None:
    """Prefect events an operator's automations act on (docs/prefect.md): every busy tick's
    summary, a failure rate over FAILURE_RATE, a push origin refusing (401/403/429), and
    a campaign whose last journey ended in this tick."""
    resource = {
        "prefect.resource.id": f"campaign-flow.campaign.{result.campaign}",
        "prefect.resource.name": result.campaign,
    }
    if busy:
        emit_event(event="campaign.tick.completed", resource=resource, payload=summary)
    sent = result.sends + result.resent
    failed = sum(n for outcome, n in result.outcomes.items() if outcome != Outcome.DELIVERED)
    if sent >= FAILURE_MIN_SENDS and failed / sent > FAILURE_RATE:
        emit_event(
            event="campaign.failure-rate.high",
            resource=resource,
            payload={
                "sends": sent,
                "not_delivered": failed,
                "rate": round(failed / sent, 4),
                "outcomes": dict(result.outcomes),
            },
        )
    refusing: Counter[str] = Counter()
    for (origin, outcome), n in result.origins.items():
        if outcome in REFUSALS:
            refusing[origin] += n
    for origin, n in sorted(refusing.items()):
        if n >= REFUSAL_MIN:
            emit_event(
                event="campaign.push-origin.refusing",
                resource={**resource, "campaign-flow.push-origin": origin},
                payload={
                    "origin": origin,
                    "refused": n,
                    "by_outcome": {o: c for (org, o), c in result.origins.items() if org == origin},
                },
            )
    if result.journeys and not _in_flight(ctx, result.campaign):
        emit_event(event="campaign.finished", resource=resource, payload=summary)


def _in_flight(ctx: Context, campaign: str) -> bool:
    with ctx.session() as s:
        return repo.next_claim(s, campaign=campaign) is not None


def campaign_names(graphs: Path) -> list[str]:
    return [p.stem for p in sorted(graphs.glob("*.yaml"))]
