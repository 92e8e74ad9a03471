"""Broadcasts (`settings.schedule: once …`), on SQLite and PostgreSQL with a fixed clock:
nothing before the first moment (UTC+14); at the first tick on or after it, every member
of the segment enrolled once, each due at their own local moment; members who join later,
later ticks, new versions and an edited moment enrol nobody; a tick too late for some
members leaves them out, one too late for all records the broadcast as missed; a claim
left by a tick that stopped is taken over, one whose tick failed is dropped."""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from orchestrator.app import broadcasts, control, enrolment
from orchestrator.app.broadcasts import (
    BROADCAST_LATE,
    broadcast_instant,
    broadcast_status,
    broadcast_window,
)
from orchestrator.app.service import Context, import_subscribers, load_current, open_context
from orchestrator.app.ticking import tick
from orchestrator.cli import app
from orchestrator.config import Config
from orchestrator.language.spec import Campaign
from orchestrator.store import repo
from orchestrator.store.models import CampaignAction, Journey
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line

CAMPAIGN = """
campaign: xmas
title: Spring sale
goal: order_placed
settings: {{schedule: "once {moment}", spacing: 1h, window: 1d, followup_cap: 0}}
segments:
  pros: {{match: {{attr: plan, eq: pro}}}}
subcampaigns:
  pros:
    segment: pros
    start: hello
    nodes:
      hello: {{notification: {{title: "Hi {{{{ subscriber.attributes.name }}}}", url: "https://example.com/a"}}}}
"""
MOMENT = "2026-03-29T10:00"  # Berlin's clocks go forward that night (02:00 -> 03:00)
FIRST = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)  # 10:00 at UTC+14
# each member's 10:00: Tokyo (+09:00), Berlin (summer time from that night: +02:00), a
# subscriber with no timezone of their own (UTC), New York (summer time since 8 March: -04:00)
DUE = {
    "tokyo": datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    "berlin": datetime(2026, 3, 29, 8, 0, tzinfo=UTC),
    "plain": datetime(2026, 3, 29, 10, 0, tzinfo=UTC),
    "ny": datetime(2026, 3, 29, 14, 0, tzinfo=UTC),
}
ZONES = {"tokyo": "Asia/Tokyo", "berlin": "Europe/Berlin", "ny": "America/New_York"}


def _person(sid: str, plan: str = "pro") -> str:
    line = json.loads(subscriber_line(sid, plan=plan, name=sid.title()))
    if sid in ZONES:
        line["timezone"] = ZONES[sid]
    return json.dumps(line)


def _import(ctx: Context, tmp_path: Path, *people: str) -> None:
    path = tmp_path / f"people-{people[0]}.jsonl"
    path.write_text("\n".join(_person(p) for p in people) + "\n", encoding="utf-8")
    assert import_subscribers(ctx, path).bad == []


def _write(ctx: Context, moment: str) -> None:
    text = textwrap.dedent(CAMPAIGN.format(moment=moment))
    (ctx.config.graphs / "xmas.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[tuple[Context, RecordingDelivery]]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    delivery = RecordingDelivery()
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=delivery)
    _write(ctx, MOMENT)
    _import(ctx, tmp_path, *DUE)
    free = tmp_path / "free.jsonl"
    free.write_text(_person("free", plan="free") + "\n", encoding="utf-8")
    assert import_subscribers(ctx, free).bad == []
    yield ctx, delivery
    ctx.engine.dispose()


def _journeys(ctx: Context) -> dict[str, tuple[datetime | None, datetime | None]]:
    """subscriber -> (entered_at, due_at) of their journeys in the campaign."""
    with ctx.session() as s:
        rows = s.execute(select(Journey).where(Journey.campaign == "xmas")).scalars()
        return {j.subscriber_id: (repo.aware(j.entered_at), repo.aware(j.due_at)) for j in rows}


def _sent(delivery: RecordingDelivery) -> list[str]:
    return sorted(r.subscriber_id for r in delivery.requests)


def _enrolled(ctx: Context, now: datetime) -> int:
    report = tick(ctx, now=now)
    assert report.failed == {} and report.refused == {}, report
    return report.campaigns[0].enrolled


