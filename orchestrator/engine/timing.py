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
