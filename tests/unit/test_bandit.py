"""A bandit split's choice (`mode: bandit`): deterministic for equal inputs, by the weights
without data and for its explore share, Thompson sampling otherwise; every share is
checked against its exact probability within a binomial tolerance."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from orchestrator import engine
from orchestrator.engine import SubscriberView, bandit
from orchestrator.language.loader import LoadedCampaign
from orchestrator.language.spec import Campaign, SplitNode, SplitOptions

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
N = 4000  # subscribers per share checked
# (split, arm) -> (measured, converted): b converts 14 %, a 10 %, over 20,000 journeys
# each; the difference is twelve standard errors, so a draw of a above b has a
# probability below 1e-30 and Thompson sampling takes b every time
STRONG = {("pick", "a"): (20_000, 2_000), ("pick", "b"): (20_000, 2_800)}


def _campaign(load_yaml: Callable[..., LoadedCampaign], split: str) -> Campaign:
    loaded = load_yaml(
        f"""
campaign: bandit
title: Bandit
goal: signup
segments:
  everyone: {{match: {{attr: plan, exists: true}}}}
subcampaigns:
  s:
    segment: everyone
    start: pick
    nodes:
      pick: {{split: {split}}}
      a: {{notification: {{title: A}}}}
      b: {{notification: {{title: B}}}}