def _campaign(ctx: Context) -> Campaign:
    from orchestrator.language import loader

    loaded = loader.load(ctx.config.graphs / "xmas.yaml")
    assert loaded.ok and loaded.campaign is not None
    return loaded.campaign


def _records(ctx: Context) -> list[tuple[str, str]]:
    with ctx.session() as s:
        rows = s.execute(select(CampaignAction).order_by(CampaignAction.id)).scalars()
        return [(r.action, r.by) for r in rows]


# ------------------------------------------------------------------ moments


def test_a_local_moment_is_each_timezone_s_wall_clock_read_past_a_gap_and_first_when_repeated() -> (
    None
):
    local = datetime(2026, 3, 29, 10, 0)
    assert broadcast_window(local) == (FIRST, datetime(2026, 3, 29, 22, 0, tzinfo=UTC))
    for sid, due in DUE.items():
        assert broadcast_instant(local, ZONES.get(sid, "UTC")) == due
    # 02:30 does not exist in Berlin on 29 March 2026: read past the gap, 03:30 summer time
    gap = broadcast_instant(datetime(2026, 3, 29, 2, 30), "Europe/Berlin")
    assert gap == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # 02:30 happens twice on 25 October 2026: its first occurrence, still summer time
    twice = broadcast_instant(datetime(2026, 10, 25, 2, 30), "Europe/Berlin")
    assert twice == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    instant = datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    assert broadcast_window(instant) == (instant, instant)
    assert broadcast_instant(instant, "Asia/Tokyo") == instant


# ------------------------------------------------------------------ the broadcast


def test_a_broadcast_enrols_each_member_once_at_their_own_local_moment(
    world: tuple[Context, RecordingDelivery], tmp_path: Path
) -> None:
    ctx, delivery = world
    assert _enrolled(ctx, FIRST - timedelta(minutes=1)) == 0
    assert _journeys(ctx) == {} and _records(ctx) == []
    assert _enrolled(ctx, FIRST) == 4
    assert _journeys(ctx) == {sid: (due, due) for sid, due in DUE.items()}  # `free` is not a pro
    assert delivery.requests == []  # nobody's moment has come at 20:00 UTC the day before
    _import(ctx, tmp_path, "later")  # joins the segment after the broadcast began
    assert _enrolled(ctx, FIRST + timedelta(minutes=5)) == 0
    assert _enrolled(ctx, DUE["tokyo"] - timedelta(seconds=1)) == 0
    assert delivery.requests == []
    tick(ctx, now=DUE["tokyo"])
    assert _sent(delivery) == ["tokyo"]
    tick(ctx, now=DUE["ny"])
    assert _sent(delivery) == sorted(DUE)
    assert _enrolled(ctx, DUE["ny"] + timedelta(days=1)) == 0
    assert "later" not in _journeys(ctx) and _sent(delivery) == sorted(DUE)
    assert _records(ctx) == [("broadcast", "tick")]
    done = broadcast_status(ctx, "xmas", _campaign(ctx), now=DUE["ny"])
    assert done is not None and (done.state, done.enrolled, done.holdout) == ("sent", 4, 0)
    assert (done.at, done.local, done.first) == (FIRST, True, FIRST)
    assert "sent by the tick at 2026-03-28 20:00 UTC: 4 enrolled (0 held out)" in done.line()
    # the record leaves the campaign's state alone: it pauses and resumes as before
    assert control.state(ctx, "xmas").state == "running"
    control.act(ctx, "xmas", "pause", by="ana", reason="", now=DUE["ny"])
    assert control.state(ctx, "xmas").state == "paused"
    history = control.history(ctx, "xmas")
    assert [h["action"] for h in history] == ["pause", "broadcast"]
    assert history[1]["reason"] == f"once {MOMENT}: 4 enrolled (0 held out)"


