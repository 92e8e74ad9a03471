"""subscriber.token_version (revocable profile links); event.client_id (idempotent events)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

A profile link names the token version it was made for; raising the version
revokes every link made before. An event may carry its sender's id: a repeat of
the same id for the same subscriber is stored once (and a click link replayed
records one click).
"""

from __future__ import annotations

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


def downgrade() -> None:
    op.drop_index("uq_event_client_id", table_name="event")
    with op.batch_alter_table("event") as batch:
        batch.drop_column("client_id")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("token_version")
