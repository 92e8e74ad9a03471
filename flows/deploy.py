"""One scheduled Prefect deployment per campaign file: `campaign deploy`.

Each deployment runs the tick flow for its campaign on the campaign's
`settings.schedule` (cron, in `settings.timezone`), with a concurrency limit of
1 so two ticks of one campaign never overlap, tagged `campaign-flow` and
`campaign:ID`. With `--pool`, runs go to that work pool (start workers with
`prefect worker start --pool NAME` from the project folder); without it they
are served in-process by `flows.deploy.serve`.

The deployment of a campaign that is paused or stopped (`held`: its state, from the
campaign database) is registered paused, so registering it again never restarts its
schedule; the deployment of a running campaign is registered active.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.types.entrypoint import EntrypointType

from flows.tick import tick_flow
from orchestrator.language import loader

Held = Callable[[str], str | None]
"""A campaign's state when it is held (`paused`, `stopped`), None when it runs."""


def _running(campaign: str) -> str | None:
    return None


def deployments(
    graphs: Path, names: list[str] | None = None, *, held: Held = _running
) -> tuple[list[RunnerDeployment], dict[str, str]]:
    """Deployments for the valid campaigns (paused for a held one); problems of the others
    by file."""
    out: list[RunnerDeployment] = []
    refused: dict[str, str] = {}
    for path in loader.campaigns_in(graphs):
        if names and path.stem not in names:
            continue
        loaded = loader.load(path)
        if not loaded.ok or loaded.campaign is None:
            first = next((d.format() for d in loaded.errors), "does not validate")
            refused[str(path)] = first
            continue
        c = loaded.campaign
        deployment: RunnerDeployment = tick_flow.to_deployment(  # type: ignore[assignment]
            name=f"tick-{c.campaign}",
            # Workers import `flows.tick` from the installed package, wherever they run.
            entrypoint_type=EntrypointType.MODULE_PATH,
            cron=c.settings.tick_cron,
            parameters={"campaign": path.stem},
            concurrency_limit=ConcurrencyLimitConfig(
                limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
            ),
            tags=["campaign-flow", f"campaign:{c.campaign}"],
            description=f"{c.title}: tick every {c.settings.tick_cron} ({c.settings.timezone})",
            paused=held(c.campaign) is not None,
        )
        for schedule in deployment.schedules or []:  # the cron runs in the campaign's timezone
            schedule.schedule.timezone = c.settings.timezone  # type: ignore[union-attr]
        out.append(deployment)
    return out, refused


def apply(
    graphs: Path,
    names: list[str] | None = None,
    *,
    pool: str | None = None,
    held: Held = _running,
) -> dict[str, Any]:
    """Registers the deployments: their ids by name, those registered paused (the
    campaign's state by name), and the refused files with their problem."""
    states: dict[str, str | None] = {}

    def remembered(campaign: str) -> str | None:
        states[campaign] = held(campaign)
        return states[campaign]

    found, refused = deployments(graphs, names, held=remembered)
    ids = {d.name: str(d.apply(work_pool_name=pool)) for d in found}
    paused = {f"tick-{c}": state for c, state in states.items() if state is not None}
    return {"deployments": ids, "paused": paused, "refused": refused}


def prefect_yaml(graphs: Path, *, pool: str = "campaign-flow") -> str:
    """`prefect.yaml` for `prefect deploy --all`: the same deployments `campaign deploy` makes.

    The pull step runs the flow from the folder `prefect deploy` was run in (the
    project), so a process worker on this machine finds `flows/tick.py`."""
    import prefect
    import yaml

    entries: list[dict[str, Any]] = []
    for path in loader.campaigns_in(graphs):
        loaded = loader.load(path)
        if not loaded.ok or loaded.campaign is None:
            continue
        c = loaded.campaign
        entries.append(
            {
                "name": f"tick-{c.campaign}",
                "description": f"{c.title}: tick every {c.settings.tick_cron} "
                f"({c.settings.timezone})",
                "entrypoint": "flows/tick.py:tick_flow",
                "parameters": {"campaign": path.stem},
                "tags": ["campaign-flow", f"campaign:{c.campaign}"],
                "schedules": [{"cron": c.settings.tick_cron, "timezone": c.settings.timezone}],
                "concurrency_limit": {"limit": 1, "collision_strategy": "ENQUEUE"},
                "work_pool": {"name": pool},
            }
        )
    document = {
        "name": "campaign-flow",
        "prefect-version": prefect.__version__,
        "build": None,
        "push": None,
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $PWD }}",
                }
            }
        ],
        "deployments": entries,
    }
    header = (
        "# Written by `campaign deploy --prefect-yaml` from campaign_graphs/: do not edit by hand.\n"
        "# `prefect work-pool create campaign-flow --type process`, then\n"
        "# `prefect deploy --all` from this folder and `prefect worker start --pool campaign-flow`.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def serve(graphs: Path, names: list[str] | None = None, *, held: Held = _running) -> None:
    """Run the deployments' schedules in this process (a single machine, no workers)."""
    from prefect import serve as prefect_serve

    found, _ = deployments(graphs, names, held=held)
    prefect_serve(*found)
