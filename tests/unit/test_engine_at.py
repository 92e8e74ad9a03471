"""Local-time delivery (`at:` on nodes and edges) on a fixed clock, across DST changes,
and its validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest

from orchestrator import engine
from orchestrator.engine import SubscriberView
from orchestrator.engine.invariants import journey_problems
from orchestrator.engine.timing import next_local
from orchestrator.language.loader import LoadedCampaign
from orchestrator.language.timechecks import dst_problem
from tests.unit.test_engine import campaign_of, drive, kinds

H = timedelta(hours=1)
D = timedelta(days=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sends(actions: list[engine.Action]) -> list[datetime]:
    return [a.at for a in actions if a.type == "send"]


@pytest.mark.parametrize(
    "after, expected",
    [
        ("2026-12-05T08:59", "2026-12-05T09:00"),  # 10:00 Berlin (CET, UTC+1) the same day
        ("2026-12-05T09:00", "2026-12-05T09:00"),  # the moment itself: idempotent
        ("2026-12-05T09:01", "2026-12-06T09:00"),  # just missed: the next day
        ("2027-03-27T12:00", "2027-03-28T08:00"),  # clocks go forward that night: CEST
        ("2026-10-24T12:00", "2026-10-25T09:00"),  # clocks go back that night: CET
    ],
)
def test_next_local_finds_the_next_wall_clock_time(after: str, expected: str) -> None:
    assert next_local(time(10, 0), "Europe/Berlin", utc(after)) == utc(expected)


def test_next_local_in_a_gap_is_read_past_it_and_a_repeated_time_is_the_first() -> None:
    # 2027-03-28: Berlin goes 02:00 CET -> 03:00 CEST; 02:30 is read as 03:30 CEST
    gap = next_local(time(2, 30), "Europe/Berlin", utc("2027-03-27T23:00"))
    assert gap == utc("2027-03-28T01:30")
    assert next_local(time(2, 30), "Europe/Berlin", gap) == gap  # waiting for it, it comes
    # 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC
    fold = next_local(time(2, 30), "Europe/Berlin", utc("2026-10-24T22:00"))
    assert fold == utc("2026-10-25T00:30")
    after_first = next_local(time(2, 30), "Europe/Berlin", utc("2026-10-25T00:31"))
    assert after_first == utc("2026-10-26T01:30")  # the repeat is not a second chance


def test_a_node_at_sends_at_the_subscribers_local_time(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    c = campaign_of(
        load_yaml,
        "{spacing: 1h, window: 2h}",
        '      a: {notification: {title: A}, at: "10:00"}\n',
    )
    start = utc("2026-12-04T20:00")
    tokyo = SubscriberView("s1", timezone="Asia/Tokyo")  # UTC+9: 10:00 is 01:00 UTC
    _, actions = drive(c, subscriber=tokyo, start=start)
    assert sends(actions) == [utc("2026-12-05T01:00")]
    assert kinds(actions)[:2] == ["enroll:a", "defer:a(at)"]
    ny = SubscriberView("s1", timezone="America/New_York")  # UTC-5: 15:00 UTC
    assert sends(drive(c, subscriber=ny, start=start)[1]) == [utc("2026-12-05T15:00")]


def test_an_edge_at_moves_after_its_delay_to_the_next_local_time_across_dst(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    """`{to: b, delay: 1d, at: "10:00"}` the day before Berlin's clocks go forward: b is
    sent at 10:00 CEST (08:00 UTC), not at 10:00 CET."""
    c = campaign_of(
        load_yaml,
        "{spacing: 1h, window: 1h}",
        '      a: {notification: {title: A}, on_no_convert: {to: b, delay: 1d, at: "10:00"}}\n'
        "      b: {notification: {title: B}}\n",
    )
    berlin = SubscriberView("s1", timezone="Europe/Berlin")
    _, actions = drive(c, subscriber=berlin, start=utc("2027-03-27T08:00"))
    # a at 09:00 CET (08:00 UTC); window 1 h; +1 d = 28th 09:00 UTC = 11:00 CEST: past 10:00
    assert sends(actions) == [utc("2027-03-27T08:00"), utc("2027-03-29T08:00")]
    _, early = drive(c, subscriber=berlin, start=utc("2027-03-27T06:00"))
    assert sends(early) == [utc("2027-03-27T06:00"), utc("2027-03-28T08:00")]


def test_an_at_node_pushed_past_its_time_goes_when_the_deferral_ends(
    load_yaml: Callable[..., LoadedCampaign],
) -> None:
    """The wall-clock time makes the send due; spacing then defers it like any send (the
    moment is chosen once, so sparse or late ticks cannot keep moving it a day on)."""
    c = campaign_of(
        load_yaml,
        "{spacing: 12h, window: 1h}",
        "      a: {notification: {title: A}, on_no_convert: b}\n"
        '      b: {notification: {title: B}, at: "12:00"}\n',
    )
    _, actions = drive(c, start=utc("2026-12-05T09:00"))
    assert sends(actions) == [utc("2026-12-05T09:00"), utc("2026-12-05T21:00")]
    assert "defer:b(spacing)" in kinds(actions)
    assert journey_problems(c, "UTC", actions) == []


def test_a_late_tick_sends_an_at_node_at_once(load_yaml: Callable[..., LoadedCampaign]) -> None:
    c = campaign_of(load_yaml, "{}", '      a: {notification: {title: A}, at: "10:00"}\n')
    state = engine.enroll(
        campaign=c, subcampaign="s", subscriber_id="s1", at=utc("2026-12-05T08:00")
    ).state
    late = engine.advance(
        state, campaign=c, subscriber=SubscriberView("s1"), events=(), now=utc("2026-12-05T11:00")
    )
    assert [(a.type, a.at) for a in late.actions] == [("send", utc("2026-12-05T11:00"))]


@pytest.mark.parametrize(
    "node, settings, message",
    [
        (
            'a: {notification: {title: A}, at: "22:30"}',
            '{quiet_hours: {start: "21:00", end: "08:00"}}',
            "at 22:30 is inside the quiet hours (21:00-08:00): this node could never send",
        ),
        (
            'a: {notification: {title: A}, at: "10:00", send_time: best}',
            "{}",
            "at and send_time: best both choose when this node sends: keep one",
        ),
        ('a: {notification: {title: A}, at: "25:00"}', "{}", "is not a time of day"),
        ("a: {notification: {title: A}, send_time: soon}", "{}", "'soon' is not a send_time"),
        (
            'a: {notification: {title: A}, on_no_convert: {to: end, at: "9"}}',
            "{}",
            "is not a time of day",
        ),
    ],
)
def test_bad_at_and_send_time_are_errors_at_their_place(
    load_yaml: Callable[..., LoadedCampaign], node: str, settings: str, message: str
) -> None:
    loaded = load_yaml(
        f"""
campaign: t
title: T
settings: {settings}
subcampaigns:
  s:
    trigger: {{event: e}}
    start: a
    nodes:
      {node}
"""
    )
    errors = [d.format() for d in loaded.errors]
    assert len(errors) == 1 and message in errors[0], errors
    assert ":10:" in errors[0]  # the node's line


def test_an_at_that_dst_skips_or_repeats_is_a_warning() -> None:
    skipped = dst_problem(time(2, 30), "Europe/Berlin", date(2027, 1, 1))
    assert skipped == (
        "at 02:30 does not exist on 2027-03-28 in Europe/Berlin (clocks go forward): "
        "that day it is read as 03:30"
    )
    repeated = dst_problem(time(2, 30), "Europe/Berlin", date(2026, 6, 1))
    assert repeated == (
        "at 02:30 happens twice on 2026-10-25 in Europe/Berlin (clocks go back): "
        "that day the first one counts"
    )
    assert dst_problem(time(10, 0), "Europe/Berlin", date(2026, 6, 1)) is None
    assert dst_problem(time(2, 30), "UTC", date(2026, 6, 1)) is None
