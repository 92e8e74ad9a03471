"""Segment rules compiled to SQL over `subscriber`, evaluated entirely in the database.

Every value is a bound parameter. SQLite reads JSON with json_type/json_extract/json_each,
PostgreSQL with ->, ->>, @> and jsonb_typeof; both give the same answers:

- eq/in compare JSON scalars type-correctly: numbers as numbers (12 == 12.0), strings as
  strings, booleans as booleans, never across types.
- ne/not_in are the negations of eq/in: true when the attribute is missing or null.
- gt/gte/lt/lte compare numbers when the rule value is a number and strings (code point
  order, so ISO dates work) when it is a string; an attribute of another type never matches.
- contains: an element of a list attribute (type-correct), or a case-sensitive substring of
  a string attribute (string values only).
- exists: true/false for "key present and not JSON null". Attribute names are plain
  top-level keys; a dot is part of the name.
- tag: the string is in `tags`.
- event: at least N events of that name with `at <= now` (and `at > now - within` when
  given) whose `where` properties all equal, type-correctly.
"""

from __future__ import annotations

import json
import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast as sql_cast,
    collate,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from orchestrator.errors import ConfigurationError, ValidationError
from orchestrator.language.spec import (
    AllRule,
    AnyRule,
    AnyRuleModel,
    AttrRule,
    EventRule,
    NotRule,
    Scalar,
    Segment,
    SegmentRef,
    TagRule,
    rule_children,
)
from orchestrator.store import models  # noqa: F401  (registers the tables)

SUBSCRIBER: Table = SQLModel.metadata.tables["subscriber"]
EVENT: Table = SQLModel.metadata.tables["event"]
MAX_SEGMENT_DEPTH = 32

Expr = ColumnElement[Any]
Pred = ColumnElement[bool]
_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.-]+")  # fullmatch: addressable as SQLite path '$."key"'


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _definite(pred: Pred) -> Pred:
    """NULL (missing key) becomes false, so `not` is always the complement."""
    return func.coalesce(pred, false(), type_=Boolean)


# ---------------------------------------------------------------- JSON per dialect


class JsonKey(NamedTuple):
    """A top-level key of a JSON object column."""

    col: Expr
    key: str


class JsonOps(Protocol):
    """Definite (never NULL) predicates on a JSON key for one SQL dialect."""

    def eq(self, ref: JsonKey, value: Scalar) -> Pred: ...
    def compare(self, ref: JsonKey, *, op: str, value: Any) -> Pred: ...
    def contains(self, ref: JsonKey, value: Scalar) -> Pred: ...
    def present(self, ref: JsonKey) -> Pred: ...
    def has_tag(self, col: Expr, tag: str) -> Pred: ...


SlotTest = Callable[[Expr, Expr], Pred]  # (json type name, SQL value) -> predicate


def _sqlite_each(json_text: Expr) -> Any:
    return func.json_each(json_text).table_valued("key", "value", "type").alias()


def _sqlite_eq(kind: Expr, value: Expr, v: Scalar) -> Pred:
    if isinstance(v, bool):
        return kind == ("true" if v else "false")
    if _is_number(v):
        return and_(kind.in_(("integer", "real")), value == v)
    return and_(kind == "text", value == v)


class SqliteJson:
    """json_type/json_extract by path for plain keys, json_each for any other key."""

    def _slot(self, ref: JsonKey, test: SlotTest) -> Pred:
        col, key = ref
        if _SAFE_KEY.fullmatch(key):
            path = literal('$."' + key + '"', String)
            return _definite(test(func.json_type(col, path), func.json_extract(col, path)))
        each = _sqlite_each(col)
        return exists(
            select(literal(1))
            .select_from(each)
            .where(each.c.key == key, test(each.c.type, each.c.value))
        )

    def eq(self, ref: JsonKey, value: Scalar) -> Pred:
        return self._slot(ref, lambda k, x: _sqlite_eq(k, x, value))

    def compare(self, ref: JsonKey, *, op: str, value: Any) -> Pred:
        kinds = ("integer", "real") if _is_number(value) else ("text",)
        return self._slot(ref, lambda k, x: and_(k.in_(kinds), _CMP[op](x, value)))

    def contains(self, ref: JsonKey, value: Scalar) -> Pred:
        def test(kind: Expr, x: Expr) -> Pred:
            each = _sqlite_each(case((kind == "array", x)))
            found = exists(
                select(literal(1))
                .select_from(each)
                .where(_sqlite_eq(each.c.type, each.c.value, value))
            )
            if not isinstance(value, str):
                return found
            return or_(found, and_(kind == "text", func.instr(x, value) > 0))

        return self._slot(ref, test)

    def present(self, ref: JsonKey) -> Pred:
        return self._slot(ref, lambda k, _x: k != "null")

    def has_tag(self, col: Expr, tag: str) -> Pred:
        each = _sqlite_each(col)
        return exists(
            select(literal(1)).select_from(each).where(each.c.type == "text", each.c.value == tag)
        )


