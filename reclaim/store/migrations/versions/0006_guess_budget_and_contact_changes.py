"""The guess budget per account, and when an account's contacts last changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

`code_guess` holds the codes typed for each account (as a keyed digest) in the last hour: at
most RECLAIM_GUESSES_PER_HOUR of them are compared. `account.contacts_changed_at` is when an
approved claim last replaced the account's addresses (NULL: as created): a recovery through a
contact changed lately is held.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "code_guess",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget", sa.String(64), nullable=False),
        sa.Column("case_id", sa.String(40), nullable=False),
        sa.Column("guess", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("code_guess") as batch:
        batch.create_index(batch.f("ix_code_guess_at"), ["at"], unique=False)
        batch.create_index(batch.f("ix_code_guess_budget"), ["budget"], unique=False)
    with op.batch_alter_table("account") as batch:
        batch.add_column(
            sa.Column("contacts_changed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("account") as batch:
        batch.drop_column("contacts_changed_at")
    with op.batch_alter_table("code_guess") as batch:
        batch.drop_index(batch.f("ix_code_guess_budget"))
        batch.drop_index(batch.f("ix_code_guess_at"))
    op.drop_table("code_guess")
