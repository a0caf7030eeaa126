"""Schema migrations: they build exactly the models' schema (on SQLite, and on PostgreSQL when
RECLAIM_TEST_POSTGRES_URL is set), a database made before migrations is recorded only when it
matches the first revision, and nothing runs on a schema behind the code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select
from typer.testing import CliRunner

from api.app import services_for
from reclaim.cli import app
from reclaim.directory.tables import Account
from reclaim.settings import Settings
from reclaim.store import migrations
from reclaim.store.engine import make_engine
from reclaim.store.models import Notification
from tests.stack import TEST_SECRET

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def empty(database_url: str) -> Iterator[Engine]:
    """An engine on a database with no table at all."""
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _made_before_migrations(engine: Engine) -> None:
    """A database as `create_all` made it before migrations existed, with an account in it."""
    migrations.first_revision_schema().create_all(engine)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO account (username, email, status, password_hash, created_at) "
                "VALUES ('jane', 'jane@example.com', 'active', 'h', :at)"
            ),
            {"at": datetime(2026, 1, 2, tzinfo=UTC)},
        )
        connection.execute(
            sa.text(
                "INSERT INTO notification (case_id, kind, attempt, channel, recipient, "
                "created_at) VALUES ('rc_old', 'code', 0, 'email', 'jane@example.com', :at)"
            ),
            {"at": datetime(2026, 1, 2, tzinfo=UTC)},
        )


def test_the_migrations_build_exactly_the_schema_of_the_models(empty: Engine):
    done = migrations.upgrade(empty)

    assert (done.before, done.after, done.adopted) == (None, migrations.head(), False)
    with empty.connect() as connection:
        # No filter: a table, column, index, constraint or type the migrations get wrong
        # (or the models change without a migration) shows here.
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    assert _tables(empty) == {*SQLModel.metadata.tables, "alembic_version"}
    assert migrations.upgrade(empty).describe() == (
        f"already at revision {migrations.head()} (the newest)"
    )


def test_a_database_made_before_migrations_is_recorded_and_keeps_its_data(empty: Engine):
    _made_before_migrations(empty)

    done = migrations.upgrade(empty)

    assert done.adopted
    assert done.describe() == (
        "tables made before migrations match revision 0001: recorded them, then upgraded to "
        f"{migrations.head()}"
    )
    migrations.require_current(empty)
    with Session(empty) as session:
        assert [a.username for a in session.exec(select(Account)).all()] == ["jane"]
        # A message of the previous release gains the failure count it never had.
        sent = session.exec(select(Notification)).one()
        assert (sent.case_id, sent.failures) == ("rc_old", 0)


def test_tables_unlike_the_first_revision_are_refused_with_their_differences(empty: Engine):
    migrations.first_revision_schema().create_all(empty)
    with empty.begin() as connection:
        connection.execute(sa.text("DROP INDEX ix_staff_name"))
        connection.execute(sa.text("ALTER TABLE staff ADD COLUMN nickname VARCHAR(10)"))

    with pytest.raises(migrations.UnknownSchema) as refused:
        migrations.upgrade(empty)

    message = str(refused.value)
    assert "has Reclaim tables but no migration record" in message
    assert "index ix_staff_name is missing" in message
    assert "column staff.nickname is unexpected" in message
    assert "alembic_version" not in _tables(empty)  # nothing recorded


async def test_the_api_refuses_to_start_without_the_schema(empty: Engine, database_url: str):
    settings = Settings(secret_key=TEST_SECRET, database_url=database_url)

    with pytest.raises(migrations.SchemaNotCurrent, match="has no schema yet: run `reclaim db"):
        await services_for(settings)

    assert _tables(empty) == set()  # the API made nothing


def _reclaim(tmp_path: Path, *args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECLAIM_")}
    env.update(RECLAIM_SECRET_KEY=TEST_SECRET, RECLAIM_DATABASE_URL=database_url)
    return subprocess.run(
        [sys.executable, "-m", "reclaim", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_worker_on_an_old_database_says_to_upgrade_it_in_one_line(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'reclaim.db'}"
    engine = make_engine(url)
    _made_before_migrations(engine)
    engine.dispose()

    done = _reclaim(tmp_path, "worker", database_url=url)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"reclaim: the database at {url} was made before schema migrations: run "
        "`reclaim db upgrade` (it checks the tables and records them)"
    )


def test_reclaim_db_upgrade_and_current_as_an_operator_runs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = f"sqlite:///{tmp_path / 'reclaim.db'}"
    monkeypatch.setenv("RECLAIM_DATABASE_URL", url)
    monkeypatch.setenv("RECLAIM_SECRET_KEY", TEST_SECRET)

    before = runner.invoke(app, ["db", "current"])
    refused = runner.invoke(app, ["staff", "list"])
    upgraded = runner.invoke(app, ["db", "upgrade"])
    after = runner.invoke(app, ["db", "current"])
    listed = runner.invoke(app, ["staff", "list"])

    assert before.output.startswith("revision none: the database at")
    assert "has no schema yet" in before.output
    assert isinstance(refused.exception, migrations.SchemaNotCurrent)
    assert upgraded.exit_code == 0, upgraded.output
    newest = migrations.head()
    assert upgraded.output == f"{url}: upgraded from an empty database to revision {newest}\n"
    assert after.output == f"revision {newest} (the newest)\n"
    assert listed.exit_code == 0, listed.output


@pytest.fixture
def scripts_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The migration scripts copied aside, so a test may add a revision."""
    location = tmp_path / "migrations"
    shutil.copytree(
        migrations.LOCATION, location, ignore=shutil.ignore_patterns("__pycache__", "__init__.py")
    )
    monkeypatch.setattr(migrations, "LOCATION", location)
    migrations.scripts.cache_clear()
    yield location
    migrations.scripts.cache_clear()


