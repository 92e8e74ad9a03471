"""send retries: stored payload, attempt count, retry_at

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

A claimed send carries its payload and a `retry_at`: if the process dies
between claim and outcome, or the push service answers 5xx/429, a later tick
sends the very same message again (same Topic), until it is delivered or the
attempts run out.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("retry_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_send_retry", ["campaign", "retry_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.drop_index("ix_send_retry")
        batch_op.drop_column("retry_at")
        batch_op.drop_column("attempts")
        batch_op.drop_column("payload")
