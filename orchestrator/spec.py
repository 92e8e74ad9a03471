"""The campaign graph language as pydantic models (shared/spec/campaign-graph.md).

Parsing only: every model forbids unknown keys and checks the shape and the
scalar formats of its own values (durations, percents, cron, timezones, ids).
Cross-references and graph properties are checked in `loader` and `graph`.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

END = "end"

ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
CAMPAIGN_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EVENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_DURATION_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = (604800, 86400, 3600, 60, 1)
_CLOCK_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


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
    match = _DURATION_RE.match(text)
    if not text or not match:
        raise ValueError(
            f"{value!r} is not a duration: use a number and a unit "
            "(s, m, h, d, w), largest unit first, like 30s, 15m, 12h, 7d, 2w or 1d12h"
        )
    seconds = sum(
        int(g) * unit for g, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if g
    )
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


def _positive_duration(value: Any) -> timedelta:
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
        if not text.endswith("%"):
            raise ValueError(f"{value!r} is not a percent: write 5% or 0.05")
        try:
            fraction = float(text[:-1]) / 100
        except ValueError:
            raise ValueError(f"{value!r} is not a percent: write 5% or 0.05") from None
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


def _check_id(value: Any, what: str = "id") -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {value!r}")
    if value == END:
        raise ValueError(f"'{END}' is reserved for the end of a journey and cannot be a {what}")
    if not ID_RE.match(value):
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
        _check_id(value, "node id")
    return value


def _check_event(value: Any) -> str:
    if not isinstance(value, str) or not EVENT_RE.match(value):
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
        match = _CLOCK_RE.match(value.strip())
        if match:
            return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f'{value!r} is not a time of day: write it as "HH:MM", e.g. "21:00"')


def _check_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a url is text, got {value!r}")
    stripped = value.strip()
    if stripped.startswith("{{") or stripped.startswith("{%"):
        return value  # fully templated: checked when rendered
    scheme = stripped.split(":", 1)[0].lower() if ":" in stripped else ""
    if scheme not in ("http", "https"):
        raise ValueError(f"url {value!r} must start with https:// or http://")
    return value


_DURATION_SCHEMA = {
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
    WithJsonSchema(_DURATION_SCHEMA),
]
PositiveDuration: TypeAlias = Annotated[
    timedelta,
    BeforeValidator(_positive_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]
Percent: TypeAlias = Annotated[
    float, BeforeValidator(parse_percent), WithJsonSchema(_PERCENT_SCHEMA)
]
NodeId: TypeAlias = Annotated[
    str,
    BeforeValidator(lambda v: _check_id(v, "node id")),
    WithJsonSchema({"type": "string", "pattern": ID_RE.pattern, "not": {"const": END}}),
]
Name: TypeAlias = Annotated[
    str,
    BeforeValidator(lambda v: _check_id(v, "name")),
    WithJsonSchema({"type": "string", "pattern": ID_RE.pattern}),
]
SegmentName: TypeAlias = Annotated[  # a reference to a segment: `segment: NAME`
    str,
    BeforeValidator(lambda v: _check_id(v, "segment name")),
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
Scalar: TypeAlias = str | int | float | bool
Urgency: TypeAlias = Literal["very-low", "low", "normal", "high"]


class Strict(BaseModel):
    """Base of every construct: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------- settings


class QuietHours(Strict):
    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end are the same time")
        return self


class FrequencyCap(Strict):
    max: int = Field(ge=1, description="at most this many sends across all campaigns")
    per: PositiveDuration


def _reentry(value: Any) -> timedelta | None:
    if value in (None, "never"):
        return None
    return _positive_duration(value)


Reentry: TypeAlias = Annotated[
    timedelta | None,
    BeforeValidator(_reentry),
    PlainSerializer(lambda d: "never" if d is None else format_duration(d)),
    WithJsonSchema({"anyOf": [{"const": "never"}, _DURATION_SCHEMA]}),
]


