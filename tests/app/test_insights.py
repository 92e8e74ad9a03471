"""The dashboard's figures: A/B significance and holdout lift, on a real database."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from statsmodels.stats import proportion as sm

from orchestrator.app import insights
from orchestrator.app.service import add_events, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.language import loader
from orchestrator.language.records import EventRecord
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line

CAMPAIGN = """
campaign: lift
title: Lift
goal: purchase
settings: {spacing: 1h, window: 1d, followup_cap: 1, holdout: 50%}
segments:
  everyone: {match: {attr: plan, eq: pro}}
subcampaigns:
  main:
    segment: everyone
    start: pick
    nodes:
      pick:
        split: {a: 50%, b: 50%}
      a: {notification: {title: A}}
      b: {notification: {title: B}}
"""
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_holdout_lift_and_arms_are_counted_from_the_database(tmp_path: Path, db_url: str) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "lift.yaml").write_text(textwrap.dedent(CAMPAIGN), encoding="utf-8")
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=RecordingDelivery())
    try:
        people = tmp_path / "people.jsonl"
        people.write_text(
            "\n".join(subscriber_line(f"p{i:03d}", plan="pro") for i in range(200)) + "\n"
        )
        import_subscribers(ctx, people)
        tick(ctx, now=T0)
        sent = {r.subscriber_id: r for r in ctx.delivery.requests}  # type: ignore[attr-defined]
        everyone = {f"p{i:03d}" for i in range(200)}
        held = sorted(everyone - set(sent))
        treated = sorted(sent)
        assert 60 < len(held) < 140
        # 40 % of the treated buy within a day, 10 % of the held out; a purchase a week
        # later is outside the horizon and counts for nobody.
        buyers = treated[: len(treated) * 4 // 10] + held[: len(held) // 10]
        events = [EventRecord(sid, "purchase", T0 + timedelta(hours=3), {}) for sid in buyers]
        events += [EventRecord(held[-1], "purchase", T0 + timedelta(days=7), {})]
        add_events(ctx, events)
        tick(ctx, now=T0 + timedelta(hours=4))
        campaign = loader.load(graphs / "lift.yaml").campaign
        assert campaign is not None
        detail = insights.campaign_detail(ctx, campaign, now=T0 + timedelta(days=8))
        h = detail.holdout
        assert h is not None
        assert (h.treated, h.held_out) == (len(treated), len(held))
        assert (h.treated_converted, h.held_out_converted) == (
            len(treated) * 4 // 10,
            len(held) // 10,
        )
        assert h.lift == pytest.approx(
            (h.treated_converted / h.treated) / (h.held_out_converted / h.held_out) - 1
        )
        low, high = sm.confint_proportions_2indep(
            h.treated_converted,
            h.treated,
            h.held_out_converted,
            h.held_out,
            method="newcomb",
            compare="diff",
        )
        assert (h.difference.low, h.difference.high) == pytest.approx((low, high))
        assert list(h.parts) == ["main"] and h.parts["main"].treated == h.treated
        assert "95 % interval" in h.sentence()
        (test,) = detail.tests
        arms = {a.name: a for a in test.arms}
        assert arms["a"].entered + arms["b"].entered == len(treated)
        assert arms["a"].result.n + arms["b"].result.n == len(treated)  # horizons over
        assert arms["a"].result.k + arms["b"].result.k == len(treated) * 4 // 10
        assert test.control == "a" and json.dumps(test.lifts[0].p_adjusted) != "null"
        page = _dashboard_page(ctx, "/campaigns/lift")
        assert "within 2 days of entering" in page and "Lift: <b>+" in page
        assert 'data-testid="holdout-lift"' in page
        assert 'id="split-pick"' in page and "Holm" in page and 'data-testid="verdict"' in page
    finally:
        ctx.engine.dispose()


def _dashboard_page(ctx: object, path: str) -> str:
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from orchestrator.web import create_app

    ctx.config = replace(ctx.config, dashboard_password="pw")  # type: ignore[attr-defined]
    with TestClient(create_app(ctx)) as client:  # type: ignore[arg-type]
        client.post("/login", data={"password": "pw", "next": "/"})
        answer = client.get(path)
    assert answer.status_code == 200, answer.text[:300]
    return answer.text
