"""What every query module shares: the dialect, the core connection, bulk writes by id, time normalisation, settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from orchestrator.store import plain
from orchestrator.store.models import (
    Setting,
)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def core(session: Session) -> Connection:
    """The session's connection, in its transaction: hot statements run at the Core level,
    without the ORM's per-statement and per-row machinery."""
    return session.connection()


def dialect_insert(session: Session, table: Any) -> Any:
    return pg_insert(table) if dialect(session) == "postgresql" else sqlite_insert(table)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they are UTC."""
    return None if moment is None else utc(moment)


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


IN_CHUNK = 10_000  # values per expanding IN list elsewhere than SQLite


def fetch(session: Session, stmt: Any, *, chunk: str | None = None, **params: Any) -> list[Any]:
    """The rows of `stmt`, a statement built once with bind parameters (`bindparam`, and
    `bindparam(..., expanding=True)` for IN lists), given their values.

    This is the store's one dialect seam for reading: each query is written once, in
    SQLAlchemy. On SQLite it runs through `plain` (compiled once, values bound and read
    as SQLAlchemy would, on the driver directly: a compiled statement's per-row
    processing costs several times SQLite's own work); elsewhere through SQLAlchemy
    Core. `chunk` names an expanding parameter whose values are split over as many
    statements as the database's bound-value limit needs; rows keep `stmt`'s order
    within each statement."""
    connection = core(session)
    found = plain.plan(connection, stmt) if dialect(session) == "sqlite" else None
    if chunk is None:
        if found is not None:
            return plain.run(connection, found, params)
        return list(connection.execute(stmt, params))
    values = list(params.pop(chunk))
    # room for the other values, and for the statement's own constant ones
    others = sum(len(v) if isinstance(v, list | tuple) else 1 for v in params.values()) + 64
    size = plain.VARIABLES - others if found is not None else IN_CHUNK
    out: list[Any] = []
    for i in range(0, len(values), size):
        part = {**params, chunk: values[i : i + size]}
        if found is not None:
            out.extend(plain.run(connection, found, part))
        else:
            out.extend(connection.execute(stmt, part))
    return out


def update_by_id(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE … WHERE id = :id for many rows, as plain executemany (no ORM bookkeeping)."""
    table = model.__table__
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:  # rows built alike list their keys alike: no sorting needed
        groups.setdefault(tuple(k for k in row if k != "id"), []).append(row)
    sqlite = dialect(session) == "sqlite"
    for keys, group in groups.items():
        binders = plain.binders(table, (*keys, "id")) if sqlite else None
        if binders is not None:
            # the driver's executemany with values as SQLAlchemy would bind them: no
            # per-row bind processing of a compiled statement (see `plain`)
            sql = f"UPDATE {table.name} SET {', '.join(f'{k} = ?' for k in keys)} WHERE id = ?"
            plain.executemany(core(session), sql, plain.bind_rows(binders, (*keys, "id"), group))
            continue
        stmt = (
            table.update()
            .where(table.c.id == bindparam("_id"))
            .values({k: bindparam(k) for k in keys})
        )
        core(session).execute(stmt, [{"_id": r["id"], **{k: r[k] for k in keys}} for r in group])


def insert_returning(
    session: Session, model: Any, rows: Sequence[dict[str, Any]], returning: Sequence[str]
) -> list[tuple[Any, ...]]:
    """INSERT many rows (same keys) and return `returning` of each, in no particular order.

    On SQLite a multi-row VALUES … RETURNING through the driver, with values bound as
    SQLAlchemy would bind them (see `plain`); elsewhere SQLAlchemy's own."""
    if not rows:
        return []
    table = model.__table__
    keys = list(rows[0])
    binders = plain.binders(table, keys) if dialect(session) == "sqlite" else None
    if binders is None:
        stmt = insert(table).returning(*(table.c[name] for name in returning))
        return [tuple(r) for r in core(session).execute(stmt, list(rows))]
    out: list[tuple[Any, ...]] = []
    per_statement = plain.VARIABLES // len(keys)
    one = f"({', '.join('?' * len(keys))})"
    for i in range(0, len(rows), per_statement):
        chunk = rows[i : i + per_statement]
        sql = (
            f"INSERT INTO {table.name} ({', '.join(keys)}) VALUES "
            f"{', '.join([one] * len(chunk))} RETURNING {', '.join(returning)}"
        )
        values = [v for bound in plain.bind_rows(binders, keys, chunk) for v in bound]
        out.extend(tuple(r) for r in plain.execute(core(session), sql, values))
    return out


def setting_once(session: Session, key: str, value: str) -> str:
    """The stored value of `key`, storing `value` first if there is none (race-free)."""
    stmt = dialect_insert(session, Setting).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
    stored = session.execute(select(col(Setting.value)).where(col(Setting.key) == key)).scalar_one()
    return str(stored)


def setting(session: Session, key: str) -> str | None:
    stored = session.execute(select(col(Setting.value)).where(col(Setting.key) == key))
    value = stored.scalar_one_or_none()
    return None if value is None else str(value)


def put_setting(session: Session, key: str, value: str) -> None:
    stmt = dialect_insert(session, Setting).values(key=key, value=value)
    session.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def insert_ignoring(session: Session, table: Any) -> Any:
    """INSERT that skips rows violating a unique index (e.g. a second active journey)."""
    return dialect_insert(session, table).on_conflict_do_nothing()
