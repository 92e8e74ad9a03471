"""The campaign page shows a broadcast: its moment, whether it has been sent, how many
enrolled."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

from orchestrator.app.service import import_subscribers
from orchestrator.app.ticking import tick
from tests.conftest import subscriber_line
from tests.helpers import PASSWORD
from tests.web.conftest import World

BROADCAST = """
campaign: sale
title: Spring sale
settings: {schedule: "once 2026-03-29T10:00"}
segments:
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  pros:
    segment: pros
    start: hello
    nodes:
      hello: {notification: {title: Spring sale, url: "https://example.com/sale"}}
"""


def test_the_campaign_page_shows_the_broadcast(world: World) -> None:
    (world.ctx.config.graphs / "sale.yaml").write_text(textwrap.dedent(BROADCAST), encoding="utf-8")
    people = world.ctx.config.graphs.parent / "people.jsonl"
    lines = [subscriber_line(f"p{i}", plan="pro", name=f"P{i}") for i in range(3)]
    people.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert import_subscribers(world.ctx, people).bad == []
    assert world.client.post("/login", data={"password": PASSWORD}).status_code < 400
    page = world.client.get("/campaigns/sale").text
    assert 'data-testid="broadcast"' in page and "once 2026-03-29T10:00" in page
    assert "missed" in page  # its moment is long gone by the page's clock, never sent
    tick(world.ctx, now=datetime(2026, 3, 28, 20, 0, tzinfo=UTC), names=["sale"])
    page = world.client.get("/campaigns/sale").text
    assert "sent by the tick at 2026-03-28 20:00 UTC: 3 enrolled (0 held out)" in page
    assert "broadcast by tick" in page  # in the history too
    launch = world.client.get("/campaigns/launch").text
    assert 'data-testid="broadcast"' not in launch
