"""event (name, at) index: the next trigger event after a moment is one index probe

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26

`campaign simulate` and `campaign demo` jump their virtual clock to the next
moment anything is due, which includes the next trigger event after `now`:
`min(at) WHERE name IN (…) AND at > now`. With only (name, id) that read every
later event of those names at every virtual tick.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_event_name_at", "event", ["name", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_event_name_at", table_name="event")
