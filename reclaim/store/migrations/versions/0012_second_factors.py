"""Second factors in the built-in directory: a sealed TOTP secret, recovery codes, TOTP steps.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

`account_totp` keeps an account's TOTP secret sealed at rest; `recovery_code` its ten recovery
codes as keyed digests, each with when and by which case it was used; `totp_step` the time
steps a TOTP code was accepted for (a code is good once per account and step)
(`reclaim.directory.sql`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_totp",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "totp_step",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("account_id", "step"),
    )
    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by_case", sa.String(40), nullable=True),
        sa.Column("left_after", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "digest"),
    )
    op.create_index("ix_recovery_code_account_id", "recovery_code", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_recovery_code_account_id", table_name="recovery_code")
    op.drop_table("recovery_code")
    op.drop_table("totp_step")
    op.drop_table("account_totp")
