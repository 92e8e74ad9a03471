"""The journey state machine, rule by rule, on a fixed virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import engine
from orchestrator.engine import Action, EventView, JourneyState, SubscriberView
from orchestrator.language.loader import LoadedCampaign
from orchestrator.language.spec import Campaign

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
H = timedelta(hours=1)
D = timedelta(days=1)


def campaign_of(
    load_yaml: Callable[..., LoadedCampaign], settings: str, nodes: str, **kw: str
) -> Campaign:
    entry = kw.get("entry", "segment: everyone")
    text = f"""
campaign: t
title: T
goal: {kw.get("goal", "signup")}
settings: {settings}
segments:
  everyone: {{match: {{attr: plan, exists: true}}}}
  vip: {{match: {{tag: vip}}}}
subcampaigns:
  s:
    {entry}
    start: {kw.get("start", "a")}
    nodes:
{nodes}
"""
    loaded = load_yaml(text)
    assert loaded.ok, [d.format() for d in loaded.diagnostics]
    assert loaded.campaign is not None
    return loaded.campaign


def drive(
    campaign: Campaign,
    *,
    subscriber: SubscriberView | None = None,
    events: list[EventView] | None = None,
    memberships: frozenset[str] = frozenset(),
    other_sends: list[datetime] | None = None,
    start: datetime = T0,
    click_steps: dict[int, timedelta] | None = None,
) -> tuple[JourneyState, list[Action]]:
    """Run one journey to its end, ticking exactly when it is due or an event happens."""
    sub = subscriber or SubscriberView(id="s1")
    events = list(events or [])
    sends = list(other_sends or [])
    result = engine.enroll(campaign=campaign, subcampaign="s", subscriber_id=sub.id, at=start)
    state, actions = result.state, list(result.actions)
    now = start
    for _ in range(1000):
        if state.ended:
            return state, actions
        assert state.due_at is not None
        upcoming = [e.at for e in events if e.at > now]
        now = max(now, min([state.due_at, *upcoming]))
        result = engine.advance(
            state,
            campaign=campaign,
            subscriber=sub,
            events=[e for e in events if e.at <= now],
            memberships=memberships,
            recent_sends=sends,
            now=now,
        )
        state = result.state
        for action in result.actions:
            if action.type == "send":
                assert action.step is not None
                sends.append(action.at)
                state = replace(state, last_send_id=1000 + action.step)
                if click_steps and action.step in click_steps:
                    events.append(
                        EventView(
                            "click",
                            action.at + click_steps[action.step],
                            send_id=1000 + action.step,
                        )
                    )
        actions.extend(result.actions)
    raise AssertionError("journey did not end")


def kinds(actions: list[Action]) -> list[str]:
    return [
        f"{a.type}:{a.node}" + (f">{a.to}" if a.to else "") + (f"({a.reason})" if a.reason else "")
        for a in actions
    ]


CHAIN = """
      a: {notification: {title: A}, on_no_convert: b, on_convert: end}
      b: {notification: {title: B}, on_no_convert: c}
      c: {notification: {title: C}, on_no_convert: d}
      d: {notification: {title: D}}
"""


def test_followup_cap_ends_journey_after_two_no_converts(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = campaign_of(load_yaml, "{followup_cap: 2, spacing: 0s, window: 1d}", CHAIN)
    state, actions = drive(c)
    assert [a.node for a in actions if a.type == "send"] == ["a", "b", "c"]
    assert state.exit_reason == "followup_cap"
    assert state.followups == 2


def test_no_convert_waits_for_the_window_then_follows_the_edge_with_its_delay(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    nodes = """
      a: {notification: {title: A}, window: 2d, on_no_convert: {to: b, delay: 1d}}
      b: {notification: {title: B}}
