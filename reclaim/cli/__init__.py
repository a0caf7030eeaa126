"""`reclaim`: run the stack, manage accounts and staff, look at and stop cases, prepare the
database and the Temporal namespace, check this build's workflows against the running cases.
One module per command group; each command calls the feature services (`reclaim.services`)
and nothing below them."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from reclaim.cli import accounts, cases, db, run, staff, temporal, workflows
from reclaim.cli.common import Output
from reclaim.settings import CannotStart

app = typer.Typer(
    help="Reclaim: account recovery cases as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the log lines a command writes.")
    ] = False,
) -> None:
    Output.verbose = verbose


run.register(app)
app.add_typer(accounts.app, name="accounts")
app.add_typer(cases.app, name="cases")
app.add_typer(staff.app, name="staff")
app.add_typer(db.app, name="db")
app.add_typer(temporal.app, name="temporal")
app.add_typer(workflows.app, name="workflows")


def main() -> None:
    """The `reclaim` command. It leaves with `os._exit` once its output is flushed: the
    Temporal client's native threads can crash CPython's own shutdown with SIGABRT after a
    command has done its work (temporalio/sdk-python#300), which a script or a process
    manager would take for a failure."""
    try:
        app()
        code: object = 0
    except SystemExit as done:
        code = done.code
    except CannotStart as refused:  # the operator's to fix: one line is enough
        code = f"reclaim: {refused}"
    if isinstance(code, str):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
