"""`reclaim db`: the database schema's migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from reclaim.cli.common import settings_for_command

app = typer.Typer(help="Reclaim's database schema (migrations).", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema revision (safe to run at every deploy and from
    several places at once). A database made before migrations is checked and recorded."""
    from reclaim.store.engine import make_engine
    from reclaim.store.migrations import upgrade

    engine = make_engine(settings_for_command().resolved_database_url)
    done = upgrade(engine)
    typer.echo(f"{engine.url.render_as_string(hide_password=True)}: {done.describe()}")


@app.command("current")
def db_current() -> None:
    """The database's schema revision, and whether it is the one this release needs."""
    from reclaim.store.engine import make_engine
    from reclaim.store.migrations import SchemaNotCurrent, current_revision, head, require_current

    engine = make_engine(settings_for_command().resolved_database_url)
    with engine.connect() as connection:
        current = current_revision(connection)
    try:
        require_current(engine)
    except SchemaNotCurrent as behind:
        typer.echo(f"revision {current or 'none'}: {behind}")
        return
    newest = head()
    if current == newest:
        typer.echo(f"revision {current} (the newest)")
    else:
        typer.echo(f"revision {current}, newer than this release knows ({newest})")


@app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the change does")],
) -> None:
    """For developers: write a migration for what reclaim/models.py has that the newest
    revision lacks (compared on a scratch SQLite database). Review it before committing."""
    import tempfile
    from pathlib import Path

    from reclaim.store.engine import make_engine
    from reclaim.store.migrations import new_revision

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        path = new_revision(message, engine)
        engine.dispose()
    typer.echo(f"wrote {path}")
