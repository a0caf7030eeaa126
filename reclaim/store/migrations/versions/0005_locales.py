"""The language of each recovery case and support claim, for their mail and SMS.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Rows written before have none: their messages are in RECLAIM_DEFAULT_LOCALE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("recovery_case", sa.Column("locale", sa.String(8), nullable=True))
    op.add_column("support_claim", sa.Column("locale", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("support_claim") as batch:
        batch.drop_column("locale")
    with op.batch_alter_table("recovery_case") as batch:
        batch.drop_column("locale")
