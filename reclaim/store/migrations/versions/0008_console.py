"""Console sessions, the staff audit, and staff who sign in with OIDC.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

`console_session` keeps a digest of each console session's token, whose it is and until
when; `staff_audit` every action of a member of staff (who, when, from where, which claim,
what, how it ended). `staff` learns the OIDC subject of a member who signs in through the
identity provider, and when a member's key was last rotated.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("staff_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_digest"),
    )
    op.create_index("ix_console_session_expires_at", "console_session", ["expires_at"])
    op.create_index("ix_console_session_staff_id", "console_session", ["staff_id"])

    op.create_table(
        "staff_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("staff_name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("case_id", sa.String(40), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(2000), nullable=True),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staff_audit_at", "staff_audit", ["at"])
    op.create_index("ix_staff_audit_case_id", "staff_audit", ["case_id"])
    op.create_index("ix_staff_audit_staff_name", "staff_audit", ["staff_name"])

    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("oidc_subject", sa.String(255), nullable=True))
        batch.add_column(sa.Column("key_rotated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_staff_oidc_subject", "staff", ["oidc_subject"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_staff_oidc_subject", "staff")
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("key_rotated_at")
        batch.drop_column("oidc_subject")
    op.drop_table("staff_audit")
    op.drop_table("console_session")