class Settings(Strict):
    spacing: Duration = Field(default=timedelta(hours=12), description="min gap between sends")
    followup_cap: int = Field(default=2, ge=0, le=20)
    window: PositiveDuration = timedelta(hours=48)
    quiet_hours: QuietHours | None = None
    max_sends: int | None = Field(default=None, ge=1, le=1000)
    frequency_cap: FrequencyCap | None = None
    holdout: Percent = 0.0
    reentry: Reentry = None
    exit_on: list[EventName] = Field(default_factory=lambda: ["unsubscribe"])
    ttl: Duration = timedelta(days=1)
    urgency: Urgency = "normal"
    schedule: Cron = "*/5 * * * *"
    timezone: Timezone = "UTC"


# ---------------------------------------------------------------- segment rules


class AllRule(Strict):
    all: list[Rule] = Field(min_length=1)


class AnyRule(Strict):
    any: list[Rule] = Field(min_length=1)


class NotRule(Strict):
    not_: Rule = Field(alias="not")


ATTR_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "exists")


class AttrRule(Strict):
    attr: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    not_in: list[Scalar] | None = Field(default=None, min_length=1)
    gt: int | float | str | None = None
    gte: int | float | str | None = None
    lt: int | float | str | None = None
    lte: int | float | str | None = None
    contains: Scalar | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_op(self) -> AttrRule:
        given = [op for op in ATTR_OPS if getattr(self, "in_" if op == "in" else op) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(
                f"an attr rule needs exactly one operator of {', '.join(ATTR_OPS)} (found: {found})"
            )
        return self

    @property
    def op(self) -> str:
        return next(o for o in ATTR_OPS if getattr(self, "in_" if o == "in" else o) is not None)

    @property
    def value(self) -> Any:
        return getattr(self, "in_" if self.op == "in" else self.op)


class TagRule(Strict):
    tag: str = Field(min_length=1, max_length=64)


class EventRule(Strict):
    event: EventName
    within: PositiveDuration | None = None
    at_least: int = Field(default=1, ge=1, description="at_least: 0 is not allowed; use not")
    where: dict[str, Scalar] = Field(default_factory=dict)

    @field_validator("at_least", mode="before")
    @classmethod
    def _no_zero(cls, value: Any) -> Any:
        if value == 0 and not isinstance(value, bool):
            raise ValueError("at_least: 0 is not allowed; write {not: {event: ...}} instead")
        return value


class SegmentRef(Strict):
    segment: SegmentName


_RULE_KEYS = ("all", "any", "not", "attr", "tag", "event", "segment")


def _rule_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        for key in _RULE_KEYS:
            if key in value:
                return RULE_TAGS[key]
    return None


RULE_TAGS = {
    "all": "AllRule",
    "any": "AnyRule",
    "not": "NotRule",
    "attr": "AttrRule",
    "tag": "TagRule",
    "event": "EventRule",
    "segment": "SegmentRef",
}

Rule: TypeAlias = Annotated[
    Annotated[AllRule, Tag("AllRule")]
    | Annotated[AnyRule, Tag("AnyRule")]
    | Annotated[NotRule, Tag("NotRule")]
    | Annotated[AttrRule, Tag("AttrRule")]
    | Annotated[TagRule, Tag("TagRule")]
    | Annotated[EventRule, Tag("EventRule")]
    | Annotated[SegmentRef, Tag("SegmentRef")],
    Discriminator(
        _rule_kind,
        custom_error_type="rule_kind",
        custom_error_message="a segment rule is one of: all, any, not, attr, tag, event, segment",
    ),
]
AllRule.model_rebuild()
AnyRule.model_rebuild()
NotRule.model_rebuild()


class Segment(Strict):
    description: str | None = None
    match: Rule


# ---------------------------------------------------------------- nodes


class Action(Strict):
    action: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=100)
    icon: Url | None = None
    url: Url | None = Field(default=None, description="where this action's click leads")


class Notification(Strict):
    title: str = Field(min_length=1)
    body: str | None = None
    url: Url | None = None
    icon: Url | None = None
    image: Url | None = None
    badge: Url | None = None
    tag: str | None = None
    require_interaction: bool = False
    silent: bool = False
    actions: list[Action] = Field(default_factory=list)


