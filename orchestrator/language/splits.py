"""A split node's value in the campaign language (docs/language.md, "split").

Two forms. The short one names the arms and their weights,
`split: {a: 50, b: 50}`: a test judged at a fixed horizon, without a planned size.
The long one is told apart by its `arms` mapping and carries the experiment's options:

    split:
      arms: {control: 50, b: 50}
      mode: test            # or bandit
      plan: {baseline: 10%, effect: 2pt, power: 80%}   # or {journeys: 4000}: per arm
      explore: 10%          # bandit only: the share routed by the weights, not the data
      winner: b             # the test is over: every new journey goes to b
      goal: order_placed    # the event both arms are judged on (the campaign's goal)

The engine's side is `orchestrator.engine.state.pick_split`; the statistics are the
application's (`orchestrator.app.experiments`).
"""

from __future__ import annotations

import math
import re
from statistics import NormalDist
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    WithJsonSchema,
    model_validator,
)

from orchestrator.language.scalars import EventName, Percent, Strict, Target

MAX_PLANNED_JOURNEYS = 100_000_000
DEFAULT_EXPLORE = 0.10  # a bandit's share routed by the weights when `explore` is not given
DEFAULT_POWER = 0.80
MIN_POWER, MAX_POWER = 0.50, 0.999  # a test planned below 50 % power misses most effects
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # a percent's number: ASCII digits, no exponent


def _split_weight(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"a split weight is a positive whole number or a percent, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"split weight {value} must be positive")
        return float(value)
    if isinstance(value, str) and value.strip().endswith("%"):
        digits = value.strip()[:-1].strip()
        if not NUMBER.fullmatch(digits):
            raise ValueError(f"{value!r} is not a percent: write 50%")
        number = float(digits)
        if number <= 0:
            raise ValueError(f"split weight {value} must be positive")
        return number
    raise ValueError(f"a split weight is a positive whole number or a percent, got {value!r}")


Weight: TypeAlias = Annotated[
    float,
    BeforeValidator(_split_weight),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
            ]
        }
    ),
]


def parse_points(value: Any) -> float:
    """A change of a rate: `2pt` (two percentage points) or a fraction (`0.02`); negative
    for a drop. Returns the fraction."""
    if isinstance(value, bool):
        raise ValueError(f"a change of a rate is written 2pt or 0.02 (got {value!r})")
    if isinstance(value, str):
        text = value.strip()
        try:
            if not text.isascii() or not text.endswith("pt"):
                raise ValueError(text)
            number = float(text[:-2]) / 100
        except ValueError:
            raise ValueError(
                f"{value!r}: write the change in points (2pt) or as a fraction (0.02)"
            ) from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ValueError(f"a change of a rate is written 2pt or 0.02 (got {value!r})")
    if not -1 < number < 1 or number == 0 or number != number:
        raise ValueError(f"{value!r} is not a change of a rate (between -100pt and 100pt, not 0)")
    return number


Points: TypeAlias = Annotated[
    float,
    BeforeValidator(parse_points),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "pattern": r"^-?\d+(\.\d+)?pt$"}, {"type": "number"}]}
    ),
]


class SplitPlan(Strict):
    """A test's planned size: each arm's measured journeys, given outright (`journeys`) or
    computed for the smallest change worth finding (`effect`) over the control's expected
    rate (`baseline`) with `power` (docs/engine.md, "Experiments")."""

    journeys: StrictInt | None = Field(default=None, ge=1, le=MAX_PLANNED_JOURNEYS)
    baseline: Percent | None = None
    effect: Points | None = None
    power: Percent | None = None

    @model_validator(mode="after")
    def _shape(self) -> SplitPlan:
        computed = self.baseline is not None or self.effect is not None
        if self.journeys is not None and (computed or self.power is not None):
            raise ValueError(
                "a plan is {journeys: N} or {baseline, effect, power}, not both (a plan in "
                "journeys has no power of its own)"
            )
        if self.journeys is None and (self.baseline is None or self.effect is None):
            raise ValueError(
                "a plan needs journeys (per arm), or baseline and effect: "
                "{baseline: 10%, effect: 2pt}"
            )
        if (
            self.baseline is not None
            and self.effect is not None
            and (not 0 < self.baseline + self.effect < 1 or self.baseline == 0)
        ):
            raise ValueError(
                "baseline plus effect must stay a rate between 0% and 100%, and the "
                "baseline above 0%"
            )
        check_power(self.planned_power)
        if self.baseline is not None and self.effect is not None:
            rough = rough_journeys(self.baseline, self.effect, self.planned_power)
            if rough > MAX_PLANNED_JOURNEYS:
                raise ValueError(
                    f"an effect of {self.effect * 100:g} points needs about "
                    f"{_count(rough)} journeys per arm, more than {MAX_PLANNED_JOURNEYS:,}: "
                    "plan for a larger effect"
                )
        return self

    @property
    def planned_power(self) -> float:
        return DEFAULT_POWER if self.power is None else self.power


