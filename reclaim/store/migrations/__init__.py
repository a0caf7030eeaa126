"""Reclaim's database schema, versioned by Alembic (revisions in `versions/`).

- `upgrade` brings a database to the newest revision: `reclaim db upgrade`, and `reclaim dev`
  before it starts anything. A database made by the old `create_all` (Reclaim's tables, no
  `alembic_version`) is compared with the first revision and recorded at it when it matches;
  anything else is refused with the differences.
- `require_current` is what the API, the worker and the operator's commands check at start:
  they never create or alter tables themselves, and refuse to run on a schema behind the code.
- `create_schema` makes every table of today's models at once and records it as the newest
  revision, for tests and measurements: tests/test_migrations.py keeps the models and the
  migrations equal, so both paths give the same schema.
- `schema` is every table Reclaim owns: the features' (`reclaim.store.models`), the
  built-in directory's (`reclaim.directory.tables`) and the ids of the accounts an LDAP or
  HTTP directory holds (`reclaim.directory.links`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from reclaim.settings import CannotStart

log = logging.getLogger(__name__)
# Alembic narrates every connection; `reclaim db upgrade` says what it did in one line.
logging.getLogger("alembic").setLevel(logging.WARNING)

LOCATION = Path(__file__).resolve().parent
FIRST = "0001"
# pg_advisory_xact_lock key ("reclaim!"): two upgrades started together run one after the other.
_UPGRADE_LOCK = 0x7265636C61696D21


class SchemaNotCurrent(CannotStart):
    """The database is not at the revision this release needs."""


class UnknownSchema(CannotStart):
    """Tables without a migration record that do not match the first revision."""


@dataclass(frozen=True)
class Upgrade:
    before: str | None  # None: no schema, or tables made before migrations (then `adopted`)
    after: str
    adopted: bool = False

    def describe(self) -> str:
        if self.adopted:
            done = f"tables made before migrations match revision {FIRST}: recorded them"
            return done if self.after == FIRST else f"{done}, then upgraded to {self.after}"
        if self.before == self.after:
            return f"already at revision {self.after} (the newest)"
        return f"upgraded from {self.before or 'an empty database'} to revision {self.after}"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without an alembic.ini: the scripts ship inside the package."""
    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    newest = scripts().get_current_head()
    assert newest is not None, "no migration scripts"
    return newest


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> Upgrade:
    """Bring the database to the newest revision, in one transaction where the database
    allows it (PostgreSQL), so a failed migration leaves the schema as it was."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK}
            )
        before = current_revision(connection)
        adopted = False
        if before is None and _reclaim_tables(connection):
            _adopt(connection, engine)
            adopted = True
        command.upgrade(alembic_config(connection), "head")
        after = current_revision(connection)
    assert after is not None
    return Upgrade(before=before, after=after, adopted=adopted)


def require_current(engine: Engine) -> None:
    """Refuse to run on a schema behind this release. A revision this release does not know
    (a newer release migrated the database) is let through with a warning: migrations add,
    they seldom take away."""
    with engine.connect() as connection:
        current = current_revision(connection)
        made_before_migrations = current is None and bool(_reclaim_tables(connection))
    wanted = head()
    if current == wanted:
        return
    where = f"the database at {_url(engine)}"
    if made_before_migrations:
        raise SchemaNotCurrent(
            f"{where} was made before schema migrations: run `reclaim db upgrade` (it checks "
            "the tables and records them)"
        )
    if current is None:
        raise SchemaNotCurrent(f"{where} has no schema yet: run `reclaim db upgrade`")
    try:
        scripts().get_revision(current)
    except CommandError:
        log.warning(
            "database schema %s is newer than this release knows (%s); running anyway",
            current,
            wanted,
        )
        return
    raise SchemaNotCurrent(
        f"{where} is at schema revision {current}, this release needs {wanted}: run "
        "`reclaim db upgrade`"
    )


def schema() -> sa.MetaData:
    """Every table of the models, registered on SQLModel's metadata by importing them."""
    from sqlmodel import SQLModel

    import reclaim.directory.kept_codes
    import reclaim.directory.links
    import reclaim.directory.tables
    import reclaim.store.models  # noqa: F401

    return SQLModel.metadata


def create_schema(engine: Engine) -> None:
    """Every table of today's models at once, recorded as the newest revision: for tests and
    measurements on a fresh database; a deployment runs `reclaim db upgrade` instead."""
    with engine.begin() as connection:
        schema().create_all(connection)
        record_head(connection)


def record_head(connection: Connection) -> None:
    """Record a schema just made by `create_all` as the newest revision (if nothing is
    recorded yet)."""
    if current_revision(connection) is None:
        MigrationContext.configure(connection).stamp(scripts(), "head")


def differences(connection: Connection, metadata: sa.MetaData) -> list[str]:
    """How the database differs from `metadata`, in words, for Reclaim's tables only."""
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parents: kind != "table" or name in metadata.tables,
        },
    )
    return [_describe(diff) for diff in compare_metadata(context, metadata)]


def first_revision_schema() -> sa.MetaData:
    module: Any = scripts().get_revision(FIRST).module
    schema: sa.MetaData = module.initial_schema()
    return schema


def new_revision(message: str, engine: Engine) -> str:
    """Write a revision for what the models have that the newest revision lacks, compared on
    `engine`'s database (brought to the newest revision first). For developers; review it."""
    upgrade(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        number = f"{int(head()) + 1:04d}"
        script = command.revision(config, message=message, autogenerate=True, rev_id=number)
    scripts.cache_clear()
    assert script is not None and not isinstance(script, list)
    return str(script.path)


def _adopt(connection: Connection, engine: Engine) -> None:
    problems = differences(connection, first_revision_schema())
    if problems:
        shown = "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else "")
        raise UnknownSchema(
            f"the database at {_url(engine)} has Reclaim tables but no migration record, and "
            f"they differ from the first revision ({FIRST}): {shown}. Back it up, then either "
            f"bring it to that revision by hand and run `reclaim db upgrade` again, or start "
            "from an empty database."
        )
    MigrationContext.configure(connection).stamp(scripts(), FIRST)


def _reclaim_tables(connection: Connection) -> set[str]:
    return set(sa.inspect(connection).get_table_names()) & set(first_revision_schema().tables)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _describe(diff: Any) -> str:
    if isinstance(diff, list):  # the changes to one column, grouped
        return "; ".join(_describe(item) for item in diff)
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"table {diff[1].name} is {'missing' if kind == 'add_table' else 'unexpected'}"
    if kind in ("add_column", "remove_column"):
        where = f"{diff[2]}.{diff[3].name}"
        return f"column {where} is {'missing' if kind == 'add_column' else 'unexpected'}"
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        item = diff[1]
        what = "index" if "index" in kind else "constraint"
        name = item.name or f"on {item.table.name}({', '.join(c.name for c in item.columns)})"
        return f"{what} {name} is {'missing' if kind.startswith('add') else 'unexpected'}"
    if kind in ("add_fk", "remove_fk"):
        fk = diff[1]
        return (
            f"foreign key on {fk.parent.name} is {'missing' if kind == 'add_fk' else 'unexpected'}"
        )
    if kind.startswith("modify_"):
        _, _, table, column, _, old, new = diff
        return f"column {table}.{column}: {kind[7:]} is {old}, expected {new}"
    return str(diff)