"""
    c = campaign_of(load_yaml, "{spacing: 0s}", nodes)
    _, actions = drive(c)
    sends = [a for a in actions if a.type == "send"]
    assert [s.at for s in sends] == [T0, T0 + 3 * D]
    nc = next(a for a in actions if a.type == "no_convert")
    assert nc.at == T0 + 2 * D


def test_goal_event_inside_window_converts_at_once(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    nodes = """
      a: {notification: {title: A}, on_convert: {to: up, delay: 2h}, on_no_convert: end}
      up: {notification: {title: Upsell}, goal: purchase}
"""
    c = campaign_of(load_yaml, "{spacing: 0s, window: 2d}", nodes)
    state, actions = drive(c, events=[EventView("signup", T0 + 5 * H)])
    assert kinds(actions)[:4] == ["enroll:a", "send:a", "convert:a>up", "send:up"]
    assert next(a for a in actions if a.node == "up" and a.type == "send").at == T0 + 7 * H
    assert state.followups == 0
    assert state.exit_reason == "completed"  # the upsell's own window ran out


def test_goal_event_after_the_window_does_not_convert(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = campaign_of(load_yaml, "{spacing: 0s, window: 1d}", "      a: {notification: {title: A}}\n")
    state, actions = drive(c, events=[EventView("signup", T0 + 2 * D)])
    assert "convert:a" not in kinds(actions)
    assert state.exit_reason == "completed"


def test_click_goal_counts_only_a_click_on_that_very_send(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    nodes = """
      a: {notification: {title: A}, on_convert: end, on_no_convert: b}
      b: {notification: {title: B}, on_convert: end}
"""
    c = campaign_of(load_yaml, "{spacing: 0s, window: 1d}", nodes, goal="click")
    stray = EventView("click", T0 + H, send_id=999)
    state, actions = drive(c, events=[stray], click_steps={2: 3 * H})
    assert kinds(actions) == [
        "enroll:a",
        "send:a",
        "no_convert:a>b",
        "send:b",
        "convert:b>end",
        "exit:b(converted)",
    ]
    assert state.exit_reason == "converted"


def test_spacing_defers_a_due_send(load_yaml: Callable[..., LoadedCampaign]) -> None:
    nodes = """
      a: {notification: {title: A}, window: 1h, on_no_convert: b}
      b: {notification: {title: B}}
"""
    c = campaign_of(load_yaml, "{spacing: 12h}", nodes)
    _, actions = drive(c)
    defer = next(a for a in actions if a.type == "defer")
    assert defer.reason == "spacing" and defer.until == T0 + 12 * H
    assert [a.at for a in actions if a.type == "send"] == [T0, T0 + 12 * H]


def test_quiet_hours_defer_to_their_end_in_the_subscribers_timezone(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = campaign_of(
        load_yaml,
        '{quiet_hours: {start: "21:00", end: "08:00"}}',
        "      a: {notification: {title: A}}\n",
    )
    # 09:00 UTC is 20:00 in Los Angeles' winter... use Tokyo: 09:00 UTC = 18:00 JST (not quiet)
    tokyo = SubscriberView(id="s1", timezone="Asia/Tokyo")
    _, actions = drive(c, subscriber=tokyo)
    assert next(a for a in actions if a.type == "send").at == T0
    # 13:00 UTC = 22:00 JST: quiet until 08:00 JST = 23:00 UTC
    _, actions = drive(c, subscriber=tokyo, start=T0 + 4 * H)
    defer = next(a for a in actions if a.type == "defer")
    assert defer.reason == "quiet_hours"
    assert next(a for a in actions if a.type == "send").at == datetime(
        2026, 1, 5, 23, 0, tzinfo=UTC
    )


def test_quiet_hours_follow_daylight_saving_time(load_yaml: Callable[..., LoadedCampaign]) -> None:
    c = campaign_of(
        load_yaml,
        '{quiet_hours: {start: "22:00", end: "08:00"}}',
        "      a: {notification: {title: A}}\n",
    )
    berlin = SubscriberView(id="s1", timezone="Europe/Berlin")
    # Night of the spring change (2026-03-29): 08:00 CEST is 06:00 UTC, not 07:00.
    night = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    _, actions = drive(c, subscriber=berlin, start=night)
    assert next(a for a in actions if a.type == "send").at == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    # And in autumn (2026-10-25): 08:00 CET is 07:00 UTC.
    night = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    _, actions = drive(c, subscriber=berlin, start=night)
    assert next(a for a in actions if a.type == "send").at == datetime(
        2026, 10, 25, 7, 0, tzinfo=UTC
    )


def test_frequency_cap_counts_sends_of_other_campaigns(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = campaign_of(
        load_yaml, "{frequency_cap: {max: 2, per: 1d}}", "      a: {notification: {title: A}}\n"
    )
    earlier = [T0 - 20 * H, T0 - 2 * H]
    _, actions = drive(c, other_sends=earlier)
    defer = next(a for a in actions if a.type == "defer")
    assert defer.reason == "frequency_cap" and defer.until == T0 + 4 * H
    assert next(a for a in actions if a.type == "send").at == T0 + 4 * H


def test_max_sends_ends_a_converting_loop(load_yaml: Callable[..., LoadedCampaign]) -> None:
    nodes = """
      a: {notification: {title: A}, on_convert: a}