def test_a_new_revision_leaves_older_databases_behind_until_upgraded(
    scripts_copy: Path, empty: Engine, tmp_path: Path
):
    shipped = migrations.upgrade(empty).after  # the newest shipped revision
    following = f"{int(shipped) + 1:04d}"
    scratch = make_engine(f"sqlite:///{tmp_path / 'scratch.db'}")

    written = Path(migrations.new_revision("nothing new", scratch))
    scratch.dispose()

    assert written.parent == scripts_copy / "versions"
    assert written.name == f"{following}_nothing_new.py"
    text = written.read_text()
    assert f"down_revision = '{shipped}'" in text
    assert "op." not in text.partition("def upgrade")[2]  # the models agree with the newest
    with pytest.raises(
        migrations.SchemaNotCurrent, match=f"at schema revision {shipped}, this release"
    ):
        migrations.require_current(empty)
    upgraded = migrations.upgrade(empty).describe()
    assert upgraded == f"upgraded from {shipped} to revision {following}"
    migrations.require_current(empty)


def test_a_database_from_a_newer_release_is_let_through(
    empty: Engine, caplog: pytest.LogCaptureFixture
):
    migrations.upgrade(empty)
    with empty.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))

    migrations.require_current(empty)

    assert "database schema 0099 is newer than this release knows" in caplog.text


def test_cases_keep_their_account_ids_without_a_foreign_key_to_the_built_in_table(
    empty: Engine,
):
    """A directory whose accounts live elsewhere names ids `account` does not hold; a case
    recorded before the change keeps its account id."""
    _made_before_migrations(empty)
    with empty.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO recovery_case (case_id, account_id, identifier_digest, channel, "
                "opened_at, wrong_codes, resends) VALUES ('rc_kept', 1, 'd', 'email', :at, 0, 0)"
            ),
            {"at": datetime(2026, 1, 2, tzinfo=UTC)},
        )

    migrations.upgrade(empty)

    inspector = sa.inspect(empty)
    for table in ("recovery_case", "support_claim"):
        assert inspector.get_foreign_keys(table) == [], table
        assert f"ix_{table}_account_id" in {i["name"] for i in inspector.get_indexes(table)}
    with empty.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO recovery_case (case_id, account_id, identifier_digest, channel, "
                "opened_at, wrong_codes, resends) VALUES ('rc_ldap', 9999, 'd', 'email', :at, 0, 0)"
            ),
            {"at": datetime(2026, 1, 2, tzinfo=UTC)},
        )
        kept = connection.execute(
            sa.text("SELECT account_id FROM recovery_case WHERE case_id = 'rc_kept'")
        ).scalar_one()
    assert kept == 1
