"""A planned split is a fixed-horizon test, on SQLite and PostgreSQL: it says "not yet"
and names no winner until every arm has its planned measured journeys, is then judged on
exactly each arm's earliest planned journeys (statsmodels' figures on those counts), and
journeys measured later do not change the verdict. A split without a plan names no
winner however its figures look."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from statsmodels.stats import proportion as sm

from orchestrator.app.experiments import experiments
from orchestrator.app.service import Context, add_events, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.language import loader
from orchestrator.language.records import EventRecord
from orchestrator.language.spec import Campaign
from orchestrator.store.models import SplitEntry
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
PLANNED = """
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
      first:
        split:
          arms: {control: 50, b: 50}
          plan: {journeys: 40}
      control: {notification: {title: Control}}
      b: {notification: {title: B}}
"""


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[Context]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "ab.yaml").write_text(textwrap.dedent(PLANNED), encoding="utf-8")
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=RecordingDelivery())
    yield ctx
    ctx.engine.dispose()


def _cohort(ctx: Context, tmp_path: Path, name: str, count: int) -> None:
    people = tmp_path / f"{name}.jsonl"
    people.write_text(
        "\n".join(subscriber_line(f"{name}{i:03}", plan="pro") for i in range(count)) + "\n",
        encoding="utf-8",
    )
    assert import_subscribers(ctx, people).bad == []


def _entries(ctx: Context) -> list[SplitEntry]:
    with ctx.session() as s:
        return list(s.execute(select(SplitEntry).order_by(SplitEntry.id)).scalars())


def _campaign(ctx: Context) -> Campaign:
    campaign = loader.load(ctx.config.graphs / "ab.yaml").campaign
    assert campaign is not None
    return campaign


def test_a_planned_test_says_not_yet_then_is_judged_on_its_planned_journeys(
    world: Context, tmp_path: Path
) -> None:
    ctx = world
    _cohort(ctx, tmp_path, "one", 60)
    tick(ctx, now=T0)
    first = _entries(ctx)
    # cohort one: every b converts, no control does
    add_events(ctx, [EventRecord(e.subscriber_id, "signup", T0 + H) for e in first if e.arm == "b"])
    (running,) = experiments(ctx, _campaign(ctx), now=T0 + 3 * H)
    assert running.status == "collecting" and running.enough_data is False
    assert running.leader is None
    assert not any("Winner" in s for s in running.sentences())
    assert "not yet" in running.sentences()[0]
    # roughly when: the slowest arm's missing entries at the last 14 days' pace (60
    # journeys: 60 / 14 a day, half to each arm), plus one horizon (2 h) to be measured
    missing = max(40 - sum(1 for e in first if e.arm == arm) for arm in ("control", "b"))
    assert running.per_day == pytest.approx(60 / 14)
    assert running.days_left == pytest.approx(2 / 24 + missing / (60 / 14 / 2))
    assert f"judged in about {max(running.days_left, 1):,.0f} days" in running.sentences()[0]
    assert running.as_dict()["planned_per_arm"] == 40

    # cohort two enters later and nobody converts: it fills each arm up to its plan
    _cohort(ctx, tmp_path, "two", 60)
    tick(ctx, now=T0 + 3 * H)
    entries = _entries(ctx)
    moment = T0 + 6 * H
    (judged,) = experiments(ctx, _campaign(ctx), now=moment)
    assert judged.status == "judged" and judged.enough_data is True
    converted = {e.subscriber_id for e in first if e.arm == "b"}
    expected = {}
    for arm in ("control", "b"):
        earliest = sorted((e for e in entries if e.arm == arm), key=lambda e: (e.entered_at, e.id))[
            :40
        ]
        assert len(earliest) == 40  # the fixture's cohorts give each arm at least 40
        expected[arm] = (40, sum(1 for e in earliest if e.subscriber_id in converted))
    arms = {a.name: a for a in judged.arms}
    for arm, (n, k) in expected.items():
        assert (arms[arm].result.n, arms[arm].result.k) == (n, k)
        assert (arms[arm].result.low, arms[arm].result.high) == pytest.approx(
            sm.proportion_confint(k, n, method="wilson")
        )
    (lift,) = judged.lifts
    (kb, nb), (kc, nc) = (expected["b"][::-1], expected["control"][::-1])
    assert (lift.low, lift.high) == pytest.approx(
        sm.confint_proportions_2indep(kb, nb, kc, nc, method="newcomb", compare="diff")
    )
    assert lift.p_value == pytest.approx(
        sm.test_proportions_2indep(kb, nb, kc, nc, method="score", compare="diff").pvalue
    )
    assert judged.leader == "b"
    sentences = judged.sentences()
    assert "enough data: yes" in sentences[0]
    assert sentences[-1].startswith("Winner: b.")
    assert "campaign experiment promote ab first b" in sentences[-1]

    # a third cohort, measured later, leaves the verdict as it was
    _cohort(ctx, tmp_path, "three", 40)
    tick(ctx, now=T0 + 6 * H)
    (after,) = experiments(ctx, _campaign(ctx), now=T0 + 9 * H)
    assert [(a.result.n, a.result.k) for a in after.arms] == [
        (a.result.n, a.result.k) for a in judged.arms
    ]
    assert sum(a.entered for a in after.arms) == 160
    assert after.sentences() == judged.sentences()


def test_a_split_without_a_plan_names_no_winner(world: Context, tmp_path: Path) -> None:
    ctx = world
    path = ctx.config.graphs / "ab.yaml"
    path.write_text(
        textwrap.dedent(PLANNED).replace("          plan: {journeys: 40}\n", ""),
        encoding="utf-8",
    )
    _cohort(ctx, tmp_path, "one", 80)
    tick(ctx, now=T0)
    add_events(
        ctx,
        [EventRecord(e.subscriber_id, "signup", T0 + H) for e in _entries(ctx) if e.arm == "b"],
    )
    (found,) = experiments(ctx, _campaign(ctx), now=T0 + 3 * H)
    assert found.status == "no plan" and found.enough_data is None
    (lift,) = found.lifts
    assert lift.significant  # a huge difference, and still no winner is named
    assert found.leader is None
    assert "no winner is named" in found.sentences()[0]
    assert not any(s.startswith("Winner") for s in found.sentences())
