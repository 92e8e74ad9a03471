"""The tick flow: one campaign, one pass — retries, enrolment, then due journeys in batches.

Thin over `orchestrator.ticking`: each batch is a Prefect task run named after
the campaign and batch number (never one run per subscriber). A retried batch
is safe: the sends ledger is unique per (journey, step), so a step claimed once
is never sent twice. Every run publishes artifacts with stable keys per
campaign: the flowchart as pictures with live counts (`render.artifact`), the
funnel as a table, and a progress bar while batches run.

A batch task that fails (after its retries), or a claim that raises, stops the
claims; the batch already on the wire is still recorded and the artifacts are
published, then the flow run fails naming the campaign and the cause. Each
campaign is its own flow run (its own deployment), so another campaign's runs
are not affected.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from orchestrator import outcomes
from orchestrator.delivery import submit
from orchestrator.enrolment import enrol
from orchestrator.records import parse_time
from orchestrator.render.artifact import flowchart_markdown
from orchestrator.service import (
    CampaignLoad,
    Context,
    campaign_paths,
    drawing_counts,
    load_current,
    open_context,
    status,
)
from orchestrator.ticking import (
    BatchResult,
    ClaimedBatch,
    claim_batch,
    failure,
    finish_batch,
    work_due,
)


def artifact_key(campaign: str, what: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]", "-", f"{campaign}-{what}".lower())


@task(
    name="resend",
    task_run_name="resend {campaign}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
)
def resend_task(ctx: Context, campaign: str, now: datetime, batch_size: int) -> int:
    total = 0
    while (
        again := outcomes.resend_due(ctx, campaign=campaign, now=now, limit=batch_size)
    ) is not None:
        total += again.sends
    return total


@task(
    name="enrol",
    task_run_name="enrol {load.path.stem}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
)
def enrol_task(ctx: Context, load: CampaignLoad, now: datetime) -> tuple[int, int]:
    assert (
        load.loaded is not None and load.loaded.campaign is not None and load.version_id is not None
    )
    return enrol(ctx, campaign=load.loaded.campaign, version_id=load.version_id, now=now)


# The flow's claims and the batch tasks' outcome writes take turns in this process
# instead of meeting at SQLite's write lock, whose busy handler sleeps in steps.
_WRITES = threading.Lock()


@task(
    name="batch",
    task_run_name="{campaign} batch {number}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
)
def batch_task(
    ctx: Context, campaign: str, now: datetime, number: int, claimed: ClaimedBatch
) -> BatchResult:
    """Deliver one claimed batch and record the answers. The flow claimed it (the ledger
    rows committed) just before, and claims the next batch while this one is on the wire;
    a retry sends the very same messages again (same Topic)."""
    answers = submit(ctx.delivery, claimed.requests).result()
    with _WRITES:
        return finish_batch(ctx, claimed, answers, now=now)


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


def publish(ctx: Context, load: CampaignLoad) -> None:
    """The flowchart as pictures with live counts and the funnel table, under stable keys
    per campaign."""
    assert load.loaded is not None and load.loaded.campaign is not None
    campaign = load.loaded.campaign
    figures = status(ctx, campaign.campaign)
    dashboard = (
        f"{ctx.config.public_url}/campaigns/{campaign.campaign}"
        if os.environ.get("CAMPAIGN_PUBLIC_URL")
        else None
    )
    create_markdown_artifact(
        flowchart_markdown(
            campaign,
            counts=drawing_counts(ctx, campaign),
            exits=figures["exits"],
            dashboard_url=dashboard,
        ),
        key=artifact_key(campaign.campaign, "flowchart"),
        description=f"{campaign.campaign}: flowchart with live counts",
    )
    create_table_artifact(
        _funnel_rows(figures),
        key=artifact_key(campaign.campaign, "funnel"),
        description=f"{campaign.campaign}: per-node funnel",
    )


@flow(name="campaign-tick", flow_run_name="tick {campaign}", log_prints=False)
def tick_flow(
    campaign: str, now: str | None = None, batch_size: int = 500, ctx: Any = None
) -> dict[str, Any]:
    """Tick one campaign: `now` (ISO) overrides the clock, for back-fills and the demo's fast-forward.

    `ctx` (an `orchestrator.service.Context`) is for in-process callers such as the demo and
    tests; a deployment leaves it out and the flow opens its own from the environment."""
    logger = get_run_logger()
    ctx = ctx if isinstance(ctx, Context) else open_context()
    moment = parse_time(now, "now") if now else datetime.now(UTC)
    (path,) = campaign_paths(ctx, [campaign])
    load = load_current(ctx, path)
    if load.problem is not None:
        logger.error("%s refused: %s", campaign, load.problem)
        raise ValueError(f"{campaign}: {load.problem}")
    _, again = work_due(ctx, campaign=campaign, now=moment)
    resent = resend_task(ctx, campaign, moment, batch_size) if again else 0
    enrolled, holdout = enrol_task(ctx, load, moment)
    progress: UUID = create_progress_artifact(  # type: ignore[assignment]
        0.0, key=artifact_key(campaign, "progress"), description=f"{campaign}: batches"
    )
    tally: Counter[str] = Counter()
    journeys = sends = number = 0
    # Claims run here, in the flow; each claimed batch is a task run that delivers and
    # records it, overlapping the next claim. Nothing due: no claim, no task run.
    in_flight: PrefectFuture[BatchResult] | None = None
    more = work_due(ctx, campaign=campaign, now=moment)[0]
    failed: list[str] = []  # after a failure nothing more is claimed
    while True:
        claimed = None
        if more:
            try:
                claimed = claim_batch(ctx, campaign=campaign, now=moment, batch_size=batch_size)
            except Exception as exc:
                failed.append(f"claiming batch {number + 1}: {failure(exc)}")
        if in_flight is not None:
            try:
                batch = in_flight.result()
            except Exception as exc:
                failed.append(f"batch {number}: {failure(exc)}")
            else:
                journeys, sends = journeys + batch.journeys, sends + batch.sends
                tally.update(batch.outcomes)
            update_progress_artifact(progress, min(99.0, 100.0 * number / (number + 1)))
        if claimed is None:
            break
        more = claimed.more and not failed
        number += 1
        in_flight = batch_task.submit(ctx, campaign, moment, number, claimed)
    update_progress_artifact(progress, 100.0)
    publish(ctx, load)
    summary = {
        "campaign": campaign,
        "now": moment.isoformat(),
        "enrolled": enrolled,
        "holdout": holdout,
        "resent": resent,
        "batches": number,
        "journeys": journeys,
        "sends": sends,
        "outcomes": dict(tally),
    }
    if failed:
        summary["failed"] = failed
    create_table_artifact(
        [{k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in summary.items()}],
        key=artifact_key(campaign, "tick"),
        description=f"{campaign}: what this tick did",
    )
    if failed:
        logger.error("%s: the tick failed: %s", campaign, "; ".join(failed))
        raise RuntimeError(
            f"{campaign}: the tick failed ({'; '.join(failed)}); batches already recorded "
            "are kept, sends claimed but not answered go out again after the claim grace"
        )
    logger.info("%s: %s", campaign, summary)
    return summary


def campaign_names(graphs: Path) -> list[str]:
    return [p.stem for p in sorted(graphs.glob("*.yaml"))]
