"""A refused form's problem and typed values, kept for the page the browser is sent to next.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

`page_flash` keeps, sealed for one page, what a refused form showed (its problem and what
was typed, never a password or a code) for minutes, until that page reads it once
(`reclaim.store.flash`): the pages answer every post with a redirect.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "page_flash",
        sa.Column("flash_id", sa.String(32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("flash_id"),
    )
    op.create_index("ix_page_flash_expires_at", "page_flash", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_page_flash_expires_at", table_name="page_flash")
    op.drop_table("page_flash")
