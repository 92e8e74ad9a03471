"""Database connection: SQLite (WAL) by default, PostgreSQL for production."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from sqlalchemy import Row, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine

from orchestrator.errors import CampaignError
from orchestrator.store import (
    models,  # noqa: F401  (registers the tables)
    plain,
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, durable: bool = True) -> None:
    # Let SQLAlchemy, not the driver, start transactions, so they can be BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # a throw-away database keeps its rollback journal in memory: a crash loses nothing
    # that matters, and a commit writes the pages once instead of to the WAL and back
    cursor.execute("PRAGMA journal_mode=WAL" if durable else "PRAGMA journal_mode=MEMORY")
    # a throw-away database (the simulator's) need not survive a power cut
    cursor.execute("PRAGMA synchronous=NORMAL" if durable else "PRAGMA synchronous=OFF")
    # 64 MiB of page cache (SQLite's default is 2 MiB): with a million journeys the
    # indexes an enrolment or a tick touches no longer fit the default
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    if not durable:
        cursor.execute("PRAGMA locking_mode=EXCLUSIVE")  # one connection (see make_engine)
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """Every SQLite transaction takes the write lock up front: two ticks claiming due
    journeys queue up instead of both reading the same rows (SQLite's stand-in for
    PostgreSQL's FOR UPDATE SKIP LOCKED). Readers are not blocked (WAL).

    Sent through the driver (errors still come back as SQLAlchemy's): every session
    begins, and a statement's execution context costs more than the BEGIN itself."""
    plain.execute(connection, "BEGIN IMMEDIATE", ())


class UnstorableValue(CampaignError, ValueError):
    """A value a JSON column cannot hold (NaN, Infinity, something not JSON at all)."""


def _json(value: Any) -> str:
    """JSON for a column, strictly: NaN and Infinity are not JSON, SQLite's JSON functions
    and PostgreSQL's jsonb refuse a document holding them, so writing one would poison
    every later query over its row."""
    try:
        return json.dumps(value, allow_nan=False)
    except (ValueError, TypeError) as exc:
        raise UnstorableValue(f"not storable as JSON: {exc}") from None


def make_engine(url: str, *, durable: bool = True) -> Engine:
    """`durable=False` is for throw-away databases (the simulator's, used by one thread):
    SQLite does not sync to disk, and one connection holds its lock for good instead of
    taking and dropping it around every transaction. JSON columns are written strictly
    (no NaN or Infinity)."""
    if url.startswith("sqlite"):
        pool: dict[str, Any] = {} if durable else {"poolclass": StaticPool}
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, json_serializer=_json, **pool
        )
        event.listen(engine, "connect", partial(_sqlite_pragmas, durable=durable))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=_json)


def create_all(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


def session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


# The types the layers above name in signatures (they import no SQLAlchemy themselves).
__all__ = ["Engine", "Row", "Session", "UnstorableValue", "create_all", "make_engine", "session"]