def check_power(power: float) -> float:
    """A plan's power, between MIN_POWER and MAX_POWER; ValueError otherwise."""
    if not MIN_POWER <= power <= MAX_POWER:
        raise ValueError(
            f"a plan's power is between {MIN_POWER:.0%} and {MAX_POWER:.1%} (80% is usual), "
            f"got {power * 100:.6g}%"
        )
    return power


def rough_journeys(baseline: float, effect: float, power: float, alpha: float = 0.05) -> float:
    """About how many journeys each arm needs (the normal approximation on Cohen's h, one
    comparison): a bound for validation, which stays free of the statistics libraries;
    `campaign experiment plan` computes the size itself. Infinite for no effect."""
    h = abs(2 * math.asin(math.sqrt(baseline + effect)) - 2 * math.asin(math.sqrt(baseline)))
    if h == 0 or not math.isfinite(h):
        return math.inf
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return 2 * (z / h) ** 2  # each arm's transformed rate has variance 1/n


def _count(n: float) -> str:
    return "infinitely many" if not math.isfinite(n) else f"{n:,.0f}"


class SplitOptions(Strict):
    """The long form of a split: its arms and the experiment's options."""

    arms: dict[Target, Weight] = Field(min_length=2)
    mode: Literal["test", "bandit"] = "test"
    plan: SplitPlan | None = None
    explore: Percent | None = None
    winner: Target | None = None
    goal: EventName | None = None  # the event the test is judged on (the campaign's goal)

    def problems(self) -> list[tuple[str, str]]:
        """(key, message) for each option that contradicts another (checked after parsing,
        so that each message points at its own key)."""
        out = []
        if self.mode == "bandit" and self.plan is not None:
            out.append(
                (
                    "plan",
                    "a bandit has no planned size (its traffic follows the data): "
                    "drop plan, or use mode: test",
                )
            )
        if self.mode == "test" and self.explore is not None:
            out.append(("explore", "explore tunes mode: bandit; a test routes by its weights"))
        if self.winner is not None and self.winner not in self.arms:
            out.append(
                (
                    "winner",
                    f"winner {self.winner!r} is not an arm of this split "
                    f"(arms: {', '.join(self.arms)})",
                )
            )
        return out

    @property
    def exploration(self) -> float:
        """The share of a bandit's journeys routed by the weights, not by the data."""
        return DEFAULT_EXPLORE if self.explore is None else self.explore


def _split_form(value: Any) -> str:
    """The long form has `arms` that is not a weight (a mapping, or something wrong that
    its error should name as `arms`); the short form's `arms` would be an arm's weight."""
    if isinstance(value, SplitOptions):
        return "SplitOptions"
    if isinstance(value, dict) and "arms" in value:
        arms = value["arms"]
        if not isinstance(arms, int | str) or isinstance(arms, bool):
            return "SplitOptions"
    return "SplitWeights"


SplitValue: TypeAlias = Annotated[
    Annotated[dict[Target, Weight], Field(min_length=2), Tag("SplitWeights")]
    | Annotated[SplitOptions, Tag("SplitOptions")],
    Discriminator(_split_form),
]


def options_of(value: dict[str, float] | SplitOptions) -> SplitOptions:
    """The long form of a split's value (the short form's options are the defaults)."""
    if isinstance(value, SplitOptions):
        return value
    return SplitOptions.model_construct(arms=dict(value))
