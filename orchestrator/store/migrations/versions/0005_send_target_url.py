"""send target_url and converted_at: where a click leads, and which send converted

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26

The notification carries our signed click link (`/c/{token}`); the rendered
`url` of the node it stands for is kept on the ledger row, so `/c/{token}`
redirects exactly where the campaign said, and nowhere a request can choose.
`converted_at` marks the send a conversion is credited to (the dashboard's
conversion rate over time and per A/B arm).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("target_url", sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=True)
        )
        batch_op.add_column(
            sa.Column("converted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.drop_column("converted_at")
        batch_op.drop_column("target_url")
