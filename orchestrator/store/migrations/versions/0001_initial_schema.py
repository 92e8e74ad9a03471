"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "source",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign", "content_hash"),
    )
    with op.batch_alter_table("campaign_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_campaign_version_campaign"), ["campaign"], unique=False
        )

    op.create_table(
        "cursor",
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("subcampaign", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "subcampaign"),
    )
    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("send_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index("ix_event_name_id", ["name", "id"], unique=False)
        batch_op.create_index("ix_event_subscriber_at", ["subscriber_id", "at"], unique=False)

    op.create_table(
        "setting",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "subscriber",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("paused_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "journey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("subcampaign", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("subscriber_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("phase", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("due_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("entered_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("exit_reason", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("followups", sa.Integer(), nullable=False),
        sa.Column("pending_followup", sa.Boolean(), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("last_send_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_send_id", sa.Integer(), nullable=True),
        sa.Column("arm", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("seen_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("trigger_event_id", sa.Integer(), nullable=True),
        sa.Column(
            "trigger",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["campaign_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("journey", schema=None) as batch_op:
        batch_op.create_index("ix_journey_due", ["campaign", "due_at"], unique=False)
        batch_op.create_index("ix_journey_subscriber", ["subscriber_id", "campaign"], unique=False)
        batch_op.create_index(
            "uq_journey_active",
            ["campaign", "subscriber_id"],
            unique=True,
            sqlite_where=sa.text("phase != 'ended'"),
            postgresql_where=sa.text("phase != 'ended'"),
        )

    op.create_table(
        "push_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column("p256dh", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("auth", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint"),
    )
    with op.batch_alter_table("push_subscription", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_subscription_subscriber_id"), ["subscriber_id"], unique=False
        )

    op.create_table(
        "send",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("campaign", sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("subscriber_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journey.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("journey_id", "step"),
    )
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.create_index("ix_send_campaign_node", ["campaign", "node"], unique=False)
        batch_op.create_index(
            "ix_send_subscriber_claimed", ["subscriber_id", "claimed_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.drop_index("ix_send_subscriber_claimed")
        batch_op.drop_index("ix_send_campaign_node")

    op.drop_table("send")
    with op.batch_alter_table("push_subscription", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_subscription_subscriber_id"))

    op.drop_table("push_subscription")
    with op.batch_alter_table("journey", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_journey_active",
            sqlite_where=sa.text("phase != 'ended'"),
            postgresql_where=sa.text("phase != 'ended'"),
        )
        batch_op.drop_index("ix_journey_subscriber")
        batch_op.drop_index("ix_journey_due")

    op.drop_table("journey")
    op.drop_table("subscriber")
    op.drop_table("setting")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_subscriber_at")
        batch_op.drop_index("ix_event_name_id")

    op.drop_table("event")
    op.drop_table("cursor")
    with op.batch_alter_table("campaign_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_version_campaign"))

    op.drop_table("campaign_version")
