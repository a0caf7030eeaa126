"""Alembic's environment for Reclaim's migrations.

`reclaim.store.migrations` runs them on a connection of its own (`config.attributes["connection"]`),
inside the transaction it holds; run from the `alembic` command they use RECLAIM_DATABASE_URL,
read like every other setting. Either way the migrations work in the connection's own schema
(PostgreSQL's search_path), so a database shared by several schemas is fine.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import AutoString

from reclaim.store.migrations import schema
from reclaim.store.models import UTCDateTime


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """A new revision names plain SQLAlchemy types: migrations must not depend on how the
    models spell a column today."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String({obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=schema(),
        render_as_batch=True,  # SQLite alters a table by copying it
        render_item=_render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    if context.is_offline_mode():
        raise SystemExit("Reclaim's migrations run against a database: use `reclaim db upgrade`")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    from reclaim.settings import load_settings
    from reclaim.store.engine import make_engine

    engine = make_engine(load_settings().resolved_database_url)
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


_run()
