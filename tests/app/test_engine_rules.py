"""The engine rules of docs/engine.md ("Spacing", "Re-entry", "Events at their time",
"Sends that cannot be made"), each held three ways: by the pure engine on a fixed
clock, by real ticks on SQLite and PostgreSQL, and by a simulation."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator import engine
from orchestrator.app import journeys
from orchestrator.app.service import Context, add_events, import_subscribers, open_context
from orchestrator.app.ticking import tick
from orchestrator.config import Config
from orchestrator.engine import Action, SubscriberView
from orchestrator.engine.invariants import TraceChecker, journey_problems
from orchestrator.language import loader
from orchestrator.language.records import EventRecord
from orchestrator.language.spec import Campaign
from orchestrator.sim.simulate import simulate
from orchestrator.store.models import Journey, Send
from orchestrator.testing.fakes import RecordingDelivery
from tests.conftest import subscriber_line

T0 = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)

CARTS = """
campaign: carts
title: Carts
goal: purchase
settings:
  spacing: 6h
  window: 4h
  followup_cap: 1
  reentry: 2h
  exit_on: [order_placed]
subcampaigns:
  carts:
    trigger: {event: cart_abandoned}
    start: nudge
    nodes:
      nudge:
        notification: {title: "Still want it?", url: "https://shop.example/cart"}
        on_no_convert: {to: again, delay: 1h}
      again: {notification: {title: "Last call"}}
"""


def _campaign(text: str = CARTS) -> Campaign:
    loaded = loader.load(Path("carts.yaml"), reader=lambda _: textwrap.dedent(text))
    assert loaded.campaign is not None, [d.format() for d in loaded.errors]
    return loaded.campaign


# ------------------------------------------------------------------ the pure engine


def _advance(state: engine.JourneyState, campaign: Campaign, now: datetime) -> engine.Result:
    return engine.advance(
        state, campaign=campaign, subscriber=SubscriberView("ann"), events=(), now=now
    )


def test_engine_spacing_counts_from_the_campaigns_last_send_in_an_earlier_journey(
    carts: Campaign,
) -> None:
    """A journey entered 3 h 30 min after the campaign's last send to this subscriber
    (in a journey that has ended) waits until that send is `spacing` (6 h) old."""
    start = engine.enroll(
        campaign=carts,
        subcampaign="carts",
        subscriber_id="ann",
        at=T0 + 3.5 * H,
        last_send_at=T0,
    )
    first = _advance(start.state, carts, T0 + 3.5 * H)
    assert [(a.type, a.reason, a.until) for a in first.actions] == [
        ("defer", "spacing", T0 + 6 * H)
    ]
    second = _advance(first.state, carts, T0 + 6 * H)
    assert [(a.type, a.at) for a in second.actions] == [("send", T0 + 6 * H)]


def test_engine_reentry_is_judged_at_the_trigger_events_own_time(carts: Campaign) -> None:
    """`reentry: 2h` after an exit at 07:10:10: an event at 09:10:05 may not enter, one at
    09:10:10 may; a journey in flight at the event's time keeps every event out."""
    ended = T0 + timedelta(minutes=10, seconds=10)
    past = engine.Past(in_flight=False, ended_at=ended, last_send_at=T0)
    assert not engine.may_enter(carts, past, ended + 2 * H - timedelta(seconds=5))
    assert engine.may_enter(carts, past, ended + 2 * H)
    assert engine.may_enter(carts, None, T0)
    assert not engine.may_enter(carts, engine.Past(in_flight=True), T0 + 30 * 24 * H)
    never = carts.model_copy(
        update={"settings": carts.settings.model_copy(update={"reentry": None})}
    )
    assert not engine.may_enter(never, past, ended + 365 * 24 * H)


def test_engine_wakes_a_journey_at_the_first_later_event_it_acts_on(carts: Campaign) -> None:
    """The events the engine acts on for a campaign are its exit_on events and goals; a
    journey next due after the first of them stored ahead of its time is claimed then."""
    names = engine.wake_names(carts)
    assert names == frozenset({"order_placed", "purchase"})
    later = {
        "ann": [("viewed", T0 + H), ("order_placed", T0 + 2 * H), ("purchase", T0 + 3 * H)],
        "bob": [("order_placed", T0 + 9 * H)],
    }
    ann, bob, cat = ({"claim_at": T0 + 5 * H} for _ in range(3))
    ended: dict[str, Any] = {"claim_at": None}
    journeys.wake_for_later_events(
        [("ann", names, ann), ("bob", names, bob), ("cat", names, cat), ("ann", names, ended)],
        later,
    )
    assert ann == {"claim_at": T0 + 2 * H}  # not woken by "viewed": nothing acts on it
    assert bob == {"claim_at": T0 + 5 * H}  # due before its event anyway
    assert cat == {"claim_at": T0 + 5 * H} and ended == {"claim_at": None}


