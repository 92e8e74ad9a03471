"""The statistics of an A/B test, from statsmodels (no hand-written formulas): each arm's
conversion rate with its Wilson interval, each arm's lift over the control arm with its
Newcombe hybrid-score interval and a score-test p-value, the p-values corrected for
several comparisons (Holm), and the journeys each arm needs for a minimum detectable
effect (a two-sided test at `alpha` with `power`, the effect as Cohen's h).

The unit is whatever the caller counts (the journey, for experiments): `k` conversions
of `n` units. statsmodels is imported inside the functions: with pandas and scipy it
takes about a second, and the dashboard and the CLI load this module.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Rate:
    """An arm's conversions of its units, with a (1 − alpha) Wilson interval."""

    n: int
    k: int
    low: float | None
    high: float | None

    @property
    def rate(self) -> float | None:
        return self.k / self.n if self.n else None


@dataclass(frozen=True)
class Lift:
    """An arm against the control: the difference of rates (arm − control) with its
    Newcombe interval, the score test's p-value, and that p-value corrected (Holm)."""

    arm: str
    control: str
    difference: float | None
    low: float | None
    high: float | None
    p_value: float | None
    p_adjusted: float | None = None

    @property
    def significant(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < ALPHA


def rate(k: int, n: int, *, alpha: float = ALPHA) -> Rate:
    _check_counts(k, n)
    if n == 0:
        return Rate(0, 0, None, None)
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    return Rate(n, k, float(low), float(high))


def lift(arm: str, arm_k: int, arm_n: int, control: str, control_k: int, control_n: int) -> Lift:
    """The arm's lift over the control; None figures while either has no units."""
    _check_counts(arm_k, arm_n)
    _check_counts(control_k, control_n)
    if not arm_n or not control_n:
        return Lift(arm, control, None, None, None, None)
    from statsmodels.stats.proportion import (
        confint_proportions_2indep,
        test_proportions_2indep,
    )

    low, high = confint_proportions_2indep(
        arm_k, arm_n, control_k, control_n, method="newcomb", compare="diff", alpha=ALPHA
    )
    if arm_k + control_k in (0, arm_n + control_n):
        p = 1.0  # no conversion at all, or all converted: nothing tells the arms apart
    else:
        with warnings.catch_warnings():  # its odds ratio divides by zero at a rate of 1
            warnings.simplefilter("ignore", RuntimeWarning)
            tested = test_proportions_2indep(
                arm_k, arm_n, control_k, control_n, method="score", compare="diff"
            )
        p = float(tested.pvalue)
    difference = arm_k / arm_n - control_k / control_n
    return Lift(arm, control, difference, float(low), float(high), p)


def holm(lifts: Sequence[Lift]) -> list[Lift]:
    """The lifts with their p-values corrected for being several (Holm's step-down);
    a lift without a p-value keeps None and does not count as a comparison."""
    tested = [i for i, one in enumerate(lifts) if one.p_value is not None]
    out = list(lifts)
    if not tested:
        return out
    from statsmodels.stats.multitest import multipletests

    adjusted = multipletests([lifts[i].p_value for i in tested], alpha=ALPHA, method="holm")[1]
    for i, p in zip(tested, adjusted, strict=True):
        one = lifts[i]
        out[i] = Lift(
            one.arm, one.control, one.difference, one.low, one.high, one.p_value, float(p)
        )
    return out


@functools.lru_cache(maxsize=256)  # pure, and asked for each split on every page view
def journeys_needed(
    baseline: float,
    effect: float,
    *,
    comparisons: int = 1,
    alpha: float = ALPHA,
    power: float = POWER,
) -> int:
    """Units each arm needs to detect `effect` (an absolute change of the rate, e.g. 0.02
    for two points) over `baseline` with `power`, in a two-sided test at `alpha` divided
    among `comparisons` (Bonferroni, Holm's worst case)."""
    if not 0 < baseline < 1:
        raise ValueError(f"the baseline rate must be between 0 and 1, got {baseline}")
    if effect == 0 or not 0 < baseline + effect < 1:
        raise ValueError(
            f"the effect must be non-zero and keep the rate between 0 and 1 (baseline "
            f"{baseline:.1%}, effect {effect:+.1%})"
        )
    if comparisons < 1:
        raise ValueError("at least one comparison")
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    from orchestrator.language.spec import rough_journeys

    if not 0 < power < 1:
        raise ValueError(f"the power must be between 0 and 1, got {power}")
    h = abs(float(proportion_effectsize(baseline + effect, baseline)))
    if not h > 1e-6:  # statsmodels' solver cannot find an effect this small
        raise ValueError(
            f"an effect of {effect * 100:g} points over {baseline:.1%} is too small to plan for"
        )
    with warnings.catch_warnings():  # its solver warns where it finds no size: below
        warnings.simplefilter("ignore")
        n = float(
            NormalIndPower().solve_power(
                effect_size=h,
                alpha=alpha / comparisons,
                power=power,
                ratio=1.0,
                alternative="two-sided",
            )
        )
    if not math.isfinite(n):  # the solver gives up on a very large effect: the normal
        n = rough_journeys(baseline, effect, power, alpha / comparisons)  # approximation
    if not math.isfinite(n):
        raise ValueError(f"no sample size reaches a power of {power:.1%} for that effect")
    return math.ceil(n)


def format_p(p: float | None) -> str:
    """A p-value as a reader should see it: `< 0.001` below that, else three decimals."""
    if p is None:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _check_counts(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"{k} conversions of {n}: counts must satisfy 0 <= k <= n")
