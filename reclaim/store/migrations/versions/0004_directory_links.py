"""Stable account ids for the accounts an LDAP or HTTP directory holds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

`directory_link` gives each outside account (an LDAP entry's UUID, a host application's user
id) the integer id workflow histories and the features' tables name it by
(`reclaim.directory.links`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("directory", sa.String(16), nullable=False),
        sa.Column("external_key", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("directory", "external_key"),
    )


def downgrade() -> None:
    op.drop_table("directory_link")
