"""`reclaim cases`: every kind of case (self-service recovery, support claim, account deletion,
ban) listed, shown and stopped through the services; the reviewers' queue rebuilt."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from reclaim.cli.common import fail, operator, settings_for_command, with_services
from reclaim.services import KINDS, Services

app = typer.Typer(help="Look at and stop cases of every kind.", no_args_is_help=True)


@app.command("list")
def list_cases(
    state: Annotated[str | None, typer.Option(help="e.g. awaiting_code, in_review")] = None,
    kind: Annotated[str | None, typer.Option(help=f"one of {', '.join(KINDS)}")] = None,
    limit: int = 50,
    all_cases: Annotated[
        bool, typer.Option("--all", help="closed cases too (cancelled, completed...)")
    ] = False,
) -> None:
    """This deployment's cases from Temporal visibility, newest first: the open ones (with
    --all the closed ones too), or all in one state."""
    if state and not state.replace("_", "").isalpha():
        raise fail(f"not a state: {state}")
    if kind and kind not in KINDS:
        raise fail(f"not a kind of case: {kind} (one of {', '.join(KINDS)})")

    async def work(services: Services) -> Any:
        return await services.list_cases(
            kind=kind, state=state, limit=limit, include_closed=all_cases
        )

    cases = with_services(settings_for_command(), work)
    if not cases:  # said on stderr: a script reading the list gets an empty one
        what = f"{kind} " if kind else ""
        if state:
            typer.echo(f"No {what}cases in state {state}.", err=True)
        elif all_cases:
            typer.echo(f"No {what}cases.", err=True)
        else:
            typer.echo(f"No open {what}cases.", err=True)
            typer.echo("Closed ones too: reclaim cases list --all", err=True)
        return
    for case in cases:
        line = f"{case.case_id}  {case.kind:16} {case.state:17} {case.detail or '-':12}"
        line += f"  opened {case.opened_at:%Y-%m-%d %H:%M:%S}"
        if case.next_deadline is not None:
            line += f"  next deadline {case.next_deadline:%Y-%m-%d %H:%M:%S} UTC"
        typer.echo(line)


@app.command("show")
def show(case_id: str) -> None:
    """One case, as its workflow reports it (JSON)."""

    async def work(services: Services) -> Any:
        return await services.show_case(case_id)

    typer.echo(json.dumps(with_services(settings_for_command(), work), indent=2, default=str))


@app.command("cancel")
def cancel(
    case_id: str,
    reason: Annotated[str, typer.Option(help="Kept in the case's history")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who is doing this, for the record [default: $USER]")
    ] = None,
) -> None:
    """Stop an open case: a recovery's code stops working, a claim closes (the claimant is
    told), a ban is lifted, a deletion ends with the account kept."""

    async def work(services: Services) -> Any:
        return await services.cancel_case(case_id, operator(by), reason)

    shown = with_services(settings_for_command(), work)
    typer.echo(f"stopped {case_id}: {shown['state']}")


@app.command("hold")
def hold(
    case_id: str,
    end_now: Annotated[
        bool, typer.Option("--end-now", help="The held new password takes effect now")
    ] = False,
    extend: Annotated[
        int | None,
        typer.Option("--extend", help="Seconds to add to the hold", min=1, metavar="SECONDS"),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Who is doing this, for the record [default: $USER]")
    ] = None,
) -> None:
    """A held recovery (its new password waits out a hold): end the hold now, or extend it."""
    if end_now == (extend is not None):
        raise fail("say --end-now or --extend SECONDS")

    async def work(services: Services) -> Any:
        actor = operator(by)
        return await services.recovery.change_hold(
            case_id,
            end_now=end_now,
            extend_seconds=extend or 0,
            by=f"{actor.kind.value}:{actor.name}",
        )

    status = with_services(settings_for_command(), work)
    if status.hold_until is not None:
        typer.echo(f"{case_id}: held until {status.hold_until:%Y-%m-%d %H:%M:%S} UTC")
    else:
        typer.echo(f"{case_id}: hold ended, {status.state.value}")


@app.command("rebuild-queue")
def rebuild_queue() -> None:
    """Write the reviewers' queue (the claim_queue_row table) again from Temporal: every
    support claim of this deployment, its state read from its workflow. Safe at any time (a
    row never goes back to an older version); run it once after upgrading with claims open."""

    async def work(services: Services) -> int:
        return await services.claim_queue.rebuild(services.claims)

    written = with_services(settings_for_command(), work)
    typer.echo(f"{written} claim queue rows rebuilt")
