"""Segment rules compiled to SQL: exact members on SQLite and PostgreSQL, against a reference.

Read-only tests share one populated database per backend (a fresh SQLite file, or a
PostgreSQL schema with a unique name); tests that write get their own.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from uuid import uuid4

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import case, create_engine, insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from orchestrator.errors import ValidationError
from orchestrator.language.spec import (
    ATTR_OPS,
    AllRule,
    AnyRule,
    AnyRuleModel,
    AttrRule,
    EventRule,
    NotRule,
    Segment,
    SegmentRef,
    TagRule,
    rule_children,
)
from orchestrator.store import segments as seg
from orchestrator.store.db import create_all, make_engine, session

PG_URL = os.environ.get("CAMPAIGN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
EVIL = "'; DROP TABLE subscriber; --"
BACKENDS = ["sqlite", "postgresql"]


# ---------------------------------------------------------------- databases


@cache
def _pg_problem() -> str | None:
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return None
    except OperationalError as exc:
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()


def _require_pg() -> None:
    problem = _pg_problem()
    if problem is None:
        return
    message = f"PostgreSQL at {PG_URL} is unreachable: {problem}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set, so this fails instead of skipping)")
    pytest.skip(message + " (start it, or set CI to make this a failure)")


@contextmanager
def database(kind: str, folder: Path) -> Iterator[Engine]:
    """An empty database with the project's tables: a SQLite file, or a fresh PG schema."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{folder / f'segments-{uuid4().hex[:8]}.db'}")
        create_all(engine)
        yield engine
        engine.dispose()
        return
    _require_pg()
    schema = f"test_segments_{uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    try:
        create_all(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def load(engine: Engine, subscribers: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """Replace every subscriber and event."""
    with engine.begin() as conn:
        conn.execute(seg.EVENT.delete())
        conn.execute(seg.SUBSCRIBER.delete())
        if subscribers:
            conn.execute(insert(seg.SUBSCRIBER), subscribers)
        if events:
            conn.execute(insert(seg.EVENT), events)


# ---------------------------------------------------------------- the population


def sub(
    sid: str, attrs: dict[str, Any], tags: list[str] | None = None, **kw: Any
) -> dict[str, Any]:
    """A subscriber row; every row has every key (executemany takes the first row's keys)."""
    return {
        "id": sid,
        "attributes": attrs,
        "tags": tags or [],
        "status": "active",
        "timezone": "UTC",
        **kw,
    }


SUBSCRIBERS = [
    sub(
        "u01",
        {
            "plan": "pro",
            "company_size": 12,
            "score": 4.5,
            "beta": True,
            "langs": ["en", "de"],
            "signup": "2025-11-02",
        },
        ["vip", "newsletter"],
    ),
    sub(
        "u02",
        {
            "plan": "free",
            "company_size": 2,
            "score": 1.0,
            "beta": False,
            "langs": ["fr"],
            "signup": "2026-01-15",
        },
        ["newsletter"],
    ),
    sub(
        "u03",
        {
            "plan": "pro",
            "company_size": 12.0,
            "beta": "true",
            "langs": "en, de",
            "signup": "2025-12-31",
        },
    ),
    sub("u04", {"plan": "Pro", "company_size": 1, "score": -3, "langs": ["EN"]}, ["newsletter"]),
    sub("u05", {"plan": "enterprise", "company_size": "12", "score": "4.5", "beta": 1}),
    sub("u06", {"plan": None, "company_size": None, "beta": None, "langs": None}),
    sub("u07", {}),
    sub("u08", {"langs": []}, ["vip"], timezone="Europe/Berlin"),
    sub("u09", {"langs": ["en", 1, True, 2.5, None]}),
    sub("u10", {"name": "50% off_deal"}),
    sub("u11", {"name": "a\\b"}),
    sub("u12", {"name": EVIL, EVIL: "x"}),
    sub("u13", {"name": 'it\'s "quoted"', 'it\'s "k"': "v%_\\"}),
    sub("u14", {"name": "50X offXdeal"}),
    sub("u15", {"name": "ab"}),
    sub("u16", {"a.b": 1, "a": {"b": 2}}),
    sub("u17", {"a": {"b": 1}}),
    sub("u18", {"company_size": 1000.0, "score": 0}),
    sub("u19", {"plan": "free", "beta": False}, ["beta-tester", "vip"]),
    sub("u20", {}, [EVIL, "50%", "a_b", "back\\slash", "it's"]),
    sub("u21", {}, ["VIP", "vipx", "x"]),
    sub("u22", {"plan": "free", "signup": "2026-03-01T09:00:00Z"}),
    sub("u23", {"weird": {"x": 1}, "company_size": True}),
    sub(
        "u24",
        {"plan": "pro", "company_size": 12, "name": "50% off_deal"},
        ["vip", "newsletter"],
        status="unsubscribed",
    ),
    sub(
        "u25",
        {"plan": "pro", "beta": True, "langs": ["en"]},
        ["vip", "newsletter"],
        status="deleted",
    ),
    sub("u26", {"plan": "free"}),
    sub("u27", {"plan": "pro"}),
    sub("u28", {}),
    sub("u29", {}),
    sub("u30", {"company_size": -0.5}),
]
ACTIVE = frozenset(s["id"] for s in SUBSCRIBERS if s["status"] == "active")


def ev(sid: str, name: str, ago: timedelta, **props: Any) -> dict[str, Any]:
    return {"subscriber_id": sid, "name": name, "at": NOW - ago, "properties": props}


EVENTS = [
    ev("u01", "visited", H),
    ev("u01", "visited", 2 * D),
    ev("u02", "visited", 7 * D - H),
    ev("u03", "visited", 7 * D),  # exactly on the window's open end
    ev("u04", "visited", -H),  # in the future
    ev("u26", "visited", timedelta(0)),  # exactly now
    ev("u26", "visited", 8 * D),
    ev("u24", "visited", H),
    ev("u01", "purchase", D, plan="pro", amount=10),
    ev("u01", "purchase", 3 * D, plan="pro", amount=10.0),
    ev("u01", "purchase", 20 * D, plan="free", amount="10"),
    ev("u02", "purchase", 2 * D, plan="pro", amount="10"),
    ev("u27", "purchase", H, plan="pro", amount=10, gift=True),
    ev("u27", "purchase", 2 * H, plan="pro", amount=10, gift=False),
    ev("u27", "purchase", 3 * H, plan="pro"),
    ev(
        "u28",
        "purchase",
        H,
        **{"it's": "o'clock", EVIL: "x", "50%_\\": True, "café": "é", "line\n": 1},
    ),
    ev("u29", "purchase", H, **{"it's": "oXclock", "50%_\\": 1}),
    *(ev("u30", "app.open", n * H) for n in (1, 2, 3)),
    *(ev("u29", "app.open", n * H) for n in (1, 5)),
    *(ev("u26", "app.open", ago) for ago in (H, 2 * H, 2 * D)),
    ev("u12", EVIL, H),
]


def rule(data: dict[str, Any]) -> AnyRuleModel:
    return Segment.model_validate({"match": data}).match


NAMED = {
    "vip": Segment(match=TagRule(tag="vip")),
    "pro": Segment(match=rule({"attr": "plan", "eq": "pro"})),
    "newsletter": Segment(match=TagRule(tag="newsletter")),
    "recent": Segment(match=rule({"event": "visited", "within": "7d"})),
    "engaged_pro": Segment(match=rule({"all": [{"segment": "pro"}, {"segment": "recent"}]})),
    "vip_or_engaged": Segment(
        match=rule({"any": [{"segment": "vip"}, {"segment": "engaged_pro"}]})
    ),
    "not_vip": Segment(match=rule({"not": {"segment": "vip"}})),
}
SIZES = {
    "vip": {"u01", "u08", "u19"},
    "pro": {"u01", "u03", "u27"},
    "newsletter": {"u01", "u02", "u04"},
    "recent": {"u01", "u02", "u26"},
}
PLAN_SET = {"u01", "u02", "u03", "u04", "u05", "u19", "u22", "u26", "u27"}


def ids(*names: str) -> set[str]:
    return set(names)


# (rule, expected active members)
CASES: dict[str, list[tuple[dict[str, Any], set[str]]]] = {
    "eq": [
        ({"attr": "plan", "eq": "pro"}, ids("u01", "u03", "u27")),
        ({"attr": "company_size", "eq": 12}, ids("u01", "u03")),
        ({"attr": "company_size", "eq": 12.0}, ids("u01", "u03")),
        ({"attr": "company_size", "eq": "12"}, ids("u05")),
        ({"attr": "company_size", "eq": 1}, ids("u04")),
        ({"attr": "beta", "eq": True}, ids("u01")),
        ({"attr": "beta", "eq": False}, ids("u02", "u19")),
        ({"attr": "score", "eq": 4.5}, ids("u01")),
        ({"attr": "a.b", "eq": 1}, ids("u16")),
        ({"attr": "name", "eq": EVIL}, ids("u12")),
        ({"attr": "name", "eq": 'it\'s "quoted"'}, ids("u13")),
        ({"attr": "name", "eq": "a\\b"}, ids("u11")),
    ],
    "ne": [
        ({"attr": "plan", "ne": "pro"}, set(ACTIVE - ids("u01", "u03", "u27"))),
        ({"attr": "beta", "ne": True}, set(ACTIVE - ids("u01"))),
        ({"attr": "name", "ne": EVIL}, set(ACTIVE - ids("u12"))),
    ],
    "in": [
        (
            {"attr": "plan", "in": ["pro", "free"]},
            ids("u01", "u02", "u03", "u19", "u22", "u26", "u27"),
        ),
        ({"attr": "company_size", "in": [2, "12", True]}, ids("u02", "u05", "u23")),
        ({"attr": "name", "in": [EVIL, "%", "a\\b"]}, ids("u11", "u12")),
        (
            {"attr": "plan", "not_in": ["pro", "free"]},
            set(ACTIVE - ids("u01", "u02", "u03", "u19", "u22", "u26", "u27")),
        ),
    ],
    "order": [
        ({"attr": "company_size", "gte": 2}, ids("u01", "u02", "u03", "u18")),
        ({"attr": "company_size", "gt": 2}, ids("u01", "u03", "u18")),
        ({"attr": "company_size", "lt": 2}, ids("u04", "u30")),
        ({"attr": "company_size", "lte": 1}, ids("u04", "u30")),
        ({"attr": "score", "gt": 0.5}, ids("u01", "u02")),
        ({"attr": "score", "lte": 0}, ids("u04", "u18")),
        ({"attr": "signup", "gte": "2026-01-01"}, ids("u02", "u22")),
        ({"attr": "signup", "lt": "2026-01-01"}, ids("u01", "u03")),
        ({"attr": "plan", "gt": "free"}, ids("u01", "u03", "u27")),  # "Pro" < "free" by code point
        ({"attr": "plan", "lt": "free"}, ids("u04", "u05")),
        ({"attr": "name", "gt": "a"}, ids("u11", "u13", "u15")),
        ({"attr": "name", "lt": "'z"}, ids("u12")),
    ],
    "contains": [
        ({"attr": "langs", "contains": "en"}, ids("u01", "u03", "u09")),
        ({"attr": "langs", "contains": 1}, ids("u09")),
        ({"attr": "langs", "contains": True}, ids("u09")),
        ({"attr": "langs", "contains": 2.5}, ids("u09")),
        ({"attr": "langs", "contains": "1"}, set()),
        ({"attr": "name", "contains": "0% off_"}, ids("u10")),
        ({"attr": "name", "contains": "%"}, ids("u10")),
        ({"attr": "name", "contains": "_"}, ids("u10")),
        ({"attr": "name", "contains": "\\"}, ids("u11")),
        ({"attr": "name", "contains": "'"}, ids("u12", "u13")),
        ({"attr": "name", "contains": EVIL}, ids("u12")),
        ({"attr": "name", "contains": "a"}, ids("u10", "u11", "u14", "u15")),
        ({"attr": "name", "contains": "A"}, ids("u12")),
        ({"attr": "plan", "contains": "ro"}, ids("u01", "u03", "u04", "u27")),
    ],
    "exists": [
        ({"attr": "plan", "exists": True}, PLAN_SET),
        ({"attr": "plan", "exists": False}, set(ACTIVE - PLAN_SET)),
        ({"attr": "langs", "exists": True}, ids("u01", "u02", "u03", "u04", "u08", "u09")),
        ({"attr": "weird", "exists": True}, ids("u23")),
    ],
    "tag": [
        ({"tag": "vip"}, ids("u01", "u08", "u19")),
        ({"tag": "newsletter"}, ids("u01", "u02", "u04")),
        ({"tag": "50%"}, ids("u20")),
        ({"tag": "5%"}, set()),
        ({"tag": "a_b"}, ids("u20")),
        ({"tag": "aXb"}, set()),
        ({"tag": "back\\slash"}, ids("u20")),
        ({"tag": "it's"}, ids("u20")),
        ({"tag": EVIL}, ids("u20")),
    ],
    "event": [
        ({"event": "visited"}, ids("u01", "u02", "u03", "u26")),
        ({"event": "visited", "within": "7d"}, ids("u01", "u02", "u26")),
        ({"event": "visited", "within": "1d"}, ids("u01", "u26")),
        ({"event": "visited", "at_least": 2}, ids("u01", "u26")),
        ({"event": "visited", "within": "7d", "at_least": 2}, ids("u01")),
        ({"event": "purchase", "where": {"plan": "pro"}}, ids("u01", "u02", "u27")),
        ({"event": "purchase", "where": {"amount": 10}}, ids("u01", "u27")),
        ({"event": "purchase", "where": {"amount": "10"}}, ids("u01", "u02")),
        (
            {"event": "purchase", "where": {"plan": "pro", "amount": 10}, "at_least": 2},
            ids("u01", "u27"),
        ),
        ({"event": "purchase", "where": {"plan": "pro", "amount": 10}, "at_least": 3}, set()),
        ({"event": "purchase", "within": "2d", "where": {"amount": 10}}, ids("u01", "u27")),
        ({"event": "purchase", "within": "1d", "where": {"amount": 10}}, ids("u27")),
        ({"event": "purchase", "where": {"gift": True}}, ids("u27")),
        ({"event": "purchase", "where": {"gift": 1}}, set()),
        ({"event": "purchase", "where": {"it's": "o'clock"}}, ids("u28")),
        ({"event": "purchase", "where": {"50%_\\": True}}, ids("u28")),
        ({"event": "purchase", "where": {"café": "é"}}, ids("u28")),
        ({"event": "purchase", "where": {"line\n": 1}}, ids("u28")),
        ({"event": "purchase", "where": {"line": 1}}, set()),
        ({"event": "purchase", "where": {EVIL: "x"}}, ids("u28")),
        ({"event": "purchase", "where": {"it's": EVIL}}, set()),
        ({"event": "app.open", "at_least": 3}, ids("u26", "u30")),
        ({"event": "app.open", "within": "1d", "at_least": 3}, ids("u30")),
        ({"event": "app.open", "within": "1d", "at_least": 2}, ids("u26", "u29", "u30")),
    ],
    "nested": [
        ({"all": [{"tag": "vip"}, {"not": {"attr": "plan", "eq": "pro"}}]}, ids("u08", "u19")),
        (
            {"any": [{"tag": "newsletter"}, {"attr": "company_size", "gte": 100}]},
            ids("u01", "u02", "u04", "u18"),
        ),
        (
            {"not": {"any": [{"attr": "plan", "exists": True}, {"tag": "vip"}]}},
            set(ACTIVE - PLAN_SET - {"u08"}),
        ),
        (
            {
                "all": [
                    {"any": [{"tag": "vip"}, {"tag": "newsletter"}]},
                    {"not": {"event": "visited", "within": "7d"}},
                ]
            },
            ids("u04", "u08", "u19"),
        ),
        ({"not": {"not": {"tag": "vip"}}}, ids("u01", "u08", "u19")),
    ],
    "segment": [
        ({"segment": "engaged_pro"}, ids("u01")),
        ({"segment": "vip_or_engaged"}, ids("u01", "u08", "u19")),
        ({"all": [{"segment": "not_vip"}, {"segment": "newsletter"}]}, ids("u02", "u04")),
        ({"any": [{"segment": "pro"}, {"segment": "pro"}]}, ids("u01", "u03", "u27")),
    ],
}
TABLE = [
    pytest.param(rule(r), want, id=f"{family}-{i}")
    for family, rows in CASES.items()
    for i, (r, want) in enumerate(rows)
]

# Strings where the language forbids them, built without validation to prove the SQL is bound anyway.
UNVALIDATED = [
    pytest.param(AttrRule.model_construct(attr=EVIL, eq="x"), ids("u12"), id="attr-name-evil"),
    pytest.param(
        AttrRule.model_construct(attr='it\'s "k"', eq="v%_\\"), ids("u13"), id="attr-name-quotes"
    ),
    pytest.param(
        AttrRule.model_construct(attr='it\'s "k"', contains="%_"),
        ids("u13"),
        id="attr-name-contains",
    ),
    pytest.param(
        AttrRule.model_construct(attr='it\'s "k"', gte="v"), ids("u13"), id="attr-name-gte"
    ),
    pytest.param(
        AttrRule.model_construct(attr=EVIL, exists=False),
        set(ACTIVE - {"u12"}),
        id="attr-name-exists",
    ),
    pytest.param(
        EventRule.model_construct(event=EVIL, within=None, at_least=1, where={}),
        ids("u12"),
        id="event-name-evil",
    ),
]


# ---------------------------------------------------------------- the reference evaluator (the oracle)

MISSING = object()


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def ref_eq(x: Any, v: Any) -> bool:
    if isinstance(v, bool):
        return isinstance(x, bool) and x == v
    if _num(v):
        return _num(x) and x == v
    return isinstance(x, str) and x == v


def ref_attr(r: AttrRule, attrs: Mapping[str, Any]) -> bool:
    x, op, v = attrs.get(r.attr, MISSING), r.op, r.value
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    if op in ("eq", "ne"):
        return ref_eq(x, v) == (op == "eq")
    if op in ("in", "not_in"):
        return any(ref_eq(x, e) for e in v) == (op == "in")
    if op in compare:
        same_kind = (_num(x) and _num(v)) or (isinstance(x, str) and isinstance(v, str))
        return bool(same_kind and compare[op](x, v))
    if op == "contains":
        if isinstance(x, list):
            return any(ref_eq(e, v) for e in x)
        return isinstance(x, str) and isinstance(v, str) and v in x
    return bool((x is not MISSING and x is not None) == v)


def ref_event(r: EventRule, sid: str, events: list[dict[str, Any]], now: datetime) -> bool:
    def hit(e: dict[str, Any]) -> bool:
        in_time = e["at"] <= now and (r.within is None or e["at"] > now - r.within)
        props = e["properties"]
        return in_time and all(ref_eq(props.get(k, MISSING), v) for k, v in r.where.items())

    return (
        sum(1 for e in events if e["subscriber_id"] == sid and e["name"] == r.event and hit(e))
        >= r.at_least
    )


def ref_rule(
    r: AnyRuleModel,
    s: dict[str, Any],
    events: list[dict[str, Any]],
    segments: Mapping[str, Segment],
) -> bool:
    if isinstance(r, AllRule):
        return all(ref_rule(c, s, events, segments) for c in r.all)
    if isinstance(r, AnyRule):
        return any(ref_rule(c, s, events, segments) for c in r.any)
    if isinstance(r, NotRule):
        return not ref_rule(r.not_, s, events, segments)
    if isinstance(r, AttrRule):
        return ref_attr(r, s["attributes"])
    if isinstance(r, TagRule):
        return r.tag in s["tags"]
    if isinstance(r, EventRule):
        return ref_event(r, s["id"], events, NOW)
    return ref_rule(segments[r.segment].match, s, events, segments)


def ref_members(
    r: AnyRuleModel,
    subs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    segments: Mapping[str, Segment],
) -> set[str]:
    active = [s for s in subs if s["status"] == "active"]
    return {s["id"] for s in active if ref_rule(r, s, events, segments)}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", params=BACKENDS)
def populated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """The population above, loaded once per backend; tests only read it."""
    with database(request.param, tmp_path_factory.mktemp("segments")) as engine:
        load(engine, SUBSCRIBERS, EVENTS)
        yield engine


@pytest.fixture(params=BACKENDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database(request.param, tmp_path) as engine:
        yield engine


def members_of(engine: Engine, r: AnyRuleModel, now: datetime = NOW) -> set[str]:
    with session(engine) as s:
        return set(seg.members(s, "t", segments={**NAMED, "t": Segment(match=r)}, now=now))


# ---------------------------------------------------------------- exact members


@pytest.mark.parametrize(("r", "want"), TABLE)
def test_rule_selects_exactly_the_expected_active_members(
    populated: Engine, r: AnyRuleModel, want: set[str]
) -> None:
    assert members_of(populated, r) == want


@pytest.mark.parametrize(("r", "want"), TABLE)
def test_reference_evaluator_agrees_with_the_table(r: AnyRuleModel, want: set[str]) -> None:
    assert ref_members(r, SUBSCRIBERS, EVENTS, NAMED) == want


@pytest.mark.parametrize(("r", "want"), UNVALIDATED)
def test_hostile_names_that_bypass_validation_are_still_bound_parameters(
    populated: Engine, r: AnyRuleModel, want: set[str]
) -> None:
    assert members_of(populated, r) == want
    with populated.connect() as conn:
        assert {"subscriber", "event"} <= set(inspect(conn).get_table_names())
        assert conn.execute(text("SELECT count(*) FROM subscriber")).scalar() == len(SUBSCRIBERS)


def test_the_language_rejects_hostile_attr_and_event_names() -> None:
    with pytest.raises(pydantic.ValidationError):
        rule({"attr": EVIL, "eq": "x"})
    with pytest.raises(pydantic.ValidationError):
        rule({"event": EVIL})


@pytest.mark.parametrize("dialect_class", [sqlite.dialect, postgresql.dialect], ids=BACKENDS)
def test_no_value_or_name_is_spliced_into_the_sql_text(dialect_class: Any) -> None:
    dialect = dialect_class()
    hostile = Segment(
        match=AllRule(
            all=[
                AttrRule.model_construct(attr=EVIL, contains=EVIL),
                AttrRule(attr="name", **{"in": [EVIL, "100%", "a_b\\"]}),
                TagRule(tag=EVIL),
                EventRule(event="purchase", where={EVIL: EVIL, "100%": "a_b\\"}),
            ]
        )
    )
    sql = str(
        seg.members_query("h", segments={"h": hostile}, dialect=dialect.name).compile(
            dialect=dialect
        )
    )
    for fragment in ("DROP", "100%", "a_b"):
        assert fragment not in sql


def test_naive_and_other_timezone_now_mean_the_same_instant(populated: Engine) -> None:
    recent = rule({"event": "visited", "within": "7d"})
    berlin = NOW.astimezone(timezone(timedelta(hours=1)))
    assert members_of(populated, recent, NOW.replace(tzinfo=None)) == SIZES["recent"]
    assert members_of(populated, recent, berlin) == SIZES["recent"]


# ---------------------------------------------------------------- queries


def test_members_streams_ids_in_order(populated: Engine) -> None:
    with session(populated) as s:
        got = list(seg.members(s, "not_vip", segments=NAMED, now=NOW))
    assert got == sorted(ACTIVE - SIZES["vip"])


def test_is_member_of_maps_each_asked_subscriber_to_its_segments(populated: Engine) -> None:
    asked = ["u01", "u02", "u08", "u24", "nobody", "u01"]
    with session(populated) as s:
        got = seg.is_member_of(s, asked, ["vip", "pro", "recent"], segments=NAMED, now=NOW)
    assert got == {
        "u01": {"vip", "pro", "recent"},
        "u02": {"recent"},
        "u08": {"vip"},
        "u24": set(),  # unsubscribed
        "nobody": set(),
    }


def test_overlap_counts_every_pair_and_sizes_on_the_diagonal(populated: Engine) -> None:
    names = list(SIZES)
    with session(populated) as s:
        got = seg.overlap(s, names, segments=NAMED, now=NOW)
    assert got == {(a, b): len(SIZES[a] & SIZES[b]) for a in names for b in names}
    assert got["newsletter", "recent"] == 2


def test_overlap_of_nothing_is_empty(populated: Engine) -> None:
    with session(populated) as s:
        assert seg.overlap(s, [], segments=NAMED, now=NOW) == {}


def test_export_csv_writes_a_header_and_json_cells(populated: Engine) -> None:
    out = io.StringIO()
    with session(populated) as s:
        count = seg.export(s, "vip", segments=NAMED, now=NOW, fmt="csv", out=out)
    assert count == 3
    assert out.getvalue() == (
        "id,timezone,attributes,tags\n"
        'u01,UTC,"{""beta"":true,""company_size"":12,""langs"":[""en"",""de""],""plan"":""pro"",'
        '""score"":4.5,""signup"":""2025-11-02""}","[""vip"",""newsletter""]"\n'
        'u08,Europe/Berlin,"{""langs"":[]}","[""vip""]"\n'
        'u19,UTC,"{""beta"":false,""plan"":""free""}","[""beta-tester"",""vip""]"\n'
    )


def test_export_jsonl_writes_one_object_per_member(populated: Engine) -> None:
    out = io.StringIO()
    with session(populated) as s:
        count = seg.export(s, "vip", segments=NAMED, now=NOW, fmt="jsonl", out=out)
    lines = out.getvalue().splitlines()
    assert count == len(lines) == 3
    assert (
        lines[1]
        == '{"id":"u08","timezone":"Europe/Berlin","attributes":{"langs":[]},"tags":["vip"]}'
    )
    assert [json.loads(line)["id"] for line in lines] == ["u01", "u08", "u19"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_round_trips_quotes_backslashes_and_percents(populated: Engine, fmt: str) -> None:
    out = io.StringIO()
    hostile = {
        "h": Segment(match=rule({"any": [{"tag": EVIL}, {"attr": "name", "contains": "'"}]}))
    }
    with session(populated) as s:
        assert seg.export(s, "h", segments=hostile, now=NOW, fmt=fmt, out=out) == 3  # type: ignore[arg-type]
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    else:
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
    back = {r["id"]: (r["attributes"], r["tags"]) for r in rows}
    if fmt == "csv":
        back = {k: (json.loads(a), json.loads(t)) for k, (a, t) in back.items()}
    by_id = {s["id"]: (s["attributes"], s["tags"]) for s in SUBSCRIBERS}
    assert back == {k: by_id[k] for k in ("u12", "u13", "u20")}


def test_unknown_and_looping_segments_are_errors() -> None:
    loop = {
        "a": Segment(match=SegmentRef(segment="b")),
        "b": Segment(match=AnyRule(any=[TagRule(tag="x"), SegmentRef(segment="a")])),
    }
    with pytest.raises(ValidationError, match="unknown segment 'ghost'"):
        seg.members_query("ghost", segments=NAMED, dialect="sqlite")
    with pytest.raises(ValidationError, match="a -> b -> a"):
        seg.members_query("a", segments=loop, dialect="sqlite")
    chain = {f"s{i}": Segment(match=SegmentRef(segment=f"s{i + 1}")) for i in range(40)}
    chain["s40"] = Segment(match=TagRule(tag="vip"))
    with pytest.raises(ValidationError, match="too deeply"):
        seg.members_query("s0", segments=chain, dialect="sqlite")


def test_event_rules_use_the_subscriber_time_index_on_sqlite(tmp_path: Path) -> None:
    with database("sqlite", tmp_path) as engine:
        query = seg.members_query("recent", segments=NAMED, dialect="sqlite")
        compiled = query.compile(dialect=engine.dialect)
        blanks = tuple(None for _ in compiled.positiontup or ())
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", blanks).all()
    assert any("ix_event_subscriber_at" in str(row) for row in plan), plan


def test_is_member_of_and_members_handle_more_rows_than_one_batch(fresh: Engine) -> None:
    many = [
        sub(f"m{i:05d}", {"n": i}, ["even"] if i % 2 == 0 else []) for i in range(2 * seg.BATCH + 7)
    ]
    load(fresh, many, [])
    segments = {
        "even": Segment(match=TagRule(tag="even")),
        "big": Segment(match=rule({"attr": "n", "gte": 100})),
    }
    with session(fresh) as s:
        streamed = list(seg.members(s, "even", segments=segments, now=NOW))
        got = seg.is_member_of(
            s, [m["id"] for m in many], ["even", "big"], segments=segments, now=NOW
        )
    assert streamed == [m["id"] for m in many if m["attributes"]["n"] % 2 == 0]
    assert sum("even" in v for v in got.values()) == len(streamed)
    assert sum("big" in v for v in got.values()) == len(many) - 100


# ---------------------------------------------------------------- property: SQL == reference

KEYS = ["k", "a.b", "q'\"\\%_ "]  # the last one is only reachable without validation
TAGS = ["t1", "t2", "x'y%"]
TEXT = st.text(alphabet="ab%_\\'\"é", max_size=2)  # small domains, so values collide
NUMBERS = st.one_of(st.integers(-2, 2), st.sampled_from([1.0, 0.5, -1.5, 1e-07]))
SCALARS = st.one_of(st.booleans(), NUMBERS, TEXT)
ORDERED = st.one_of(NUMBERS, TEXT)
JSON_VALUES = st.one_of(
    st.none(), SCALARS, st.lists(st.one_of(st.none(), SCALARS), max_size=3), st.just({"x": 1})
)
OFFSETS = [timedelta(0), H, D, 7 * D, 7 * D - H, 8 * D, -H]


IN_VALUES = st.lists(SCALARS, min_size=1, max_size=3)
ATTR_VALUES = {"in": IN_VALUES, "not_in": IN_VALUES, "exists": st.booleans()}
ATTR_VALUES |= {op: ORDERED for op in ("gt", "gte", "lt", "lte")}


def _attr_rule(key: str, op: str, value: Any) -> AttrRule:
    return AttrRule.model_construct(attr=key, **{"in_" if op == "in" else op: value})


ATTR_RULE_BY_OP = [
    st.builds(_attr_rule, st.sampled_from(KEYS), st.just(op), ATTR_VALUES.get(op, SCALARS))
    for op in ATTR_OPS
]
ATTR_RULES = st.one_of(ATTR_RULE_BY_OP)
PROPS = st.dictionaries(st.sampled_from(["p", "it's"]), SCALARS, max_size=2)
EVENT_NAMES = st.sampled_from(["e1", "e2"])
EVENT_RULES = st.builds(
    EventRule,
    event=EVENT_NAMES,
    within=st.sampled_from([None, "1h", "1d", "7d"]),
    at_least=st.integers(1, 3),
    where=PROPS,
)


def rules(refs: list[str]) -> st.SearchStrategy[AnyRuleModel]:
    leaves: list[st.SearchStrategy[Any]] = [
        ATTR_RULES,
        st.builds(TagRule, tag=st.sampled_from(TAGS)),
        EVENT_RULES,
    ]
    if refs:
        leaves.append(st.builds(SegmentRef, segment=st.sampled_from(refs)))
    return st.recursive(
        st.one_of(leaves),
        lambda kids: st.one_of(
            st.lists(kids, min_size=1, max_size=3).map(lambda xs: AllRule(all=xs)),
            st.lists(kids, min_size=1, max_size=3).map(lambda xs: AnyRule(any=xs)),
            kids.map(lambda x: NotRule(not_=x)),
        ),
        max_leaves=6,
    )


PEOPLE = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=4),
        st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
        st.sampled_from(["active", "active", "active", "unsubscribed"]),
        st.lists(st.tuples(EVENT_NAMES, st.sampled_from(OFFSETS), PROPS), max_size=4),
    ),
    min_size=3,
    max_size=8,
)


def _world(people: list[Any], r0: Any, r1: Any, r: Any, probes: Any) -> Any:
    """Subscribers, events, segments s0 and s1, a rule, and leaves of every kind to check too."""
    subs = [sub(f"h{i}", a, t, status=st_) for i, (a, t, st_, _) in enumerate(people)]
    events = [ev(f"h{i}", n, ago, **p) for i, p_ in enumerate(people) for n, ago, p in p_[3]]
    return subs, events, {"s0": Segment(match=r0), "s1": Segment(match=r1)}, r, list(probes)


PROBES = st.tuples(
    *ATTR_RULE_BY_OP, EVENT_RULES, EVENT_RULES, st.builds(TagRule, tag=st.sampled_from(TAGS))
)
WORLDS = st.builds(_world, PEOPLE, rules([]), rules(["s0"]), rules(["s0", "s1"]), PROBES)


def subtrees(r: AnyRuleModel) -> Iterator[AnyRuleModel]:
    yield r
    for child in rule_children(r):
        yield from subtrees(child)


def sql_members_of_each(
    engine: Engine, rules_: list[AnyRuleModel], named: dict[str, Segment]
) -> list[set[str]]:
    """Members of every rule at once: one 0/1 column per rule."""
    dialect = engine.dialect.name
    flags = [
        case((seg.compile_rule(x, segments=named, dialect=dialect), 1), else_=0) for x in rules_
    ]
    query = select(seg.SUBSCRIBER.c.id, *flags).where(seg.SUBSCRIBER.c.status == "active")
    with engine.connect() as conn, seg.as_of(NOW):
        rows = conn.execute(query).all()
    return [{row[0] for row in rows if row[i + 1]} for i in range(len(rules_))]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=WORLDS)
@pytest.mark.slow
def test_random_rules_match_the_reference_evaluator(fresh: Engine, world: Any) -> None:
    subs, events, named, r, probes = world
    load(fresh, subs, events)
    every = [*subtrees(r), *(x for s in named.values() for x in subtrees(s.match)), *probes]
    want = [ref_members(x, subs, events, named) for x in every]
    assert sql_members_of_each(fresh, every, named) == want
    with session(fresh) as s:
        top = set(seg.members(s, "t", segments={**named, "t": Segment(match=r)}, now=NOW))
    assert top == want[0]
