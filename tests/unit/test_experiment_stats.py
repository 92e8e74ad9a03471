"""The A/B statistics against published reference values (and statsmodels' own)."""

from __future__ import annotations

import pytest

from orchestrator.app.experiment_stats import (
    format_p,
    holm,
    journeys_needed,
    lift,
    rate,
)


def test_wilson_intervals_match_newcombe_1998_single_proportion_examples() -> None:
    """Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (Wilson score)."""
    a = rate(81, 263)
    assert (round(a.low, 4), round(a.high, 4)) == (0.2553, 0.3662)  # type: ignore[arg-type]
    b = rate(15, 148)
    assert (round(b.low, 4), round(b.high, 4)) == (0.0624, 0.1605)  # type: ignore[arg-type]
    assert rate(0, 0).low is None and rate(0, 0).rate is None
    with pytest.raises(ValueError, match="0 <= k <= n"):
        rate(5, 3)


def test_newcombe_difference_interval_matches_the_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80,
    hybrid score interval 0.0524 to 0.3339."""
    found = lift("b", 56, 70, "a", 48, 80)
    assert found.difference == pytest.approx(0.2)
    assert (round(found.low, 4), round(found.high, 4)) == (0.0524, 0.3339)  # type: ignore[arg-type]
    assert found.p_value is not None and found.p_value < 0.01
    assert lift("b", 0, 0, "a", 4, 10).difference is None
    assert lift("b", 0, 10, "a", 0, 10).p_value == 1.0


def test_holm_corrects_several_comparisons() -> None:
    """Holm's step-down on p = 0.01, 0.04, 0.03: adjusted 0.03, 0.06, 0.06."""
    base = [lift(arm, 10, 100, "a", 10, 100) for arm in ("b", "c", "d")]
    with_p = [
        type(one)(one.arm, one.control, one.difference, one.low, one.high, p)
        for one, p in zip(base, (0.01, 0.04, 0.03), strict=True)
    ]
    adjusted = [one.p_adjusted for one in holm(with_p)]
    assert adjusted == pytest.approx([0.03, 0.06, 0.06])
    assert [one.significant for one in holm(with_p)] == [True, False, False]


def test_journeys_needed_matches_the_textbook_sample_size() -> None:
    """10 % against 12 %, two-sided 5 %, power 80 %: the normal-approximation formula
    gives about 3,837 per arm (Fleiss); statsmodels' arcsine effect size 3,835."""
    n = journeys_needed(0.10, 0.02)
    assert abs(n - 3837) / 3837 < 0.01
    assert journeys_needed(0.10, 0.02, comparisons=3) > n  # alpha split three ways
    for bad in ((0.0, 0.02), (0.1, 0.0), (0.95, 0.1)):
        with pytest.raises(ValueError):
            journeys_needed(*bad)


def test_p_values_below_a_thousandth_print_as_such() -> None:
    assert format_p(0.0000123) == "< 0.001"
    assert format_p(0.0234) == "0.023"
    assert format_p(None) == "-"


def test_a_plan_too_small_to_find_or_too_large_to_solve_is_handled() -> None:
    import pytest

    from orchestrator.app.experiment_stats import journeys_needed
    from orchestrator.language.spec import rough_journeys

    with pytest.raises(ValueError, match="too small to plan for"):
        journeys_needed(0.10, 1e-9)
    # statsmodels' solver gives up on a huge effect: the normal approximation answers
    assert journeys_needed(0.9999, -0.9998) >= 1
    # the language's bound agrees with statsmodels where both answer (10 % vs 12 %: 3,835)
    assert abs(rough_journeys(0.10, 0.02, 0.8) - journeys_needed(0.10, 0.02)) <= 2
