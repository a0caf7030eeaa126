"""`reclaim staff`: the support team, their API keys, and the audit of what they did (support
service)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from reclaim.cli.common import operator, settings_for_command, when, with_services
from reclaim.services import Services
from reclaim.support.audit import Origin

app = typer.Typer(help="The support team, their API keys and the audit.", no_args_is_help=True)
CLI = Origin("cli")
By = Annotated[str | None, typer.Option("--by", help="Your name for the audit (default: $USER)")]


@app.command("add")
def add(
    name: Annotated[str, typer.Option(help="1-64 letters, digits, '.', '_', '-'")],
    role: Annotated[
        str,
        typer.Option(
            help="reviewer, supervisor or operator (reads cases through the codec endpoint, "
            "decides no claim)"
        ),
    ],
) -> None:
    """Add a member of staff. Their API key is printed once, on the last line: only a
    digest of it is kept."""

    async def work(services: Services) -> Any:
        return await services.staff_members.add_staff(name, role)

    member, key = with_services(settings_for_command(), work)
    typer.echo(f"added {member.name} ({member.role}, id {member.id}); their API key, shown once:")
    typer.echo(key)


@app.command("list")
def list_staff() -> None:
    """The members of staff (never their keys): role, how they sign in, active or disabled."""

    async def work(services: Services) -> Any:
        return await services.staff_members.staff()

    for member in with_services(settings_for_command(), work):
        state = f"disabled {when(member.disabled_at)}" if member.disabled_at else "active"
        signs_in = "sso" if member.oidc_subject else "key"
        typer.echo(f"{member.id:>4}  {member.name:20} {member.role:10} {signs_in:4} {state}")


@app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="The member's name")], by: By = None) -> None:
    """Turn a member of staff off: their key and their console sessions stop working at once
    (single sign-on cannot bring them back)."""

    async def work(services: Services) -> Any:
        return await services.staff_members.disable_staff(name, operator(by).name, CLI)

    member = with_services(settings_for_command(), work)
    typer.echo(f"disabled {member.name}: their key and console sessions no longer work")


@app.command("rotate")
def rotate(name: Annotated[str, typer.Argument(help="The member's name")], by: By = None) -> None:
    """Give a member of staff a new key, printed once on the last line: the old key, and the
    console sessions it opened, stop working at once."""

    async def work(services: Services) -> Any:
        return await services.staff_members.rotate_staff_key(name, operator(by).name, CLI)

    member, key = with_services(settings_for_command(), work)
    typer.echo(f"new key for {member.name}; the old one no longer works. Shown once:")
    typer.echo(key)


@app.command("audit")
def audit(
    case: Annotated[str | None, typer.Option("--case", help="One claim's actions")] = None,
    by: Annotated[str | None, typer.Option("--by", help="One member's actions")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
) -> None:
    """What members of staff did, newest first: when, who, from where, which claim, what,
    and how it ended."""

    async def work(services: Services) -> Any:
        return await services.staff_members.audit_entries(case_id=case, by=by, limit=limit)

    entries = with_services(settings_for_command(), work)
    if not entries:
        typer.echo("no actions recorded")
    for e in entries:
        where = f"{e.channel}@{e.address}" if e.address else e.channel
        detail = " ".join((e.detail or "").split())
        detail = f"  «{detail[:80]}»" if detail else ""
        typer.echo(
            f"{when(e.at)}  {e.staff_name:16} {where:22} {e.case_id or '-':27} "
            f"{e.action:18} {e.outcome}{detail}"
        )
