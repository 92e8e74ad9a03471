"""Ticks against real databases (SQLite file and PostgreSQL), with the recording delivery fake."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from orchestrator.app.service import Context, add_events, import_subscribers, open_context, status
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.language.records import EventRecord, RecordError
from orchestrator.store.models import Journey, Send
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import p256dh_key, subscriber_line
from tests.helpers import T0, TICK_CAMPAIGN


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> tuple[Context, RecordingDelivery, Path]:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "launch.yaml").write_text(textwrap.dedent(TICK_CAMPAIGN), encoding="utf-8")
    delivery = RecordingDelivery()
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=delivery)
    people = tmp_path / "people.jsonl"
    people.write_text(
        "\n".join(
            [
                subscriber_line("ann", plan="pro", name="Ann"),
                subscriber_line("bob", plan="pro", name="Bob"),
                subscriber_line("cat", plan="free"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    assert import_subscribers(ctx, people).bad == []
    yield ctx, delivery, graphs
    ctx.engine.dispose()


def _sends(ctx: Context) -> int:
    with ctx.session() as s:
        return int(s.execute(select(func.count()).select_from(Send)).scalar() or 0)


def test_tick_enrols_segment_members_and_sends_their_start_node(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, _ = world
    report = tick(ctx, now=T0)
    assert report.refused == {}
    assert {(r.subscriber_id, r.node) for r in delivery.requests} == {
        ("ann", "hello"),
        ("bob", "hello"),
    }
    first = json.loads(next(r for r in delivery.requests if r.subscriber_id == "ann").payload)
    assert first["title"] == "Hi Ann"
    assert first["data"]["url"].startswith("http://127.0.0.1:8000/c/")
    assert status(ctx, "launch")["sends"] == {"delivered": 2}


def test_a_second_tick_at_the_same_moment_sends_nothing_again(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, _ = world
    tick(ctx, now=T0)
    tick(ctx, now=T0)
    tick(ctx, now=T0 + timedelta(minutes=5))
    assert len(delivery.requests) == 2
    assert _sends(ctx) == 2


def test_the_ledger_refuses_a_second_row_for_the_same_step(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, _, _ = world
    tick(ctx, now=T0)
    with ctx.session() as s:
        row = s.execute(select(Send)).scalars().first()
        assert row is not None
        dup = Send(
            journey_id=row.journey_id,
            step=row.step,
            campaign=row.campaign,
            node=row.node,
            subscriber_id=row.subscriber_id,
            claimed_at=T0,
        )
        s.add(dup)
        with pytest.raises(IntegrityError):
            s.commit()


def test_no_convert_then_follow_up_then_cap(world: tuple[Context, RecordingDelivery, Path]) -> None:
    ctx, delivery, _ = world
    tick(ctx, now=T0)
    tick(ctx, now=T0 + timedelta(days=1, hours=1))  # window over + 1h edge delay
    assert [r.node for r in delivery.requests if r.subscriber_id == "ann"] == ["hello", "again"]
    tick(ctx, now=T0 + timedelta(days=3))
    with ctx.session() as s:
        reasons = {j.subscriber_id: j.exit_reason for j in s.execute(select(Journey)).scalars()}
    assert reasons == {"ann": "completed", "bob": "completed"}


def test_goal_event_takes_the_convert_edge_at_the_next_tick(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, _ = world
    tick(ctx, now=T0)
    add_events(ctx, [EventRecord("ann", "signup", T0 + timedelta(hours=2))])
    tick(ctx, now=T0 + timedelta(hours=2, minutes=5))
    assert [r.node for r in delivery.requests if r.subscriber_id == "ann"] == ["hello", "thanks"]
    assert status(ctx, "launch")["nodes"]["hello"]["converted"] == 1


def test_trigger_event_enrols_after_its_delay_with_its_properties(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, _ = world
    add_events(ctx, [EventRecord("cat", "cart_abandoned", T0, {"product": "Lamp"})])
    tick(ctx, now=T0 + timedelta(minutes=30))
    assert [r.node for r in delivery.requests if r.subscriber_id == "cat"] == []
    tick(ctx, now=T0 + timedelta(hours=1))
    cat = [r for r in delivery.requests if r.subscriber_id == "cat"]
    assert [r.node for r in cat] == ["nudge"]
    assert json.loads(cat[0].payload)["title"] == "Still want Lamp?"


def test_trigger_events_dated_later_do_not_hold_up_the_ones_already_due(
    world: tuple[Context, RecordingDelivery, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More events dated after `now` than one read takes (here 2) come first in the
    events table: the trigger's read skips them in its query, so the due one enrols."""
    from orchestrator.app import enrolment

    ctx, delivery, _ = world
    monkeypatch.setattr(enrolment, "ENROL_CHUNK", 2)
    later = T0 + timedelta(days=2)
    add_events(ctx, [EventRecord(sid, "cart_abandoned", later) for sid in ("ann", "bob", "ann")])
    add_events(ctx, [EventRecord("cat", "cart_abandoned", T0, {"product": "Lamp"})])
    tick(ctx, now=T0 + timedelta(hours=1))
    assert [r.node for r in delivery.requests if r.subscriber_id == "cat"] == ["nudge"]


