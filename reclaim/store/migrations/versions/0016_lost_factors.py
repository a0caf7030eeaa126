"""The second factors an approved lost-authenticator claim removes.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08

`recovery_case.remove_factors`: for the case an approved lost-authenticator claim opens, the
factors removed when its held new password takes effect (kinds and passkey keys, no secret).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recovery_case") as batch:
        batch.add_column(sa.Column("remove_factors", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recovery_case") as batch:
        batch.drop_column("remove_factors")
