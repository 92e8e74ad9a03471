"""The campaign graph language as pydantic models (reference: docs/language.md).

Parsing only: every model forbids unknown keys and checks the shape and the
scalar formats of its own values (durations, percents, cron, timezones, ids).
Cross-references and graph properties are checked in `loader` and `graph`. The segment
rules are modelled in `rules` and re-exported here, with the scalars of `scalars`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    model_validator,
)

from orchestrator.language.rules import (
    ATTR_OPS as ATTR_OPS,
    RULE_TAGS as RULE_TAGS,
    AllRule as AllRule,
    AnyRule as AnyRule,
    AnyRuleModel as AnyRuleModel,
    AttrRule as AttrRule,
    EventRule as EventRule,
    NotRule as NotRule,
    Rule as Rule,
    Segment as Segment,
    SegmentRef as SegmentRef,
    TagRule as TagRule,
    rule_children as rule_children,
)
from orchestrator.language.scalars import (
    CAMPAIGN_ID_RE as CAMPAIGN_ID_RE,
    DURATION_SCHEMA,
    END as END,
    ONCE_PREFIX,
    Clock,
    Duration,
    EventName,
    FixedUrl,
    Name,
    NodeId,
    Percent,
    PositiveDuration,
    RateLimit,
    Scalar as Scalar,
    Schedule,
    SegmentName,
    Strict,
    Target,
    Timezone,
    Urgency,
    Url,
    broadcast_window as broadcast_window,
    check_id as check_id,
    check_timezone_name as check_timezone_name,
    dst_change as dst_change,
    format_duration as format_duration,
    in_gap as in_gap,
    parse_duration as parse_duration,
    parse_once,
    parse_percent as parse_percent,
    parse_rate as parse_rate,
    positive_duration,
)
from orchestrator.language.sendtime import (
    MAX_SEND_DELAY as MAX_SEND_DELAY,
    SendTime,
    SendTimeSpec as SendTimeSpec,
)
from orchestrator.language.splits import (
    SplitOptions as SplitOptions,
    SplitPlan as SplitPlan,
    SplitValue,
    check_power as check_power,
    options_of,
    parse_points as parse_points,
    rough_journeys as rough_journeys,
)

# ---------------------------------------------------------------- settings


DEFAULT_TICK = "*/5 * * * *"


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
    return positive_duration(value)


Reentry: TypeAlias = Annotated[
    timedelta | None,
    BeforeValidator(_reentry),
    PlainSerializer(lambda d: "never" if d is None else format_duration(d)),
    WithJsonSchema({"anyOf": [{"const": "never"}, DURATION_SCHEMA]}),
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
    schedule: Schedule = DEFAULT_TICK
    timezone: Timezone = "UTC"
    rate_limit: RateLimit | None = None
    send_time: SendTime = Field(default_factory=SendTimeSpec)

    @property
    def tick_cron(self) -> str:
        """When the campaign's deployment ticks: the schedule, or for a broadcast the default."""
        return DEFAULT_TICK if self.schedule.startswith(ONCE_PREFIX) else self.schedule

    @property
    def broadcast_at(self) -> datetime | None:
        """A broadcast's moment (`schedule: once …`): naive for each subscriber's local time."""
        return parse_once(self.schedule) if self.schedule.startswith(ONCE_PREFIX) else None


# ---------------------------------------------------------------- nodes


class Action(Strict):
    action: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=100)
    icon: FixedUrl | None = None
    url: FixedUrl | None = Field(default=None, description="where this action's click leads")


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
            "properties": {
                "to": {"type": "string"},
                "delay": DURATION_SCHEMA,
                "at": {"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$"},
            },
            "required": ["to"],
            "additionalProperties": False,
        },
    ]
}


class EdgeSpec(Strict):
    """Where a step leads; after `delay`, at the next `at` (a local wall-clock time) if given."""

    to: Target
    delay: Duration = timedelta(0)
    at: Clock | None = None


Edge: TypeAlias = Annotated[EdgeSpec, BeforeValidator(_edge_input), WithJsonSchema(_EDGE_SCHEMA)]


class NotificationNode(Strict):
    description: str | None = None
    notification: Notification
    window: PositiveDuration | None = None
    goal: EventName | None = None
    ttl: Duration | None = None
    urgency: Urgency | None = None
    delay: Duration = timedelta(0)
    at: Clock | None = Field(default=None, description="send at this local wall-clock time")
    send_time: SendTime | None = None
    on_convert: Edge | None = None
    on_no_convert: Edge | None = None


class SplitNode(Strict):
    description: str | None = None
    split: SplitValue

    @property
    def options(self) -> SplitOptions:
        """The split's options, the short form's being the defaults."""
        return options_of(self.split)

    @property
    def arms(self) -> dict[str, float]:
        """Each arm (a target) and its weight, in the file's order."""
        return self.options.arms


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


def node_targets(node: AnyNode) -> list[tuple[str, str]]:
    """Outgoing edges of a node as (kind, target) pairs, a missing edge being `end`."""
    if isinstance(node, NotificationNode):
        return [
            ("convert", node.on_convert.to if node.on_convert else END),
            ("no_convert", node.on_no_convert.to if node.on_no_convert else END),
        ]
    if isinstance(node, SplitNode):
        return [("split", target) for target in node.arms]
    if isinstance(node, BranchNode):
        return [("else" if c.else_ is not None else "branch", c.target) for c in node.branch]
    return [("next", node.next)]


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
