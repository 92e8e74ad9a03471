"""subscriber.token_version (revocable profile links); event.client_id (idempotent events)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

A profile link names the token version it was made for; raising the version
revokes every link made before. An event may carry its sender's id: a repeat of
the same id for the same subscriber is stored once (and a click link replayed
records one click).

On SQLite, JSON values holding NaN or Infinity (which its JSON functions refuse,
failing every query over the row) are rewritten with null in their place.
PostgreSQL's jsonb never held them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(
            sa.Column("token_version", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("event") as batch:
        batch.add_column(
            sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
    op.create_index("uq_event_client_id", "event", ["subscriber_id", "client_id"], unique=True)
    _heal_sqlite_json()


JSON_COLUMNS = (
    ("subscriber", "attributes"),
    ("subscriber", "tags"),
    ("event", "properties"),
    ("journey", "trigger"),
)


def _heal_sqlite_json() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table, column in JSON_COLUMNS:
        rows = bind.execute(
            sa.text(
                f"SELECT rowid, {column} FROM {table} "
                f"WHERE {column} IS NOT NULL AND json_valid({column}) = 0"
            )
        ).all()
        for rowid, text in rows:
            try:
                value = json.loads(text)
            except ValueError:
                continue  # not JSON at all: left as it is, for the operator to see
            bind.execute(
                sa.text(f"UPDATE {table} SET {column} = :value WHERE rowid = :rowid"),
                {"value": json.dumps(_finite(value), allow_nan=False), "rowid": rowid},
            )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def downgrade() -> None:
    op.drop_index("uq_event_client_id", table_name="event")
    with op.batch_alter_table("event") as batch:
        batch.drop_column("client_id")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("token_version")
