"""Spent proof-of-work solutions: one solution opens one recovery case over the rate limit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

`spent_challenge` keeps each solution's challenge until it expires (`reclaim.recovery.ledger`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spent_challenge",
        sa.Column("challenge", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("challenge"),
    )
    op.create_index("ix_spent_challenge_expires_at", "spent_challenge", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_spent_challenge_expires_at", table_name="spent_challenge")
    op.drop_table("spent_challenge")