def test_a_new_version_or_an_edited_moment_does_not_broadcast_again(
    world: tuple[Context, RecordingDelivery],
) -> None:
    ctx, delivery = world
    assert _enrolled(ctx, FIRST) == 4
    tick(ctx, now=DUE["ny"])
    _write(ctx, "2026-04-05T10:00")  # a new version, a new moment
    later = datetime(2026, 4, 5, 10, 0, tzinfo=UTC)
    assert _enrolled(ctx, later) == 0 and _enrolled(ctx, later + timedelta(hours=12)) == 0
    assert len(delivery.requests) == 4
    status = broadcast_status(ctx, "xmas", _campaign(ctx), now=later)
    assert status is not None and status.state == "sent" and status.moment == MOMENT
    assert "The file now says once 2026-04-05T10:00: a campaign broadcasts once" in status.line()


def test_an_instant_is_one_moment_for_everyone(world: tuple[Context, RecordingDelivery]) -> None:
    ctx, delivery = world
    _write(ctx, "2026-03-29T10:00Z")
    at = datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    assert _enrolled(ctx, at - timedelta(minutes=1)) == 0
    assert _enrolled(ctx, at) == 4
    assert {entered for entered, _ in _journeys(ctx).values()} == {at}
    assert _sent(delivery) == sorted(DUE)
    status = broadcast_status(ctx, "xmas", _campaign(ctx), now=at)
    assert status is not None and not status.local and status.first == status.last == at


def test_a_late_first_tick_leaves_out_the_members_whose_moment_is_more_than_a_day_gone(
    world: tuple[Context, RecordingDelivery], caplog: pytest.LogCaptureFixture
) -> None:
    ctx, delivery = world
    now = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)  # Tokyo's 10:00 was 32 h ago, Berlin's 25 h
    assert now - DUE["berlin"] > BROADCAST_LATE >= now - DUE["plain"]
    with caplog.at_level(logging.WARNING, logger="campaign.tick"):
        assert _enrolled(ctx, now) == 2
    assert _sent(delivery) == ["ny", "plain"]  # due already: sent in that very tick
    assert "2 members not sent it, their moment more than 24 h before this tick" in caplog.text
    status = broadcast_status(ctx, "xmas", _campaign(ctx), now=now)
    assert status is not None and (status.state, status.enrolled, status.late) == ("sent", 2, 2)
    assert "2 not (their moment more than 24 h gone)" in status.line()
    assert _enrolled(ctx, now + timedelta(hours=1)) == 0


def test_a_tick_too_late_for_every_member_records_it_missed_and_a_new_moment_sends_it(
    world: tuple[Context, RecordingDelivery], caplog: pytest.LogCaptureFixture
) -> None:
    ctx, delivery = world
    campaign = _campaign(ctx)
    before = broadcast_status(ctx, "xmas", campaign, now=FIRST)
    assert before is not None and before.state == "scheduled"
    now = datetime(2026, 3, 31, 0, 0, tzinfo=UTC)  # New York's 10:00 was 34 h ago
    with caplog.at_level(logging.WARNING, logger="campaign.tick"):
        assert _enrolled(ctx, now) == 0
        assert _enrolled(ctx, now + timedelta(hours=1)) == 0
    assert caplog.text.count("broadcast once 2026-03-29T10:00 missed") == 1
    assert _records(ctx) == [("missed", "tick")] and delivery.requests == []
    missed = broadcast_status(ctx, "xmas", campaign, now=now)
    assert missed is not None and (missed.state, missed.at) == ("missed", now)
    assert "missed: no tick ran within 24 h of any member's moment" in missed.line()
    assert control.state(ctx, "xmas").state == "running"
    _write(ctx, "2026-04-05T10:00")  # a new moment is a new chance
    assert _enrolled(ctx, datetime(2026, 4, 4, 20, 0, tzinfo=UTC)) == 4
    sent = broadcast_status(ctx, "xmas", _campaign(ctx), now=now)
    assert sent is not None and sent.state == "sent" and sent.moment == "2026-04-05T10:00"