def _more_people(ctx: Context, tmp: Path, *ids: str) -> None:
    people = tmp / "more-people.jsonl"
    people.write_text(
        "".join(subscriber_line(sid, plan="free") + "\n" for sid in ids), encoding="utf-8"
    )
    assert import_subscribers(ctx, people).bad == []


def _trigger_state(ctx: Context) -> tuple[int, list[tuple[int, bool]]]:
    from orchestrator.store.models import Cursor, TriggerMark

    with ctx.session() as s:
        cursor = s.execute(
            select(Cursor.last_event_id).where(Cursor.subcampaign == "carts")
        ).scalar_one()
        marks = s.execute(
            select(TriggerMark.event_id, TriggerMark.handled).order_by(TriggerMark.event_id)
        ).all()
    return int(cursor), [(int(i), bool(h)) for i, h in marks]


def _dan_later_then_eve_now(ctx: Context, tmp: Path) -> tuple[int, int, datetime]:
    """Two new subscribers' trigger events: dan's dated two days on, stored first; eve's
    due at T0. Returns their ids and dan's time."""
    _more_people(ctx, tmp, "dan", "eve")
    later = T0 + timedelta(days=2)
    (dan,) = add_events(ctx, [EventRecord("dan", "cart_abandoned", later, {"product": "Mug"})])
    (eve,) = add_events(ctx, [EventRecord("eve", "cart_abandoned", T0, {"product": "Lamp"})])
    return dan, eve, later


