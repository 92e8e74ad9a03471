"""What the tick does with each answer class, on real databases, with a scripted delivery fake."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.app import outcomes
from orchestrator.app.service import Context, import_subscribers, open_context, status
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.delivery import SendOutcome, SendRequest
from orchestrator.store.models import Journey, PushSubscription, Send
from tests.conftest import subscriber_line
from tests.helpers import T0, TICK_CAMPAIGN, ScriptedDelivery


def ok(r: SendRequest) -> SendOutcome:
    return SendOutcome(r.send_id, "delivered", 201)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[tuple[Context, ScriptedDelivery]]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    delivery = ScriptedDelivery(ok)
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=delivery)
    people = tmp_path / "people.jsonl"
    people.write_text(subscriber_line("ann", plan="pro", name="Ann") + "\n")
    import_subscribers(ctx, people)
    yield ctx, delivery
    ctx.engine.dispose()


def _journey(ctx: Context) -> Journey:
    with ctx.session() as s:
        return s.execute(select(Journey)).scalars().one()


def _sends(ctx: Context) -> list[Send]:
    with ctx.session() as s:
        return list(s.execute(select(Send).order_by(Send.id)).scalars())


def test_gone_deletes_the_subscription_and_the_journey_ends_at_the_next_tick(
    world: tuple[Context, ScriptedDelivery],
) -> None:
    ctx, delivery = world
    delivery.answer = lambda r: SendOutcome(
        r.send_id, "gone", 410, None, tuple(t.endpoint for t in r.targets)
    )
    tick(ctx, now=T0)
    with ctx.session() as s:
        assert s.execute(select(PushSubscription)).first() is None
    tick(ctx, now=T0 + timedelta(minutes=5))
    assert _journey(ctx).exit_reason == "subscription_gone"
    assert status(ctx, "launch")["sends"] == {"gone": 1}


def test_a_transient_failure_is_sent_again_unchanged_later(
    world: tuple[Context, ScriptedDelivery],
) -> None:
    ctx, delivery = world
    delivery.answer = lambda r: SendOutcome(r.send_id, "failed", 503, "busy")
    tick(ctx, now=T0)
    (first,) = _sends(ctx)
    assert first.outcome == "retry" and first.retry_at is not None
    delivery.answer = ok
    tick(ctx, now=T0 + timedelta(minutes=1))  # not yet due
    assert len(delivery.requests) == 1
    tick(ctx, now=T0 + outcomes.backoff(1))
    assert len(delivery.requests) == 2
    a, b = delivery.requests
    assert (a.send_id, a.topic, a.payload) == (b.send_id, b.topic, b.payload)
    (row,) = _sends(ctx)
    assert row.outcome == "delivered" and row.attempts == 2 and row.retry_at is None
    assert _journey(ctx).node == "hello"  # still waiting for a conversion on that send


def test_a_send_that_keeps_failing_is_given_up_and_the_journey_takes_no_convert(
    world: tuple[Context, ScriptedDelivery],
) -> None:
    ctx, delivery = world
    delivery.answer = lambda r: (
        SendOutcome(r.send_id, "failed", 500) if r.node == "hello" else ok(r)
    )
    now = T0
    for _ in range(outcomes.MAX_ATTEMPTS):
        tick(ctx, now=now)
        now += outcomes.RETRY_CAP
    hello = [s for s in _sends(ctx) if s.node == "hello"]
    assert [s.outcome for s in hello] == ["failed"] and hello[0].attempts == outcomes.MAX_ATTEMPTS
    assert sum(r.node == "hello" for r in delivery.requests) == outcomes.MAX_ATTEMPTS
    tick(ctx, now=now + timedelta(hours=1))
    assert [r.node for r in delivery.requests].count("again") == 1


def test_a_rejected_payload_is_never_retried_and_the_journey_goes_on(
    world: tuple[Context, ScriptedDelivery],
) -> None:
    ctx, delivery = world
    delivery.answer = lambda r: (
        SendOutcome(r.send_id, "payload_error", 413) if r.node == "hello" else ok(r)
    )
    tick(ctx, now=T0)
    assert _journey(ctx).node == "again"
    tick(ctx, now=T0 + timedelta(hours=1))
    assert [r.node for r in delivery.requests] == ["hello", "again"]
    assert [s.outcome for s in _sends(ctx)] == ["payload_error", "delivered"]


def test_a_send_left_unfinished_by_a_crash_goes_out_again_after_the_grace(
    world: tuple[Context, ScriptedDelivery],
) -> None:
    ctx, delivery = world

    def crash(r: SendRequest) -> SendOutcome:
        raise SystemExit("killed between claim and outcome")

    delivery.answer = crash
    with pytest.raises(SystemExit):
        tick(ctx, now=T0)
    (claimed,) = _sends(ctx)
    assert claimed.outcome == "claimed" and json.loads(claimed.payload or "{}")["title"] == "Hi Ann"
    delivery.answer = ok
    tick(ctx, now=T0 + timedelta(minutes=5))
    assert len(delivery.requests) == 1  # the crashed attempt only
    tick(ctx, now=T0 + outcomes.CLAIM_GRACE)
    assert len(delivery.requests) == 2
    assert delivery.requests[0].topic == delivery.requests[1].topic
    assert [s.outcome for s in _sends(ctx)] == ["delivered"]
