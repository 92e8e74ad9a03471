"""How a simulated subscriber responds by the hour of their day: a population line may
carry `active_hours` (the local hours they look at their phone: a send then converts at
the node's rate, at other hours at IDLE_SHARE of it) or `response` (24 numbers, the
rate's multiplier for a send at each local hour). Without either, every hour is alike.

`with_active_hours` gives a synthetic population such hours: each subscriber's few
consecutive hours around a personal peak, the peaks spread around a population-wide
one, as a real audience (evenings, mostly, with morning and lunch people among them).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.language.records import RecordError

IDLE_SHARE = 0.15  # the rate outside a subscriber's active hours, as a share of the rate
MAX_WEIGHT = 10.0
PEAKS = ((20, 0.6), (12, 0.2), (8, 0.2))  # (local hour, share of the population)


def curve_of(line: dict[str, Any]) -> list[float] | None:
    """The response curve a population line gives (24 multipliers), None for a flat one;
    RecordError naming the field when it is malformed. Removes the fields from `line`
    (they are the simulator's, not a subscriber's)."""
    hours = line.pop("active_hours", None)
    curve = line.pop("response", None)
    if hours is not None and curve is not None:
        raise RecordError("active_hours and response: give one of them")
    if hours is not None:
        if (
            not isinstance(hours, list)
            or not 1 <= len(hours) <= 24
            or not all(
                isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 23 for h in hours
            )
        ):
            raise RecordError("active_hours: expected a list of 1-24 local hours (0-23)")
        active = set(hours)
        return [1.0 if h in active else IDLE_SHARE for h in range(24)]
    if curve is not None:
        if (
            not isinstance(curve, list)
            or len(curve) != 24
            or not all(
                isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w <= MAX_WEIGHT
                for w in curve
            )
        ):
            raise RecordError(
                f"response: expected 24 numbers from 0 to {MAX_WEIGHT:g}, one per local hour"
            )
        return [float(w) for w in curve]
    return None


def weight(curve: Sequence[float] | None, moment: datetime, tz_name: str) -> float:
    """The multiplier of the conversion rate for a send at `moment`."""
    if curve is None:
        return 1.0
    return curve[moment.astimezone(ZoneInfo(tz_name)).hour]


def with_active_hours(lines: list[dict[str, Any]], *, seed: int, width: int = 3) -> None:
    """Give each line `width` consecutive active hours around a personal peak (one of
    PEAKS, moved up to two hours either way), the same for the same seed."""
    rng = random.Random(f"{seed}:active-hours")
    hours, shares = zip(*PEAKS, strict=True)
    for line in lines:
        peak = rng.choices(hours, weights=shares)[0] + rng.randint(-2, 2)
        first = peak - width // 2
        line["active_hours"] = sorted({(first + k) % 24 for k in range(width)})
