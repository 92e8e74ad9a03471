"""Checks of when sends happen: a node's or an edge's `at` (a local wall-clock time) and
`send_time`. A node's `at` inside the quiet hours could never send; `at` together with
`send_time: best` on one node asks for two moments; an `at` that a daylight-saving change
skips or repeats in the campaign's timezone is worth a warning (the engine reads a skipped
time past the gap and a repeated one as its first occurrence)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from orchestrator.language.spec import Campaign, NotificationNode, QuietHours

if TYPE_CHECKING:
    from orchestrator.language.document import Reporter, Source
    from orchestrator.language.yamlpos import Path_


def check_times(campaign: Campaign, *, source: Source, reporter: Reporter) -> None:
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
        second = first.replace(fold=1)
        if first.utcoffset() == second.utcoffset():
            continue
        moved = first.astimezone(UTC).astimezone(zone)
        if moved.time() != clock:  # a gap: read past it
            return (
                f"at {clock:%H:%M} does not exist on {day} in {tz_name} (clocks go forward): "
                f"that day it is read as {moved:%H:%M}"
            )
        return (
            f"at {clock:%H:%M} happens twice on {day} in {tz_name} (clocks go back): "
            "that day the first one counts"
        )
    return None
