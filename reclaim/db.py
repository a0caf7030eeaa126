"""Database engine from a plain SQLAlchemy URL: `sqlite:///path` or `postgresql://user@host/db`.

The project picks the driver (psycopg 3 for PostgreSQL) and, for SQLite, the pragmas that let
the API and the worker write to one file at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel, create_engine

import reclaim.models  # noqa: F401  (registers the tables on SQLModel.metadata)


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
    engine = create_engine(parsed, **kwargs)
    if parsed.drivername.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_schema(engine: Engine) -> None:
    """Every table of today's models at once, recorded as the newest migration: for tests and
    measurements on a fresh database. tests/test_migrations.py keeps the models and the
    migrations equal; a deployment runs `reclaim db upgrade` instead (reclaim/migrations)."""
    from reclaim.migrations import record_head

    with engine.begin() as connection:
        SQLModel.metadata.create_all(connection)
        record_head(connection)
