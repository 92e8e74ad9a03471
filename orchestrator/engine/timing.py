"""The calendar rules a send waits for: the end of quiet hours in the subscriber's
timezone, and the moment the cross-campaign frequency cap has room again. Pure functions
of the campaign's settings and `now`, shared by the machine's deferrals and the
invariant checker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.language.spec import Campaign, QuietHours


def quiet_until(quiet: QuietHours | None, tz_name: str, now: datetime) -> datetime | None:
    """If `now` is inside the quiet hours in the subscriber's timezone, when they end (else None)."""
    if quiet is None:
        return None
    zone = ZoneInfo(tz_name)
    local = now.astimezone(zone)
    t = local.timetz().replace(tzinfo=None)
    start, end = quiet.start, quiet.end
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return _local_instant(day, end, zone, after=now)


def next_local(clock: time, tz_name: str, after: datetime) -> datetime:
    """The first instant at or after `after` when the wall clock in `tz_name` shows `clock`.

    On a spring-forward day a time inside the gap does not exist and is read past it
    (02:30 on a 02:00→03:00 night is 03:30); on a fall-back day a time that happens twice
    is its first occurrence. Idempotent: `next_local(c, tz, next_local(c, tz, t))` is the
    same instant, so a journey waiting for it is sent, not moved a day on, when it comes."""
    zone = ZoneInfo(tz_name)
    day = after.astimezone(zone).date()
    for offset in (-1, 0, 1, 2):  # a gap can put the previous day's clock after `after`
        candidate = local_instant(day + timedelta(days=offset), clock, zone)
        if candidate >= after:
            return candidate
    raise AssertionError("unreachable: a wall-clock time comes within two days")


def local_instant(day: Any, clock: time, zone: ZoneInfo) -> datetime:
    """The instant (UTC) the wall clock in `zone` shows `clock` on `day` (fold 0: a time
    in a gap is read past it, a repeated time is its first occurrence)."""
    return datetime.combine(day, clock, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def _local_instant(day: Any, clock: time, zone: ZoneInfo, *, after: datetime) -> datetime:
    """The instant a wall clock in `zone` shows `clock` on `day`.

    A time inside a spring-forward gap does not exist; fold=0 maps it past the
    gap (02:30 on a 02:00→03:00 night becomes 03:30), so quiet hours never end early.
    """
    candidate = datetime.combine(day, clock, tzinfo=zone).astimezone(ZoneInfo("UTC"))
    return max(candidate, after)


def frequency_until(
    campaign: Campaign, recent_sends: Sequence[datetime], now: datetime
) -> datetime | None:
    """If the cross-campaign frequency cap is reached at `now`, when the oldest send leaves the window."""
    cap = campaign.settings.frequency_cap
    if cap is None:
        return None
    window_start = now - cap.per
    inside = sorted(t for t in recent_sends if window_start < t <= now)
    if len(inside) < cap.max:
        return None
    return inside[len(inside) - cap.max] + cap.per
