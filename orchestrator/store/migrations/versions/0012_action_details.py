"""campaign_action.details: what an action of a kind records beyond who, when and why

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

A promotion (`campaign experiment promote`) keeps the split, the arm it promoted and the
experiment's figures at that moment here, as JSON: more than `reason` (the author's own
words, at most 1,000 characters) can hold. Pause, resume and stop leave it empty.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaign_action", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "details",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_action", schema=None) as batch_op:
        batch_op.drop_column("details")