# ------------------------------------------------------------------ the invariant checker


def _send(at: datetime, node: str = "nudge") -> Action:
    return Action("send", at, node, step=1)


def test_the_checker_holds_spacing_across_a_subscribers_journeys(carts: Campaign) -> None:
    """Two journeys of one subscriber whose sends are 5 h 15 min apart break the spec's
    spacing (6 h), though each journey on its own keeps it."""
    lines = [
        {"t": T0, "type": "enroll", "node": "nudge"},
        {"t": T0, "type": "send", "node": "nudge"},
        {"t": T0 + H, "type": "exit", "node": "nudge", "reason": "exit_event"},
        {"t": T0 + 5.25 * H, "type": "enroll", "node": "nudge"},
        {"t": T0 + 5.25 * H, "type": "send", "node": "nudge"},
        {"t": T0 + 6 * H, "type": "exit", "node": "nudge", "reason": "exit_event"},
    ]
    checker = TraceChecker(carts, {"ann": "UTC"})
    checker.feed({**line, "t": line["t"].isoformat(), "subscriber": "ann"} for line in lines)
    assert checker.finish() == 0
    assert checker.journeys == 2
    assert len(checker.problems) == 1 and "spacing" in checker.problems[0]
    alone = journey_problems(carts, "UTC", [Action("enroll", T0, "nudge"), _send(T0)])
    assert alone == []
    assert journey_problems(
        carts, "UTC", [Action("enroll", T0, "nudge"), _send(T0 + 5 * H)], previous_send=T0
    ) == [f"spacing: sends at {T0} and {T0 + 5 * H}"]


# ------------------------------------------------------------------ real ticks


@pytest.fixture
def carts() -> Campaign:
    return _campaign()


@pytest.fixture
def shop(tmp_path: Path, db_url: str) -> Iterator[Context]:
    """The carts campaign on a real database, subscribers ann, bob and cat."""
    ctx = _world(tmp_path, db_url, CARTS)
    yield ctx
    ctx.engine.dispose()


