"""send timing and local_slot: the send-time optimiser's arm and the local hour of a send

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05

`timing` is the arm of a send whose node has `send_time: best` (`best`, `explore`,
`immediate`; empty otherwise): the dashboard's lift compares `best` with `immediate`.
`local_slot` is the hour of the week in the subscriber's timezone when the send was
claimed (0 = Monday 00:00-00:59, 167 = Sunday 23:00-23:59): what the optimiser learns
from, grouped in SQL without timezone arithmetic.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("timing", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.add_column(sa.Column("local_slot", sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("send", schema=None) as batch_op:
        batch_op.drop_column("local_slot")
        batch_op.drop_column("timing")
