"""An approved claim's contact replacement waits out the hold of the recovery it opens.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

`recovery_case.handover_email` is the claim's verified address, where that case's code goes and
which replaces the account's contacts when its new password takes effect (wiped when the case
closes); `recovery_case.handover_claim` is the claim.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recovery_case") as batch:
        batch.add_column(sa.Column("handover_email", sa.String(254), nullable=True))
        batch.add_column(sa.Column("handover_claim", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recovery_case") as batch:
        batch.drop_column("handover_claim")
        batch.drop_column("handover_email")
