"""The segment rules a campaign's `segments:` are written in, as pydantic models: `all`,
`any` and `not` combine rules; `attr`, `tag`, `event` and `segment` test one thing of a
subscriber. A rule is told apart by its key (`RULE_TAGS`); `spec` builds the campaign
file on them and re-exports them.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from orchestrator.language.scalars import EventName, PositiveDuration, Scalar, SegmentName, Strict


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


AnyRuleModel: TypeAlias = AllRule | AnyRule | NotRule | AttrRule | TagRule | EventRule | SegmentRef


def rule_children(rule: AnyRuleModel) -> list[AnyRuleModel]:
    if isinstance(rule, AllRule):
        return list(rule.all)
    if isinstance(rule, AnyRule):
        return list(rule.any)
    if isinstance(rule, NotRule):
        return [rule.not_]
    return []
