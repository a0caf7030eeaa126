"""Which second factor a completed recovery proved.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

`recovery_case.second_factor`: `totp` or `recovery_code` when the account had a second factor
and the case proved it before the new password (the console's case file names it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recovery_case") as batch:
        batch.add_column(sa.Column("second_factor", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recovery_case") as batch:
        batch.drop_column("second_factor")
