"""The schema as `SQLModel.metadata.create_all` made it before migrations existed (the
release before the operator view: no `support_claim.escalated_at`, no
`notification.failures`; revision 0002 adds them).

Revision ID: 0001
Revises:
Create Date: 2026-11-30

The tables are written out here, frozen, rather than taken from reclaim/models.py: the models
will move on, this revision must not. `reclaim db upgrade` also compares a database made by the
old `create_all` (tables, no `alembic_version`) with `initial_schema()` before recording it at
this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int | None, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.String(length), nullable=nullable)


def _account_id(*, nullable: bool) -> sa.Column:
    return sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=nullable)


def initial_schema() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "account",
        metadata,
        _text("username", 32),
        _text("email", 254),
        _text("phone", 20, nullable=True),
        _text("status", 16),
        sa.Column("id", sa.Integer(), primary_key=True),
        _text("password_hash", 255),
        _when("created_at"),
        _when("password_changed_at", nullable=True),
        _when("status_since", nullable=True),
        _when("status_until", nullable=True),
        _text("status_reason", 500, nullable=True),
        _text("status_case", 40, nullable=True),
        sa.Index("ix_account_username", "username", unique=True),
        sa.Index("ix_account_email", "email", unique=True),
        sa.Index("ix_account_phone", "phone", unique=True),
    )
    sa.Table(
        "account_event",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        _account_id(nullable=False),
        _when("at"),
        _text("action", 24),
        _text("status", 16),
        _text("actor_kind", 16),
        _text("actor", 64),
        _text("reason", 500, nullable=True),
        _when("until", nullable=True),
        _text("case_id", 40, nullable=True),
        sa.Index("ix_account_event_account_id", "account_id"),
    )
    sa.Table(
        "reserved_username",
        metadata,
        sa.Column("digest", sa.String(64), primary_key=True),
        _when("until"),
        _account_id(nullable=True),
    )
    sa.Table(
        "past_contact",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        _account_id(nullable=False),
        _text("kind", 8),
        _text("digest", 64),
        _when("replaced_at"),
        _text("case_id", 40, nullable=True),
        sa.Index("ix_past_contact_account_id", "account_id"),
    )
    sa.Table(
        "support_claim",
        metadata,
        sa.Column("case_id", sa.String(40), primary_key=True),
        _account_id(nullable=True),
        _text("reason", 16),
        _text("contact_email", 254),
        _text("contact_digest", 64),
        _text("description", 4000, nullable=True),
        _text("claim_token_digest", 64),
        sa.Column("sealed_token", sa.LargeBinary(), nullable=True),
        _when("opened_at"),
        _text("recovery_case_id", 40, nullable=True),
        _text("state", 20, nullable=True),
        _when("closed_at", nullable=True),
        _text("decision", None, nullable=True),
        _text("timeline", None, nullable=True),
        sa.Index("ix_support_claim_account_id", "account_id"),
        sa.Index("ix_support_claim_contact_digest", "contact_digest"),
        sa.Index("ix_support_claim_opened_at", "opened_at"),
    )
    sa.Table(
        "claim_answer",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        _text("case_id", 40),
        sa.Column("round", sa.Integer(), nullable=False),
        _text("text", 4000),
        _when("at"),
        sa.UniqueConstraint("case_id", "round"),
        sa.Index("ix_claim_answer_case_id", "case_id"),
    )
    sa.Table(
        "staff",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        _text("name", 64),
        _text("role", 16),
        _text("key_digest", 64),
        _when("created_at"),
        _when("disabled_at", nullable=True),
        sa.Index("ix_staff_name", "name", unique=True),
    )
    sa.Table(
        "login_session",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        _account_id(nullable=False),
        _text("token_digest", 64),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        sa.Index("ix_login_session_account_id", "account_id"),
        sa.Index("ix_login_session_token_digest", "token_digest", unique=True),
    )
    sa.Table(
        "password_history",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        _account_id(nullable=False),
        _text("password_hash", 255),
        _text("case_id", 40, nullable=True),
        _when("created_at"),
        sa.UniqueConstraint("account_id", "case_id"),
        sa.Index("ix_password_history_account_id", "account_id"),
    )
    sa.Table(
        "recovery_case",
        metadata,
        sa.Column("case_id", sa.String(40), primary_key=True),
        _account_id(nullable=True),
        _text("identifier_digest", 64),
        _text("channel", 8),
        _text("unknown_address", 254, nullable=True),
        _when("opened_at"),
        _text("state", 16, nullable=True),
        _when("closed_at", nullable=True),
        sa.Column("wrong_codes", sa.Integer(), nullable=False),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.Index("ix_recovery_case_account_id", "account_id"),
        sa.Index("ix_recovery_case_identifier_digest", "identifier_digest"),
        sa.Index("ix_recovery_case_opened_at", "opened_at"),
    )
    sa.Table(
        "notification",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        _text("case_id", 40),
        _text("kind", 24),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _text("channel", 8),
        _text("recipient", 254),
        sa.Column("sealed_code", sa.LargeBinary(), nullable=True),
        _when("sent_at", nullable=True),
        _text("provider_id", 128, nullable=True),
        _when("created_at"),
        sa.UniqueConstraint("case_id", "kind", "attempt", "channel"),
        sa.Index("ix_notification_case_id", "case_id"),
    )
    return metadata


def upgrade() -> None:
    initial_schema().create_all(op.get_bind())


def downgrade() -> None:
    initial_schema().drop_all(op.get_bind())
