"""Pause, resume and stop a campaign, on SQLite and PostgreSQL: paused, a tick neither
enrols nor sends and journeys keep their place; resumed, they go on in due order;
stopped, every journey in flight ends (`stopped`). Each action is recorded; an action
that changes nothing is refused and writes nothing."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator.app import control
from orchestrator.app.service import Context, import_subscribers, open_context, status
from orchestrator.app.ticking import run_batches, tick
from orchestrator.config import Config
from orchestrator.store.models import CampaignAction, Journey
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line
from tests.helpers import T0, TICK_CAMPAIGN


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[tuple[Context, RecordingDelivery]]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    delivery = RecordingDelivery()
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=delivery)
    people = tmp_path / "people.jsonl"
    lines = [subscriber_line(f"p{i}", plan="pro", name=f"P{i}") for i in range(6)]
    people.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert import_subscribers(ctx, people).bad == []
    yield ctx, delivery
    ctx.engine.dispose()


def _journeys(ctx: Context) -> list[tuple[str, str, str, str | None]]:
    with ctx.session() as s:
        rows = s.execute(select(Journey).order_by(Journey.subscriber_id)).scalars()
        return [(j.subscriber_id, j.node, j.phase, j.exit_reason) for j in rows]


def test_a_paused_campaign_neither_enrols_nor_sends_and_resumes_in_due_order(
    world: tuple[Context, RecordingDelivery],
) -> None:
    ctx, delivery = world
    control.act(ctx, "launch", "pause", by="ana", reason="typo in the title", now=T0)
    report = tick(ctx, now=T0)
    assert report.campaigns[0].held == "paused"
    assert delivery.requests == [] and _journeys(ctx) == []  # nobody enrolled
    control.act(ctx, "launch", "resume", by="ana", reason="fixed", now=T0 + timedelta(minutes=1))
    tick(ctx, now=T0 + timedelta(minutes=1))
    assert len(delivery.requests) == 6
    before = _journeys(ctx)
    control.act(ctx, "launch", "pause", by="ben", reason="", now=T0 + timedelta(minutes=2))
    # the window (1 d) and the follow-up's delay (1 h) are over: due, but paused
    later = T0 + timedelta(days=1, hours=2)
    tick(ctx, now=later)
    assert len(delivery.requests) == 6 and _journeys(ctx) == before
    control.act(ctx, "launch", "resume", by="ben", reason="", now=later)
    tick(ctx, now=later + timedelta(minutes=5))
    assert [r.node for r in delivery.requests[6:]] == ["again"] * 6  # each journey, once
    history = control.history(ctx, "launch")
    assert [h["action"] for h in history] == ["resume", "pause", "resume", "pause"]
    assert history[-1]["by"] == "ana" and history[-1]["reason"] == "typo in the title"


def test_a_pause_taken_during_a_tick_stops_the_claims_that_follow(
    world: tuple[Context, RecordingDelivery],
) -> None:
    ctx, delivery = world
    tick(ctx, now=T0)  # enrolled and sent: six journeys wait for their follow-up
    later = T0 + timedelta(days=1, hours=2)  # every follow-up is due
    batches = run_batches(ctx, campaign="launch", now=later, batch_size=2)
    first = next(batches)
    control.act(ctx, "launch", "pause", by="ana", reason="", now=later)
    rest = list(batches)
    sent_after = sum(b.sends for b in rest)
    # what was claimed before the pause is recorded; no batch is claimed after it
    assert first.sends == 2 and sent_after <= 2
    assert len(delivery.requests) == 6 + first.sends + sent_after < 12


def test_stop_ends_every_journey_in_flight_and_keeps_the_campaign_from_enrolling(
    world: tuple[Context, RecordingDelivery],
) -> None:
    ctx, delivery = world
    tick(ctx, now=T0)
    done, ended = control.act(ctx, "launch", "stop", by="ana", reason="wrong offer", now=T0)
    assert done.state == "stopped" and ended == {"hello": 6}
    assert {(node, phase, reason) for _, node, phase, reason in _journeys(ctx)} == {
        ("hello", "ended", "stopped")
    }
    assert status(ctx, "launch")["nodes"]["hello"]["exit:stopped"] == 6
    tick(ctx, now=T0 + timedelta(days=2))
    assert len(delivery.requests) == 6  # nothing more sent, nobody enrolled again
    control.act(ctx, "launch", "resume", by="ana", reason="", now=T0 + timedelta(days=2))
    assert control.state(ctx, "launch").state == "running"


@pytest.mark.parametrize(
    ("steps", "action", "message"),
    [
        ([], "resume", "already running"),
        (["pause"], "pause", "already paused"),
        (["stop"], "stop", "already stopped"),
        (["stop"], "pause", "already stopped"),
        ([], "restart", "the actions are"),
    ],
)
def test_an_action_that_changes_nothing_is_refused_and_writes_nothing(
    world: tuple[Context, RecordingDelivery], steps: list[str], action: str, message: str
) -> None:
    ctx, _ = world
    for step in steps:
        control.act(ctx, "launch", step, by="ana", reason="", now=T0)
    with ctx.session() as s:
        before = len(list(s.execute(select(CampaignAction)).scalars()))
    with pytest.raises(control.ControlError, match=message):
        control.act(ctx, "launch", action, by="ana", reason="", now=T0)
    with ctx.session() as s:
        assert len(list(s.execute(select(CampaignAction)).scalars())) == before


@pytest.mark.parametrize(
    ("campaign", "by", "reason", "message"),
    [
        ("nope", "ana", "", "no such campaign"),
        ("launch", "a" * 200, "", "longer than"),
        ("launch", "ana", "x" * 1001, "longer than"),
        ("launch", "ana", "bad\x00", "NUL"),
    ],
)
def test_bad_input_is_a_clear_error(
    world: tuple[Context, RecordingDelivery], campaign: str, by: str, reason: str, message: str
) -> None:
    ctx, _ = world
    with pytest.raises(control.ControlError, match=message):
        control.act(ctx, campaign, "pause", by=by, reason=reason, now=T0)
    assert control.state(ctx, "launch").state == "running"


@pytest.mark.parametrize(
    ("by", "reason", "message"),
    [
        ("", "", "by: '' is not a name"),
        ("x\ny", "", "by: 'x\\ny' is not a name (no control characters)"),
        ("ana", "zz\x1b[31mRED\x07", "reason: "),
    ],
)
def test_control_characters_and_an_empty_name_are_refused_and_nothing_is_written(
    world: tuple[Context, RecordingDelivery], by: str, reason: str, message: str
) -> None:
    ctx, _ = world
    with pytest.raises(control.ControlError, match=re.escape(message)):
        control.act(ctx, "launch", "pause", by=by, reason=reason, now=T0)
    assert control.history(ctx, "launch") == []
    done, _ = control.act(ctx, "launch", "pause", by="ana", reason="line one\n\tline two", now=T0)
    assert done.reason == "line one\n\tline two"