def _world(tmp_path: Path, db_url: str, text: str) -> Context:
    graphs = tmp_path / "graphs"
    graphs.mkdir(exist_ok=True)
    (graphs / "carts.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    ctx = open_context(Config(db=db_url, graphs=graphs), delivery=RecordingDelivery())
    people = tmp_path / "people.jsonl"
    people.write_text("".join(subscriber_line(sid) + "\n" for sid in ("ann", "bob", "cat")))
    assert import_subscribers(ctx, people).bad == []
    return ctx


def _event(ctx: Context, sid: str, name: str, at: datetime) -> None:
    add_events(ctx, [EventRecord(sid, name, at, {})])


def _sent(ctx: Context, sid: str) -> list[tuple[str, datetime, str]]:
    """(node, claimed at, outcome) of every ledger row of `sid`, in order."""
    with ctx.session() as s:
        rows = s.execute(
            select(Send).where(Send.subscriber_id == sid).order_by(Send.id)  # type: ignore[arg-type]
        ).scalars()
        return [(r.node, r.claimed_at.replace(tzinfo=UTC), r.outcome) for r in rows]


def _journeys(ctx: Context, sid: str) -> list[dict[str, Any]]:
    with ctx.session() as s:
        rows = s.execute(
            select(Journey).where(Journey.subscriber_id == sid).order_by(Journey.id)  # type: ignore[arg-type]
        ).scalars()
        return [
            {
                "entered": r.entered_at.replace(tzinfo=UTC),
                "ended": r.ended_at.replace(tzinfo=UTC) if r.ended_at else None,
                "reason": r.exit_reason,
            }
            for r in rows
        ]


def test_tick_spacing_holds_across_journeys_of_one_subscriber(shop: Context) -> None:
    """Rule 1: ann's first journey sends at 07:00 and exits on an order at 08:00; a cart at
    10:30 enters a new journey (re-entry 2 h), whose first send waits until 13:00."""
    _event(shop, "ann", "cart_abandoned", T0)
    tick(shop, now=T0)
    _event(shop, "ann", "order_placed", T0 + H)
    tick(shop, now=T0 + H)
    _event(shop, "ann", "cart_abandoned", T0 + 3.5 * H)
    tick(shop, now=T0 + 3.5 * H)
    assert [at for _, at, _ in _sent(shop, "ann")] == [T0]
    tick(shop, now=T0 + 6 * H)
    assert [(node, at) for node, at, _ in _sent(shop, "ann")] == [
        ("nudge", T0),
        ("nudge", T0 + 6 * H),
    ]


def test_tick_reentry_is_judged_at_the_trigger_events_own_time(shop: Context) -> None:
    """Rule 2: both exit at 07:10:10 (re-entry 2 h); ann's cart at 09:10:05 stays out, bob's
    at 09:10:15 enters, though the tick that reads both runs at 09:15."""
    exit_at = T0 + timedelta(minutes=10, seconds=10)
    for sid in ("ann", "bob"):
        _event(shop, sid, "cart_abandoned", T0)
    tick(shop, now=T0)
    for sid in ("ann", "bob"):
        _event(shop, sid, "order_placed", exit_at)
    tick(shop, now=T0 + 15 * M)
    _event(shop, "ann", "cart_abandoned", exit_at + 2 * H - timedelta(seconds=5))
    _event(shop, "bob", "cart_abandoned", exit_at + 2 * H + timedelta(seconds=5))
    tick(shop, now=T0 + 2 * H + 15 * M)
    assert [j["reason"] for j in _journeys(shop, "ann")] == ["exit_event"]
    bob = _journeys(shop, "bob")
    assert len(bob) == 2 and bob[1]["entered"] == exit_at + 2 * H + timedelta(seconds=5)


def test_tick_the_first_trigger_event_free_at_its_own_time_enters(shop: Context) -> None:
    """Several old trigger events of one subscriber in one (late) tick are judged in the
    order they happened, each at its own time. Ann exits at 08:00 (re-entry 2 h): of her
    carts at 09:00 and 10:30, read by a tick at 11:00, the 10:30 one enters. Bob's carts
    at 10:30 (stored first) and 09:00: the 09:00 one enters, and the other finds that
    journey in flight."""
    _event(shop, "ann", "cart_abandoned", T0)
    tick(shop, now=T0)
    _event(shop, "ann", "order_placed", T0 + H)
    tick(shop, now=T0 + H)
    _event(shop, "ann", "cart_abandoned", T0 + 2 * H)
    _event(shop, "ann", "cart_abandoned", T0 + 3.5 * H)
    _event(shop, "bob", "cart_abandoned", T0 + 3.5 * H)
    _event(shop, "bob", "cart_abandoned", T0 + 2 * H)
    tick(shop, now=T0 + 4 * H)
    assert [j["entered"] for j in _journeys(shop, "ann")] == [T0, T0 + 3.5 * H]
    assert [j["entered"] for j in _journeys(shop, "bob")] == [T0 + 2 * H]


def test_tick_a_trigger_event_during_a_journey_in_flight_is_dropped(shop: Context) -> None:
    """A cart while ann's journey is in flight neither enters nor waits to enter later;
    a cart after it ended (and re-entry allows) does."""
    _event(shop, "ann", "cart_abandoned", T0)
    tick(shop, now=T0)
    _event(shop, "ann", "cart_abandoned", T0 + H)
    for hours in (1, 5, 6, 10, 13, 20):
        tick(shop, now=T0 + hours * H)
    anns = _journeys(shop, "ann")
    assert [(j["entered"], j["reason"]) for j in anns] == [(T0, "completed")]
    assert anns[0]["ended"] == T0 + 10 * H  # "again" at 13:00 (spacing), window 4 h
    _event(shop, "ann", "cart_abandoned", T0 + 20 * H)
    tick(shop, now=T0 + 20 * H)
    assert len(_journeys(shop, "ann")) == 2


def test_tick_an_exit_event_stored_before_a_late_tick_ends_the_journey_at_its_time(
    tmp_path: Path, db_url: str
) -> None:
    """Rule 3 in production: a tick that enrols a cart (due 1 h later) finds the order that
    followed it already stored: the journey ends at the order's time in that same tick,
    so it no longer blocks a cart after re-entry."""
    ctx = _world(
        tmp_path,
        db_url,
        CARTS.replace("event: cart_abandoned}", "event: cart_abandoned, delay: 1h}").replace(
            "reentry: 2h", "reentry: 10m"
        ),
    )
    try:
        _event(ctx, "ann", "cart_abandoned", T0)
        _event(ctx, "ann", "order_placed", T0 + 20 * M)
        tick(ctx, now=T0 + 30 * M)
        assert _journeys(ctx, "ann") == [
            {"entered": T0, "ended": T0 + 20 * M, "reason": "exit_event"}
        ]
        _event(ctx, "ann", "cart_abandoned", T0 + 35 * M)
        tick(ctx, now=T0 + 40 * M)
        assert len(_journeys(ctx, "ann")) == 2
    finally:
        ctx.engine.dispose()


def test_tick_an_event_stored_ahead_of_its_time_is_acted_on_at_that_time(shop: Context) -> None:
    """An order dated 09:00 stored at 06:00, before the cart's journey exists: the journey
    sends at 07:00 and ends at 09:00 at the first tick after, not at the window's end."""
    _event(shop, "ann", "order_placed", T0 + 2 * H)
    _event(shop, "ann", "cart_abandoned", T0)
    tick(shop, now=T0)
    assert [node for node, _, _ in _sent(shop, "ann")] == ["nudge"]
    tick(shop, now=T0 + 2 * H + 5 * M)
    assert _journeys(shop, "ann") == [{"entered": T0, "ended": T0 + 2 * H, "reason": "exit_event"}]


@pytest.mark.parametrize("settings", ["max_sends: 1", "max_sends: 5"])
def test_tick_a_skipped_send_neither_starts_spacing_nor_counts_toward_caps(
    tmp_path: Path, db_url: str, settings: str
) -> None:
    """A send whose template fails is skipped and the journey takes its no-convert edge at
    once (edge delay 1 h): the skip never left, so the next node sends one hour later
    (spacing 6 h does not start at the skip) and is allowed under `max_sends: 1` and
    `followup_cap: 1`."""
    text = CARTS.replace('"Still want it?"', '"{{ trigger.properties.missing }}"').replace(
        "reentry: 2h", f"reentry: 2h\n  {settings}"
    )
    ctx = _world(tmp_path, db_url, text)
    try:
        _event(ctx, "ann", "cart_abandoned", T0)
        for hours in (0, 1, 6, 11):
            tick(ctx, now=T0 + hours * H)
        sent = _sent(ctx, "ann")
        assert sent[0][::2] == ("nudge", "skipped")
        assert sent[1:] == [("again", T0 + H, "delivered")]
    finally:
        ctx.engine.dispose()


def test_engine_a_skip_goes_on_from_the_state_before_the_send(carts: Campaign) -> None:
    """`skip_send` from `Result.before_send`: a `skip` then the no-convert edge; the last
    send, the sends and the follow-ups are those before it, only the step moves on."""
    state = engine.enroll(campaign=carts, subcampaign="carts", subscriber_id="ann", at=T0).state
    result = _advance(state, carts, T0)
    assert [a.type for a in result.actions] == ["send"]
    assert result.before_send is not None and result.before_send.sends == 0
    skipped = engine.skip_send(
        result.before_send,
        campaign=carts,
        subscriber=SubscriberView("ann"),
        reason="template_error",
        now=T0,
    )
    assert [(a.type, a.reason) for a in skipped.actions] == [
        ("skip", "template_error"),
        ("no_convert", "template_error"),
    ]
    after = skipped.state
    assert (after.node, after.due_at, after.step) == ("again", T0 + H, 1)
    assert (after.sends, after.followups, after.last_send_at) == (0, 0, None)
    assert after.pending_followup
    assert (
        engine.invariants.journey_problems(
            carts,
            "UTC",
            [engine.Action("enroll", T0, "nudge"), *skipped.actions],
        )
        == []
    )


def test_engine_a_journey_that_keeps_skipping_ends_with_skip_limit() -> None:
    """A node whose no-convert edge leads back to itself and whose send always fails to
    build: the journey ends after MAX_SKIPS skips instead of going round for ever."""
    looping = _campaign(
        CARTS.replace("on_no_convert: {to: again, delay: 1h}", "on_no_convert: nudge")
    )
    state = engine.enroll(campaign=looping, subcampaign="carts", subscriber_id="ann", at=T0).state
    reasons = []
    for _ in range(engine.MAX_SKIPS + 5):
        result = _advance(state, looping, T0)
        if result.before_send is None:
            break
        state = engine.skip_send(
            result.before_send,
            campaign=looping,
            subscriber=SubscriberView("ann"),
            reason="bad_url",
            now=T0,
        ).state
        reasons.append(state.exit_reason)
    assert state.ended and state.exit_reason == "skip_limit"
    assert len(reasons) == engine.MAX_SKIPS + 1


# ------------------------------------------------------------------ simulations


def _simulate(
    tmp_path: Path, people: list[dict[str, Any]], text: str = CARTS
) -> tuple[Campaign, list[dict[str, Any]], TraceChecker]:
    path = tmp_path / "carts.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    population = tmp_path / "people.jsonl"
    population.write_text("".join(json.dumps(p, default=str) + "\n" for p in people))
    trace = tmp_path / "trace.jsonl"
    simulate(
        path,
        population=population,
        default_rate=0.0,
        start=T0,
        trace=trace,
        resolution=5 * M,
    )
    lines = [json.loads(line) for line in trace.read_text().splitlines()]
    campaign = _campaign(text)
    checker = TraceChecker(campaign, {str(p["id"]): "UTC" for p in people})
    checker.feed(lines)
    assert checker.finish() == 0
    return campaign, lines, checker


def _person(sid: str, *events: tuple[str, datetime]) -> dict[str, Any]:
    return {
        "id": sid,
        "timezone": "UTC",
        "events": [{"name": n, "at": at.isoformat()} for n, at in events],
    }


def _of(lines: list[dict[str, Any]], sid: str, *types: str) -> list[tuple[str, datetime]]:
    return [
        (line["type"], datetime.fromisoformat(line["t"]))
        for line in lines
        if line["subscriber"] == sid and line["type"] in types
    ]


def test_simulation_acts_on_population_events_at_their_time(tmp_path: Path) -> None:
    """Rule 3: the order at 08:10 ends ann's journey then (not at its next due time), so
    her cart 2 h 16 min later enters again (re-entry 2 h), and its first send waits for
    spacing from the 07:00 send; the checker holds spacing across her two journeys."""
    order = T0 + H + 10 * M
    again = order + 2 * H + 16 * M
    _, lines, checker = _simulate(
        tmp_path,
        [
            _person(
                "ann",
                ("cart_abandoned", T0),
                ("order_placed", order),
                ("cart_abandoned", again),
            )
        ],
    )
    assert _of(lines, "ann", "enroll", "send", "exit") == [
        ("enroll", T0),
        ("send", T0),
        ("exit", order),
        ("enroll", again),
        ("send", T0 + 6 * H),  # spacing from the first journey's send
        ("send", T0 + 12 * H),  # "again": no-convert at 17:00, 1 h edge, spacing to 19:00
        ("exit", T0 + 16 * H),  # its window ends: completed
    ]
    assert checker.problems == []


def test_simulation_reentry_is_judged_at_the_trigger_events_own_time(tmp_path: Path) -> None:
    """Rule 2 in a simulation at the default 5-minute resolution."""
    exit_at = T0 + timedelta(minutes=10, seconds=10)
    _, lines, checker = _simulate(
        tmp_path,
        [
            _person(
                sid,
                ("cart_abandoned", T0),
                ("order_placed", exit_at),
                ("cart_abandoned", exit_at + 2 * H + timedelta(seconds=offset)),
            )
            for sid, offset in (("ann", -5), ("bob", 5))
        ],
    )
    assert len(_of(lines, "ann", "enroll")) == 1
    assert len(_of(lines, "bob", "enroll")) == 2
    assert checker.problems == []


def test_simulation_holds_spacing_per_campaign_and_subscriber(tmp_path: Path) -> None:
    """Rule 1 in a simulation: many subscribers exit and re-enter at random moments; no
    two sends of the campaign to one of them are closer than spacing."""
    import random

    rng = random.Random(11)
    people = []
    for i in range(60):
        events: list[tuple[str, datetime]] = []
        moment = T0
        for _ in range(6):
            moment += timedelta(minutes=rng.randint(20, 400))
            events.append((rng.choice(["cart_abandoned", "order_placed"]), moment))
        people.append(_person(f"p{i}", *events))
    _, _, checker = _simulate(tmp_path, people)
    assert checker.journeys > 60  # some re-entered
    assert checker.problems == []
