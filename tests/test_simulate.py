"""Simulating each example campaign: every journey ends, and the funnel and trace follow the graph."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import loader
from orchestrator.invariants import TraceChecker
from orchestrator.population import synthesize
from orchestrator.simulate import simulate
from orchestrator.spec import BranchNode, Campaign, NotificationNode, SplitNode, WaitNode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "campaign_graphs").glob("*.yaml"))
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POPULATION = 10_000  # the figure; simulated on two worker processes

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_simulated_example_ends_every_journey_along_its_graph(path: Path, tmp_path: Path) -> None:
    loaded = loader.load(path)
    assert loaded.campaign is not None
    campaign: Campaign = loaded.campaign
    trace = tmp_path / "trace.jsonl"
    result = simulate(
        path,
        subscribers=POPULATION,
        seed=7,
        default_rate=0.25,
        start=START,
        trace=trace,
        resolution=timedelta(hours=1),
    )
    assert result.unfinished == 0
    enrolled = sum(1 for line in trace.read_text().splitlines() if '"type": "enroll"' in line)
    assert enrolled > 0
    assert sum(result.funnel["exits"].values()) == enrolled
    nodes = campaign.all_nodes()
    for node_id, figures in result.funnel["nodes"].items():
        node = nodes[node_id]
        if not isinstance(node, NotificationNode):
            assert figures.get("sent", 0) == 0
        else:
            assert figures.get("converted", 0) + figures.get("no_convert", 0) <= figures.get(
                "sent", 0
            )
        for metric in figures:
            if metric.startswith("route:"):
                assert isinstance(node, SplitNode | BranchNode | WaitNode)
    assert result.subscribers == POPULATION
    people = synthesize(campaign, count=POPULATION, seed=7, start=START)
    checker = TraceChecker(campaign, {str(p["id"]): str(p["timezone"]) for p in people})
    with trace.open() as lines:
        checker.feed(json.loads(line) for line in lines)
    assert checker.finish() == 0
    assert checker.problems == []
    assert checker.journeys == enrolled
    first_nodes = {json.loads(line)["node"] for line in trace.open() if '"enroll"' in line}
    assert first_nodes <= {sub.start for sub in campaign.subcampaigns.values()}


def test_the_same_seed_gives_the_same_simulation() -> None:
    path = ROOT / "campaign_graphs" / "coffee-carafe-ab.yaml"
    first = simulate(path, subscribers=150, seed=3, start=START)
    second = simulate(path, subscribers=150, seed=3, start=START)
    assert first.funnel == second.funnel
    assert (first.steps, first.sends, first.conversions) == (
        second.steps,
        second.sends,
        second.conversions,
    )


def test_splitting_the_population_over_workers_changes_nothing(tmp_path: Path) -> None:
    """Subscribers share no journey state: one process or three, the same funnel and trace."""
    path = ROOT / "campaign_graphs" / "cloud-storage-launch.yaml"
    runs = {}
    for workers in (1, 3):
        trace = tmp_path / f"trace-{workers}.jsonl"
        result = simulate(
            path,
            subscribers=600,
            seed=5,
            default_rate=0.3,
            start=START,
            trace=trace,
            resolution=timedelta(hours=1),
            workers=workers,
        )
        lines = trace.read_text().splitlines()
        times = [json.loads(line)["t"] for line in lines]
        assert times == sorted(times)  # the merged trace is in time order
        runs[workers] = (result, sorted(lines))
    (one, one_lines), (three, three_lines) = runs[1], runs[3]
    assert one.funnel == three.funnel
    assert one_lines == three_lines
    assert (one.steps, one.sends, one.conversions, one.subscribers) == (
        three.steps,
        three.sends,
        three.conversions,
        three.subscribers,
    )
    assert one.sends > 0 and one.conversions > 0
