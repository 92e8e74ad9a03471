"""SQLite's fast path: statements run on the driver itself, with values bound and read
back exactly as SQLAlchemy binds and reads them (a compiled statement's per-row bind and
result processing costs several times SQLite's own work).

`plan` compiles a SQLAlchemy statement once; `run` executes it with parameter values;
`repo.fetch` is the one place that chooses this path (on SQLite) or SQLAlchemy's own
(elsewhere), so each query is written once. The bulk writes (`repo.update_by_id`,
`repo.insert_returning`) bind rows here too. Only the simple column types are handled
(times, JSON read back, booleans, numbers, strings); a statement with any other type
keeps SQLAlchemy's execution. `tests/store/test_repo.py` compares what both paths store
and read.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Integer, String
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.sqltypes import NullType
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

VARIABLES = 32766  # bound values per statement (SQLite ≥ 3.32)


def _same(value: Any) -> Any:
    return value


_BOUND: dict[datetime, str] = {}  # moments bound lately (a batch repeats a few many times)
_BOUND_MAX = 8192  # more would only hold memory


def bind_time(value: datetime | None) -> str | None:
    """What sqlmodel's UTCDateTime binds on SQLite: the moment in UTC, in SQLAlchemy's
    DATETIME storage format; naive datetimes are refused as it refuses them (a naive
    datetime never equals an aware one, so the cache cannot answer for it)."""
    if value is None:
        return None
    text = _BOUND.get(value)
    if text is not None:
        return text
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"an aware datetime was expected, not {value!r}")
    text = value.astimezone(UTC).isoformat(" ", "microseconds")[:26]
    if len(_BOUND) >= _BOUND_MAX:
        _BOUND.clear()
    _BOUND[value] = text
    return text


def _read_time(text: str | None) -> datetime | None:
    """SQLAlchemy's DATETIME storage format back to an aware moment in UTC."""
    if text is None:
        return None
    try:  # the stored form has no offset: it is UTC (and parsing it with one is the fast way)
        return datetime.fromisoformat(text + "+00:00")
    except ValueError:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _read_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _read_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def binders(table: Any, keys: Sequence[str]) -> list[Any] | None:
    """Per column, how SQLAlchemy would bind a value on SQLite; None when a column's type is
    not one of the simple ones (JSON and the like keep the compiled statement)."""
    out: list[Any] = []
    for key in keys:
        kind = table.c[key].type
        if isinstance(kind, UTCDateTime):
            out.append(bind_time)
        elif isinstance(kind, AutoString | Integer | String | Boolean):
            out.append(_same)
        else:
            return None
    return out


def bind_rows(
    binders: Sequence[Any], keys: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """Each row's values in `keys` order, bound by `binders` (from `binders(table, keys)`)."""
    times = [i for i, f in enumerate(binders) if f is bind_time]
    out = []
    for row in rows:
        values = [row[k] for k in keys]
        for i in times:
            values[i] = bind_time(values[i])
        out.append(tuple(values))
    return out


def _reader(kind: Any) -> Any:
    if isinstance(kind, UTCDateTime):
        return _read_time
    if isinstance(kind, Boolean):
        return _read_bool
    if isinstance(kind, AutoString | Integer | String):
        return None  # as stored
    if isinstance(kind, JSON) or isinstance(getattr(kind, "impl", None), JSON):
        return _read_json
    raise TypeError(f"no plain reader for {kind!r}")


def _as_mapping(row: Any) -> dict[str, Any]:
    return dict(zip(row._fields, row, strict=True))


@dataclass(frozen=True)
class Plan:
    """A statement compiled once for SQLite: its SQL in pieces around the expanding (IN)
    parameters, how each parameter is bound, and how each result column is read."""

    pieces: tuple[str, ...]  # the SQL, split at each expanding parameter
    slots: tuple[tuple[str, Any, bool, Any], ...]  # name, binder, expanding, constant value
    row_type: Any
    readers: tuple[tuple[int, Any], ...]  # (position, reader) of columns not read as stored


_PLANS: dict[Any, Plan | None] = {}
_UNSET = object()


def plan(connection: Connection, stmt: Any) -> Plan | None:
    """The statement's plan (compiled once per statement object: statements run through
    here are built once, with bind parameters); None when a parameter or column has a
    type this module does not bind or read as SQLAlchemy does."""
    if stmt in _PLANS:
        return _PLANS[stmt]
    compiled = stmt.compile(dialect=connection.dialect)
    try:
        slots = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            binder = _binder(bind.type)
            constant = bind.value if bind.value is not None or bind.callable else _UNSET
            slots.append((name, binder, bool(bind.expanding), constant))
        columns = list(stmt.selected_columns)
        # the names SQLAlchemy's rows give (an unlabelled aggregate is `max_1`, …)
        names = [keyname for keyname, *_ in compiled._result_columns]
        base = namedtuple("plain_row", names, rename=True)  # type: ignore[misc]
        row_type = type("plain_row", (base,), {"__slots__": (), "_mapping": property(_as_mapping)})
        readers = tuple((i, r) for i, c in enumerate(columns) if (r := _reader(c.type)))
    except TypeError:
        _PLANS[stmt] = None
        return None
    pieces = re.split(r"\(__\[POSTCOMPILE_\w+\]\)", compiled.string)
    found = _PLANS[stmt] = Plan(tuple(pieces), tuple(slots), row_type, readers)
    return found


def _binder(kind: Any) -> Any:
    if isinstance(kind, UTCDateTime):
        return bind_time
    if isinstance(kind, AutoString | Integer | String | Boolean | NullType):
        return None  # bound as given
    raise TypeError(f"no plain binder for {kind!r}")


def run(connection: Connection, found: Plan, params: Mapping[str, Any]) -> list[Any]:
    """Execute a plan with these parameter values (a list for each expanding one), read as
    SQLAlchemy reads."""
    sql: list[str] = [found.pieces[0]]
    values: list[Any] = []
    piece = 1
    for name, binder, expanding, constant in found.slots:
        value = params[name] if constant is _UNSET else constant
        if expanding:
            items = list(value)
            if binder is not None:
                items = [binder(v) for v in items]
            values.extend(items)
            sql.append(f"({placeholders(len(items))})" if items else "(NULL)")
            sql.append(found.pieces[piece])
            piece += 1
        else:
            values.append(binder(value) if binder is not None else value)
    out = []
    for raw in execute(connection, "".join(sql), values):
        row = list(raw)
        for i, read in found.readers:
            row[i] = read(row[i])
        out.append(found.row_type._make(row))
    return out


def execute(connection: Connection, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
    """Run one statement on the connection's own sqlite3 connection, inside the transaction
    SQLAlchemy holds (no execution context: tens of microseconds less per statement);
    errors come back as SQLAlchemy's, as from any other statement."""
    try:
        return _driver(connection).execute(sql, tuple(params))
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc


def executemany(connection: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    try:
        _driver(connection).executemany(sql, rows)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, rows, exc, sqlite3.Error) from exc


def _driver(connection: Connection) -> sqlite3.Connection:
    raw = connection.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


def placeholders(count: int) -> str:
    return ", ".join("?" * count)
