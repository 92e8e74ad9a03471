"""What a simulation reports: one campaign's figures (`SimulationResult`), and several
campaigns' with the programme's checks (`ProgrammeResult`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.app.experiments import build, has_planned_size, merge_samples, sample_counts
from orchestrator.app.insights import SendTimeLift
from orchestrator.language.spec import SplitOptions, format_duration
from orchestrator.sim import programme


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
    # a campaign with `send_time: best`: {"arms": {arm: [sends, conversions]},
    # "weeks": {week: {arm: [sends, conversions]}}} (weeks from the start, 0 first)
    send_time: dict[str, Any] | None = None
    # a campaign with split nodes: `experiments.tallies_at_end` (summed over workers)
    experiments: dict[str, Any] | None = None

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
            **({"send_time": send_time_figures(self.send_time)} if self.send_time else {}),
            **(
                {
                    "experiments": [
                        build(
                            split,
                            figures["weights"],
                            {arm: tuple(v) for arm, v in figures["arms"].items()},
                            figures["horizon"],
                            options=SplitOptions.model_validate(
                                {
                                    **figures.get("options", {}),
                                    "arms": {a: f"{w!r}%" for a, w in figures["weights"].items()},
                                }
                            ),
                            campaign=self.campaign,
                            goal=figures.get("goal", ""),
                            sample=_judged_sample(figures),
                        ).as_dict()
                        for split, figures in self.experiments.items()
                    ]
                }
                if self.experiments
                else {}
            ),
        }


def send_time_figures(tallies: dict[str, Any]) -> dict[str, Any]:
    """The optimiser's arms side by side, the lift of `best` over `immediate` with its 95 %
    Newcombe interval, and the conversion rate by week and arm (the learning curve)."""
    arms = {arm: (int(n), int(k)) for arm, (n, k) in tallies.get("arms", {}).items()}
    lift = SendTimeLift(arms)
    found = lift.difference
    weeks = tallies.get("weeks", {})
    return {
        "arms": {
            arm: {"sends": n, "conversions": k, "rate": _rate(k, n)}
            for arm, (n, k) in sorted(arms.items())
        },
        "lift": None
        if found is None
        else {
            "difference": round(found[0], 4),
            "low": round(found[1], 4),
            "high": round(found[2], 4),
        },
        "weeks": [
            {
                "week": int(week),
                **{
                    arm: {"sends": n, "rate": _rate(k, n)}
                    for arm in sorted(arms)
                    for n, k in [tuple(by.get(arm, (0, 0)))]
                },
            }
            for week, by in sorted(weeks.items(), key=lambda kv: int(kv[0]))
        ],
    }


def _rate(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


@dataclass
class ProgrammeResult:
    """Several campaigns simulated together; one campaign's figures are its `campaigns[0]`.

    `ticks`, `end` and `seconds` are the run's; a campaign's `ticks` are those it had
    something due or did something in, its `end` the last of them, and its `seconds` the
    time its own ticks took (summed over worker processes)."""

    campaigns: list[SimulationResult]
    subscribers: int
    start: datetime
    end: datetime
    resolution: timedelta
    ticks: int = 0
    seconds: float = 0.0
    part: programme.Part | None = None  # the programme's checks; None for one campaign

    def as_dict(self) -> dict[str, Any]:
        """One campaign: its figures alone (`SimulationResult.as_dict`); several: each
        campaign's, and the `programme` block."""
        if len(self.campaigns) == 1:
            return self.campaigns[0].as_dict()
        names = [c.campaign for c in self.campaigns]
        steps = sum(c.steps for c in self.campaigns)
        block = {
            "campaigns": names,
            "subscribers": self.subscribers,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "resolution": format_duration(self.resolution),
            "ticks": self.ticks,
            "steps": steps,
            "sent": sum(c.sends for c in self.campaigns),
            "conversions": sum(c.conversions for c in self.campaigns),
            "unfinished_journeys": sum(c.unfinished for c in self.campaigns),
            "seconds": round(self.seconds, 3),
            "steps_per_s": round(steps / self.seconds, 1) if self.seconds else None,
            **programme.figures(
                self.part or programme.Part(), names, start=self.start, end=self.end
            ),
        }
        return {"campaigns": [c.as_dict() for c in self.campaigns], "programme": block}


def merge_results(parts: list[SimulationResult]) -> SimulationResult:
    """One campaign's figures from the shares of the worker processes that simulated it."""
    first = parts[0]
    if len(parts) == 1:
        return first
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
        out.seconds += part.seconds
        _add_counts(funnel, part.funnel)
        _add_counts(out.counts, part.counts)
        if part.send_time is not None:
            out.send_time = _add_lists(out.send_time or {}, part.send_time)
        if part.experiments:
            if out.experiments is None:
                out.experiments = json.loads(json.dumps(part.experiments))  # a copy
            else:
                for split, figures in part.experiments.items():
                    arms = out.experiments[split]["arms"]
                    for arm, values in figures["arms"].items():
                        arms[arm] = [a + b for a, b in zip(arms[arm], values, strict=True)]
                    if "sample" in figures:
                        merged = out.experiments[split]
                        merged["sample"] = merge_samples(
                            merged["sample"], figures["sample"], figures["planned"]
                        )
    out.funnel = funnel
    return out


def _judged_sample(figures: dict[str, Any]) -> dict[str, tuple[int, int]] | None:
    """A planned test's sample, once every arm has its planned measured journeys."""
    planned = figures.get("planned")
    if planned is None or not has_planned_size(planned, (v[1] for v in figures["arms"].values())):
        return None
    return sample_counts(figures["sample"])


def _add_lists(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """`more`'s [sends, conversions] tallies added into `into`'s, at any depth."""
    for key, value in more.items():
        if isinstance(value, dict):
            into[key] = _add_lists(into.get(key, {}), value)
        else:
            have = into.get(key, [0, 0])
            into[key] = [have[0] + value[0], have[1] + value[1]]
    return into


def _add_counts(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict):
            _add_counts(into.setdefault(key, {}), value)
        elif isinstance(value, int) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
        else:
            into.setdefault(key, value)
