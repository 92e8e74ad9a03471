"""Throttling on SQLite and PostgreSQL, on a virtual clock: a campaign's `settings.rate_limit`
and the installation's CAMPAIGN_MAX_SENDS_PER_MINUTE hold across batches and ticks, the
journeys held back keep their due order and due time and are counted deferred
(`rate_limit`), the installation's limit is shared between campaigns, a resumed
campaign goes on within its limit, and without a limit a tick is what it always was."""

from __future__ import annotations

import itertools
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from orchestrator.app import control
from orchestrator.app.service import Context, import_subscribers, open_context, status
from orchestrator.app.throttle import VirtualClock, pace
from orchestrator.app.tick_report import BatchResult, tick_lines
from orchestrator.app.ticking import tick
from orchestrator.config import Config, load_config
from orchestrator.errors import ConfigurationError
from orchestrator.store.models import Journey, Send
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line
from tests.helpers import T0, TICK_CAMPAIGN

SETTINGS = "settings: {spacing: 1h, window: 1d, followup_cap: 1}"


def campaign_text(rate: str | None = None, name: str = "launch") -> str:
    text = textwrap.dedent(TICK_CAMPAIGN).replace("campaign: launch", f"campaign: {name}")
    if rate is not None:
        text = text.replace(SETTINGS, SETTINGS[:-1] + f", rate_limit: {rate}}}")
    assert rate is None or "rate_limit" in text
    return text


