"""SQLite's hot statements through the driver, with values bound and read back exactly as
SQLAlchemy binds and reads them (docs/benchmarks.md: a compiled statement's per-row
bind and result processing cost several times SQLite's own work).

Only the simple column types are handled here (times, JSON, booleans, numbers, strings);
a table with any other type keeps SQLAlchemy's statement. `tests/store/test_repo.py` compares
what both paths store and read.
"""

from __future__ import annotations

import json
import sqlite3
from collections import namedtuple
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Integer, String
from sqlalchemy.exc import DBAPIError
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


_SHAPES: dict[tuple[str, tuple[str, ...]], tuple[Any, list[tuple[int, Any]]]] = {}


def _shape(table: Any, columns: Sequence[str]) -> tuple[Any, list[tuple[int, Any]]]:
    """The row type (answers like SQLAlchemy's rows: by attribute and by `_mapping`) and
    the (position, reader) of each column that is not read as stored."""
    key = (table.name, tuple(columns))
    hit = _SHAPES.get(key)
    if hit is None:
        base = namedtuple(f"{table.name}_row", columns)  # type: ignore[misc]
        body = {"__slots__": (), "_mapping": property(_as_mapping)}
        row_type = type(f"{table.name}_plain_row", (base,), body)
        readers = [(i, r) for i, c in enumerate(columns) if (r := _reader(table.c[c].type))]
        hit = _SHAPES[key] = (row_type, readers)
    return hit


def select(
    connection: Connection,
    table: Any,
    columns: Sequence[str] | None,
    tail: str,
    params: Sequence[Any],
) -> list[Any]:
    """`SELECT columns FROM table tail` (None: every column; tail: WHERE/ORDER/LIMIT with `?`
    placeholders, its values already bound with `bind_time` where they are times), read as
    SQLAlchemy reads."""
    if columns is None:
        columns = [c.name for c in table.columns]
    row_type, readers = _shape(table, columns)
    sql = f"SELECT {', '.join(columns)} FROM {table.name} {tail}"
    out = []
    for raw in execute(connection, sql, params):
        values = list(raw)
        for i, read in readers:
            values[i] = read(values[i])
        out.append(row_type._make(values))
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


def select_in(
    connection: Connection,
    table: Any,
    columns: Sequence[str] | None,
    key: str,
    values: Sequence[Any],
    *,
    also: str = "",
    params: Sequence[Any] = (),
    order: str = "",
) -> list[Any]:
    """`SELECT columns FROM table WHERE key IN values [AND also] [ORDER BY order]`, in as
    many statements as SQLite's variable limit needs (`order` holds within each; callers
    group rows by `key`, so each key's rows keep it)."""
    out: list[Any] = []
    per_statement = VARIABLES - len(params)
    for i in range(0, len(values), per_statement):
        chunk = values[i : i + per_statement]
        tail = f"WHERE {key} IN ({placeholders(len(chunk))})"
        tail += f" AND {also}" if also else ""
        tail += f" ORDER BY {order}" if order else ""
        out.extend(select(connection, table, columns, tail, (*chunk, *params)))
    return out
