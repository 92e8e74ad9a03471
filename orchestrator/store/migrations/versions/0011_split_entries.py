"""split_entry: each journey's entry into an arm of a split node, the unit of an experiment

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

One row per journey that a split node routes: which split, which arm, when, and until
when a goal event still counts for it (`horizon_end`: the entry plus the campaign's
horizon, fixed when written, so the experiment's query needs no time arithmetic).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "split_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("split", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("arm", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("subscriber_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("entered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("horizon_end", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_split_entry_split", "split_entry", ["campaign", "split", "arm"])


def downgrade() -> None:
    op.drop_index("ix_split_entry_split", table_name="split_entry")
    op.drop_table("split_entry")
