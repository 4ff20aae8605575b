"""Outbox health: each destination's run of failed tries (for /healthz), and partial indexes for claiming due rows in
order without sorting the backlog, for finding the rows a worker holds, and for each destination's last delivery.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DUE = sa.text("state IN ('pending', 'failed')")
HELD = sa.text("state = 'sending'")
SENT = sa.text("state = 'sent'")


def upgrade() -> None:
    with op.batch_alter_table("destination") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_error", sa.String(), nullable=True))
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.create_index("ix_outbox_due_at", "outbox", ["next_attempt_at", "id"], sqlite_where=DUE, postgresql_where=DUE)
    op.create_index("ix_outbox_held", "outbox", ["claimed_by"], sqlite_where=HELD, postgresql_where=HELD)
    op.create_index("ix_outbox_sent", "outbox", ["destination", "sent_at"], sqlite_where=SENT, postgresql_where=SENT)


def downgrade() -> None:
    op.drop_index("ix_outbox_sent", table_name="outbox")
    op.drop_index("ix_outbox_held", table_name="outbox")
    op.drop_index("ix_outbox_due_at", table_name="outbox")
    op.create_index("ix_outbox_due", "outbox", ["state", "next_attempt_at"])
    with op.batch_alter_table("destination") as batch:
        batch.drop_column("last_error")
        batch.drop_column("failing_since")
        batch.drop_column("failures")