def _jsonb(value: Any) -> Expr:
    return sql_cast(literal(json.dumps(value), String), JSONB)


class PostgresJson:
    """JSONB operators; the key is always a bound parameter."""

    def _slot(self, ref: JsonKey) -> Expr:
        return ref.col.op("->", return_type=JSONB)(literal(ref.key, String))

    def _text(self, ref: JsonKey) -> Expr:
        return ref.col.op("->>", return_type=String)(literal(ref.key, String))

    def _kind(self, ref: JsonKey) -> Expr:
        return func.jsonb_typeof(self._slot(ref), type_=String)

    def eq(self, ref: JsonKey, value: Scalar) -> Pred:
        return _definite(self._slot(ref).op("=", is_comparison=True)(_jsonb(value)))

    def compare(self, ref: JsonKey, *, op: str, value: Any) -> Pred:
        if _is_number(value):  # jsonb orders numbers numerically
            test = and_(self._kind(ref) == "number", _CMP[op](self._slot(ref), _jsonb(value)))
        else:  # byte order of UTF-8 = code point order, as on SQLite
            text = collate(self._text(ref), "C")
            test = and_(self._kind(ref) == "string", _CMP[op](text, literal(value, String)))
        return _definite(test)

    def contains(self, ref: JsonKey, value: Scalar) -> Pred:
        member = self._slot(ref).op("@>", is_comparison=True)(_jsonb([value]))
        test = and_(self._kind(ref) == "array", member)
        if isinstance(value, str):
            substring = func.strpos(self._text(ref), literal(value, String)) > 0
            test = or_(test, and_(self._kind(ref) == "string", substring))
        return _definite(test)

    def present(self, ref: JsonKey) -> Pred:
        return func.coalesce(self._kind(ref), "null") != "null"

    def has_tag(self, col: Expr, tag: str) -> Pred:
        return _definite(col.op("@>", is_comparison=True)(_jsonb([tag])))


def json_ops(dialect: str) -> JsonOps:
    if dialect == "sqlite":
        return SqliteJson()
    if dialect == "postgresql":
        return PostgresJson()
    raise ConfigurationError(f"segments support sqlite and postgresql, not {dialect!r}")


# ---------------------------------------------------------------- rules


def _utc(now: datetime) -> datetime:
    """Naive times are UTC; aware ones are converted (SQLite stores UTC wall time)."""
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


_AS_OF: ContextVar[datetime] = ContextVar("segments_as_of")


@contextmanager
def as_of(now: datetime) -> Iterator[None]:
    """Evaluate segment SQL as of `now` (event windows) while inside this block."""
    token = _AS_OF.set(_utc(now))
    try:
        yield
    finally:
        _AS_OF.reset(token)


def _as_of() -> datetime:
    try:
        return _AS_OF.get()
    except LookupError:
        raise RuntimeError("segment SQL executed outside `segments.as_of(now)`") from None


