"""One "no account here" notice per address and interval, across processes and restarts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

`no_account_notice` keeps, under a keyed digest of the address as its mail provider reads it,
when it was last told that no account uses it and by which case (`reclaim.recovery.ledger`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "no_account_notice",
        sa.Column("address_digest", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address_digest"),
    )
    op.create_index("ix_no_account_notice_sent_at", "no_account_notice", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_no_account_notice_sent_at", table_name="no_account_notice")
    op.drop_table("no_account_notice")
