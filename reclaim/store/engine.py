"""Database engine from a plain SQLAlchemy URL: `sqlite:///path` or `postgresql://user@host/db`.

The project picks the driver (psycopg 3 for PostgreSQL) and, for SQLite, the pragmas that let
the API and the worker write to one file at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
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


# SQLSTATEs of a PostgreSQL server that is going away or not there yet: class 08 (connection
# exception), an administrator's or a crash's shutdown, "the database system is starting up",
# and no connection slot left.
_PG_GOING_OR_COMING = frozenset({"57P01", "57P02", "57P03", "53300"})
# What SQLite says when another process holds the file past the busy timeout, or the file
# cannot be opened (a volume not mounted, no permission): not a mistake in our SQL.
_SQLITE_UNREACHABLE = ("database is locked", "unable to open database file")


def database_unreachable(error: BaseException) -> bool:
    """Whether `error` says that the database did not answer (down, restarting, unreachable,
    locked), rather than that our SQL or our data is wrong: the API answers the first with a
    503 and `Retry-After` (nothing was done, try again), the second with a 500.

    A SQLAlchemy error counts when SQLAlchemy saw the connection die (`connection_invalidated`)
    or when the driver's own error it wraps does: a psycopg `OperationalError` with no SQLSTATE
    (libpq's own: "connection refused", "server closed the connection unexpectedly") or one of
    a server going away or starting up; a sqlite3 `OperationalError` saying the file is locked
    or cannot be opened ("no such table" is ours: a 500). `ProgrammingError`, `IntegrityError`
    and the like never count."""
    driver: BaseException | None = error
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        driver = error.orig
    if isinstance(driver, psycopg.OperationalError):
        state = driver.sqlstate
        return state is None or state.startswith("08") or state in _PG_GOING_OR_COMING
    if isinstance(driver, sqlite3.OperationalError):
        return str(driver).startswith(_SQLITE_UNREACHABLE)
    return False


T = TypeVar("T")


async def in_session(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run `work` in a session of its own, in a thread: the SQL is synchronous and its callers
    are on the event loop. Objects it returns stay readable after the session closes."""

    def run() -> T:
        with Session(engine, expire_on_commit=False) as session:
            return work(session)

    return await asyncio.to_thread(run)
