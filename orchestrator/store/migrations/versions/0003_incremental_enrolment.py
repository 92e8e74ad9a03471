"""incremental segment enrolment: enrol_mark and an index on subscriber.updated_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enrol_mark",
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("subcampaign", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("full_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("subscribers_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "subcampaign"),
    )
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriber_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_updated_at"))
    op.drop_table("enrol_mark")
