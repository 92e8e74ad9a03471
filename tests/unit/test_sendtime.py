"""Send-time optimisation in the pure engine, on a fixed clock: the model's shrinkage,
the arms, and the choice within max_delay that respects quiet hours and spacing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import engine
from orchestrator.engine import SubscriberView
from orchestrator.engine.invariants import journey_problems
from orchestrator.engine.sendtime import (
    GROUP_STRENGTH,
    SendTimeData,
    arm_of,
    group_prior,
    slot_of,
)
from orchestrator.language.loader import LoadedCampaign
from orchestrator.language.spec import SendTimeSpec
from tests.unit.test_engine import campaign_of, kinds

H = timedelta(hours=1)
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


def evening_prior(hour: int = 20, rate: float = 0.3, base: float = 0.02) -> list[float]:
    return [rate if h == hour else base for h in range(24)]


def test_slot_of_is_the_hour_of_the_local_week() -> None:
    assert slot_of(MONDAY, "UTC") == 9
    assert slot_of(MONDAY, "Asia/Tokyo") == 18  # 18:00 Monday in Tokyo
    assert slot_of(MONDAY - 10 * H, "UTC") == 6 * 24 + 23  # Sunday 23:00


def test_the_prior_shrinks_a_thin_group_toward_the_campaign() -> None:
    campaign = {20: (1000, 300), 9: (1000, 20)}  # evenings convert, mornings do not
    thin = {9: (4, 4)}  # four morning sends of this sub-campaign, all converted
    prior = group_prior(campaign, thin)
    assert prior[20] > prior[9] * 0.9  # four sends do not outweigh a thousand
    assert prior[9] == pytest.approx((4 + GROUP_STRENGTH * ((20 + 0.16 * 50) / 1050)) / 54)
    thick = {9: (2000, 1000)}
    assert group_prior(campaign, thick)[9] > group_prior(campaign, thick)[20]


def test_a_subscribers_own_history_overrides_the_prior_once_it_is_large() -> None:
    prior = evening_prior()
    nobody = SendTimeData({}, prior).scores()
    assert max(range(168), key=nobody.__getitem__) % 24 == 20
    morning_person = SendTimeData({0 * 24 + 8: (12, 10), 2 * 24 + 8: (12, 9)}, prior).scores()
    assert max(range(168), key=morning_person.__getitem__) % 24 == 8
    # enough data on Mondays at 08:00, little elsewhere: Monday 08:00 beats Tuesday 08:00
    assert morning_person[8] > morning_person[24 + 8]


def test_arms_follow_their_shares() -> None:
    spec = SendTimeSpec(mode="best", compare=0.1, explore=0.2)
    arms = Counter(
        arm_of(engine.stable_fraction("c", f"s{i}", "a", "1", "send_time"), spec)
        for i in range(10_000)
    )
    assert abs(arms["immediate"] / 10_000 - 0.1) < 0.02
    assert abs(arms["explore"] / 10_000 - 0.2) < 0.02


def _best_campaign(load_yaml: Callable[..., LoadedCampaign], settings: str) -> object:
    return campaign_of(
        load_yaml,
        settings,
        "      a: {notification: {title: A}, send_time: {mode: best, max_delay: 24h, "
        "explore: 0%, compare: 0%}, on_no_convert: b}\n"
        "      b: {notification: {title: B}}\n",
    )


def _advance(
    c: object, state: engine.JourneyState, now: datetime, data: SendTimeData | None, tz: str = "UTC"
) -> engine.Result:
    return engine.advance(
        state,
        campaign=c,  # type: ignore[arg-type]
        subscriber=SubscriberView("s1", timezone=tz),
        events=(),
        now=now,
        send_times=data,
    )


def test_best_waits_for_the_best_hour_then_sends_there(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _best_campaign(load_yaml, "{spacing: 1h, window: 2h}")
    state = engine.enroll(campaign=c, subcampaign="s", subscriber_id="s1", at=MONDAY).state  # type: ignore[arg-type]
    data = SendTimeData({}, evening_prior(20))
    first = _advance(c, state, MONDAY, data)
    assert kinds(first.actions) == ["defer:a(send_time)"]
    assert first.state.phase == "timed" and first.state.due_at == MONDAY.replace(hour=20)
    # at 20:00 it sends, whatever the model says then: the moment was chosen once
    later = _advance(c, first.state, MONDAY.replace(hour=20), SendTimeData({}, evening_prior(9)))
    assert [(a.type, a.at, a.timing) for a in later.actions] == [
        ("send", MONDAY.replace(hour=20), "best")
    ]
    # in Tokyo, 20:00 local is 11:00 UTC
    tokyo = _advance(c, state, MONDAY, data, tz="Asia/Tokyo")
    assert tokyo.state.due_at == MONDAY.replace(hour=11)


def test_best_never_chooses_quiet_hours_or_an_hour_inside_spacing(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _best_campaign(
        load_yaml, '{spacing: 12h, window: 2h, quiet_hours: {start: "19:30", end: "08:00"}}'
    )
    state = engine.enroll(campaign=c, subcampaign="s", subscriber_id="s1", at=MONDAY).state  # type: ignore[arg-type]
    data = SendTimeData({}, [0.3 if h in (20, 21) else 0.1 if h == 15 else 0.02 for h in range(24)])
    chosen = _advance(c, state, MONDAY, data).state.due_at
    assert chosen == MONDAY.replace(hour=15)  # 20:00 and 21:00 are quiet
    spaced = state.evolve({"last_send_at": MONDAY - 2 * H})  # spacing until 19:00
    # 15:00 is inside spacing; of the equal rest, the earliest allowed: 19:00
    assert _advance(c, spaced, MONDAY, data).state.due_at == MONDAY.replace(hour=19)


def test_no_data_sends_at_once_and_a_whole_journey_keeps_the_rules(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = _best_campaign(
        load_yaml, '{spacing: 6h, window: 4h, quiet_hours: {start: "22:00", end: "07:00"}}'
    )
    state = engine.enroll(campaign=c, subcampaign="s", subscriber_id="s1", at=MONDAY).state  # type: ignore[arg-type]
    result = _advance(c, state, MONDAY, None)
    assert [(a.type, a.at) for a in result.actions] == [("send", MONDAY)]
    actions = [engine.Action("enroll", MONDAY, "a"), *result.actions]
    now, state = MONDAY, result.state
    data = SendTimeData({}, evening_prior(23))  # the best hour is quiet: never chosen
    while not state.ended:
        assert state.due_at is not None
        now = max(now, state.due_at)
        step = _advance(c, state, now, data)
        actions += step.actions
        state = step.state
    assert journey_problems(c, "UTC", actions) == []  # type: ignore[arg-type]
    # b has no send_time (immediate): the window ends at 13:00, spacing holds it to 15:00
    assert [a.at.hour for a in actions if a.type == "send"] == [9, 15]