"""
    c = campaign_of(load_yaml, "{max_sends: 3, spacing: 1h, window: 1d}", nodes)
    events = [EventView("signup", T0 + k * 5 * H + H) for k in range(10)]
    state, actions = drive(c, events=events)
    assert sum(a.type == "send" for a in actions) == 3
    assert state.exit_reason == "max_sends"


def test_exit_on_event_ends_the_journey(load_yaml: Callable[..., LoadedCampaign]) -> None:
    c = campaign_of(load_yaml, "{exit_on: [unsubscribe, refund], spacing: 0s, window: 1d}", CHAIN)
    state, actions = drive(c, events=[EventView("refund", T0 + 30 * H)])
    assert state.exit_reason == "exit_event"
    assert state.ended_at == T0 + 30 * H
    assert [a.node for a in actions if a.type == "send"] == ["a", "b"]


def test_unsubscribed_subscriber_exits_before_any_send(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = campaign_of(load_yaml, "{}", CHAIN)
    state, actions = drive(c, subscriber=SubscriberView(id="s1", status="unsubscribed"))
    assert state.exit_reason == "unsubscribed"
    assert not any(a.type == "send" for a in actions)


def test_subscriber_without_subscriptions_exits_as_gone(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = campaign_of(load_yaml, "{}", CHAIN)
    state, _ = drive(c, subscriber=SubscriberView(id="s1", has_subscription=False))
    assert state.exit_reason == "subscription_gone"
    # unreachable: every subscription reported gone, whatever an import stored since
    state, _ = drive(c, subscriber=SubscriberView(id="s1", status="unreachable"))
    assert state.exit_reason == "subscription_gone"


def test_holdout_is_enrolled_and_never_sent(load_yaml: Callable[..., LoadedCampaign]) -> None:
    c = campaign_of(load_yaml, "{holdout: 30%}", CHAIN)
    held = 0
    for i in range(400):
        state, actions = drive(c, subscriber=SubscriberView(id=f"s{i}"))
        if state.holdout:
            held += 1
            assert kinds(actions) == ["enroll:a", "exit:a(holdout)"]
            assert actions[0].holdout
    assert 80 < held < 160  # 30 % of 400, give or take


def test_split_is_stable_and_near_its_weights(load_yaml: Callable[..., LoadedCampaign]) -> None:
    nodes = """
      a: {split: {x: 25, y: 75}}
      x: {notification: {title: X}}
      y: {notification: {title: Y}}
