"""trigger_mark: trigger events beyond the cursor that it cannot simply pass

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

The trigger cursor is an event id. It no longer passes an event dated later than
the tick (enrolled once due, even after later-stored events were read) nor
events stored in the last minute (on PostgreSQL an event with a smaller id may
still be committing); the events it has handled beyond itself are marked so a
later read skips them.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trigger_mark",
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("subcampaign", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "subcampaign", "event_id"),
    )
    op.create_index(
        "ix_trigger_mark_due",
        "trigger_mark",
        ["campaign", "subcampaign", "handled", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_trigger_mark_due", table_name="trigger_mark")
    op.drop_table("trigger_mark")
