"""`reclaim workflows`: checks on the workflow code of this build against a deployment's
Temporal. `check-replay` replays the running cases' histories before an upgrade
(reclaim/temporal/replay_check.py does the work; this module only formats)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from reclaim.cli.common import settings_for_command, with_dev_secret

if TYPE_CHECKING:
    from reclaim.temporal.replay_check import ReplayCheck

app = typer.Typer(help="Check this build's workflow code.", no_args_is_help=True)

UNREACHABLE = 2  # exit code: nothing was checked


@app.command("check-replay")
def check_replay(
    query: Annotated[
        str,
        typer.Option(
            "--query",
            help='The visibility query of the cases to replay, e.g. \'ExecutionStatus="Running" '
            "AND WorkflowType=\"RecoveryWorkflow\"'. Always limited to this deployment's task "
            "queue (RECLAIM_TASK_QUEUE).",
        ),
    ] = 'ExecutionStatus = "Running"',
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Replay at most this many cases.")
    ] = None,
    from_server: Annotated[
        bool,
        typer.Option(
            "--from-server",
            help="Fetch the histories from the configured Temporal (the only source for now).",
        ),
    ] = True,
) -> None:
    """Replay the histories of the cases running on the configured Temporal against this
    build's workflows, and name the cases it would fail (exit 1), before workers are rolled
    to it. Exit 0 when all replay, 2 when Temporal cannot be reached."""
    from reclaim.temporal.connection import connect
    from reclaim.temporal.replay_check import (
        QueryRefused,
        TemporalUnreachable,
        deployment_query,
    )
    from reclaim.temporal.replay_check import check_replay as replay
    from worker import workflows_for

    del from_server  # the only source today; `--from-dir DIR` of JSON histories could join it
    settings = with_dev_secret(settings_for_command())
    scoped = deployment_query(settings.task_queue, query)

    async def work() -> ReplayCheck:
        try:
            client = await connect(settings)
        except RuntimeError as err:
            raise TemporalUnreachable(str(err)) from err
        return await replay(
            client,
            workflows_for(settings),  # this build's, the upgrade drill's where it is on
            scoped,
            limit=limit,
            sandboxed=settings.workflow_sandbox,
            rpc_timeout=timedelta(seconds=settings.temporal_rpc_timeout),
        )

    try:
        check = asyncio.run(work())
    except TemporalUnreachable as err:
        typer.echo(
            f"reclaim: Temporal at {settings.temporal_address} (namespace "
            f"{settings.temporal_namespace}) is not answering: nothing was checked",
            err=True,
        )
        raise typer.Exit(UNREACHABLE) from err
    except QueryRefused as err:
        typer.echo(f"reclaim: Temporal refused the query {scoped}: {err}", err=True)
        raise typer.Exit(UNREACHABLE) from err
    for line in report(check):
        typer.echo(line)
    if not check.ok:
        raise typer.Exit(1)


def report(check: ReplayCheck) -> list[str]:
    """What the operator reads: the count per workflow type, then each case that would fail
    (id, type, the first line of its error). Never a payload."""
    if check.total == 0:
        return [f"No cases match {check.searched}: nothing to replay."]
    failed: dict[str, int] = {}
    for failure in check.failures:
        failed[failure.workflow_type] = failed.get(failure.workflow_type, 0) + 1
    width = max(len(kind) for kind in check.replayed)
    lines = [f"Replayed {check.total} cases ({check.searched}) in {check.seconds:.2f} s:"]
    for kind, count in sorted(check.replayed.items()):
        line = f"  {kind:{width}}  {count:>6}"
        if kind in failed:
            line += f"  ({failed[kind]} would fail)"
        lines.append(line)
    if check.ok:
        lines.append(f"All {check.total} replay on this build.")
        return lines
    lines.append(f"{len(check.failures)} of {check.total} would fail on this build:")
    id_width = max(len(failure.workflow_id) for failure in check.failures)
    type_width = max(len(failure.workflow_type) for failure in check.failures)
    for failure in check.failures:
        why = failure.first_line
        if failure.nondeterminism and "nondeterminism" not in why.lower():
            why = f"non-determinism: {why}"
        lines.append(
            f"  {failure.workflow_id:{id_width}}  {failure.workflow_type:{type_width}}  {why}"
        )
    return lines
