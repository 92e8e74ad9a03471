"""An experiment's figures (`Experiment`, built by `experiments`) and their words: how to
read them (`EXPLANATIONS`, one per status) and what they say (`verdict_sentences`).

A test here is a fixed-horizon test: its size is planned before launch, and it is judged
once, when every arm has that many measured journeys, on exactly those journeys. Until
then it says "not yet" and names no winner; a test without a plan shows its figures and
never names one; a bandit names none either (its traffic follows the data)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.app import experiment_stats as stats


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float
    entered: int
    result: stats.Rate  # measured entries and their conversions


INFLOW_DAYS = 14  # the days of entries a plan's "when" is estimated from
NO_PLAN = "no plan"  # a test without a planned size: figures, never a winner
COLLECTING = "collecting"  # a planned test whose arms have not all reached their size
JUDGED = "judged"  # every arm has its planned size: judged on exactly those journeys
BANDIT = "bandit"  # traffic follows the data: shares and rates, never a winner
FINISHED = "finished"  # a winner is set in the file: every new journey goes to it


@dataclass
class Experiment:
    split: str
    control: str
    horizon: str
    arms: list[Arm]  # when judged: each arm's planned sample, earliest measured first
    lifts: list[stats.Lift] = field(default_factory=list)
    mode: str = "test"
    planned: int | None = None  # measured journeys each arm needs (the plan)
    plan_effect: float | None = None  # the change a computed plan is sized to find
    plan_power: float | None = None  # and how often it finds it
    progress: dict[str, int] = field(default_factory=dict)  # arm -> measured so far
    explore: float | None = None  # a bandit's share routed by the weights
    winner: str | None = None  # the file's winner: the test is over
    promotion: dict[str, Any] | None = None  # its record (`promotions.Promotion.summary`)
    per_day: float | None = None  # a collecting test: journeys a day the split routed lately
    days_left: float | None = None  # and roughly how many days until it is judged
    campaign: str = ""
    goal: str = ""  # the event the test is judged on

    @property
    def status(self) -> str:
        if self.winner is not None:
            return FINISHED
        if self.mode == "bandit":
            return BANDIT
        if self.planned is None:
            return NO_PLAN
        return JUDGED if self.enough_data else COLLECTING

    @property
    def enough_data(self) -> bool | None:
        """Whether every arm has its planned size (None: the split has no plan)."""
        if self.planned is None:
            return None
        return has_planned_size(self.planned, (self.progress.get(a.name, 0) for a in self.arms))

    @property
    def leader(self) -> str | None:
        """A judged test's winner: the arm with the largest significant gain over the
        control; None when no arm beat it (or the test is not judged)."""
        if self.status != JUDGED:
            return None
        gains = [x for x in self.lifts if x.significant and (x.difference or 0) > 0]
        return max(gains, key=lambda x: x.difference or 0).arm if gains else None

    def explanation(self) -> str:
        """How to read the figures, in plain words."""
        return EXPLANATIONS[self.status]

    def sentences(self) -> list[str]:
        """What the figures say, in words a marketer acts on."""
        return verdict_sentences(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "mode": self.mode,
            "status": self.status,
            "control": self.control,
            "horizon": self.horizon,
            "goal": self.goal,
            "planned_per_arm": self.planned,
            "enough_data": self.enough_data,
            "winner": self.winner,
            "promotion": self.promotion,
            "leader": self.leader,
            "explore": self.explore,
            "per_day": self.per_day,
            "days_left": self.days_left,
            "arms": [
                {
                    "arm": a.name,
                    "weight": a.weight,
                    "entered": a.entered,
                    "measured": a.result.n,
                    "measured_so_far": self.progress.get(a.name, a.result.n),
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
            "explanation": self.explanation(),
            "sentences": self.sentences(),
        }


def has_planned_size(planned: int, measured: Iterable[int]) -> bool:
    """Whether every arm (its measured journeys) has reached a test's planned size."""
    return all(n >= planned for n in measured)