"""
    c = campaign_of(load_yaml, "{}", nodes)
    arms = [drive(c, subscriber=SubscriberView(id=f"s{i}"))[0].arm for i in range(400)]
    again = [drive(c, subscriber=SubscriberView(id=f"s{i}"))[0].arm for i in range(400)]
    assert arms == again
    assert 60 < arms.count("x") < 140


def test_branch_takes_the_first_segment_the_subscriber_is_in(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    nodes = """
      a: {branch: [{segment: vip, to: v}, {segment: everyone, to: e}, {else: end}]}
      v: {notification: {title: V}}
      e: {notification: {title: E}}
"""
    c = campaign_of(load_yaml, "{}", nodes)
    assert drive(c, memberships=frozenset({"vip", "everyone"}))[1][1].to == "v"
    assert drive(c, memberships=frozenset({"everyone"}))[1][1].to == "e"
    state, actions = drive(c)
    assert actions[1].to == "end" and state.exit_reason == "completed"


def test_without_memberships_an_advance_asks_for_them_only_at_a_branch(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    """The tick advances with `memberships=None` and looks segments up only for the
    journeys that arrive at a branch; asked again with them, the same state goes on."""
    nodes = """
      a: {notification: {title: A}, on_no_convert: w}
      w: {wait: 1d, next: b}
      b: {branch: [{segment: vip, to: v}, {else: end}]}
      v: {notification: {title: V}}
"""
    c = campaign_of(load_yaml, "{}", nodes)
    sub = SubscriberView(id="s1")
    state = engine.enroll(campaign=c, subcampaign="s", subscriber_id="s1", at=T0).state
    sent = engine.advance(state, campaign=c, subscriber=sub, events=[], memberships=None, now=T0)
    assert [a.type for a in sent.actions] == ["send"]  # no branch on the way: nothing asked
    later = T0 + timedelta(days=3)
    waiting = engine.advance(
        sent.state, campaign=c, subscriber=sub, events=[], memberships=None, now=later
    ).state
    assert waiting.phase == "wait" and waiting.node == "w"
    after = later + timedelta(days=1)
    with pytest.raises(engine.MembershipsNeeded):
        engine.advance(waiting, campaign=c, subscriber=sub, events=[], memberships=None, now=after)
    vip = engine.advance(
        waiting, campaign=c, subscriber=sub, events=[], memberships=frozenset({"vip"}), now=after
    )
    assert [(a.type, a.to) for a in vip.actions][:2] == [("route", "b"), ("route", "v")]
    other = engine.advance(
        waiting, campaign=c, subscriber=sub, events=[], memberships=frozenset(), now=after
    )
    assert other.state.exit_reason == "completed"


def test_wait_node_pauses_without_sending(load_yaml: Callable[..., LoadedCampaign]) -> None:
    nodes = """
      a: {wait: 3d, next: b}
      b: {notification: {title: B}}
"""
    c = campaign_of(load_yaml, "{}", nodes)
    _, actions = drive(c)
    assert next(a for a in actions if a.type == "send").at == T0 + 3 * D


def test_trigger_delay_postpones_the_first_send(load_yaml: Callable[..., LoadedCampaign]) -> None:
    c = campaign_of(
        load_yaml,
        "{}",
        "      a: {notification: {title: 'Still want {{ trigger.properties.product }}?'}}\n",
        entry="trigger: {event: cart_abandoned, delay: 1h}",
    )
    _, actions = drive(c)
    assert next(a for a in actions if a.type == "send").at == T0 + H


@pytest.mark.parametrize("reason", ["spacing", "quiet_hours"])
def test_deferring_never_drops_a_send(
    load_yaml: Callable[..., LoadedCampaign], reason: str
) -> None:
    settings = (
        "{spacing: 20h, window: 1h}"
        if reason == "spacing"
        else '{quiet_hours: {start: "00:00", end: "23:00"}, window: 1h}'
    )
    c = campaign_of(load_yaml, settings, CHAIN)
    _, actions = drive(c)
    assert [a.node for a in actions if a.type == "send"] == ["a", "b", "c"]
    assert any(a.type == "defer" and a.reason == reason for a in actions)
