"""Scalar values of the campaign language: ids, durations, percents, cron, timezones,
clock times and urls, as parsing functions and the annotated types the models use; and
`Strict`, the base of every model (those of `spec` and of `rules`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from orchestrator.language import urls

END = "end"

ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
CAMPAIGN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EVENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_DURATION_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$", re.ASCII)
_DURATION_UNITS = (604800, 86400, 3600, 60, 1)
MAX_DURATION_SECONDS = 520 * 604800  # ten years: any later moment is not a schedule
_CLOCK_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$", re.ASCII)


# ---------------------------------------------------------------- scalars


def parse_duration(value: Any) -> timedelta:
    """`30s`, `15m`, `12h`, `7d`, `2w` and combinations such as `1d12h`."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(
            f"a duration is text with a unit, like 30s, 15m, 12h, 7d, 2w or 1d12h (got {value!r})"
        )
    text = value.strip()
    match = _DURATION_RE.fullmatch(text) if len(text) <= 40 else None
    if not text or not match:
        raise ValueError(
            f"{value!r} is not a duration: use a number and a unit "
            "(s, m, h, d, w), largest unit first, like 30s, 15m, 12h, 7d, 2w or 1d12h"
        )
    seconds = sum(
        int(g) * unit for g, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if g
    )
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{value!r} is longer than {MAX_DURATION_SECONDS // 604800}w (ten years)")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Inverse of parse_duration, using the largest units: 36h -> 1d12h."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, suffix in zip(_DURATION_UNITS, "wdhms", strict=True):
        if seconds >= unit:
            parts.append(f"{seconds // unit}{suffix}")
            seconds %= unit
    return "".join(parts)


def positive_duration(value: Any) -> timedelta:
    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise ValueError(f"{value!r} must be longer than zero")
    return delta


def parse_percent(value: Any) -> float:
    """`5%` or a fraction `0.05`; returns the fraction."""
    if isinstance(value, bool):
        raise ValueError(f"a percent is written 5% or 0.05 (got {value!r})")
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%") or not text.isascii():
            raise ValueError(f"{value!r} is not a percent: write 5% or 0.05")
        digits = text[:-1].strip()
        if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", digits):
            raise ValueError(f"{value!r} is not a percent: write 5% or 0.05")
        fraction = float(digits) / 100
    elif isinstance(value, int | float):
        if value > 1:
            raise ValueError(
                f"{value!r} is ambiguous: write a percent with a % sign ({value}%) or a fraction"
            )
        fraction = float(value)
    else:
        raise ValueError(f"a percent is written 5% or 0.05 (got {value!r})")
    if not 0 <= fraction < 1:
        raise ValueError(f"{value!r} must be at least 0% and less than 100%")
    return fraction


def check_id(value: Any, what: str = "id") -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {value!r}")
    if value == END:
        raise ValueError(f"'{END}' is reserved for the end of a journey and cannot be a {what}")
    if not ID_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid {what}: letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 64 characters"
        )
    return value


def _check_ref(value: Any) -> str:
    """A reference to a node: a node id or `end`."""
    if not isinstance(value, str):
        raise ValueError(f"a target is a node id or 'end', got {value!r}")
    if value != END:
        check_id(value, "node id")
    return value


def _check_event(value: Any) -> str:
    if not isinstance(value, str) or not EVENT_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid event name: letters, digits, '_', '.', ':' and '-', "
            "at most 64 characters"
        )
    return value


def _check_cron(value: Any) -> str:
    if not isinstance(value, str) or not croniter.is_valid(value):
        raise ValueError(
            f"{value!r} is not a valid cron expression (five fields: minute hour day month "
            "weekday, e.g. '*/5 * * * *')"
        )
    return value


_RATE_RE = re.compile(r"^(\d{1,9})\s*/\s*(s|sec|second|m|min|minute|h|hour)$", re.ASCII)
_RATE_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_RATE_UNITS |= {"h": 3600, "hour": 3600}
MAX_RATE_PER_MINUTE = 1_000_000  # beyond any push service's acceptance for one sender


@dataclass(frozen=True)
class Rate:
    """A send rate such as `500/min`: `count` sends per `seconds`."""

    count: int
    seconds: int

    @property
    def per_minute(self) -> float:
        return self.count * 60 / self.seconds

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h"}[self.seconds]
        return f"{self.count}/{unit}"