class World:
    """A folder of campaigns, a database, people p0, p1, … (plan pro) and a recording
    delivery; `ctx` is made on first use (the campaigns and config may change before)."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.tmp_path, self.db_url = tmp_path, db_url
        self.graphs = tmp_path / "graphs"
        self.graphs.mkdir()
        self.delivery = RecordingDelivery()
        self.per_minute: int | None = None
        self._ctx: Context | None = None
        self.people = 0
        self.trace: list[dict[str, Any]] = []  # the audit trail

    def campaign(self, rate: str | None = None, name: str = "launch") -> None:
        (self.graphs / f"{name}.yaml").write_text(campaign_text(rate, name), encoding="utf-8")

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            config = Config(
                db=self.db_url, graphs=self.graphs, max_sends_per_minute=self.per_minute
            )
            self._ctx = open_context(config, delivery=self.delivery, audit=self.trace.extend)
        return self._ctx

    def add_people(self, count: int) -> None:
        path = self.tmp_path / f"people{self.people}.jsonl"
        lines = [
            subscriber_line(f"p{i:03d}", plan="pro", name=f"P{i}")
            for i in range(self.people, self.people + count)
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        assert import_subscribers(self.ctx, path).bad == []
        self.people += count

    def sends(self, campaign: str | None = None) -> list[tuple[datetime, str, str]]:
        """(claimed_at, campaign, subscriber) of every ledger row, in claim order."""
        query = select(col(Send.claimed_at), col(Send.campaign), col(Send.subscriber_id))
        query = query.order_by(col(Send.id))
        if campaign is not None:
            query = query.where(col(Send.campaign) == campaign)
        with self.ctx.session() as s:
            return [(_utc(at), c, sid) for at, c, sid in s.execute(query).all()]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=T0.tzinfo)


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    made = World(tmp_path, db_url)
    yield made
    if made._ctx is not None:
        made._ctx.engine.dispose()


def most_in_any(moments: list[datetime], length: timedelta) -> int:
    """The most of `moments` in any window (t - length, t]."""
    ordered = sorted(moments)
    return max(
        (sum(1 for m in ordered if at - length < m <= at) for at in ordered),
        default=0,
    )


def journey_of(ctx: Context, subscriber: str) -> Journey:
    with ctx.session() as s:
        found: Journey = s.execute(
            select(Journey).where(col(Journey.subscriber_id) == subscriber)
        ).scalar_one()
        return found


# ------------------------------------------------------------------ one campaign's limit


def test_the_limit_holds_across_batches_and_ticks_and_the_rest_waits_counted_deferred(
    world: World,
) -> None:
    world.campaign(rate="1/min")
    world.add_people(6)
    clock = VirtualClock()
    report = tick(world.ctx, now=T0, clock=clock)
    (done,) = report.campaigns
    # one send a minute, each its own batch, until the next scheduled tick (*/5) at 09:05
    assert [at for at, _, _ in world.sends()] == [T0 + timedelta(minutes=m) for m in range(5)]
    assert done.sends == 5 and done.batches == 5 and clock.seconds == 4 * 60
    assert done.steps["deferred:rate_limit"] == 1
    line, _ = tick_lines(done, now=T0)
    assert "deferred 1 (rate limit 1)" in line
    hello = status(world.ctx, "launch")["nodes"]["hello"]
    assert hello["deferred"] == 1 and hello["deferred:rate_limit"] == 1
    waiting = journey_of(world.ctx, "p005")  # the last in due order, not claimed: as it was
    assert (waiting.phase, waiting.sends) == ("arrive", 0)
    assert _utc(waiting.due_at) == T0 and _utc(waiting.claim_at) == T0  # type: ignore[arg-type]
    deferred = [line for line in world.trace if line["type"] == "defer"]
    assert deferred == [
        {
            "t": (T0 + timedelta(minutes=4)).isoformat(),
            "subscriber": "p005",
            "campaign": "launch",
            "subcampaign": "pros",
            "type": "defer",
            "node": "hello",
            "reason": "rate_limit",
            "until": (T0 + timedelta(minutes=5)).isoformat(),
        }
    ]

    report = tick(world.ctx, now=T0 + timedelta(minutes=5), clock=VirtualClock())
    assert report.campaigns[0].sends == 1 and not report.campaigns[0].steps
    sends = world.sends()
    assert [sid for _, _, sid in sends] == [f"p{i:03d}" for i in range(6)]  # each once
    assert sends[-1][0] == T0 + timedelta(minutes=5)
    assert most_in_any([at for at, _, _ in sends], timedelta(minutes=1)) == 1
    assert len(world.delivery.requests) == 6
    # counted once: a later tick that holds nothing back adds nothing
    assert status(world.ctx, "launch")["nodes"]["hello"]["deferred"] == 1


def test_a_tick_spreads_its_sends_instead_of_bursting_and_batches_shrink_to_the_room(
    world: World,
) -> None:
    world.campaign(rate="20/min")  # a step window of 2 sends in 6 s
    world.add_people(60)
    batches: list[BatchResult] = []
    tick(world.ctx, now=T0, clock=VirtualClock(), on_batch=lambda _, b: batches.append(b))
    moments = [at for at, _, _ in world.sends()]
    assert len(moments) == 60 and len({sid for _, _, sid in world.sends()}) == 60
    assert max(b.journeys for b in batches) == 2 and len(batches) == 30
    assert most_in_any(moments, timedelta(minutes=1)) == 20
    assert most_in_any(moments, timedelta(seconds=6)) == 2
    assert moments[-1] == T0 + timedelta(seconds=174)  # 60 sends at 20 a minute


def test_journeys_held_back_go_first_in_due_order(world: World) -> None:
    world.campaign(rate="12/h")  # one send every five minutes: one a tick
    world.add_people(3)
    tick(world.ctx, now=T0, clock=VirtualClock())
    world.add_people(2)  # due from the next tick, after those held back
    for minutes in (5, 10, 15, 20):
        report = tick(world.ctx, now=T0 + timedelta(minutes=minutes), clock=VirtualClock())
        assert report.campaigns[0].sends == 1
    assert [sid for _, _, sid in world.sends()] == ["p000", "p001", "p002", "p003", "p004"]
    assert [at for at, _, _ in world.sends()] == [
        T0 + timedelta(minutes=m) for m in (0, 5, 10, 15, 20)
    ]
    nodes = status(world.ctx, "launch")["nodes"]["hello"]
    # held back: p001 and p002 (due at 09:00), p003 and p004 (due at 09:05) once each
    assert nodes["deferred:rate_limit"] == 4
    deferred = [line["subscriber"] for line in world.trace if line["type"] == "defer"]
    assert deferred == ["p001", "p002", "p003", "p004"]  # once each, in due order


def test_resuming_a_paused_campaign_goes_on_within_its_limit(world: World) -> None:
    world.campaign(rate="2/min")  # one send in any 30 s, two in any minute
    world.add_people(10)

    def pause_after_three(campaign: str, batch: BatchResult) -> None:
        if len(world.sends()) == 3:
            control.act(world.ctx, campaign, "pause", by="ana", reason="", now=T0)

    report = tick(world.ctx, now=T0, clock=VirtualClock(), on_batch=pause_after_three)
    assert report.campaigns[0].sends == 3  # 09:00:00, 09:00:30, 09:01:00
    resumed = T0 + timedelta(seconds=70)
    control.act(world.ctx, "launch", "resume", by="ana", reason="", now=resumed)
    report = tick(world.ctx, now=resumed, clock=VirtualClock())
    moments = [at for at, _, _ in world.sends()]
    # no burst after the pause: the first send after it waits for the windows' room
    assert moments[3] == T0 + timedelta(seconds=90)
    assert most_in_any(moments, timedelta(minutes=1)) == 2
    assert min(b - a for a, b in itertools.pairwise(moments)) == timedelta(seconds=30)
    assert len(moments) == 10 and len({sid for _, _, sid in world.sends()}) == 10


def test_two_ticks_at_once_keep_the_limit_together(world: World) -> None:
    world.campaign(rate="2/min")
    world.add_people(8)
    ctx = world.ctx
    ctx.secret()
    from orchestrator.app.pacing import begin_campaign, throttle_of
    from orchestrator.app.service import load_current
    from orchestrator.app.ticking import run_batches

    load = load_current(ctx, world.graphs / "launch.yaml")
    assert load.loaded is not None and load.loaded.campaign is not None
    campaign = load.loaded.campaign
    begin_campaign(ctx, load, now=T0)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            throttle = throttle_of(ctx, campaign, now=T0, clock=VirtualClock())
            list(run_batches(ctx, campaign="launch", now=T0, throttle=throttle))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sends = world.sends()
    assert len({sid for _, _, sid in sends}) == len(sends) == 8
    assert most_in_any([at for at, _, _ in sends], timedelta(minutes=1)) == 2
    assert most_in_any([at for at, _, _ in sends], timedelta(seconds=30)) == 1


# ------------------------------------------------------------------ the installation's limit


def test_the_installation_limit_is_shared_by_the_campaigns_and_held_across_them(
    world: World,
) -> None:
    world.per_minute = 2
    world.campaign(name="launch")
    world.campaign(name="promo")
    world.add_people(6)
    report = tick(world.ctx, now=T0, clock=VirtualClock())
    sends = world.sends()
    assert most_in_any([at for at, _, _ in sends], timedelta(minutes=1)) == 2
    # the campaigns take turns: neither starves the other in the tick
    assert [c for _, c, _ in sends] == ["launch", "promo"] * 5
    assert [at for at, _, _ in sends] == [T0 + timedelta(seconds=30 * i) for i in range(10)]
    assert {c.campaign: c.steps["deferred:rate_limit"] for c in report.campaigns} == {
        "launch": 1,
        "promo": 1,
    }
    tick(world.ctx, now=T0 + timedelta(minutes=5), clock=VirtualClock())
    for name in ("launch", "promo"):
        assert sorted(sid for _, _, sid in world.sends(name)) == [f"p{i:03d}" for i in range(6)]


def test_a_campaign_alone_takes_the_whole_installation_limit(world: World) -> None:
    world.per_minute = 4
    world.campaign(name="launch")
    world.campaign(name="promo")
    world.add_people(6)
    control.act(world.ctx, "promo", "pause", by="ana", reason="", now=T0)  # waits: no share
    tick(world.ctx, now=T0, clock=VirtualClock())
    moments = [at for at, _, _ in world.sends("launch")]
    assert len(moments) == 6 and world.sends("promo") == []
    assert most_in_any(moments, timedelta(minutes=1)) == 4


def test_the_stricter_of_the_two_limits_holds(world: World) -> None:
    world.per_minute = 6
    world.campaign(rate="1/min", name="launch")
    world.add_people(4)
    tick(world.ctx, now=T0, clock=VirtualClock())
    moments = [at for at, _, _ in world.sends()]
    assert moments == [T0 + timedelta(minutes=m) for m in range(4)]


# ------------------------------------------------------------------ no limit


def test_without_a_limit_a_tick_is_unchanged(world: World) -> None:
    world.campaign()
    world.add_people(6)
    clock = VirtualClock()
    batches: list[BatchResult] = []
    report = tick(world.ctx, now=T0, clock=clock, on_batch=lambda _, b: batches.append(b))
    assert [b.journeys for b in batches] == [6]  # one batch, at once
    assert {at for at, _, _ in world.sends()} == {T0} and len(world.sends()) == 6
    assert clock.sleeps == 0 and clock.seconds == 0
    assert "deferred:rate_limit" not in report.campaigns[0].steps
    assert "deferred" not in status(world.ctx, "launch")["nodes"]["hello"]


# ------------------------------------------------------------------ paces and configuration


@pytest.mark.parametrize(
    ("count", "seconds", "batch", "limit", "step"),
    [
        (10_000, 60, 500, (10_000, 60.0), (500, 3.0)),
        (500, 60, 500, (500, 60.0), (42, 5.04)),
        (20, 1, 500, (1200, 60.0), (20, 1.0)),  # per second: kept per second
        (30_000, 3600, 500, (500, 60.0), (42, 5.04)),
        (7, 3600, 500, (7, 3600.0), (1, 3600 / 7)),
        (1_000_000, 60, 500, (1_000_000, 60.0), (500, 0.03)),
        (1_000_000, 60, 100_000, (1_000_000, 60.0), (83_333, 4.99998)),
        (1_000_000, 60, 10_000, (1_000_000, 60.0), (10_000, 0.6)),
        (1, 60, 500, (1, 60.0), (1, 60.0)),
    ],
)
def test_a_rate_is_a_limit_window_and_a_step_window(
    count: int, seconds: int, batch: int, limit: tuple[int, float], step: tuple[int, float]
) -> None:
    p = pace(count, seconds, batch_size=batch)
    assert (p.limit.cap, p.limit.length.total_seconds()) == limit
    assert p.step.cap == step[0]
    assert p.step.length.total_seconds() == pytest.approx(step[1], abs=1e-6)
    # the step never outruns the rate
    assert p.step.cap / p.step.length.total_seconds() <= count / seconds * (1 + 1e-6)


def test_the_installation_limit_is_read_from_the_environment() -> None:
    assert load_config({}, dotenv=None).max_sends_per_minute is None
    env = {"CAMPAIGN_MAX_SENDS_PER_MINUTE": " 10000 "}
    assert load_config(env, dotenv=None).max_sends_per_minute == 10_000
    for bad in ("0", "-5", "1000001", "10k", "1e4", "²", "500/min"):
        with pytest.raises(ConfigurationError, match="CAMPAIGN_MAX_SENDS_PER_MINUTE"):
            load_config({"CAMPAIGN_MAX_SENDS_PER_MINUTE": bad}, dotenv=None)
