"""Each split node of a campaign as an experiment: the journey is the unit (its entry into
an arm, `split_entry`), converted when its subscriber reaches the test's goal (the split's
`goal`, else the campaign's) within
the horizon after entering (as the holdout is counted); only entries whose horizon is
over are measured. Each arm's rate has its Wilson interval; every other arm is compared
with the control (the arm named `control`, else the first) by its Newcombe interval and
a score test, the p-values corrected with Holm's method (`experiment_stats`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.app import experiment_stats as stats
from orchestrator.app.journeys import horizon
from orchestrator.app.promotions import promotions
from orchestrator.app.service import Context
from orchestrator.app.verdicts import (
    COLLECTING,
    INFLOW_DAYS,
    Arm as Arm,
    Experiment as Experiment,
    has_planned_size as has_planned_size,
)
from orchestrator.language.spec import (
    Campaign,
    SplitNode,
    SplitOptions,
    check_power,
    format_duration,
)
from orchestrator.store import repo

CONTROL = "control"


def experiments(ctx: Context, campaign: Campaign, *, now: datetime) -> list[Experiment]:
    """Every split node of `campaign`, in file order, with its figures at `now`."""
    splits = {n: node for n, node in campaign.all_nodes().items() if isinstance(node, SplitNode)}
    if not splits:
        return []
    out = []
    with ctx.session() as s:
        counts = _counts_by_goal(s, campaign, splits, now=now)
        promoted = promotions(s, campaign.campaign)
        inflow: dict[str, int] | None = None  # read for the first collecting test
        for split_id, node in splits.items():
            options = node.options
            goal = options.goal or campaign.goal
            tallies = {name: counts[goal].get((split_id, name), (0, 0, 0)) for name in node.arms}
            planned = planned_size(options)
            sample = None
            if (
                planned is not None
                and options.winner is None
                and has_planned_size(planned, (t[1] for t in tallies.values()))
            ):
                sample = repo.split_counts_first(
                    s,
                    campaign=campaign.campaign,
                    split=split_id,
                    goal=goal,
                    now=now,
                    first=planned,
                )
            out.append(
                build(
                    split_id,
                    dict(node.arms),
                    tallies,
                    format_duration(horizon(campaign)),
                    options=options,
                    sample=sample,
                    campaign=campaign.campaign,
                    goal=goal,
                )
            )
            record = promoted.get(split_id)
            if options.winner is not None and record is not None and record.arm == options.winner:
                out[-1].promotion = record.summary()
            if out[-1].status == COLLECTING:
                if inflow is None:
                    since = now - timedelta(days=INFLOW_DAYS)
                    inflow = repo.split_inflow(s, campaign=campaign.campaign, since=since)
                _estimate(out[-1], inflow.get(split_id, 0) / INFLOW_DAYS, horizon(campaign))
    return out


def _estimate(e: Experiment, per_day: float, horizon_length: timedelta) -> None:
    """Roughly when a collecting test has its planned size: the slowest arm's journeys
    still to enter at the last INFLOW_DAYS' pace (as the weights share it), plus one
    horizon for the last of them to be measured."""
    e.per_day = per_day
    if not per_day or e.planned is None:
        return
    total = sum(a.weight for a in e.arms)
    e.days_left = horizon_length / timedelta(days=1) + max(
        max(e.planned - a.entered, 0) / (per_day * a.weight / total) for a in e.arms
    )


def _counts_by_goal(
    s: Any, campaign: Campaign, splits: dict[str, SplitNode], *, now: datetime
) -> dict[str, dict[tuple[str, str], tuple[int, int, int]]]:
    """`repo.split_counts` for each goal the splits are judged on (the campaign's, or a
    split's own)."""
    goals = {node.options.goal or campaign.goal for node in splits.values()}
    return {
        goal: repo.split_counts(s, campaign=campaign.campaign, goal=goal, now=now)
        for goal in sorted(goals)
    }


def planned_size(options: SplitOptions) -> int | None:
    """The measured journeys each arm of a test needs, from its `plan` (None: no plan)."""
    plan = options.plan
    if plan is None or options.mode != "test":
        return None
    if plan.journeys is not None:
        return plan.journeys
    assert plan.baseline is not None and plan.effect is not None
    return stats.journeys_needed(
        plan.baseline, plan.effect, comparisons=len(options.arms) - 1, power=plan.planned_power
    )


def build(
    split: str,
    weights: dict[str, float],
    tallies: dict[str, tuple[int, int, int]],
    horizon_text: str,
    *,
    options: SplitOptions | None = None,
    sample: dict[str, tuple[int, int]] | None = None,
    campaign: str = "",
    goal: str = "",
) -> Experiment:
    """An experiment from its arms' weights (in the file's order) and (entered, measured,
    converted) tallies; a judged test's figures come from `sample` (arm -> measured,
    converted over its planned first journeys)."""
    options = options or SplitOptions.model_construct(arms=weights)
    names = list(weights)
    control = CONTROL if CONTROL in names else names[0]
    arms = []
    for name in names:
        entered, measured, converted = tallies.get(name, (0, 0, 0))
        if sample is not None:
            measured, converted = sample.get(name, (0, 0))
        arms.append(Arm(name, weights[name], entered, stats.rate(converted, measured)))
    base = next(a for a in arms if a.name == control)
    lifts = [
        stats.lift(a.name, a.result.k, a.result.n, control, base.result.k, base.result.n)
        for a in arms
        if a.name != control
    ]
    return Experiment(
        split,
        control,
        horizon_text,
        arms,
        stats.holm(lifts),
        mode=options.mode,
        planned=planned_size(options),
        plan_effect=options.plan.effect if options.plan is not None else None,
        plan_power=(
            options.plan.planned_power
            if options.plan is not None and options.plan.effect is not None
            else None
        ),
        progress={name: tallies.get(name, (0, 0, 0))[1] for name in names},
        explore=options.exploration if options.mode == "bandit" else None,
        winner=options.winner,
        campaign=campaign,
        goal=goal,
    )


def tallies_at_end(ctx: Context, campaign: Campaign, *, end: datetime) -> dict[str, Any]:
    """For a finished simulation: each split's arms' weights and (entered, measured,
    converted), every entry measured (no event comes after the end); for a planned test,
    each arm's earliest planned entries too (`sample`), which `merge_samples` combines
    across the simulation's workers."""
    splits = {n: node for n, node in campaign.all_nodes().items() if isinstance(node, SplitNode)}
    if not splits:
        return {}
    out: dict[str, Any] = {}
    measured_by = end + horizon(campaign)
    with ctx.session() as s:
        counts = _counts_by_goal(s, campaign, splits, now=measured_by)
        for split_id, node in splits.items():
            goal = node.options.goal or campaign.goal
            planned = planned_size(node.options)
            out[split_id] = {
                "weights": dict(node.arms),
                "options": node.options.model_dump(
                    mode="json", exclude_none=True, exclude={"arms"}
                ),
                "arms": {
                    name: list(counts[goal].get((split_id, name), (0, 0, 0))) for name in node.arms
                },
                "horizon": format_duration(horizon(campaign)),
                "goal": goal,
            }
            if planned is not None and node.options.winner is None:
                out[split_id]["planned"] = planned
                out[split_id]["sample"] = repo.split_first_entries(
                    s,
                    campaign=campaign.campaign,
                    split=split_id,
                    goal=goal,
                    now=measured_by,
                    first=planned,
                )
    return out


def merge_samples(
    into: dict[str, list[Any]], more: dict[str, list[Any]], planned: int
) -> dict[str, list[Any]]:
    """Two databases' earliest planned entries of each arm as the earliest of both."""
    return {
        arm: sorted(list(row) for row in [*into.get(arm, []), *more.get(arm, [])])[:planned]
        for arm in {*into, *more}
    }


def sample_counts(sample: dict[str, list[Any]]) -> dict[str, tuple[int, int]]:
    """arm -> (measured, converted) of a merged sample."""
    return {arm: (len(rows), sum(int(r[2]) for r in rows)) for arm, rows in sample.items()}


@dataclass(frozen=True)
class Plan:
    """How many journeys a split needs: each arm enough to detect `effect` over `baseline`
    against the control with `power` (the alpha split among the comparisons, Holm's worst
    case) or as the split's own `plan` says, in total as the weights share them out; and,
    from the last INFLOW_DAYS of the split's entries, roughly how many days that takes.
    `per_arm` is None for a split with no plan of its own when none is asked for."""

    split: str
    control: str
    per_arm: int | None
    total: int | None
    per_day: float | None  # journeys a day the split has routed lately
    days: float | None
    source: str  # "options" (--baseline/--effect), "file" (the split's plan) or "none"
    snippet: str | None = None  # the `plan:` to write on the split

    def sentence(self) -> str:
        if self.per_arm is None or self.total is None:
            return (
                f"split {self.split}: no plan in the file; give --baseline and --effect to "
                "compute one."
            )
        when = (
            f"at the last {INFLOW_DAYS} days' pace ({self.per_day:,.1f} a day) that takes "
            f"about {self.days:,.0f} days"
            if self.days is not None and self.per_day
            else f"no journey has reached it in the last {INFLOW_DAYS} days, so no estimate of when"
        )
        whose = " (the split's own plan)" if self.source == "file" else ""
        paste = f" On the split: {self.snippet}" if self.snippet and self.source != "file" else ""
        return (
            f"split {self.split}{whose}: every arm needs {self.per_arm:,} measured journeys "
            f"({self.total:,} in all, as the weights share them); {when}.{paste}"
        )


def plan(
    ctx: Context,
    campaign: Campaign,
    *,
    baseline: float | None = None,
    effect: float | None = None,
    power: float = stats.POWER,
    now: datetime,
) -> list[Plan]:
    """The plan of every split node: from `baseline` and `effect` when given, else from
    each split's own `plan`; ValueError for a baseline, effect or power out of range."""
    check_power(power)
    if (baseline is None) != (effect is None):
        raise ValueError("give both the baseline and the effect, or neither")
    splits = {n: node for n, node in campaign.all_nodes().items() if isinstance(node, SplitNode)}
    with ctx.session() as s:
        inflow = repo.split_inflow(
            s, campaign=campaign.campaign, since=now - timedelta(days=INFLOW_DAYS)
        )
    out = []
    for split_id, node in splits.items():
        names = list(node.arms)
        control = CONTROL if CONTROL in names else names[0]
        per_day = inflow.get(split_id, 0) / INFLOW_DAYS
        snippet = None
        if baseline is not None and effect is not None:
            per_arm: int | None = stats.journeys_needed(
                baseline, effect, comparisons=len(names) - 1, power=power
            )
            source = "options"
            snippet = (
                f"plan: {{baseline: {baseline * 100:.6g}%, effect: {effect * 100:.6g}pt, "
                f"power: {power * 100:.6g}%}}"
            )
        else:
            per_arm = planned_size(node.options)
            source = "none" if per_arm is None else "file"
        if per_arm is None:
            out.append(Plan(split_id, control, None, None, per_day or None, None, source))
            continue
        total = math.ceil(per_arm * sum(node.arms.values()) / min(node.arms.values()))
        days = total / per_day if per_day else None
        out.append(Plan(split_id, control, per_arm, total, per_day or None, days, source, snippet))
    return out
