"""The reviewers' queue as a read model.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08

`claim_queue_row`: one row per support claim with what its search attributes carry (state,
reason, risk, assignee, escalated, deadline; no personal data) and the workflow's change
counter, kept by the claim's workflow; the queue reads it instead of Temporal visibility.
Claims open before this revision are filled in by `reclaim cases rebuild-queue`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ORDER = ("next_deadline", "case_id")


def upgrade() -> None:
    op.create_table(
        "claim_queue_row",
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("risk", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=64), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    for name, column in (
        ("open", "is_open"),
        ("state", "state"),
        ("reason", "reason"),
        ("risk", "risk"),
        ("assignee", "assignee"),
        ("escalated", "escalated"),
    ):
        op.create_index(f"ix_claim_queue_row_{name}", "claim_queue_row", [column, *ORDER])


def downgrade() -> None:
    op.drop_table("claim_queue_row")
