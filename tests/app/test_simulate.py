"""Simulating each example campaign: every journey ends, and the funnel and trace follow the graph."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.engine.invariants import TraceChecker
from orchestrator.language import loader
from orchestrator.language.spec import BranchNode, Campaign, NotificationNode, SplitNode, WaitNode
from orchestrator.sim.population import synthesize
from orchestrator.sim.simulate import simulate
from tests.helpers import ROOT

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


def test_subscribers_who_come_back_keep_every_rule(tmp_path: Path) -> None:
    """cart-recovery with subscribers who abandon carts again and again and place orders
    (exit_on) over two weeks: journeys exit and re-enter after `reentry` (shortened to
    1 day here), and the trace keeps every rule, spacing across a subscriber's journeys
    included; the same on one process and on two."""
    source = (ROOT / "campaign_graphs" / "cart-recovery.yaml").read_text()
    path = tmp_path / "cart-recovery.yaml"
    path.write_text(source.replace("reentry: 7d", "reentry: 1d"))
    loaded = loader.load(path)
    assert loaded.campaign is not None
    traces = []
    for workers in (1, 2):
        trace = tmp_path / f"trace-{workers}.jsonl"
        result = simulate(
            path,
            subscribers=800,
            seed=3,
            default_rate=0.2,
            start=START,
            trace=trace,
            resolution=timedelta(minutes=15),
            workers=workers,
            repeat_days=14,
        )
        assert result.unfinished == 0
        people = synthesize(loaded.campaign, count=800, seed=3, start=START, repeat_days=14)
        checker = TraceChecker(loaded.campaign, {str(p["id"]): str(p["timezone"]) for p in people})
        lines = [json.loads(line) for line in trace.read_text().splitlines()]
        checker.feed(lines)
        assert checker.finish() == 0
        assert checker.problems == []
        entered = [line["subscriber"] for line in lines if line["type"] == "enroll"]
        assert len(entered) > len(set(entered)) + 100  # many came back
        assert "exit_event" in result.funnel["exits"]
        traces.append(sorted(trace.read_text().splitlines()))
    assert traces[0] == traces[1]


def test_repeated_behaviour_is_the_same_for_the_same_seed() -> None:
    loaded = loader.load(ROOT / "campaign_graphs" / "cart-recovery.yaml")
    assert loaded.campaign is not None
    first = synthesize(loaded.campaign, count=200, seed=4, start=START, repeat_days=10)
    again = synthesize(loaded.campaign, count=200, seed=4, start=START, repeat_days=10)
    other = synthesize(loaded.campaign, count=200, seed=5, start=START, repeat_days=10)
    assert first == again and first != other
    names = [e["name"] for p in first for e in p["events"]]
    assert names.count("purchase") > 20  # an exit_on event
    carts = [[e["at"] for e in p["events"] if e["name"] == "cart_abandoned"] for p in first]
    assert max(len(c) for c in carts) > 3 and all(c == sorted(c) for c in carts)
    end = (START + timedelta(days=10)).isoformat()
    assert all(at < end for c in carts for at in c[1:])
