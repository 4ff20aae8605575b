"""Newsletter letters: one row per (message, subscriber).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DUE = "state IN ('pending', 'deferred')"
HELD = "state = 'sending'"


def upgrade() -> None:
    op.create_table(
        "letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=120), nullable=False),
        sa.Column("subscriber_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "subscriber_key", name="uq_letter_message_subscriber"),
    )
    op.create_index(
        "ix_letter_due_at",
        "letter",
        ["next_attempt_at", "id"],
        sqlite_where=sa.text(DUE),
        postgresql_where=sa.text(DUE),
    )
    op.create_index("ix_letter_message_state", "letter", ["message_id", "state"])
    op.create_index(
        "ix_letter_held", "letter", ["claimed_at"], sqlite_where=sa.text(HELD), postgresql_where=sa.text(HELD)
    )


def downgrade() -> None:
    op.drop_index("ix_letter_held", table_name="letter")
    op.drop_index("ix_letter_message_state", table_name="letter")
    op.drop_index("ix_letter_due_at", table_name="letter")
    op.drop_table("letter")
