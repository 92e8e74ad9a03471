"""A push service's 404/410 for a subscriber's last subscription, on SQLite and PostgreSQL:
one opt-out (source `push_service`) in the tick's outcome transaction, the subscriber
`unreachable`, never twice for one loss (one endpoint reported twice, two ticks at once),
none while another subscription is left; subscribing again is an opt-in as usual."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlmodel import col

from orchestrator.app import insights, outcomes, visitors
from orchestrator.app.service import Context, import_subscribers, open_context, status
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.store import repo
from orchestrator.store.models import Journey, PushSubscription
from tests.conftest import subscriber_line
from tests.helpers import (
    T0,
    TICK_CAMPAIGN,
    ScriptedDelivery,
    opt_events,
    subscriber_status,
    subscription,
)

ANN = "https://fcm.googleapis.com/fcm/send/ann"  # the subscription ann's import line stores


def gone(r: SendRequest) -> SendOutcome:
    return SendOutcome(r.send_id, "gone", 410, None, tuple(t.endpoint for t in r.targets))


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[tuple[Context, ScriptedDelivery, Path]]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    delivery = ScriptedDelivery(gone)
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=delivery)
    people = tmp_path / "people.jsonl"
    people.write_text(subscriber_line("ann", plan="pro", name="Ann") + "\n")
    import_subscribers(ctx, people)
    yield ctx, delivery, people
    ctx.engine.dispose()


def _endpoints(ctx: Context) -> list[str]:
    with ctx.session() as s:
        return sorted(s.execute(select(col(PushSubscription.endpoint))).scalars())


def _subscribe(ctx: Context, name: str, *, sid: str) -> str:
    """Subscribe a browser of `sid` through the API; its endpoint."""
    visitors.subscribe(ctx, {"id": sid, "subscription": subscription(name)}, now=T0, backend=True)
    return str(subscription(name)["endpoint"])


def _report_gone(ctx: Context, *endpoints: str, sends: int = 1) -> None:
    """The outcome write of a batch whose `sends` sends to ann were each answered 404/410
    for these endpoints (no ledger rows needed: only the subscriptions matter here)."""
    requests = [
        SendRequest(
            send_id=10_000 + i,
            journey_id=0,
            step=1,
            campaign="launch",
            node="hello",
            subscriber_id="ann",
            payload=b"",
            targets=(),
            ttl=timedelta(0),
            urgency="normal",
            topic="t",
        )
        for i in range(sends)
    ]
    answers = [SendOutcome(r.send_id, "gone", 410, None, endpoints) for r in requests]
    outcomes.record(
        ctx, campaign="launch", requests=requests, outcomes=answers, attempts={}, now=T0
    )


def test_a_gone_last_subscription_is_one_opt_out_and_subscribing_again_one_opt_in(
    world: tuple[Context, ScriptedDelivery, Path],
) -> None:
    ctx, delivery, people = world
    tick(ctx, now=T0)  # hello to ann: 410
    assert _endpoints(ctx) == []
    assert subscriber_status(ctx, "ann") == repo.UNREACHABLE
    assert opt_events(ctx) == [
        ("ann", "imported", "import"),
        ("ann", "unsubscribed", "push_service"),
    ]
    # the old file again stores the dead endpoint, but ann stays out, uncounted
    assert import_subscribers(ctx, people).added == 0
    assert subscriber_status(ctx, "ann") == repo.UNREACHABLE and _endpoints(ctx) == [ANN]
    tick(ctx, now=T0 + timedelta(minutes=5))
    with ctx.session() as s:
        (journey,) = s.execute(select(Journey)).scalars()
    assert journey.exit_reason == "subscription_gone"
    tick(ctx, now=T0 + timedelta(days=2))  # no follow-up, no new journey: nothing sent
    assert len(delivery.requests) == 1
    assert status(ctx, "launch")["sends"] == {"gone": 1}
    # ann subscribes again from a new browser: an opt-in as usual, active again
    new = _subscribe(ctx, "ann-new", sid="ann")
    assert subscriber_status(ctx, "ann") == "active" and _endpoints(ctx) == sorted([ANN, new])
    assert opt_events(ctx)[2:] == [("ann", "subscribed", "api")]


def test_two_sends_to_one_dead_endpoint_in_one_batch_and_again_later_count_once(
    world: tuple[Context, ScriptedDelivery, Path],
) -> None:
    ctx, _, _ = world
    _report_gone(ctx, ANN, sends=2)
    _report_gone(ctx, ANN)  # a later batch reporting it again: nothing left to remove
    assert subscriber_status(ctx, "ann") == repo.UNREACHABLE
    assert opt_events(ctx)[1:] == [("ann", "unsubscribed", "push_service")]


def test_no_opt_out_while_another_subscription_is_left(
    world: tuple[Context, ScriptedDelivery, Path],
) -> None:
    ctx, _, _ = world
    phone = _subscribe(ctx, "ann-phone", sid="ann")  # ann's second browser: no opt-in
    _report_gone(ctx, ANN)
    assert subscriber_status(ctx, "ann") == "active" and _endpoints(ctx) == [phone]
    assert opt_events(ctx) == [("ann", "imported", "import")]
    _report_gone(ctx, phone)  # the last one
    assert subscriber_status(ctx, "ann") == repo.UNREACHABLE
    assert opt_events(ctx)[1:] == [("ann", "unsubscribed", "push_service")]


@pytest.mark.parametrize("second_prunes", ["the same endpoint", "the other endpoint"])
def test_two_ticks_pruning_one_subscriber_at_once_change_them_once(
    world: tuple[Context, ScriptedDelivery, Path], second_prunes: str
) -> None:
    """The second transaction waits on the first's lock (a row lock on PostgreSQL, the
    write lock on SQLite), then sees its deletion: with the other endpoint it finds the
    subscriber left with none, with the same one it finds them out already."""
    ctx, _, _ = world
    phone = _subscribe(ctx, "ann-phone", sid="ann")
    same = second_prunes == "the same endpoint"
    first_endpoints = [ANN, phone] if same else [ANN]
    found: list[list[str]] = []
    with ctx.session() as first, first.begin():
        assert repo.prune_subscriptions(first, first_endpoints, now=T0) == (["ann"] if same else [])

        def second() -> None:
            with ctx.session() as s, s.begin():
                found.append(repo.prune_subscriptions(s, [phone], now=T0))

        racer = threading.Thread(target=second)
        racer.start()
        time.sleep(0.3)
        assert not found  # waiting for the first to commit
    racer.join(10)
    assert found == [[] if same else ["ann"]]
    assert subscriber_status(ctx, "ann") == repo.UNREACHABLE and _endpoints(ctx) == []


def test_the_dashboard_shows_the_push_service_and_no_longer_counts_ann_as_unnotified(
    world: tuple[Context, ScriptedDelivery, Path],
) -> None:
    ctx, _, _ = world
    tick(ctx, now=T0)
    week_later = T0 + timedelta(days=8)
    figures = insights.metrics(ctx, now=week_later)
    assert dict(figures.opt_outs) == {T0.date(): 1}
    assert figures.by_source == [("import", 1, 0), ("push_service", 0, 1)]
    # ann cannot be notified: not a member of `pros` any more, not among the active
    assert figures.quiet_segments == []
    assert dict(figures.per_week)["0"] == 0
