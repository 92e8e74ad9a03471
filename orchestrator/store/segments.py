"""Segment queries over a Session: members, membership flags, overlap and export, each
one statement (or one per batch) built from the compiled rules of `segment_rules`."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TextIO

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from orchestrator.language.spec import Segment
from orchestrator.store.segment_rules import (
    EVENT,
    SUBSCRIBER,
    Compiler,
    as_of,
    built_once,
    changes_with_time,
    compile_rule,
    json_ops,
    members_query,
    membership,
)

# What callers use: the queries here and, for code that builds its own SQL, the compiler's.
__all__ = [
    "BATCH",
    "EVENT",
    "SUBSCRIBER",
    "as_of",
    "changes_with_time",
    "compile_rule",
    "export",
    "is_member_of",
    "members",
    "members_query",
    "membership",
    "overlap",
]

BATCH = 1000  # rows per fetch when streaming, ids per IN (...) list
MAX_PAIR_COLUMNS = 500  # overlap sums per SELECT (PostgreSQL allows 1664 columns)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def members(
    session: Session, segment_name: str, *, segments: Mapping[str, Segment], now: datetime
) -> Iterator[str]:
    """Stream the ids of a segment's active members, ordered by id."""
    query = members_query(segment_name, segments=segments, dialect=_dialect(session))
    query = query.order_by(SUBSCRIBER.c.id).execution_options(yield_per=BATCH)
    with as_of(now):
        yield from session.connection().execute(query).scalars()


def is_member_of(
    session: Session,
    subscriber_ids: Sequence[str],
    segment_names: Sequence[str],
    *,
    segments: Mapping[str, Segment],
    now: datetime,
) -> dict[str, set[str]]:
    """Each given subscriber -> the given segments it belongs to: one query for all the
    segments (a 0/1 flag each), built once per segment mapping and names."""
    ids = list(dict.fromkeys(subscriber_ids))
    found: dict[str, set[str]] = {sid: set() for sid in ids}
    names = tuple(dict.fromkeys(segment_names))
    if not names or not ids:
        return found
    query = _flags_query(names, segments=segments, dialect=_dialect(session))
    with as_of(now):
        for start in range(0, len(ids), BATCH):
            rows = session.connection().execute(query, {"ids": ids[start : start + BATCH]})
            for sid, *flags in rows:
                found[sid].update(name for name, flag in zip(names, flags, strict=True) if flag)
    return found


def _flags_query(
    names: tuple[str, ...], *, segments: Mapping[str, Segment], dialect: str
) -> Select[Any]:
    """SELECT id, flag per segment FROM subscriber WHERE id IN :ids (built once)."""

    def build() -> Select[Any]:
        flags = [
            case((membership(n, segments=segments, dialect=dialect), 1), else_=0).label(f"f{i}")
            for i, n in enumerate(names)
        ]
        return select(SUBSCRIBER.c.id, *flags).where(
            SUBSCRIBER.c.id.in_(bindparam("ids", expanding=True))
        )

    query: Select[Any] = built_once(segments, ("flags", names, dialect), build)
    return query


def overlap(
    session: Session,
    segment_names: Sequence[str],
    *,
    segments: Mapping[str, Segment],
    now: datetime,
) -> dict[tuple[str, str], int]:
    """Members in both segments for every ordered pair; (a, a) is the size of a.

    One scan: a MATERIALIZED CTE evaluates each rule once per active subscriber as a 0/1
    flag, and SUM(flag_a * flag_b) counts every pair.
    """
    names = list(dict.fromkeys(segment_names))
    compiler = Compiler(segments=segments, ops=json_ops(_dialect(session)))
    flag_cols = [
        case((compiler.segment(n), 1), else_=0).label(f"f{i}") for i, n in enumerate(names)
    ]
    flags = select(*flag_cols).where(SUBSCRIBER.c.status == "active").cte("flags")
    flags = flags.prefix_with(
        "MATERIALIZED"
    )  # PostgreSQL would otherwise inline each rule per pair
    pairs = [(i, j) for i in range(len(names)) for j in range(i, len(names))]
    counts: dict[tuple[str, str], int] = {}
    for start in range(0, len(pairs), MAX_PAIR_COLUMNS):
        chunk = pairs[start : start + MAX_PAIR_COLUMNS]
        sums = [func.coalesce(func.sum(flags.c[f"f{i}"] * flags.c[f"f{j}"]), 0) for i, j in chunk]
        with as_of(now):
            row = session.connection().execute(select(*sums)).one()
        for (i, j), count in zip(chunk, row, strict=True):
            counts[names[i], names[j]] = counts[names[j], names[i]] = int(count)
    return counts


# ---------------------------------------------------------------- export


def _json_cell(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def export(
    session: Session,
    segment_name: str,
    *,
    segments: Mapping[str, Segment],
    now: datetime,
    fmt: Literal["csv", "jsonl"],
    out: TextIO,
) -> int:
    """Write id, timezone, attributes, tags of each member (ordered by id); return the count.

    csv has a header row and JSON text in the attributes and tags cells; jsonl has one
    object per line. JSON keys are sorted so both databases give the same bytes.
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"export format is csv or jsonl, not {fmt!r}")
    where = membership(segment_name, segments=segments, dialect=_dialect(session))
    cols = SUBSCRIBER.c
    query = select(cols.id, cols.timezone, cols.attributes, cols.tags).where(where)
    query = query.order_by(cols.id).execution_options(yield_per=BATCH)
    writer = csv.writer(out, lineterminator="\n")
    if fmt == "csv":
        writer.writerow(["id", "timezone", "attributes", "tags"])
    count = 0
    with as_of(now):
        rows = list(session.connection().execute(query))
    for sid, timezone, attributes, tags in rows:
        if fmt == "csv":
            writer.writerow([sid, timezone, _json_cell(attributes), _json_cell(tags)])
        else:
            parts = (_json_cell(v) for v in (sid, timezone, attributes, tags))
            keys = ("id", "timezone", "attributes", "tags")
            out.write(
                "{" + ",".join(f'"{k}":{p}' for k, p in zip(keys, parts, strict=True)) + "}\n"
            )
        count += 1
    return count
