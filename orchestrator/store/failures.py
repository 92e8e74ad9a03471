"""What a database failure is, for the layers above the store (which do not import SQLAlchemy).

- *unavailable*: the database as a whole failed (connection lost, server down, a locked
  SQLite file): nobody's records are at fault; try again later;
- *refused*: the database refused these records (a value it cannot store, a constraint);
- *conflict*: another writer took a unique key meanwhile;
- any other database error: neither of these, still the database's.
"""

from __future__ import annotations

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)

from orchestrator.store.db import UnstorableValue

# the driver's errors as SQLAlchemy wraps them: what a caller catches to retry a batch row by row
DatabaseError = DBAPIError
# the exception classes that mean "unavailable" (for frameworks that register handlers by class)
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DisconnectionError)


def is_database_error(exc: BaseException) -> bool:
    """An error the database (or its driver) raised: StatementError covers DBAPIError."""
    return isinstance(exc, StatementError | DisconnectionError)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def is_refused(exc: BaseException) -> bool:
    return not is_unavailable(exc) and isinstance(exc, StatementError | UnstorableValue)


def is_conflict(exc: BaseException) -> bool:
    """A unique key another writer took meanwhile (reading again finds its row)."""
    return isinstance(exc, IntegrityError)


def reason(exc: BaseException) -> str:
    """The database's own first line of the error (bounded), else the error's type."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
