"""Send-time optimisation through the tick, on SQLite and PostgreSQL: the ledger keeps each
send's local hour of the week and arm; a subscriber who converted at 20:00 before gets a
`best` send at 20:00, the comparison group at once; the dashboard's lift is the Newcombe
interval of the two arms' rates."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from statsmodels.stats.proportion import confint_proportions_2indep

from orchestrator.app import insights
from orchestrator.app.service import Context, add_events, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.engine.sendtime import slot_of
from orchestrator.language.records import EventRecord
from orchestrator.store.models import Journey, Send
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line

MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)

HISTORY = """
campaign: history
title: History
goal: signup
settings: {window: 2h, schedule: "*/5 * * * *"}
segments:
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  pros:
    segment: pros
    start: old
    nodes:
      old: {notification: {title: Old news}}
"""

LAUNCH = """
campaign: launch
title: Launch
goal: signup
settings:
  window: 2h
  send_time: {mode: best, max_delay: 24h, explore: 0%, compare: 50%}
segments:
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  pros:
    segment: pros
    start: hello
    nodes:
      hello: {notification: {title: Hello}}
"""


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[tuple[Context, RecordingDelivery]]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "history.yaml").write_text(textwrap.dedent(HISTORY), encoding="utf-8")
    delivery = RecordingDelivery()
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=delivery)
    people = tmp_path / "people.jsonl"
    lines = [subscriber_line(f"p{i:02}", plan="pro") for i in range(40)]
    people.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert import_subscribers(ctx, people).bad == []
    yield ctx, delivery
    ctx.engine.dispose()


def test_best_sends_at_the_hour_the_subscriber_converted_and_the_lift_is_counted(
    world: tuple[Context, RecordingDelivery],
) -> None:
    ctx, delivery = world
    evening = MONDAY - timedelta(days=7) + 11 * H  # a week ago, 20:00 UTC
    tick(ctx, now=evening)
    add_events(ctx, [EventRecord(f"p{i:02}", "signup", evening + H / 2) for i in range(40)])
    tick(ctx, now=evening + H)
    with ctx.session() as s:
        old = s.execute(select(Send)).scalars().all()
        assert {(r.local_slot, r.timing, r.converted_at is not None) for r in old} == {
            (slot_of(evening, "UTC"), None, True)
        }
    (ctx.config.graphs / "launch.yaml").write_text(textwrap.dedent(LAUNCH), encoding="utf-8")
    before = len(delivery.requests)
    tick(ctx, names=["launch"], now=MONDAY)
    at_once = delivery.requests[before:]
    assert 10 < len(at_once) < 30  # the comparison group: half, by a stable hash
    with ctx.session() as s:
        waiting = s.execute(select(Journey).where(Journey.phase == "timed")).scalars().all()
        assert len(waiting) == 40 - len(at_once)
        assert {j.due_at.replace(tzinfo=UTC) for j in waiting} == {MONDAY + 11 * H}
    # every other subscriber sent at once converts within the window
    at_once_ids = sorted(r.subscriber_id for r in at_once)
    add_events(ctx, [EventRecord(sid, "signup", MONDAY + H / 2) for sid in at_once_ids[::2]])
    tick(ctx, names=["launch"], now=MONDAY + 11 * H)
    assert len(delivery.requests) == before + 40
    # and every one sent at 20:00
    late = [r.subscriber_id for r in delivery.requests[before + len(at_once) :]]
    add_events(ctx, [EventRecord(sid, "signup", MONDAY + 11.5 * H) for sid in late])
    tick(ctx, names=["launch"], now=MONDAY + 14 * H)
    with ctx.session() as s:
        rows = s.execute(select(Send).where(Send.campaign == "launch")).scalars().all()
    arms = {r.timing for r in rows}
    assert arms == {"best", "immediate"}
    best = [r for r in rows if r.timing == "best"]
    now_ = [r for r in rows if r.timing == "immediate"]
    assert {r.local_slot for r in best} == {slot_of(MONDAY + 11 * H, "UTC")}
    assert {r.local_slot for r in now_} == {slot_of(MONDAY, "UTC")}
    loaded_campaign = ctx.campaign_of_version(_version(ctx))
    detail = insights.campaign_detail(ctx, loaded_campaign, now=MONDAY + 14 * H)
    assert detail.send_time is not None
    kb = sum(r.converted_at is not None for r in best)
    ki = sum(r.converted_at is not None for r in now_)
    assert kb == len(best) and 0 < ki < len(now_)
    diff, low, high = detail.send_time.difference  # type: ignore[misc]
    ref = confint_proportions_2indep(kb, len(best), ki, len(now_), method="newcomb", compare="diff")
    assert diff == pytest.approx(kb / len(best) - ki / len(now_))
    assert (low, high) == pytest.approx((float(ref[0]), float(ref[1])))
    assert "Sends at the best hour convert" in detail.send_time.sentence()


def _version(ctx: Context) -> int:
    with ctx.session() as s:
        return int(
            s.execute(select(Journey.version_id).where(Journey.campaign == "launch"))
            .scalars()
            .first()
        )


def test_newcombe_matches_the_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17, example (a): 56/70 against 48/80, the
    hybrid score interval for the difference is 0.0524 to 0.3339."""
    lift = insights.SendTimeLift({"best": (70, 56), "immediate": (80, 48)})
    diff, low, high = lift.difference  # type: ignore[misc]
    assert diff == pytest.approx(0.2)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert insights.SendTimeLift({"best": (10, 1)}).difference is None
