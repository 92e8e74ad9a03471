"""campaign_action: pause, resume and stop of a whole campaign, with who, when and why

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

The latest action of a campaign is its state: paused (no enrolment, no sends; its
journeys keep their place), stopped (its journeys ended, reason `stopped`) or, after a
resume or with no action at all, running.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_action",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    )
    op.create_index("ix_campaign_action_latest", "campaign_action", ["campaign", "id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_action_latest", table_name="campaign_action")
    op.drop_table("campaign_action")
