"""The simulator models send-time optimisation: population lines carry active hours or a
response curve, the conversion draw depends on the local hour of the send, and the
result reports the arms side by side with the learning curve by week."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from orchestrator.engine.invariants import TraceChecker
from orchestrator.errors import CampaignError
from orchestrator.language import loader
from orchestrator.language.records import RecordError
from orchestrator.sim.population import synthesize
from orchestrator.sim.response import IDLE_SHARE, curve_of, weight, with_active_hours
from orchestrator.sim.simulate import simulate
from tests.helpers import ROOT

DEALS = ROOT / "docs" / "campaigns" / "daily-deals.yaml"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_response_curves_from_a_population_line() -> None:
    line = {"id": "a", "active_hours": [19, 20]}
    curve = curve_of(line)
    assert "active_hours" not in line and curve is not None
    assert curve[20] == 1.0 and curve[9] == IDLE_SHARE
    assert weight(curve, datetime(2026, 1, 5, 19, 30, tzinfo=UTC), "Europe/Berlin") == 1.0
    assert curve_of({"id": "b", "response": [0.5] * 24}) == [0.5] * 24
    assert curve_of({"id": "c"}) is None
    for bad, message in [
        ({"active_hours": [24]}, "active_hours: expected a list of 1-24 local hours"),
        ({"active_hours": "evening"}, "active_hours: expected"),
        ({"response": [1] * 23}, "response: expected 24 numbers from 0 to 10"),
        ({"response": [True] * 24}, "response: expected 24 numbers"),
        ({"active_hours": [1], "response": [1] * 24}, "give one of them"),
    ]:
        with pytest.raises(RecordError, match=message):
            curve_of(bad)
    lines: list[dict[str, object]] = [{"id": f"s{i}"} for i in range(200)]
    with_active_hours(lines, seed=1)
    assert all(len(line["active_hours"]) == 3 for line in lines)  # type: ignore[arg-type]


def test_a_bad_curve_in_a_population_file_names_its_line(tmp_path: Path) -> None:
    people = tmp_path / "people.jsonl"
    people.write_text(
        json.dumps({"id": "a", "attributes": {"first_name": "A"}})
        + "\n"
        + json.dumps({"id": "b", "active_hours": [25]})
        + "\n",
        encoding="utf-8",
    )
    with pytest.raises(CampaignError, match="population line 2: active_hours"):
        simulate(DEALS, population=people, start=START, until=START)


@pytest.mark.slow
def test_optimised_sends_convert_better_after_learning_and_keep_the_rules(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "trace.jsonl"
    result = simulate(
        DEALS,
        subscribers=300,
        seed=3,
        rates={"deal": 0.3, "reminder": 0.3},
        start=START,
        until=datetime(2026, 1, 26, 9, 0, tzinfo=UTC),
        resolution=timedelta(hours=1),
        trace=trace,
        active_hours=True,
    )
    figures = result.as_dict()["send_time"]
    arms = figures["arms"]
    assert set(arms) == {"best", "explore", "immediate"}
    assert figures["lift"]["low"] > 0  # the interval excludes zero
    last = figures["weeks"][-2]  # the last whole week
    assert last["best"]["rate"] > 1.5 * last["immediate"]["rate"]
    assert figures["weeks"][0]["best"]["rate"] < last["best"]["rate"]  # it learned
    campaign = loader.load(DEALS).campaign
    assert campaign is not None
    lines = [json.loads(text) for text in trace.read_text().splitlines()]
    people = synthesize(campaign, count=300, seed=3, start=START)
    checker = TraceChecker(campaign, {str(p["id"]): str(p["timezone"]) for p in people})
    checker.feed(lines)
    checker.finish()
    assert [p for p in checker.problems if "never ended" not in p] == []


def test_the_simulator_broadcasts_at_each_members_local_moment(tmp_path: Path) -> None:
    """A broadcast campaign has nothing due until its moment: the simulator's clock goes
    there, and each member is enrolled at their own local 10:00."""
    campaign = tmp_path / "bc.yaml"
    campaign.write_text(
        """
campaign: bc
title: Follow-up
settings: {schedule: "once 2026-01-06T10:00", window: 6h}
segments:
  readers: {match: {attr: first_name, exists: true}}
subcampaigns:
  readers:
    segment: readers
    start: follow
    nodes:
      follow: {notification: {title: Picks, url: "https://example.com/picks"}}
""",
        encoding="utf-8",
    )
    trace = tmp_path / "trace.jsonl"
    result = simulate(campaign, subscribers=60, start=START, trace=trace)
    assert result.sends == 60
    lines = [json.loads(text) for text in trace.read_text().splitlines()]
    people = {
        str(p["id"]): str(p["timezone"])
        for p in synthesize(loader.load(campaign).campaign, count=60, seed=0, start=START)  # type: ignore[arg-type]
    }
    for line in lines:
        if line["type"] == "enroll":
            local = datetime.fromisoformat(line["t"]).astimezone(
                ZoneInfo(people[line["subscriber"]])
            )
            assert (local.date().isoformat(), local.hour, local.minute) == ("2026-01-06", 10, 0)
