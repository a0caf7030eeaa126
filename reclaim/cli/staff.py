"""`reclaim staff`: the support team and their API keys (support service)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from reclaim.cli.common import settings_for_command, with_services
from reclaim.services import Services

app = typer.Typer(help="The support team and their API keys.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Option(help="1-64 letters, digits, '.', '_', '-'")],
    role: Annotated[str, typer.Option(help="reviewer or supervisor")],
) -> None:
    """Add a member of staff. Their API key is printed once, on the last line: only a
    digest of it is kept."""

    async def work(services: Services) -> Any:
        return await services.support.add_staff(name, role)

    member, key = with_services(settings_for_command(), work)
    typer.echo(f"added {member.name} ({member.role}, id {member.id}); their API key, shown once:")
    typer.echo(key)


@app.command("list")
def list_staff() -> None:
    """The members of staff (never their keys)."""

    async def work(services: Services) -> Any:
        return await services.support.staff()

    for member in with_services(settings_for_command(), work):
        state = "disabled" if member.disabled_at else "active"
        typer.echo(f"{member.id:>4}  {member.name:20} {member.role:10} {state}")