def _edge_input(value: Any) -> Any:
    if isinstance(value, str):
        return {"to": value}
    return value


_EDGE_SCHEMA = {
    "anyOf": [
        {"type": "string", "description": "a node id or 'end'"},
        {
            "type": "object",
            "properties": {"to": {"type": "string"}, "delay": _DURATION_SCHEMA},
            "required": ["to"],
            "additionalProperties": False,
        },
    ]
}


class EdgeSpec(Strict):
    to: Target
    delay: Duration = timedelta(0)


Edge: TypeAlias = Annotated[EdgeSpec, BeforeValidator(_edge_input), WithJsonSchema(_EDGE_SCHEMA)]


class NotificationNode(Strict):
    description: str | None = None
    notification: Notification
    window: PositiveDuration | None = None
    goal: EventName | None = None
    ttl: Duration | None = None
    urgency: Urgency | None = None
    delay: Duration = timedelta(0)
    on_convert: Edge | None = None
    on_no_convert: Edge | None = None


def _split_weight(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"a split weight is a positive whole number or a percent, got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"split weight {value} must be positive")
        return float(value)
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1])
        except ValueError:
            raise ValueError(f"{value!r} is not a percent") from None
        if number <= 0:
            raise ValueError(f"split weight {value} must be positive")
        return number
    raise ValueError(f"a split weight is a positive whole number or a percent, got {value!r}")


Weight: TypeAlias = Annotated[
    float,
    BeforeValidator(_split_weight),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
            ]
        }
    ),
]


class SplitNode(Strict):
    description: str | None = None
    split: dict[Target, Weight] = Field(min_length=2)


class BranchCase(Strict):
    segment: SegmentName | None = None
    to: Target | None = None
    else_: Target | None = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _shape(self) -> BranchCase:
        if self.else_ is not None:
            if self.segment is not None or self.to is not None:
                raise ValueError("an else case has only 'else: TARGET'")
        elif self.segment is None or self.to is None:
            raise ValueError("a branch case is {segment: NAME, to: TARGET} or {else: TARGET}")
        return self

    @property
    def target(self) -> str:
        target = self.else_ if self.else_ is not None else self.to
        assert target is not None
        return target


class BranchNode(Strict):
    description: str | None = None
    branch: list[BranchCase] = Field(min_length=1)


class WaitNode(Strict):
    description: str | None = None
    wait: PositiveDuration
    next: Target = END


def _node_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__
    if isinstance(value, dict):
        for key, tag in NODE_TAGS.items():
            if key in value:
                return tag
    return None


NODE_TAGS = {
    "notification": "NotificationNode",
    "split": "SplitNode",
    "branch": "BranchNode",
    "wait": "WaitNode",
}

Node: TypeAlias = Annotated[
    Annotated[NotificationNode, Tag("NotificationNode")]
    | Annotated[SplitNode, Tag("SplitNode")]
    | Annotated[BranchNode, Tag("BranchNode")]
    | Annotated[WaitNode, Tag("WaitNode")],
    Discriminator(
        _node_kind,
        custom_error_type="node_kind",
        custom_error_message="a node is exactly one of: notification, split, branch, wait",
    ),
]


# ---------------------------------------------------------------- campaign


class Trigger(Strict):
    event: EventName
    delay: Duration = timedelta(0)
    where: dict[str, Scalar] = Field(default_factory=dict)


class SubCampaign(Strict):
    model_config = ConfigDict(
        **Strict.model_config,
        json_schema_extra={"anyOf": [{"required": ["segment"]}, {"required": ["trigger"]}]},
    )

    description: str | None = None
    segment: SegmentName | None = None
    trigger: Trigger | None = None
    start: NodeId
    nodes: dict[NodeId, Node] = Field(
        min_length=1, json_schema_extra={"propertyNames": {"not": {"const": END}}}
    )

    @model_validator(mode="after")
    def _entry(self) -> SubCampaign:
        if self.segment is None and self.trigger is None:
            raise ValueError(
                "a sub-campaign needs an entry: 'segment: NAME' or 'trigger: {event: ...}'"
            )
        return self


