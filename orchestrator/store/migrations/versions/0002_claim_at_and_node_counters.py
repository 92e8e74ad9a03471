"""claim_at (events wake journeys early) and per-node counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

`due_at` stays the engine's schedule; `claim_at` is what a tick scans, so an
event can make a journey due before its schedule without changing it. Existing
journeys get `claim_at = due_at`.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journey", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claim_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.execute("UPDATE journey SET claim_at = due_at")
    with op.batch_alter_table("journey", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_due")
        batch_op.create_index("ix_journey_claim", ["campaign", "claim_at"], unique=False)
    op.create_table(
        "node_stat",
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("metric", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "node", "metric"),
    )


def downgrade() -> None:
    op.drop_table("node_stat")
    with op.batch_alter_table("journey", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_claim")
        batch_op.create_index("ix_journey_due", ["campaign", "due_at"], unique=False)
        batch_op.drop_column("claim_at")