"""
    )
    assert loaded.ok and loaded.campaign is not None, [d.format() for d in loaded.diagnostics]
    return loaded.campaign


def _split(campaign: Campaign) -> SplitNode:
    node = campaign.node("pick")
    assert isinstance(node, SplitNode)
    return node


def _with(node: SplitNode, **options: Any) -> SplitNode:
    """`node` with other options, unchecked (the language keeps `explore` below 100 %)."""
    values = {**dict(node.options), **options}
    return SplitNode.model_construct(split=SplitOptions.model_construct(**values))


def _picks(
    campaign: Campaign, node: SplitNode, tallies: bandit.SplitTallies | None, *, n: int = N
) -> list[str]:
    return [
        engine.pick_split(campaign, "pick", node, f"s{i}", at=T0, tallies=tallies) for i in range(n)
    ]


def _by_weights(campaign: Campaign, node: SplitNode, *, n: int = N) -> list[str]:
    return [engine.pick_split(campaign, "pick", node, f"s{i}") for i in range(n)]


def _within(count: int, n: int, p: float, *, sigmas: float = 4.5) -> bool:
    """`count` of `n` is within `sigmas` binomial standard deviations of n·p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_equal_inputs_give_equal_choices_and_the_moment_reseeds(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _campaign(load_yaml, "{arms: {a: 50, b: 50}, mode: bandit, explore: 0%}")
    node = _split(c)
    even = {("pick", "a"): (30, 3), ("pick", "b"): (30, 3)}  # undecided: draws matter
    first = _picks(c, node, even)
    assert _picks(c, node, dict(even)) == first
    later = [
        engine.pick_split(c, "pick", node, f"s{i}", at=T0 + timedelta(hours=1), tallies=even)
        for i in range(N)
    ]
    assert later != first  # another arrival, other draws
    # the same instant in another timezone is the same arrival
    shifted = T0.astimezone(timezone(timedelta(hours=1)))
    assert [
        engine.pick_split(c, "pick", node, f"s{i}", at=shifted, tallies=even) for i in range(N)
    ] == first


def test_without_measured_journeys_a_bandit_routes_by_its_weights(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _campaign(load_yaml, "{arms: {a: 70, b: 30}, mode: bandit, explore: 0%}")
    node = _split(c)
    weights = _by_weights(c, node)
    unmeasured = {("pick", "a"): (0, 0), ("pick", "b"): (0, 0), ("other", "a"): (50, 40)}
    for tallies in (None, {}, unmeasured):
        assert _picks(c, node, tallies) == weights
    assert _within(weights.count("a"), N, 0.7)


def test_strong_tallies_send_the_better_arm_all_but_the_explore_share_by_weights(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    """b gets (1 − explore) + explore × its weight share: the explore share keeps the
    weights (a gets 70 % of it), the rest is Thompson's, all b."""
    c = _campaign(load_yaml, "{arms: {a: 70, b: 30}, mode: bandit, explore: 20%}")
    node = _split(c)
    picks = _picks(c, node, STRONG)
    expected = (1 - 0.2) + 0.2 * 30 / 100
    assert _within(picks.count("b"), N, expected), (picks.count("b"), N * expected)
    # every pick of a is an explored journey that the weights sent to a
    weights = _by_weights(c, node)
    assert all(w == "a" for p, w in zip(picks, weights, strict=True) if p == "a")


def test_explore_zero_and_everything(load_yaml: Callable[..., LoadedCampaign]) -> None:
    c = _campaign(load_yaml, "{arms: {a: 70, b: 30}, mode: bandit, explore: 0%}")
    node = _split(c)
    assert set(_picks(c, node, STRONG)) == {"b"}
    everything = _with(node, explore=1.0)
    assert _picks(c, everything, STRONG) == _by_weights(c, node)


def test_the_default_explore_share_is_ten_percent(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _campaign(load_yaml, "{arms: {a: 50, b: 50}, mode: bandit}")
    picks = _picks(c, _split(c), STRONG)
    assert _within(picks.count("a"), N, 0.10 * 0.5)


def test_thompson_takes_each_arm_as_often_as_it_is_likely_the_best(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    """With little data the share of b is P(θb > θa) for θ ~ Beta(1 + k, 1 + n − k),
    computed here by integration (scipy)."""
    from scipy import integrate, stats

    c = _campaign(load_yaml, "{arms: {a: 50, b: 50}, mode: bandit, explore: 0%}")
    tallies = {("pick", "a"): (60, 6), ("pick", "b"): (60, 9)}
    a, b = stats.beta(1 + 6, 1 + 54), stats.beta(1 + 9, 1 + 51)
    p_b, _ = integrate.quad(lambda x: b.pdf(x) * a.cdf(x), 0, 1)
    assert 0.7 < p_b < 0.9  # a case where both arms keep getting journeys
    picks = _picks(c, _split(c), tallies)
    assert _within(picks.count("b"), N, p_b), (picks.count("b"), N * p_b)


def test_the_winner_overrides_and_a_test_split_ignores_tallies(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _campaign(load_yaml, "{arms: {a: 50, b: 50}, mode: bandit, winner: a, explore: 0%}")
    assert set(_picks(c, _split(c), STRONG)) == {"a"}
    test = _campaign(load_yaml, "{a: 50, b: 50}")
    assert _picks(test, _split(test), STRONG) == _by_weights(test, _split(test))


def test_equal_draws_go_to_the_earlier_arm() -> None:
    class Flat:
        def betavariate(self, alpha: float, beta: float) -> float:
            return 0.5

    counts = {"b": (10, 1), "a": (10, 9), "c": (0, 0)}
    assert bandit.sample(counts, Flat()) == "b"  # type: ignore[arg-type]


def test_advance_passes_the_tallies_to_the_split(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _campaign(load_yaml, "{arms: {a: 90, b: 10}, mode: bandit, explore: 0%}")
    routes: Counter[tuple[str, str | None]] = Counter()
    for i in range(200):
        state = engine.enroll(campaign=c, subcampaign="s", subscriber_id=f"s{i}", at=T0).state
        for tallies, label in ((None, "none"), (STRONG, "strong")):
            result = engine.advance(
                state,
                campaign=c,
                subscriber=SubscriberView(id=f"s{i}"),
                events=[],
                now=T0,
                split_tallies=tallies,
            )
            route = next(a for a in result.actions if a.type == "route")
            assert result.state.arm == route.to
            routes[(label, route.to)] += 1
    assert routes[("strong", "b")] == 200
    assert routes[("none", "a")] > routes[("none", "b")] > 0


@pytest.mark.parametrize("bad", [(5, 9), (-1, 0), (3, -2)])
def test_tallies_out_of_range_still_draw(bad: tuple[int, int]) -> None:
    rng = bandit.generator("x")
    assert bandit.sample({"a": bad, "b": (10, 1)}, rng) in {"a", "b"}