def test_a_paused_campaign_broadcasts_at_the_first_tick_after_it_resumes(
    world: tuple[Context, RecordingDelivery],
) -> None:
    ctx, _ = world
    control.act(ctx, "xmas", "pause", by="ana", reason="copy review", now=FIRST)
    assert tick(ctx, now=FIRST).campaigns[0].held == "paused" and _journeys(ctx) == {}
    control.act(ctx, "xmas", "resume", by="ana", reason="", now=FIRST + timedelta(hours=2))
    assert _enrolled(ctx, FIRST + timedelta(hours=2)) == 4


def test_a_claim_is_taken_over_once_its_tick_has_stopped_and_dropped_when_its_tick_fails(
    world: tuple[Context, RecordingDelivery], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, _ = world
    with ctx.session() as s, s.begin():  # as a tick that stopped after its claim leaves it
        record = control.BroadcastRecord(
            0, control.BROADCAST, FIRST, MOMENT, datetime(2026, 3, 29, 10, 0)
        )
        control.write_broadcast(s, "xmas", record)
    sending = broadcast_status(ctx, "xmas", _campaign(ctx), now=FIRST)
    assert sending is not None and sending.state == "sending" and sending.note == ""
    assert _enrolled(ctx, FIRST + timedelta(minutes=5)) == 0  # another tick may be at it
    taken = FIRST + broadcasts.BROADCAST_RESUME_AFTER
    stopped = broadcast_status(ctx, "xmas", _campaign(ctx), now=taken)
    assert stopped is not None and "the next tick enrols the rest" in stopped.note
    assert _enrolled(ctx, taken) == 4
    done = broadcast_status(ctx, "xmas", _campaign(ctx), now=taken)
    assert done is not None and (done.state, done.at, done.enrolled) == ("sent", taken, 4)
    assert _records(ctx) == [("broadcast", "tick")]


def test_a_broadcast_whose_tick_fails_is_enrolled_by_the_next_tick(
    world: tuple[Context, RecordingDelivery], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, _ = world

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(enrolment, "_insert_journeys", broken)
        report = tick(ctx, now=FIRST)
    assert "xmas" in report.failed and _records(ctx) == []  # its claim dropped
    assert _enrolled(ctx, FIRST + timedelta(minutes=1)) == 4


def test_ticks_at_once_broadcast_once(world: tuple[Context, RecordingDelivery]) -> None:
    ctx, _ = world
    load = load_current(ctx, ctx.config.graphs / "xmas.yaml")
    assert load.version_id is not None
    campaign = _campaign(ctx)

    def one_tick(_: int) -> tuple[int, int]:
        return enrolment.enrol(ctx, campaign=campaign, version_id=load.version_id or 0, now=FIRST)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one_tick, range(4)))
    assert sum(enrolled for enrolled, _ in results) == 4
    assert _records(ctx) == [("broadcast", "tick")] and len(_journeys(ctx)) == 4


# ------------------------------------------------------------------ campaign status


def test_campaign_status_shows_the_broadcast(
    world: tuple[Context, RecordingDelivery], db_url: str
) -> None:
    ctx, _ = world
    env = {"CAMPAIGN_DB": db_url, "CAMPAIGN_GRAPHS": str(ctx.config.graphs)}
    runner = CliRunner()
    result = runner.invoke(app, ["status", "xmas", "--json"], env=env)
    assert result.exit_code == 0, result.output
    before = json.loads(result.stdout)["broadcast"]
    # the command's clock is today's: a moment in March 2026 is long gone, never sent
    assert (before["moment"], before["state"], before["enrolled"]) == (MOMENT, "missed", None)
    tick(ctx, now=FIRST)
    result = runner.invoke(app, ["status", "xmas", "--json"], env=env)
    sent = json.loads(result.stdout)["broadcast"]
    assert (sent["state"], sent["enrolled"], sent["local"]) == ("sent", 4, True)
    assert sent["at"] == FIRST.isoformat() and sent["first"] == FIRST.isoformat()
    text = runner.invoke(app, ["status", "xmas"], env=env).stdout
    assert (
        "broadcast: once 2026-03-29T10:00, each subscriber's local time (2026-03-28 20:00 to "
        "2026-03-29 22:00 UTC): sent by the tick at 2026-03-28 20:00 UTC: 4 enrolled "
        "(0 held out)"
    ) in text
