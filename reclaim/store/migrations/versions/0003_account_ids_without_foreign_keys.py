"""Cases name the directory's account ids without a foreign key to the built-in `account` table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

An LDAP or HTTP directory keeps its accounts elsewhere and hands out ids of its own
(`directory_link`), which `account` does not hold: `recovery_case.account_id` and
`support_claim.account_id` keep their index and lose their foreign key. PostgreSQL named the
constraints itself; SQLite's are unnamed, so the table is copied without it (batch mode, the
constraint named by a convention for the occasion).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLES = ("recovery_case", "support_claim")
# How SQLite's unnamed foreign keys are named while batch mode copies the table.
CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _account_fks(table: str) -> list[str | None]:
    inspector = sa.inspect(op.get_bind())
    return [
        fk.get("name")
        for fk in inspector.get_foreign_keys(table)
        if fk["referred_table"] == "account" and fk["constrained_columns"] == ["account_id"]
    ]


def upgrade() -> None:
    for table in TABLES:
        for name in _account_fks(table):
            if name:
                op.drop_constraint(name, table, type_="foreignkey")
            else:
                with op.batch_alter_table(table, naming_convention=CONVENTION) as batch:
                    batch.drop_constraint(f"fk_{table}_account_id_account", type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, naming_convention=CONVENTION) as batch:
            batch.create_foreign_key(
                f"fk_{table}_account_id_account", "account", ["account_id"], ["id"]
            )
