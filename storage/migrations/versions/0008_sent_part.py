"""Parts of a delivery already posted (a long digest is several messages), with the destination's message id.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sent_part",
        sa.Column("delivery", sa.String(length=300), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("remote_id", sa.String(length=100), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery", "part"),
    )


def downgrade() -> None:
    op.drop_table("sent_part")
