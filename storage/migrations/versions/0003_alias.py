"""Aliases: an old permaslug linked to its new name after a rename.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alias",
        sa.Column("old_permaslug", sa.String(length=255), nullable=False),
        sa.Column("new_permaslug", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("old_permaslug"),
    )


def downgrade() -> None:
    op.drop_table("alias")
