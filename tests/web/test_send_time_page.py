"""The campaign page of a `send_time: best` campaign shows the optimiser's arms and its
lift over the comparison group, with the interval, in a plain sentence."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

from orchestrator.app.service import add_events, import_subscribers
from orchestrator.app.ticking import tick
from orchestrator.language.records import EventRecord
from tests.conftest import subscriber_line
from tests.helpers import PASSWORD
from tests.web.conftest import World

DEALS = """
campaign: deals
title: Deals
goal: signup
settings:
  window: 2h
  send_time: {mode: best, explore: 0%, compare: 40%}
segments:
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  pros:
    segment: pros
    start: deal
    nodes:
      deal: {notification: {title: Deal, url: "https://example.com/deal"}}
"""
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_the_campaign_page_shows_the_send_time_arms_and_lift(world: World) -> None:
    (world.ctx.config.graphs / "deals.yaml").write_text(textwrap.dedent(DEALS), encoding="utf-8")
    people = world.ctx.config.graphs.parent / "people.jsonl"
    lines = [subscriber_line(f"d{i:02}", plan="pro") for i in range(30)]
    people.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert import_subscribers(world.ctx, people).bad == []
    assert world.client.post("/login", data={"password": PASSWORD}).status_code < 400
    page = world.client.get("/campaigns/deals").text
    assert 'data-testid="send-time-lift"' in page and "Not enough data yet" in page
    tick(world.ctx, now=MONDAY, names=["deals"])  # no data: every arm sends at once
    sids = [f"d{i:02}" for i in range(30)]
    add_events(
        world.ctx, [EventRecord(sid, "signup", MONDAY + timedelta(minutes=30)) for sid in sids[:12]]
    )
    tick(world.ctx, now=MONDAY + timedelta(hours=3), names=["deals"])
    page = world.client.get("/campaigns/deals").text
    assert 'id="send-time"' in page and "at once (comparison)" in page
    assert "Sends at the best hour convert" in page and "95 % interval" in page
    assert "interval includes zero" in page or "interval excludes zero" in page
    launch = world.client.get("/campaigns/launch").text
    assert 'data-testid="send-time-lift"' not in launch
