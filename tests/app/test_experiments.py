"""Split nodes as experiments, on SQLite and PostgreSQL: the journey's entry into an arm
is the unit, a goal event within the horizon converts it, only entries whose horizon is
over are measured, two splits that name the same arm are not mixed, and every figure is
statsmodels' own computation on the known counts."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from statsmodels.stats import proportion as sm
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from orchestrator.app.experiment_stats import journeys_needed
from orchestrator.app.experiments import experiments
from orchestrator.app.service import Context, add_events, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.cli import app
from orchestrator.config import Config
from orchestrator.language import loader
from orchestrator.language.records import EventRecord
from orchestrator.store.models import SplitEntry
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
AB = """
campaign: ab
title: AB
goal: signup
settings: {window: 2h, followup_cap: 0}
segments:
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  pros:
    segment: pros
    start: first
    nodes:
      first: {split: {control: 50, b: 30, c: 20}}
      control: {notification: {title: Control}, on_no_convert: second}
      b: {notification: {title: B}, on_no_convert: second}
      c: {notification: {title: C}, on_no_convert: second}
      second: {split: {control: 50, x: 50}}
      x: {notification: {title: X}}
"""


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[Context]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "ab.yaml").write_text(textwrap.dedent(AB), encoding="utf-8")
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=RecordingDelivery())
    people = tmp_path / "people.jsonl"
    people.write_text(
        "\n".join(subscriber_line(f"p{i:03}", plan="pro") for i in range(120)) + "\n",
        encoding="utf-8",
    )
    assert import_subscribers(ctx, people).bad == []
    yield ctx
    ctx.engine.dispose()


def test_arms_are_counted_per_journey_with_the_libraries_figures(world: Context) -> None:
    ctx = world
    tick(ctx, now=T0)
    with ctx.session() as s:
        entries = s.execute(select(SplitEntry)).scalars().all()
    first = {e.subscriber_id: e.arm for e in entries if e.split == "first"}
    assert len(first) == 120 and set(first.values()) == {"control", "b", "c"}
    # within the horizon (2 h): every b, a third of the controls; c never
    converts = [
        EventRecord(sid, "signup", T0 + H)
        for i, (sid, arm) in enumerate(sorted(first.items()))
        if arm == "b" or (arm == "control" and i % 3 == 0)
    ]
    add_events(ctx, converts)
    campaign = loader.load(ctx.config.graphs / "ab.yaml").campaign
    assert campaign is not None
    running = experiments(ctx, campaign, now=T0 + H)
    assert [a.result.n for a in running[0].arms] == [0, 0, 0]  # no horizon is over yet
    tick(ctx, now=T0 + 2 * H)  # the no-converts go on to the second split
    later = T0 + 5 * H
    tick(ctx, now=later)
    found = {e.split: e for e in experiments(ctx, campaign, now=later)}
    arms = {a.name: a for a in found["first"].arms}
    n = {arm: sum(1 for v in first.values() if v == arm) for arm in ("control", "b", "c")}
    k = {
        "control": sum(1 for c in converts if first[c.subscriber_id] == "control"),
        "b": n["b"],
        "c": 0,
    }
    for arm in ("control", "b", "c"):
        assert (arms[arm].entered, arms[arm].result.n, arms[arm].result.k) == (
            n[arm],
            n[arm],
            k[arm],
        )
        low, high = sm.proportion_confint(k[arm], n[arm], method="wilson")
        assert (arms[arm].result.low, arms[arm].result.high) == pytest.approx((low, high))
    lifts = {lift.arm: lift for lift in found["first"].lifts}
    raw = []
    for arm in ("b", "c"):
        low, high = sm.confint_proportions_2indep(
            k[arm], n[arm], k["control"], n["control"], method="newcomb", compare="diff"
        )
        assert (lifts[arm].low, lifts[arm].high) == pytest.approx((low, high))
        p = sm.test_proportions_2indep(
            k[arm], n[arm], k["control"], n["control"], method="score", compare="diff"
        ).pvalue
        assert lifts[arm].p_value == pytest.approx(p)
        raw.append(p)
    adjusted = multipletests(raw, method="holm")[1]
    assert [lifts["b"].p_adjusted, lifts["c"].p_adjusted] == pytest.approx(list(adjusted))
    assert lifts["b"].significant
    # the second split's `control` is its own: only journeys that reached it
    second = {a.name: a for a in found["second"].arms}
    reached = 120 - len(converts)
    assert second["control"].entered + second["x"].entered == reached
    assert second["control"].entered != arms["control"].entered


def test_the_experiment_command_prints_every_split(world: Context) -> None:
    ctx = world
    tick(ctx, now=T0)
    runner = CliRunner()
    env = {"CAMPAIGN_DB": ctx.config.db, "CAMPAIGN_GRAPHS": str(ctx.config.graphs)}
    out = runner.invoke(
        app, ["experiment", "ab", "--json", "--now", (T0 + 3 * H).isoformat()], env=env
    )
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output)
    assert [s["split"] for s in figures["splits"]] == ["first", "second"]
    assert figures["splits"][0]["lifts"][0]["correction"] == "holm"
    text = runner.invoke(app, ["experiment", "ab", "--now", (T0 + 3 * H).isoformat()], env=env)
    assert "split first (no plan; control control" in text.output and "95 % interval" in text.output
    missing = runner.invoke(app, ["experiment", "nope"], env=env)
    assert missing.exit_code == 1 and "'nope': no such campaign" in missing.output
    outside = ctx.config.graphs.parent / "outside.yaml"  # a path out of the folder: refused
    outside.write_text((ctx.config.graphs / "ab.yaml").read_text(), encoding="utf-8")
    for words in (["../outside"], ["plan", "../outside"]):
        refused = runner.invoke(app, ["experiment", *words], env=env)
        assert refused.exit_code == 1 and "not a campaign id" in refused.output, refused.output


def test_a_plan_says_how_many_journeys_each_split_needs_and_roughly_when(world: Context) -> None:
    ctx = world
    tick(ctx, now=T0)  # 120 journeys reach the first split today
    runner = CliRunner()
    env = {"CAMPAIGN_DB": ctx.config.db, "CAMPAIGN_GRAPHS": str(ctx.config.graphs)}
    args = ["experiment", "plan", "ab", "--baseline", "10%", "--effect", "2pt", "--json"]
    out = runner.invoke(app, [*args, "--now", (T0 + H).isoformat()], env=env)
    assert out.exit_code == 0, out.output
    plans = {p["split"]: p for p in json.loads(out.output)["plans"]}
    per_arm = journeys_needed(0.10, 0.02, comparisons=2)  # three arms: two comparisons
    assert plans["first"]["per_arm"] == per_arm
    assert plans["first"]["total"] == -(-per_arm * 100 // 20)  # the 20 % arm sets the pace
    assert plans["first"]["per_day"] == pytest.approx(120 / 14)
    assert plans["first"]["days"] == pytest.approx(plans["first"]["total"] / (120 / 14))
    assert plans["second"]["per_day"] is None and "no estimate" in plans["second"]["sentence"]
    assert (
        "On the split: plan: {baseline: 10%, effect: 2pt, power: 80%}"
        in (plans["first"]["sentence"])
    )
    # without options each split's own plan is used; these splits have none
    own = runner.invoke(app, ["experiment", "plan", "ab", "--now", T0.isoformat()], env=env)
    assert own.exit_code == 0 and own.output.count("no plan in the file") == 2, own.output
    for bad, message in [
        (["experiment", "plan", "ab", "--effect", "2pt"], "or neither"),
        (["experiment", "plan", "ab", "--baseline", "10%", "--effect", "0pt"], "not 0"),
        (["experiment", "plan", "ab", "--baseline", "150%", "--effect", "2pt"], "less than 100%"),
        (["experiment", "plan", "ab", "--baseline", "10%", "--effect", "lots"], "in points"),
        (["experiment", "plan", "ab", "extra"], "CAMPAIGN, or: plan CAMPAIGN"),
        (["experiment", "plan", "ab", "--baseline", "10%", "--effect", "nan"], "not a change"),
        (["experiment", "plan", "ab", "--baseline", "10%", "--effect", "١pt"], "in points"),
    ]:
        refused = runner.invoke(app, bad, env=env)
        assert refused.exit_code != 0 and message in refused.output, (bad, refused.output)