EXPLANATIONS = {
    "no plan": (
        "This split has no planned size, so its figures describe what happened and name no "
        "winner: a test read every day until it looks significant finds a chance winner far "
        "more often than 1 in 20. Give it a plan (plan: {baseline: 10%, effect: 2pt}; "
        "campaign experiment plan says how long that takes) to have it judged."
    ),
    "collecting": (
        "A fixed-horizon test: its size was planned before launch, and it is judged once, "
        "when every arm has that many measured journeys, on exactly those journeys. Until "
        "then it says not yet and names no winner, however the figures look, because "
        "looking early and stopping at a good moment would make chance look like a result."
    ),
    "judged": (
        "A fixed-horizon test, judged: every arm has its planned number of measured "
        "journeys, and the figures below are those journeys (each arm's earliest), so "
        "journeys measured later do not change the verdict."
    ),
    "bandit": (
        "A bandit, not a test: it moves traffic toward the arm that converts best so far "
        "(Thompson sampling), keeping a share routed by the weights to go on learning. "
        "Because its traffic follows the data, its rates are descriptive and it names no "
        "winner: promote the arm you choose to end it."
    ),
    "finished": (
        "Finished: the split has a winner, and every new journey goes to it. Journeys "
        "already on another arm finish their path; the figures go on being counted."
    ),
}


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def _comparison(lift: stats.Lift, *, so_far: bool) -> str:
    if lift.difference is None or lift.low is None or lift.high is None:
        return f"{lift.arm} against {lift.control}: no measured journeys yet."
    when = " so far" if so_far else ""
    if round(lift.difference * 100, 1) == 0:
        head = f"{lift.arm} converts as well as {lift.control}{when} (within 0.1 points)"
    else:
        word = "better" if lift.difference > 0 else "worse"
        head = (
            f"{lift.arm} converts {abs(lift.difference) * 100:.1f} points {word} than "
            f"{lift.control}{when}"
        )
    return (
        f"{head}, 95 % interval {_points(lift.low)} to {_points(lift.high)} "
        f"points (Holm-corrected p {stats.format_p(lift.p_adjusted)})"
    )


def verdict_sentences(e: Experiment) -> list[str]:
    """What the figures of `e` say, by its status, in sentences a marketer acts on."""
    status = e.status
    if status == "finished":
        done = f"Finished: every new journey goes to {e.winner}"
        record = e.promotion
        if record is None:
            return [f"{done} (the file names it; no promotion is recorded)."]
        why = f" ({record['reason']})" if record.get("reason") else ""
        out = [f"{done}: promoted on {record['at'][:10]} by {record['by']}{why}."]
        then = record.get("sentences_then") or []
        if then:
            status_then = record.get("status_then") or "unknown"
            out.append(f"At the time ({status_then}): " + " ".join(then))
        return out
    if status == "bandit":
        total = sum(a.entered for a in e.arms)
        shares = ", ".join(
            f"{a.name} {a.entered / total:.0%}" if total else f"{a.name} -" for a in e.arms
        )
        explore = e.explore or 0.0
        return [
            f"Bandit: {explore:.0%} of journeys are routed by the weights, the rest toward "
            f"the arm likeliest to convert best. Share of journeys so far: {shares}.",
            "It names no winner: promote the arm you choose to end it.",
        ]
    if status == "collecting":
        assert e.planned is not None
        have = ", ".join(f"{a.name} {e.progress.get(a.name, 0):,}" for a in e.arms)
        least = min(e.progress.get(a.name, 0) for a in e.arms)
        if e.days_left is not None and e.per_day:
            when = (
                f"At the last {INFLOW_DAYS} days' pace ({e.per_day:,.1f} journeys a day) it "
                f"is judged in about {max(e.days_left, 1):,.0f} days."
            )
        else:
            when = f"No journey reached the split in the last {INFLOW_DAYS} days."
        return [
            f"Enough data: not yet. Every arm needs {e.planned:,} measured journeys; so far "
            f"{have} ({min(least / e.planned, 1):.0%} of the way). No winner is named before "
            f"then. {when}"
        ]
    if status == "no plan":
        return [
            f"{_comparison(lift, so_far=True)}; enough data: unknown, the split has no "
            "planned size, so no winner is named."
            if lift.difference is not None
            else _comparison(lift, so_far=True)
            for lift in e.lifts
        ]
    out = [f"{_comparison(lift, so_far=False)}; enough data: yes." for lift in e.lifts]
    leader = e.leader
    if leader is not None:
        out.append(
            f"Winner: {leader}. End the test with: campaign experiment promote "
            f"{e.campaign or 'CAMPAIGN'} {e.split} {leader}."
        )
    else:
        worse = [x.arm for x in e.lifts if x.significant and (x.difference or 0) < 0]
        tail = f" ({', '.join(worse)} converts worse)" if worse else ""
        size = (
            f"a change of {e.plan_effect * 100:g} points would have shown {e.plan_power:.0%} of "
            "the time"
            if e.plan_effect is not None and e.plan_power is not None
            else "at the planned size"
        )
        out.append(f"No arm beat {e.control}{tail} ({size}); keep {e.control}.")
    return out