@dataclass(kw_only=True)
class Compiler:
    """Builds the SQL once; the instant it is evaluated at is bound at execution time
    (`as_of`), so a compiled segment is reused tick after tick."""

    segments: Mapping[str, Segment]
    ops: JsonOps
    _stack: list[str] = field(default_factory=list)
    _done: dict[str, Pred] = field(default_factory=dict)

    def rule(self, rule: AnyRuleModel) -> Pred:
        if isinstance(rule, AllRule):
            return and_(*(self.rule(r) for r in rule.all))
        if isinstance(rule, AnyRule):
            return or_(*(self.rule(r) for r in rule.any))
        if isinstance(rule, NotRule):
            return not_(self.rule(rule.not_))
        if isinstance(rule, AttrRule):
            return self.attr(rule)
        if isinstance(rule, TagRule):
            return self.ops.has_tag(SUBSCRIBER.c.tags, rule.tag)
        if isinstance(rule, EventRule):
            return self.event(rule)
        return self.segment(rule.segment)

    def segment(self, name: str) -> Pred:
        if name in self._done:
            return self._done[name]
        if name not in self.segments:
            raise ValidationError(f"unknown segment {name!r}")
        if name in self._stack or len(self._stack) >= MAX_SEGMENT_DEPTH:
            chain = " -> ".join([*self._stack, name])
            raise ValidationError(f"segment references loop or nest too deeply: {chain}")
        self._stack.append(name)
        try:
            self._done[name] = self.rule(self.segments[name].match)
        finally:
            self._stack.pop()
        return self._done[name]

    def attr(self, rule: AttrRule) -> Pred:
        ref, op, value = JsonKey(SUBSCRIBER.c.attributes, rule.attr), rule.op, rule.value
        if op in ("eq", "ne"):
            test = self.ops.eq(ref, value)
        elif op in ("in", "not_in"):
            test = or_(*(self.ops.eq(ref, v) for v in value))
        elif op in _CMP:
            test = self.ops.compare(ref, op=op, value=value)
        elif op == "contains":
            test = self.ops.contains(ref, value)
        else:
            test = self.ops.present(ref)
        negate = op in ("ne", "not_in") or (op == "exists" and value is False)
        return not_(test) if negate else test

    def event(self, rule: EventRule) -> Pred:
        conds = [
            EVENT.c.subscriber_id == SUBSCRIBER.c.id,
            EVENT.c.name == rule.event,
            EVENT.c.at <= bindparam(None, callable_=_as_of, type_=EVENT.c.at.type),
        ]
        if rule.within is not None:
            within = rule.within
            since = bindparam(None, callable_=lambda: _as_of() - within, type_=EVENT.c.at.type)
            conds.append(EVENT.c.at > since)
        conds += [self.ops.eq(JsonKey(EVENT.c.properties, k), v) for k, v in rule.where.items()]
        query = select(literal(1)).select_from(EVENT).where(*conds)
        if rule.at_least > 1:  # the N-th matching row exists: stops after N index entries
            query = query.limit(1).offset(rule.at_least - 1)
        return exists(query)


def changes_with_time(name: str, *, segments: Mapping[str, Segment]) -> bool:
    """True when membership can change with the clock alone (an event rule with `within`),
    not only when a subscriber or their events change."""
    seen: set[str] = set()

    def walk(rule: AnyRuleModel) -> bool:
        if isinstance(rule, EventRule):
            return rule.within is not None
        if isinstance(rule, SegmentRef):
            if rule.segment in seen or rule.segment not in segments:
                return False
            seen.add(rule.segment)
            return walk(segments[rule.segment].match)
        return any(walk(child) for child in rule_children(rule))

    return name in segments and walk(segments[name].match)


def compile_rule(rule: AnyRuleModel, *, segments: Mapping[str, Segment], dialect: str) -> Pred:
    """A WHERE clause over `subscriber` that is true for the rule's members (never NULL).

    Execute it inside `as_of(now)`."""
    return Compiler(segments=segments, ops=json_ops(dialect)).rule(rule)


_CACHE: OrderedDict[tuple[int, Any], tuple[Mapping[str, Segment], Any]] = OrderedDict()
_CACHE_SIZE = 256


def built_once(segments: Mapping[str, Segment], key: Any, build: Callable[[], Any]) -> Any:
    """SQL built once per (segments mapping, key), the least recently used dropped past
    _CACHE_SIZE: building SQL costs more than running it. The mapping is kept alive with
    its entry, so its id is not reused while the entry stands."""
    slot = (id(segments), key)
    hit = _CACHE.get(slot)
    if hit is not None and hit[0] is segments:
        _CACHE.move_to_end(slot)
        return hit[1]
    value = build()
    _CACHE[slot] = (segments, value)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def membership(segment_name: str, *, segments: Mapping[str, Segment], dialect: str) -> Pred:
    """The condition on `subscriber` rows of being an active member (run inside `as_of(now)`),
    compiled once per (segments mapping, name, dialect)."""

    def build() -> Pred:
        rule = Compiler(segments=segments, ops=json_ops(dialect)).segment(segment_name)
        return and_(rule, SUBSCRIBER.c.status == "active")

    clause: Pred = built_once(segments, ("member", segment_name, dialect), build)
    return clause


def members_query(
    segment_name: str, *, segments: Mapping[str, Segment], dialect: str
) -> Select[str]:
    """SELECT subscriber.id of the active members of a segment (unordered); run inside `as_of(now)`."""
    return select(SUBSCRIBER.c.id).where(
        membership(segment_name, segments=segments, dialect=dialect)
    )
