"""Database engine from a plain SQLAlchemy URL: `sqlite:///path` or `postgresql://user@host/db`.

The project picks the driver (psycopg 3 for PostgreSQL) and, for SQLite, the pragmas that let
the API and the worker write to one file at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine


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


T = TypeVar("T")


async def in_session(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run `work` in a session of its own, in a thread: the SQL is synchronous and its callers
    are on the event loop. Objects it returns stay readable after the session closes."""

    def run() -> T:
        with Session(engine, expire_on_commit=False) as session:
            return work(session)

    return await asyncio.to_thread(run)
