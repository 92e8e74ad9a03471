"""Each split node of a campaign as an experiment: the journey is the unit (its entry into
an arm, `split_entry`), converted when its subscriber reaches the campaign's goal within
the horizon after entering (as the holdout is counted); only entries whose horizon is
over are measured. Each arm's rate has its Wilson interval; every other arm is compared
with the control (the arm named `control`, else the first) by its Newcombe interval and
a score test, the p-values corrected with Holm's method (`experiment_stats`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.app import experiment_stats as stats
from orchestrator.app.journeys import horizon
from orchestrator.app.service import Context
from orchestrator.language.spec import Campaign, SplitNode, format_duration
from orchestrator.store import repo

CONTROL = "control"


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    entered: int
    result: stats.Rate  # measured entries and their conversions


@dataclass
class Experiment:
    split: str
    control: str
    horizon: str
    arms: list[Arm]
    lifts: list[stats.Lift] = field(default_factory=list)

    def sentences(self) -> list[str]:
        """What the figures say, in words a marketer acts on."""
        out = []
        for lift in self.lifts:
            if lift.difference is None or lift.low is None or lift.high is None:
                out.append(f"{lift.arm} against {lift.control}: no measured journeys yet.")
                continue
            word = "better" if lift.difference >= 0 else "worse"
            verdict = (
                f"a difference (Holm-corrected p {stats.format_p(lift.p_adjusted)})"
                if lift.significant
                else f"no difference shown yet (Holm-corrected p {stats.format_p(lift.p_adjusted)})"
            )
            out.append(
                f"{lift.arm} converts {abs(lift.difference) * 100:.1f} points {word} than "
                f"{lift.control}, 95 % interval {lift.low * 100:+.1f} to {lift.high * 100:+.1f} "
                f"points: {verdict}."
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "control": self.control,
            "horizon": self.horizon,
            "arms": [
                {
                    "arm": a.name,
                    "weight": a.weight,
                    "entered": a.entered,
                    "measured": a.result.n,
                    "converted": a.result.k,
                    "rate": a.result.rate,
                    "low": a.result.low,
                    "high": a.result.high,
                }
                for a in self.arms
            ],
            "lifts": [
                {
                    "arm": lift.arm,
                    "control": lift.control,
                    "difference": lift.difference,
                    "low": lift.low,
                    "high": lift.high,
                    "p_value": lift.p_value,
                    "p_adjusted": lift.p_adjusted,
                    "correction": "holm",
                    "significant": lift.significant,
                }
                for lift in self.lifts
            ],
            "sentences": self.sentences(),
        }


def experiments(ctx: Context, campaign: Campaign, *, now: datetime) -> list[Experiment]:
    """Every split node of `campaign`, in file order, with its figures at `now`."""
    splits = {n: node for n, node in campaign.all_nodes().items() if isinstance(node, SplitNode)}
    if not splits:
        return []
    with ctx.session() as s:
        counts = repo.split_counts(s, campaign=campaign.campaign, goal=campaign.goal, now=now)
    out = []
    for split_id, node in splits.items():
        tallies = {name: counts.get((split_id, name), (0, 0, 0)) for name in node.arms}
        out.append(build(split_id, dict(node.arms), tallies, format_duration(horizon(campaign))))
    return out


def build(
    split: str,
    weights: dict[str, float],
    tallies: dict[str, tuple[int, int, int]],
    horizon_text: str,
) -> Experiment:
    """An experiment from its arms' weights (in the file's order) and (entered, measured,
    converted) tallies."""
    names = list(weights)
    control = CONTROL if CONTROL in names else names[0]
    arms = []
    for name in names:
        entered, measured, converted = tallies.get(name, (0, 0, 0))
        arms.append(Arm(name, weights[name], entered, stats.rate(converted, measured)))
    base = next(a for a in arms if a.name == control)
    lifts = [
        stats.lift(a.name, a.result.k, a.result.n, control, base.result.k, base.result.n)
        for a in arms
        if a.name != control
    ]
    return Experiment(split, control, horizon_text, arms, stats.holm(lifts))


def tallies_at_end(ctx: Context, campaign: Campaign, *, end: datetime) -> dict[str, Any]:
    """For a finished simulation: each split's arms' weights and (entered, measured,
    converted), every entry measured (no event comes after the end)."""
    splits = {n: node for n, node in campaign.all_nodes().items() if isinstance(node, SplitNode)}
    if not splits:
        return {}
    with ctx.session() as s:
        counts = repo.split_counts(
            s, campaign=campaign.campaign, goal=campaign.goal, now=end + horizon(campaign)
        )
    return {
        split_id: {
            "weights": dict(node.arms),
            "arms": {name: list(counts.get((split_id, name), (0, 0, 0))) for name in node.arms},
            "horizon": format_duration(horizon(campaign)),
        }
        for split_id, node in splits.items()
    }


INFLOW_DAYS = 14  # the days of entries a plan's "when" is estimated from


@dataclass(frozen=True)
class Plan:
    """How many journeys a split needs: each arm enough to detect `effect` over `baseline`
    against the control with `power` (the alpha split among the comparisons, Holm's worst
    case), in total as the weights share them out; and, from the last INFLOW_DAYS of the
    split's entries, roughly how many days that takes."""

    split: str
    control: str
    per_arm: int
    total: int
    per_day: float | None  # journeys a day the split has routed lately
    days: float | None

    def sentence(self) -> str:
        when = (
            f"at the last {INFLOW_DAYS} days' pace ({self.per_day:,.1f} a day) that takes "
            f"about {self.days:,.0f} days"
            if self.days is not None and self.per_day
            else f"no journey has reached it in the last {INFLOW_DAYS} days, so no estimate of when"
        )
        return (
            f"split {self.split}: every arm needs {self.per_arm:,} measured journeys "
            f"({self.total:,} in all, as the weights share them); {when}."
        )


def plan(
    ctx: Context,
    campaign: Campaign,
    *,
    baseline: float,
    effect: float,
    power: float = stats.POWER,
    now: datetime,
) -> list[Plan]:
    """The plan of every split node; ValueError for a baseline, effect or power out of range."""
    if not 0 < power < 1:
        raise ValueError(f"the power must be between 0 and 1, got {power}")
    splits = {n: node for n, node in campaign.all_nodes().items() if isinstance(node, SplitNode)}
    with ctx.session() as s:
        inflow = repo.split_inflow(
            s, campaign=campaign.campaign, since=now - timedelta(days=INFLOW_DAYS)
        )
    out = []
    for split_id, node in splits.items():
        names = list(node.arms)
        control = CONTROL if CONTROL in names else names[0]
        per_arm = stats.journeys_needed(baseline, effect, comparisons=len(names) - 1, power=power)
        weights = sum(node.arms.values())
        total = math.ceil(per_arm * weights / min(node.arms.values()))
        per_day = inflow.get(split_id, 0) / INFLOW_DAYS
        days = total / per_day if per_day else None
        out.append(Plan(split_id, control, per_arm, total, per_day or None, days))
    return out