def parse_rate(value: Any) -> Rate:
    """`500/min`, `20/s` or `30000/h`: at least one send, at most MAX_RATE_PER_MINUTE a minute."""
    if isinstance(value, Rate):
        return value
    text = value if isinstance(value, str) else ""
    match = _RATE_RE.fullmatch(text) if len(text) <= 40 else None
    if not match:
        raise ValueError(
            f"{value!r} is not a rate: write sends per unit, like 500/min, 20/s or 30000/h"
        )
    rate = Rate(int(match.group(1)), _RATE_UNITS[match.group(2)])
    if rate.count < 1:
        raise ValueError(f"{value!r}: a rate limit of zero sends nothing (pause the campaign)")
    if rate.per_minute > MAX_RATE_PER_MINUTE:
        raise ValueError(
            f"{value!r} is more than {MAX_RATE_PER_MINUTE:,} sends a minute: "
            "leave rate_limit out for no limit"
        )
    return rate


ONCE_PREFIX = "once "
_ONCE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:\d{2})?$", re.ASCII
)


def parse_once(value: str) -> datetime:
    """The moment of `once 2026-12-24T10:00`: naive (a wall-clock time, read in each
    subscriber's timezone) or with an offset (`Z`, `+01:00`: one instant, kept in UTC)."""
    text = value[len(ONCE_PREFIX) :]
    if not _ONCE_RE.fullmatch(text):
        raise ValueError(
            f"{value!r}: write the moment as once YYYY-MM-DDTHH:MM, e.g. once 2026-12-24T10:00 "
            "(each subscriber's local time) or once 2026-12-24T10:00Z (one instant)"
        )
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a moment that exists: check the date, the time "
            "(00:00-23:59) and the offset (-23:59 to +23:59)"
        ) from None
    if not 2000 <= moment.year <= 2999:
        raise ValueError(f"{value!r}: the year must be between 2000 and 2999")
    return moment if moment.tzinfo is None else moment.astimezone(UTC)


# a wall-clock moment comes first at UTC+14 and last at UTC-12
EARLIEST_OFFSET = timedelta(hours=14)
LATEST_OFFSET = timedelta(hours=12)


def broadcast_window(moment: datetime) -> tuple[datetime, datetime]:
    """When a broadcast's first and last members' moments come: for a wall-clock moment,
    in the earliest (UTC+14) and the latest (UTC-12) timezone; for an instant, the instant."""
    if moment.tzinfo is not None:
        return moment, moment
    at = moment.replace(tzinfo=UTC)
    return at - EARLIEST_OFFSET, at + LATEST_OFFSET


def dst_change(local: datetime) -> tuple[timedelta, timedelta] | None:
    """For a wall-clock time with its zone (`tzinfo` a ZoneInfo): None when it happens once;
    else the UTC offsets of its first and second reading (fold 0 and 1): a gap when the
    clocks go forward over it, a repeat when they go back over it (`in_gap`)."""
    first, second = local.replace(fold=0).utcoffset(), local.replace(fold=1).utcoffset()
    assert first is not None and second is not None
    return None if first == second else (first, second)


def in_gap(local: datetime) -> bool:
    """Whether a wall-clock time with a `dst_change` is skipped (else it is repeated)."""
    zone = local.tzinfo
    return local.replace(fold=0).astimezone(UTC).astimezone(zone).replace(tzinfo=None) != (
        local.replace(tzinfo=None)
    )


def _check_schedule(value: Any) -> str:
    """A cron expression (when the campaign ticks) or `once <moment>` (a broadcast)."""
    if isinstance(value, str) and value.startswith(ONCE_PREFIX):
        parse_once(value)
        return value
    if isinstance(value, datetime):
        raise ValueError("a broadcast is written once 2026-12-24T10:00 (the word once first)")
    return _check_cron(value)


def check_timezone_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"a timezone is an IANA name like Europe/Berlin, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA timezone (e.g. Europe/Berlin, UTC)") from None
    return value


def _parse_clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        match = _CLOCK_RE.fullmatch(value)
        if match:
            return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f'{value!r} is not a time of day: write it as "HH:MM", e.g. "21:00"')


