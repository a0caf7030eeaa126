"""Delivery failures and claim escalations, for the metrics.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

`notification.failures` counts the attempts a mail server or SMS provider refused or never
answered; `support_claim.escalated_at` is when a claim first missed a deadline.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows start at 0 failures; the model gives new rows their 0.
    op.add_column(
        "notification",
        sa.Column("failures", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column(
        "support_claim", sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("support_claim") as table:
        table.drop_column("escalated_at")
    with op.batch_alter_table("notification") as table:
        table.drop_column("failures")