@pytest.mark.parametrize("settle", [True, False])
def test_a_trigger_event_dated_later_enrols_when_due_though_later_stored_ones_came_first(
    world: tuple[Context, RecordingDelivery, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settle: bool,
) -> None:
    """The cursor passes an event dated after the tick only by marking it; the first tick
    at or after its time enrols it (before, a later-stored due event moved the cursor past
    it for good). With the settling time (events stored in the last minute), the cursor
    stays behind both and the read finds dan's event when due."""
    from orchestrator.app import enrolment

    if not settle:
        monkeypatch.setattr(enrolment, "TRIGGER_SETTLE", timedelta(0))
    ctx, delivery, _ = world
    dan, eve, later = _dan_later_then_eve_now(ctx, tmp_path)
    tick(ctx, now=T0 + timedelta(hours=1))
    assert [r.subscriber_id for r in delivery.requests if r.node == "nudge"] == ["eve"]
    cursor, marks = _trigger_state(ctx)
    if settle:  # eve's event was stored a moment ago: the cursor stays behind it, marked
        assert cursor < dan and marks == [(eve, True)]
    else:  # the cursor passes both; dan's event is marked to be enrolled when due
        assert cursor == eve and marks == [(dan, False)]
    tick(ctx, now=T0 + timedelta(hours=2))  # read again, skipped: nothing new
    assert [r.subscriber_id for r in delivery.requests if r.node == "nudge"] == ["eve"]
    tick(ctx, now=later + timedelta(hours=1))
    assert [r.subscriber_id for r in delivery.requests if r.node == "nudge"] == ["eve", "dan"]
    mug = [r for r in delivery.requests if r.subscriber_id == "dan"]
    assert json.loads(mug[0].payload)["title"] == "Still want Mug?"
    tick(ctx, now=later + timedelta(hours=3))
    assert len([r for r in delivery.requests if r.node == "nudge"]) == 2
    with ctx.session() as s:
        journeys = s.execute(
            select(Journey.subscriber_id, Journey.trigger_event_id).where(
                Journey.subcampaign == "carts"
            )
        ).all()
    assert sorted(journeys) == [("dan", dan), ("eve", eve)]


def test_the_mark_of_a_later_dated_event_goes_when_its_subscriber_is_erased(
    world: tuple[Context, RecordingDelivery, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy import delete

    from orchestrator.app import enrolment
    from orchestrator.store.models import Event

    monkeypatch.setattr(enrolment, "TRIGGER_SETTLE", timedelta(0))
    ctx, delivery, _ = world
    dan, eve, later = _dan_later_then_eve_now(ctx, tmp_path)
    tick(ctx, now=T0 + timedelta(hours=1))
    assert _trigger_state(ctx) == (eve, [(dan, False)])
    with ctx.session() as s, s.begin():  # what erasing dan does to his events
        s.execute(delete(Event).where(Event.subscriber_id == "dan"))
    tick(ctx, now=later + timedelta(hours=1))
    assert [r.subscriber_id for r in delivery.requests if r.node == "nudge"] == ["eve"]
    assert _trigger_state(ctx) == (eve, [])


def test_the_trigger_cursor_waits_for_events_still_committing_then_passes_what_it_handled(
    world: tuple[Context, RecordingDelivery, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An event whose id is smaller than one a tick has read, stored after that tick (a
    transaction that committed late), is still enrolled: the cursor does not pass events
    stored in the last TRIGGER_SETTLE. Once they are older, it passes them and drops
    their marks."""
    from sqlalchemy import delete, insert

    from orchestrator.app import enrolment
    from orchestrator.store.models import Event

    ctx, delivery, _ = world
    _more_people(ctx, tmp_path, "dan", "eve")
    (gap,) = add_events(ctx, [EventRecord("dan", "page_view", T0)])
    (eve,) = add_events(ctx, [EventRecord("eve", "cart_abandoned", T0, {"product": "Lamp"})])
    with ctx.session() as s, s.begin():  # the id `gap` stands for a transaction not yet committed
        s.execute(delete(Event).where(Event.id == gap))
    tick(ctx, now=T0 + timedelta(hours=1))
    assert [r.subscriber_id for r in delivery.requests if r.node == "nudge"] == ["eve"]
    cursor, marks = _trigger_state(ctx)
    assert cursor < gap and marks == [(eve, True)]
    with ctx.session() as s, s.begin():  # ... and now it commits
        s.execute(
            insert(Event).values(
                id=gap,
                subscriber_id="dan",
                name="cart_abandoned",
                at=T0,
                properties={"product": "Mug"},
                recorded_at=datetime.now(UTC),
            )
        )
    tick(ctx, now=T0 + timedelta(hours=2))
    assert [r.subscriber_id for r in delivery.requests if r.node == "nudge"] == ["eve", "dan"]
    assert _trigger_state(ctx) == (cursor, [(gap, True), (eve, True)])
    monkeypatch.setattr(enrolment, "TRIGGER_SETTLE", timedelta(0))  # a minute later
    add_events(
        ctx, [EventRecord("cat", "cart_abandoned", T0 + timedelta(hours=2), {"product": "Pen"})]
    )
    tick(ctx, now=T0 + timedelta(hours=3))
    sent = [r.subscriber_id for r in delivery.requests if r.node == "nudge"]
    assert sent == ["eve", "dan", "cat"]
    cursor, marks = _trigger_state(ctx)
    assert cursor > eve and marks == []


def test_template_error_skips_the_send_and_follows_no_convert(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, graphs = world
    text = (
        (graphs / "launch.yaml")
        .read_text()
        .replace("subscriber.attributes.name", "subscriber.attributes.nickname")
    )
    (graphs / "launch.yaml").write_text(text)
    tick(ctx, now=T0)
    tick(ctx, now=T0 + timedelta(hours=1))
    assert {(r.subscriber_id, r.node) for r in delivery.requests} == {
        ("ann", "again"),
        ("bob", "again"),
    }
    with ctx.session() as s:
        skipped = s.execute(select(Send).where(Send.outcome == "skipped")).scalars().all()
    assert len(skipped) == 2 and all((r.detail or "").startswith("template_error") for r in skipped)


def test_an_edited_file_is_a_new_version_and_journeys_keep_theirs(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, graphs = world
    tick(ctx, now=T0)
    text = (graphs / "launch.yaml").read_text().replace("title: Again,", "title: Edited,")
    (graphs / "launch.yaml").write_text(text)
    tick(ctx, now=T0 + timedelta(days=1, hours=1))
    titles = {json.loads(r.payload)["title"] for r in delivery.requests if r.node == "again"}
    assert titles == {"Again"}
    with ctx.session() as s:
        versions = {j.version_id for j in s.execute(select(Journey)).scalars()}
    assert len(versions) == 1


def test_a_campaign_that_no_longer_validates_is_refused_and_others_go_on(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, graphs = world
    other = (graphs / "launch.yaml").read_text().replace("campaign: launch", "campaign: other")
    (graphs / "other.yaml").write_text(other)
    (graphs / "launch.yaml").write_text(
        (graphs / "launch.yaml").read_text().replace("to: again", "to: agian")
    )
    report = tick(ctx, now=T0)
    assert list(report.refused) == [str(graphs / "launch.yaml")]
    assert "names no node" in report.refused[str(graphs / "launch.yaml")]
    assert {r.campaign for r in delivery.requests} == {"other"}


def test_import_reports_bad_lines_keeps_good_ones_and_reimport_changes_nothing(
    world: tuple[Context, RecordingDelivery, Path],
    tmp_path: Path,
) -> None:
    ctx, _, _ = world
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [
                subscriber_line("dan", plan="pro"),
                "{not json",
                json.dumps({"attributes": {}}),
                json.dumps({"id": "eve", "timezone": "Mars/Base"}),
                json.dumps(
                    {
                        "id": "fay",
                        "subscription": {
                            "endpoint": "https://evil.example/x",
                            "keys": {"p256dh": p256dh_key(), "auth": "AAAAAAAAAAAAAAAAAAAAAA"},
                        },
                    }
                ),
                json.dumps(
                    {
                        "id": "gus",
                        "subscription": {
                            "endpoint": "https://fcm.googleapis.com/x",
                            "keys": {"p256dh": "AAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"},
                        },
                    }
                ),
            ]
        )
        + "\n"
    )
    report = import_subscribers(ctx, path)
    assert report.added == 1
    assert [n for n, _ in report.bad] == [2, 3, 4, 5, 6]
    messages = dict(report.bad)
    assert "not JSON" in messages[2] and "id: missing" in messages[3] and "Mars/Base" in messages[4]
    assert "not an allowed push service origin" in messages[5] and "P-256" in messages[6]
    again = import_subscribers(ctx, path)
    assert (again.added, again.changed, again.unchanged) == (0, 0, 1)


def test_events_for_unknown_subscribers_are_refused_whole(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, _, _ = world
    with pytest.raises(RecordError, match="unknown subscriber: zed"):
        add_events(ctx, [EventRecord("ann", "signup", T0), EventRecord("zed", "signup", T0)])
    with ctx.session() as s:
        from orchestrator.store.models import Event

        stored = select(func.count()).select_from(Event).where(Event.name == "signup")
        assert s.execute(stored).scalar() == 0  # (the import's opt-ins are all there is)


def test_migrate_dry_run_lists_moves_and_applying_moves_them(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    from orchestrator.app import versions

    ctx, delivery, graphs = world
    tick(ctx, now=T0)
    path = graphs / "launch.yaml"
    path.write_text(path.read_text().replace("title: Again,", "title: Edited,"))
    plan = versions.plan(ctx, "launch")
    assert sorted((m.subscriber_id, m.node, m.resumes) for m in plan.moves) == [
        ("ann", "hello", True),
        ("bob", "hello", True),
    ]
    assert plan.ends == []
    with ctx.session() as s:
        assert {j.version_id for j in s.execute(select(Journey)).scalars()} == {
            plan.moves[0].from_version
        }
    versions.apply(ctx, plan, now=T0)
    tick(ctx, now=T0 + timedelta(days=1, hours=1))
    assert {json.loads(r.payload)["title"] for r in delivery.requests if r.node == "again"} == {
        "Edited"
    }


def test_migrate_ends_journeys_whose_node_was_removed(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    from orchestrator.app import versions

    ctx, _, graphs = world
    tick(ctx, now=T0)
    path = graphs / "launch.yaml"
    path.write_text(
        path.read_text().replace("start: hello", "start: hi").replace("      hello:", "      hi:")
    )
    plan = versions.plan(ctx, "launch")
    assert plan.moves == [] and sorted(m.subscriber_id for m in plan.ends) == ["ann", "bob"]
    versions.apply(ctx, plan, now=T0)
    with ctx.session() as s:
        reasons = {j.exit_reason for j in s.execute(select(Journey)).scalars()}
    assert reasons == {"removed_node"}
    assert status(ctx, "launch")["nodes"]["hello"]["exit:removed_node"] == 2


def test_two_ticks_at_once_send_every_due_notification_exactly_once(
    world: tuple[Context, RecordingDelivery, Path], tmp_path: Path
) -> None:
    import threading

    ctx, delivery, _ = world
    people = tmp_path / "more.jsonl"
    people.write_text(
        "\n".join(subscriber_line(f"p{i}", plan="pro", name=f"P{i}") for i in range(120)) + "\n"
    )
    import_subscribers(ctx, people)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            tick(ctx, now=T0, batch_size=7)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sent = [(r.journey_id, r.step) for r in delivery.requests]
    assert len(sent) == len(set(sent)) == 122
    assert _sends(ctx) == 122


def test_later_subscribers_and_changed_attributes_enrol_on_the_next_tick(
    world: tuple[Context, RecordingDelivery, Path], tmp_path: Path
) -> None:
    ctx, delivery, _ = world
    tick(ctx, now=T0)
    later = tmp_path / "later.jsonl"
    later.write_text(subscriber_line("dan", plan="pro", name="Dan") + "\n")
    import_subscribers(ctx, later)
    cat = json.loads(subscriber_line("cat", plan="pro", name="Cat"))
    changed = tmp_path / "changed.jsonl"
    changed.write_text(json.dumps({"id": "cat", "attributes": cat["attributes"]}) + "\n")
    import_subscribers(ctx, changed)  # cat had a subscription already; now she is a pro
    tick(ctx, now=T0 + timedelta(minutes=5))
    assert sorted(r.subscriber_id for r in delivery.requests if r.node == "hello") == [
        "ann",
        "bob",
        "cat",
        "dan",
    ]


def test_a_segment_that_changes_with_time_is_re_evaluated_in_full(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    ctx, delivery, graphs = world
    path = graphs / "launch.yaml"
    path.write_text(
        path.read_text().replace(
            "pros: {match: {attr: plan, eq: pro}}",
            "pros: {match: {not: {event: visit, within: 1d}}}",
        )
    )
    add_events(
        ctx, [EventRecord(sid, "visit", T0 - timedelta(hours=1)) for sid in ("ann", "bob", "cat")]
    )
    assert tick(ctx, now=T0).refused == {}
    assert delivery.requests == []  # everyone visited in the last day
    tick(ctx, now=T0 + timedelta(hours=2))
    assert delivery.requests == []
    tick(
        ctx, now=T0 + timedelta(days=1)
    )  # the visits have left the window: nobody changed, yet all enter
    with ctx.session() as s:
        enrolled = sorted(j.subscriber_id for j in s.execute(select(Journey)).scalars())
    assert enrolled == ["ann", "bob", "cat"]


PRIORITY = """
campaign: order
title: Priority order
goal: signup
settings: {spacing: 1h, window: 1d, followup_cap: 1}
segments:
  big: {match: {attr: size, gte: 10}}
  anyone: {match: {attr: plan, exists: true}}
  pros: {match: {attr: plan, eq: pro}}
subcampaigns:
  first:
    segment: big
    start: a
    nodes: {a: {notification: {title: A}}}
  carts:
    trigger: {event: cart_abandoned}
    start: b
    nodes: {b: {notification: {title: B}}}
  second:
    segment: anyone
    start: c
    nodes: {c: {notification: {title: C}}}
  third:
    segment: pros
    start: d
    nodes: {d: {notification: {title: D}}}
"""


def test_sub_campaigns_take_their_members_in_file_order_across_a_trigger(
    tmp_path: Path, db_url: str
) -> None:
    """Consecutive segment sub-campaigns are evaluated in one query; each subscriber
    still enters the first sub-campaign (in file order) that takes them, and a trigger
    sub-campaign between two segment ones keeps its place in that order."""
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "order.yaml").write_text(textwrap.dedent(PRIORITY), encoding="utf-8")
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=RecordingDelivery())
    people = tmp_path / "people.jsonl"
    people.write_text(
        "\n".join(
            [
                subscriber_line("ann", size=50, plan="pro"),  # big: first
                subscriber_line("bob", plan="pro"),  # anyone and pros: second comes first
                subscriber_line("cat", plan="free"),
                subscriber_line("dan", size=5, plan="pro"),  # a cart before the tick: carts
                subscriber_line("eve", name="no plan"),  # in no segment
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    assert import_subscribers(ctx, people).bad == []
    add_events(ctx, [EventRecord("dan", "cart_abandoned", T0 - timedelta(minutes=30))])
    tick(ctx, now=T0)
    later = tmp_path / "later.jsonl"
    later.write_text(
        subscriber_line("fay", plan="pro") + "\n" + subscriber_line("gus", size=99) + "\n"
    )
    import_subscribers(ctx, later)
    tick(ctx, now=T0 + timedelta(minutes=5))  # incremental: only fay and gus are looked at
    with ctx.session() as s:
        entered = {j.subscriber_id: j.subcampaign for j in s.execute(select(Journey)).scalars()}
    assert entered == {
        "ann": "first",
        "bob": "second",
        "cat": "second",
        "dan": "carts",
        "fay": "second",
        "gus": "first",
    }
    ctx.engine.dispose()


def test_a_ticks_log_line_counts_what_it_did(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    from orchestrator.app.tick_report import tick_lines

    ctx, _, _ = world
    lines = []
    for moment in (T0, T0 + timedelta(days=1, hours=1), T0 + timedelta(days=3)):
        line, warnings = tick_lines(tick(ctx, now=moment).campaigns[0], now=moment)
        assert warnings == []
        lines.append(line)
    assert lines[0] == (
        "launch at 2026-01-05 09:00 UTC: enrolled 2; advanced 2; sent 2 (delivered 2); "
        "converted 0, no convert 0"
    )
    assert "sent 2 (delivered 2); converted 0, no convert 2" in lines[1]
    assert lines[2].endswith("no convert 2; exits 2 (completed 2)")
    assert not any(sid in "".join(lines) for sid in ("ann", "bob"))  # counts only


def test_a_ticks_log_warns_of_sends_it_could_not_make(
    world: tuple[Context, RecordingDelivery, Path],
) -> None:
    from orchestrator.app.tick_report import tick_lines

    ctx, _, graphs = world
    text = (graphs / "launch.yaml").read_text()
    (graphs / "launch.yaml").write_text(text.replace("attributes.name", "attributes.nickname"))
    _, warnings = tick_lines(tick(ctx, now=T0).campaigns[0], now=T0)
    assert warnings == [
        "launch: 2 sends skipped or refused for good (template error 2); their journeys "
        "took the no-convert edge"
    ]
