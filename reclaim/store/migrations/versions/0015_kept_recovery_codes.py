"""Recovery codes Reclaim keeps for the accounts of an outside directory.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08

`kept_recovery_code` keeps, as keyed digests, the recovery codes of accounts an LDAP server
(or a host application that cannot verify factors) marks as bound to a second factor
(`reclaim.directory.kept_codes`): when each was used, by which case, and how many were left.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kept_recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_case", sa.String(length=40), nullable=True),
        sa.Column("left_after", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["directory_link.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "digest"),
    )
    op.create_index(op.f("ix_kept_recovery_code_account_id"), "kept_recovery_code", ["account_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_kept_recovery_code_account_id"), table_name="kept_recovery_code")
    op.drop_table("kept_recovery_code")