class SegmentFile(Strict):
    """A file pulled in with `include:`: segments, and possibly further includes."""

    include: list[str] = Field(default_factory=list)
    segments: dict[Name, Segment] = Field(default_factory=dict)


class Campaign(Strict):
    campaign: str = Field(pattern=CAMPAIGN_ID_RE.pattern, description="id: [a-z0-9][a-z0-9-]{0,62}")
    title: str = Field(min_length=1)
    description: str | None = None
    goal: EventName = "click"
    settings: Settings = Field(default_factory=Settings)
    include: list[str] = Field(default_factory=list)
    segments: dict[Name, Segment] = Field(default_factory=dict)
    subcampaigns: dict[Name, SubCampaign] = Field(min_length=1)

    def node(self, node_id: str) -> AnyNode:
        for sub in self.subcampaigns.values():
            if node_id in sub.nodes:
                return sub.nodes[node_id]
        raise KeyError(node_id)

    def subcampaign_of(self, node_id: str) -> str:
        for name, sub in self.subcampaigns.items():
            if node_id in sub.nodes:
                return name
        raise KeyError(node_id)

    def all_nodes(self) -> dict[str, AnyNode]:
        out: dict[str, AnyNode] = {}
        for sub in self.subcampaigns.values():
            out.update(sub.nodes)
        return out


AnyNode: TypeAlias = NotificationNode | SplitNode | BranchNode | WaitNode
AnyRuleModel: TypeAlias = AllRule | AnyRule | NotRule | AttrRule | TagRule | EventRule | SegmentRef


def node_targets(node: AnyNode) -> list[tuple[str, str]]:
    """Outgoing edges of a node as (kind, target) pairs, a missing edge being `end`."""
    if isinstance(node, NotificationNode):
        return [
            ("convert", node.on_convert.to if node.on_convert else END),
            ("no_convert", node.on_no_convert.to if node.on_no_convert else END),
        ]
    if isinstance(node, SplitNode):
        return [("split", target) for target in node.split]
    if isinstance(node, BranchNode):
        return [("else" if c.else_ is not None else "branch", c.target) for c in node.branch]
    return [("next", node.next)]


def rule_children(rule: AnyRuleModel) -> list[AnyRuleModel]:
    if isinstance(rule, AllRule):
        return list(rule.all)
    if isinstance(rule, AnyRule):
        return list(rule.any)
    if isinstance(rule, NotRule):
        return [rule.not_]
    return []


def json_schema() -> dict[str, Any]:
    """The schema of a campaign file, or of a segment file (only `segments:` and `include:`).

    The two are told apart as the loader does: a file without `campaign:` and
    `subcampaigns:` but with `segments:` is a segment file.
    """
    campaign = Campaign.model_json_schema(by_alias=True)
    segment_file = SegmentFile.model_json_schema(by_alias=True)
    defs = {**segment_file.pop("$defs", {}), **campaign.pop("$defs", {})}
    defs["Campaign"], defs["SegmentFile"] = campaign, segment_file
    _close_pattern_properties(defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "campaign-flow campaign graph, version 1",
        "type": "object",
        "if": {
            "anyOf": [
                {"required": ["campaign"]},
                {"required": ["subcampaigns"]},
                {"not": {"required": ["segments"]}},
            ]
        },
        "then": {"$ref": "#/$defs/Campaign"},
        "else": {"$ref": "#/$defs/SegmentFile"},
        "$defs": defs,
    }


def _close_pattern_properties(schema: Any) -> None:
    """Mappings keyed by ids (`nodes`, `segments`, ...) reject keys that are not valid ids.

    pydantic writes `patternProperties` for them but leaves other keys open; the loader
    rejects such keys, so the schema must too.
    """
    if isinstance(schema, dict):
        if "patternProperties" in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            _close_pattern_properties(value)
    elif isinstance(schema, list):
        for item in schema:
            _close_pattern_properties(item)
