"""Checks of when sends happen: a node's or an edge's `at` (a local wall-clock time),
`send_time`, and a broadcast's `schedule: once …`. A node's `at` inside the quiet hours could never send; `at` together with
`send_time: best` on one node asks for two moments; an `at` that a daylight-saving change
skips or repeats in the campaign's timezone is worth a warning (the engine reads a skipped
time past the gap and a repeated one as its first occurrence)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from orchestrator.language.scalars import ONCE_PREFIX
from orchestrator.language.spec import (
    Campaign,
    NotificationNode,
    QuietHours,
    broadcast_window,
    dst_change,
    in_gap,
)

if TYPE_CHECKING:
    from orchestrator.language.document import Reporter, Source
    from orchestrator.language.yamlpos import Path_


def check_times(campaign: Campaign, *, source: Source, reporter: Reporter) -> None:
    check_broadcast(campaign, source=source, reporter=reporter)
    settings = campaign.settings
    for sub_name, sub in campaign.subcampaigns.items():
        for node_id, node in sub.nodes.items():
            if not isinstance(node, NotificationNode):
                continue
            path: Path_ = ("subcampaigns", sub_name, "nodes", node_id)
            if node.at is not None:
                if node.send_time is not None and node.send_time.mode == "best":
                    reporter.key(
                        source,
                        (*path, "at"),
                        "at and send_time: best both choose when this node sends: keep one",
                        code="at-and-best",
                    )
                if _quiet(settings.quiet_hours, node.at):
                    quiet = settings.quiet_hours
                    assert quiet is not None
                    reporter.value(
                        source,
                        (*path, "at"),
                        f"at {node.at:%H:%M} is inside the quiet hours ({quiet.start:%H:%M}-"
                        f"{quiet.end:%H:%M}): this node could never send",
                        code="at-in-quiet-hours",
                    )
                _dst_warning(node.at, settings.timezone, source, (*path, "at"), reporter)
            for kind in ("on_convert", "on_no_convert"):
                edge = getattr(node, kind)
                if edge is not None and edge.at is not None:
                    _dst_warning(edge.at, settings.timezone, source, (*path, kind, "at"), reporter)


def _quiet(quiet: QuietHours | None, clock: time) -> bool:
    if quiet is None:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= clock < quiet.end
    return clock >= quiet.start or clock < quiet.end


def _dst_warning(
    clock: time, tz_name: str, source: Source, path: Path_, reporter: Reporter
) -> None:
    """Warn when a daylight-saving change in the next year skips or repeats `clock`."""
    found = dst_problem(clock, tz_name, datetime.now(UTC).date())
    if found is not None:
        reporter.value(source, path, found, code="at-dst", severity="warning")


def dst_problem(clock: time, tz_name: str, start: date) -> str | None:
    """How a daylight-saving change within a year of `start` affects `clock` in `tz_name`
    (a time skipped or repeated), or None."""
    zone = ZoneInfo(tz_name)
    for offset in range(367):
        day = start + timedelta(days=offset)
        first = datetime.combine(day, clock, tzinfo=zone)
        if dst_change(first) is None:
            continue
        moved = first.astimezone(UTC).astimezone(zone)
        if in_gap(first):  # read past the gap
            return (
                f"at {clock:%H:%M} does not exist on {day} in {tz_name} (clocks go forward): "
                f"that day it is read as {moved:%H:%M}"
            )
        return (
            f"at {clock:%H:%M} happens twice on {day} in {tz_name} (clocks go back): "
            "that day the first one counts"
        )
    return None


def check_broadcast(campaign: Campaign, *, source: Source, reporter: Reporter) -> None:
    """A broadcast (`schedule: once …`): no trigger sub-campaigns (it enrols its segments'
    members once); a wall-clock moment that exists once in settings.timezone (not in a
    daylight-saving gap, not in a repeated hour); a moment in the past is a warning (files
    are validated long after their broadcast is sent)."""
    moment = campaign.settings.broadcast_at
    if moment is None:
        return
    written = campaign.settings.schedule[len(ONCE_PREFIX) :].strip()
    raw_subs = source.located.data_at(("subcampaigns",))
    for sub_name, sub_raw in (raw_subs if isinstance(raw_subs, dict) else {}).items():
        if isinstance(sub_raw, dict) and "trigger" in sub_raw:
            reporter.key(
                source,
                ("subcampaigns", sub_name, "trigger"),
                f"sub-campaign {sub_name!r} has a trigger, but this campaign is a broadcast "
                f"(schedule: once {written}), which enrols its segments' members once: "
                "give the trigger a campaign of its own",
                code="trigger-in-broadcast",
            )
    schedule_path: Path_ = ("settings", "schedule")
    if moment.tzinfo is None:
        tz_name = campaign.settings.timezone
        zone = ZoneInfo(tz_name)
        first = moment.replace(tzinfo=zone)
        change = dst_change(first)
        if change is not None:
            before, after = change
            if in_gap(first):
                message = (
                    f"once {written} does not exist in {tz_name}: the clocks go forward "
                    f"{_hours(after - before)} that night and skip it; write the moment with "
                    f"an offset, e.g. once {written}{_offset(before)} "
                    f"({first.astimezone(UTC).astimezone(zone):%H:%M} there), or another time"
                )
            else:
                message = (
                    f"once {written} happens twice in {tz_name}: the clocks go back "
                    f"{_hours(before - after)} that night; write the moment with an offset: "
                    f"once {written}{_offset(before)} (the first) or "
                    f"once {written}{_offset(after)} (the second)"
                )
            reporter.value(source, schedule_path, message, code="once-dst")
    start = broadcast_window(moment)[0]
    if start < datetime.now(UTC):
        reporter.value(
            source,
            schedule_path,
            (
                f"once {written} has already passed in the earliest timezones (UTC+14: "
                f"{start:%Y-%m-%d %H:%M} UTC)"
                if moment.tzinfo is None
                else f"once {written} is in the past"
            )
            + ": a campaign broadcasts once, and a tick sends it to no member whose "
            "moment is more than 24 h gone",
            code="once-past",
            severity="warning",
        )


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"
