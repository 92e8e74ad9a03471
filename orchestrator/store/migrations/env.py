"""Alembic environment: runs against the connection the caller passes in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from orchestrator.store import models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        engine = create_engine(
            context.config.get_main_option("sqlalchemy.url") or "sqlite:///campaign.db"
        )
        with engine.begin() as conn:
            _migrate(conn)
        return
    _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
