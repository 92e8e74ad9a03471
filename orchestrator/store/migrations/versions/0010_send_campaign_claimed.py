"""ix_send_campaign_claimed: a rate limit's sliding window over the sends ledger

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

A throttled claim counts the sends its campaign (or, for the installation's limit, each
campaign) claimed in the last minute: one range scan of (campaign, claimed_at). Without
it the count reads every send the campaign ever made (`ix_send_campaign_node` narrows by
campaign only), once per claim.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_send_campaign_claimed", "send", ["campaign", "claimed_at"])


def downgrade() -> None:
    op.drop_index("ix_send_campaign_claimed", table_name="send")
