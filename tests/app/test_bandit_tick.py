"""A bandit split through the tick on a SQLite file: the first journeys go by the
weights, and once the entries of one arm have converted within their horizon, later
journeys lean to it; the tallies are read once per tick, and only for campaigns with
a bandit split."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.app.service import Context, add_events, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.language.records import EventRecord
from orchestrator.store import repo
from orchestrator.store.models import SplitEntry
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
CAMPAIGN = """
campaign: {name}
title: Bandit
goal: signup
settings: {{window: 2h, followup_cap: 0}}
segments:
  pros: {{match: {{attr: plan, eq: pro}}}}
subcampaigns:
  pros:
    segment: pros
    start: pick
    nodes:
      pick: {{split: {split}}}
      a: {{notification: {{title: A}}}}
      b: {{notification: {{title: B}}}}
"""
BANDIT = "{arms: {a: 50, b: 50}, mode: bandit, explore: 10%}"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Context]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    for name, split in (("bandit", BANDIT), ("test", "{a: 50, b: 50}")):
        text = CAMPAIGN.format(name=name, split=split)
        (graphs / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    db = tmp_path / "bandit.db"
    ctx = open_context(Config(db=f"sqlite:///{db}", graphs=graphs), delivery=RecordingDelivery())
    yield ctx
    ctx.engine.dispose()


def _people(ctx: Context, tmp_path: Path, prefix: str, count: int) -> None:
    path = tmp_path / f"{prefix}.jsonl"
    lines = (subscriber_line(f"{prefix}{i:03}", plan="pro") for i in range(count))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert import_subscribers(ctx, path).bad == []


def _arms(ctx: Context, prefix: str) -> dict[str, str]:
    with ctx.session() as s:
        entries = s.execute(select(SplitEntry).where(SplitEntry.campaign == "bandit")).scalars()
        return {e.subscriber_id: e.arm for e in entries if e.subscriber_id.startswith(prefix)}


def test_later_journeys_lean_to_the_arm_that_converts(world: Context, tmp_path: Path) -> None:
    ctx = world
    _people(ctx, tmp_path, "p", 200)
    tick(ctx, now=T0, names=["bandit"])
    first = _arms(ctx, "p")
    assert len(first) == 200
    # nothing measured yet: the weights, 50/50 (4.5 binomial standard deviations)
    assert abs(sum(a == "b" for a in first.values()) - 100) <= 4.5 * math.sqrt(200 / 4)
    # every b converts within its horizon (2 h), no a does
    add_events(ctx, [EventRecord(sid, "signup", T0 + H) for sid, a in first.items() if a == "b"])
    tick(ctx, now=T0 + 3 * H, names=["bandit"])  # the horizons are over: measured
    _people(ctx, tmp_path, "q", 200)
    tick(ctx, now=T0 + 4 * H, names=["bandit"])
    later = _arms(ctx, "q")
    assert len(later) == 200
    # a ~ Beta(1, 1 + ~100), b ~ Beta(1 + ~100, 1): sampling takes b; the explore share
    # (10 %) goes by the weights, so b gets 0.9 + 0.1 × 0.5 of the journeys
    p = 0.9 + 0.1 * 0.5
    leaned = sum(a == "b" for a in later.values())
    assert abs(leaned - 200 * p) <= 4.5 * math.sqrt(200 * p * (1 - p)), leaned


def test_a_bandit_learns_from_its_own_goal(tmp_path: Path) -> None:
    """A split judged on `purchase` (its own goal) leans to the arm whose subscribers
    purchase, not to the one whose subscribers reach the campaign's goal."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    split = "{arms: {a: 50, b: 50}, mode: bandit, explore: 0%, goal: purchase}"
    text = CAMPAIGN.format(name="bandit", split=split)
    (graphs / "bandit.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    ctx = open_context(
        Config(db=f"sqlite:///{tmp_path / 'goal.db'}", graphs=graphs), delivery=RecordingDelivery()
    )
    try:
        _people(ctx, tmp_path, "p", 100)
        tick(ctx, now=T0)
        first = _arms(ctx, "p")
        add_events(
            ctx,
            [
                EventRecord(sid, "purchase" if arm == "b" else "signup", T0 + H)
                for sid, arm in first.items()
            ],
        )
        tick(ctx, now=T0 + 3 * H)
        _people(ctx, tmp_path, "q", 100)
        tick(ctx, now=T0 + 4 * H)
        assert set(_arms(ctx, "q").values()) == {"b"}
    finally:
        ctx.engine.dispose()


def test_tallies_are_read_once_per_tick_and_only_for_bandits(
    world: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = world
    calls: list[tuple[str, datetime]] = []
    counts = repo.split_counts

    def counting(s: Any, *, campaign: str, goal: str, now: datetime) -> Any:
        calls.append((campaign, now))
        return counts(s, campaign=campaign, goal=goal, now=now)

    monkeypatch.setattr(repo, "split_counts", counting)
    _people(ctx, tmp_path, "p", 120)
    report = tick(ctx, now=T0, names=["test"], batch_size=50)
    assert [(c.journeys, c.batches) for c in report.campaigns] == [(120, 3)]
    assert calls == []
    report = tick(ctx, now=T0, names=["bandit"], batch_size=50)
    assert [(c.journeys, c.batches) for c in report.campaigns] == [(120, 3)]
    assert calls == [("bandit", T0)]  # once for the tick: its batches share the figures
    tick(ctx, now=T0 + H, names=["bandit"], batch_size=50)
    assert calls == [("bandit", T0)]  # nobody was due: no batch, no read