def _check_url(value: Any) -> str:
    """A notification's url, icon, image or badge: a template (checked again when it is
    rendered: absolute http(s) or the send is skipped, `bad_url`), or an absolute
    http(s) URL."""
    if not isinstance(value, str):
        raise ValueError(f"a url is text, got {value!r}")
    stripped = value.strip()
    if stripped.startswith("{{") or stripped.startswith("{%"):
        return value  # fully templated: checked when rendered
    if "{{" in stripped or "{%" in stripped:
        scheme = stripped.split(":", 1)[0].lower() if ":" in stripped else ""
        if scheme not in ("http", "https"):
            raise ValueError(f"url {value!r} must start with https:// or http://")
        return value
    return _fixed_url(value)


def _fixed_url(value: Any) -> str:
    """An action's url or icon: never rendered, so a fixed absolute http(s) URL."""
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        raise ValueError(
            f"{value!r}: an action's url and icon are not templates (they are sent as "
            "written); write a fixed https:// URL"
        )
    if not isinstance(value, str):
        raise ValueError(f"a url is text, got {value!r}")
    stripped = value.strip()
    scheme = stripped.split(":", 1)[0].lower() if ":" in stripped else ""
    if scheme not in ("http", "https"):
        raise ValueError(f"url {value!r} must start with https:// or http://")
    try:
        urls.click_target(value)
    except urls.UrlError as exc:
        raise ValueError(f"{value!r} is not a usable URL: {exc}") from None
    return value


DURATION_SCHEMA = {
    "type": "string",
    "pattern": r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
    "description": "duration: 30s, 15m, 12h, 7d, 2w, 1d12h",
}
_PERCENT_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
        {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    ],
    "description": "percent: 5% or 0.05",
}

Duration: TypeAlias = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_SCHEMA),
]
PositiveDuration: TypeAlias = Annotated[
    timedelta,
    BeforeValidator(positive_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_SCHEMA),
]
Percent: TypeAlias = Annotated[
    float, BeforeValidator(parse_percent), WithJsonSchema(_PERCENT_SCHEMA)
]
NodeId: TypeAlias = Annotated[
    str,
    BeforeValidator(lambda v: check_id(v, "node id")),
    WithJsonSchema({"type": "string", "pattern": ID_RE.pattern, "not": {"const": END}}),
]
Name: TypeAlias = Annotated[
    str,
    BeforeValidator(lambda v: check_id(v, "name")),
    WithJsonSchema({"type": "string", "pattern": ID_RE.pattern}),
]
SegmentName: TypeAlias = Annotated[  # a reference to a segment: `segment: NAME`
    str,
    BeforeValidator(lambda v: check_id(v, "segment name")),
    WithJsonSchema({"type": "string", "pattern": ID_RE.pattern}),
]
Target: TypeAlias = Annotated[
    str,
    BeforeValidator(_check_ref),
    WithJsonSchema({"type": "string", "description": "a node id or 'end'"}),
]
EventName: TypeAlias = Annotated[
    str,
    BeforeValidator(_check_event),
    WithJsonSchema({"type": "string", "pattern": EVENT_RE.pattern}),
]
Cron: TypeAlias = Annotated[
    str, BeforeValidator(_check_cron), WithJsonSchema({"type": "string", "description": "cron"})
]
Schedule: TypeAlias = Annotated[
    str,
    BeforeValidator(_check_schedule),
    WithJsonSchema(
        {
            "type": "string",
            "description": "cron (when the campaign ticks), or 'once YYYY-MM-DDTHH:MM' (a broadcast)",
        }
    ),
]
RateLimit: TypeAlias = Annotated[
    Rate,
    BeforeValidator(parse_rate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{1,9}\s*/\s*(s|sec|second|m|min|minute|h|hour)$",
            "description": "sends per second, minute or hour: 500/min",
        }
    ),
]
Timezone: TypeAlias = Annotated[
    str,
    BeforeValidator(check_timezone_name),
    WithJsonSchema({"type": "string", "description": "IANA timezone, e.g. Europe/Berlin"}),
]
Clock: TypeAlias = Annotated[
    time,
    BeforeValidator(_parse_clock),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$"}),
]
Url: TypeAlias = Annotated[
    str, BeforeValidator(_check_url), WithJsonSchema({"type": "string", "format": "uri-template"})
]
FixedUrl: TypeAlias = Annotated[
    str, BeforeValidator(_fixed_url), WithJsonSchema({"type": "string", "format": "uri"})
]
Scalar: TypeAlias = str | int | float | bool
Urgency: TypeAlias = Literal["very-low", "low", "normal", "high"]


# ---------------------------------------------------------------- the models' base


class Strict(BaseModel):
    """Base of every construct: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
