"""Passkeys in the built-in directory.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08

`passkey` keeps each WebAuthn credential of an account: its id (base64url, unique across
accounts), its COSE public key, the last signature counter seen (a counter going back means a
cloned authenticator), its transports, its name, and when and by which case it was last used
(`reclaim.directory.sql_passkeys`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passkey",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.String(200), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_case_id", sa.String(40), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credential_id"),
    )
    op.create_index("ix_passkey_account_id", "passkey", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_passkey_account_id", table_name="passkey")
    op.drop_table("passkey")
