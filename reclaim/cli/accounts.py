"""`reclaim accounts`: create, inspect, deactivate and ban accounts (lifecycle service), and
their second factors (`reclaim accounts mfa`, the directory's)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from reclaim.cli.common import fail, operator, settings_for_command, when, with_services
from reclaim.directory import Capability, FactorKind, require
from reclaim.services import Services

app = typer.Typer(help="Create, inspect, deactivate and ban accounts.", no_args_is_help=True)

AccountRef = Annotated[
    str,
    typer.Argument(metavar="ACCOUNT", help="A username, or #ID (a purged account has only its id)"),
]
By = Annotated[
    str | None, typer.Option("--by", help="Who is doing this, for the record [default: $USER]")
]


@app.command("add")
def add(
    username: Annotated[str, typer.Option(help="3-32 letters, digits, '.', '_', '-'")],
    email: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    phone: Annotated[str | None, typer.Option(help="E.164, e.g. +14155550123")] = None,
) -> None:
    """Create an account ready to sign in (and to be recovered)."""

    async def work(services: Services) -> Any:
        return await services.lifecycle.add_account(
            username=username, email=email, phone=phone, password=password
        )

    account = with_services(settings_for_command(), work)
    typer.echo(f"created account {account.username} (id {account.id})")


async def _account_id(services: Services, ref: str) -> int:
    from reclaim.errors import NotFound

    try:
        return await services.lifecycle.account_id(ref)
    except NotFound:
        raise fail(f"no account named {ref}") from None


@app.command("show")
def show(account_ref: AccountRef) -> None:
    """An account: status, sessions, recent recovery cases and every lifecycle change."""

    async def work(services: Services) -> Any:
        account_id = await _account_id(services, account_ref)
        overview = await services.lifecycle.overview(account_id)
        return overview, await services.recovery.cases_of(account_id), services.directory

    overview, recent, directory = with_services(settings_for_command(), work)
    account = overview.account
    typer.echo(f"username:   {account.username} (id {account.id})")
    status = account.status.value
    if account.status_since:
        status += f" since {when(account.status_since)}"
    if account.status_until:
        status += f" until {when(account.status_until)}"
    typer.echo(f"status:     {status}")
    if account.status_reason:
        typer.echo(f"reason:     {account.status_reason}")
    if account.status_case:
        typer.echo(f"case:       {account.status_case}")
    typer.echo(f"email:      {account.email or '-'}")
    typer.echo(f"phone:      {account.phone or '-'}")
    typer.echo(f"created:    {when(account.created_at)}")
    changed = account.password_changed_at
    typer.echo(f"password:   {f'changed {when(changed)}' if changed else 'as created'}")
    if overview.active_sessions is None:
        typer.echo(f"sessions:   kept by the applications ({directory.name} directory)")
    else:
        typer.echo(f"sessions:   {overview.active_sessions} active")
    typer.echo("recent recovery cases:" if recent else "recent recovery cases: none")
    for case in recent:
        typer.echo(
            f"  {case.case_id}  {case.opened_at:%Y-%m-%d %H:%M:%S}  {case.channel:5}  "
            f"{case.state or 'open'}"
        )
    changes = overview.changes
    if Capability.STATUS not in directory.capabilities:
        typer.echo(f"lifecycle:  the {directory.name} directory's own (locks, deletions)")
    else:
        typer.echo("lifecycle:" if changes else "lifecycle: no change since creation")
    for event in changes:
        line = f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.action:12} by {event.actor_kind}"
        line += f" ({event.actor})"
        if event.until:
            line += f"  until {when(event.until)}"
        if event.reason:
            line += f"  reason: {event.reason}"
        if event.case_id:
            line += f"  [{event.case_id}]"
        typer.echo(line)


def _report(outcome: Any, done: str) -> None:
    from reclaim.lifecycle.contracts import LifecycleState
    from reclaim.lifecycle.service import Pending

    if isinstance(outcome, Pending):
        typer.echo(f"requested ({outcome.case_id}): it applies as soon as a worker runs it")
        return
    if outcome.state is LifecycleState.REFUSED:
        raise fail(f"refused: the account is {outcome.account_status} ({outcome.case_id})")
    until = f"until {when(outcome.until)}" if outcome.until else "until lifted"
    typer.echo(f"{done} {until} ({outcome.case_id})")


@app.command("deactivate")
def deactivate(
    account_ref: AccountRef,
    reason: Annotated[str | None, typer.Option(help="Kept in the account's record")] = None,
    by: By = None,
) -> None:
    """Deactivate an account: signed out everywhere, purged after RECLAIM_DELETION_GRACE
    unless its holder signs in or recovers it before then."""

    async def work(services: Services) -> Any:
        account_id = await _account_id(services, account_ref)
        return await services.lifecycle.deactivate(account_id, operator(by), reason)

    _report(with_services(settings_for_command(), work), "deactivated; purge scheduled")


@app.command("ban")
def ban(
    account_ref: AccountRef,
    reason: Annotated[str, typer.Option(help="Shown to the holder if they try to recover")],
    days: Annotated[
        float | None, typer.Option(min=0.001, help="Lift it after this many days [default: never]")
    ] = None,
    by: By = None,
) -> None:
    """Ban an account: signed out everywhere, no sign-in, no recovery code."""
    duration = round(days * 86_400) if days else None

    async def work(services: Services) -> Any:
        account_id = await _account_id(services, account_ref)
        return await services.lifecycle.ban(account_id, reason, operator(by), duration)

    _report(with_services(settings_for_command(), work), "banned")


@app.command("unban")
def unban(
    account_ref: AccountRef,
    reason: Annotated[str | None, typer.Option(help="Kept in the account's record")] = None,
    by: By = None,
) -> None:
    """Lift a ban now; the holder is told."""
    from reclaim.lifecycle.service import NotBanned

    async def work(services: Services) -> Any:
        account_id = await _account_id(services, account_ref)
        try:
            return await services.lifecycle.unban(account_id, operator(by), reason)
        except NotBanned:
            raise fail(f"{account_ref} is not banned") from None

    with_services(settings_for_command(), work)
    typer.echo(f"lifted the ban on {account_ref}")


mfa = typer.Typer(
    help="An account's second factors: TOTP, recovery codes and passkeys.",
    no_args_is_help=True,
)
app.add_typer(mfa, name="mfa")

_FACTOR_NAMES = {
    FactorKind.TOTP: "TOTP",
    FactorKind.RECOVERY_CODE: "recovery codes",
    FactorKind.WEBAUTHN: "passkey",
}


async def _factor_account(services: Services, ref: str) -> int:
    """The account's id, once the directory is known to keep second factors (else one line
    saying so, before anything is asked of it)."""
    require(services.directory, Capability.SECOND_FACTORS)
    return await _account_id(services, ref)


@mfa.command("show")
def mfa_show(account_ref: AccountRef) -> None:
    """The account's second factors: which, since when, last used, recovery codes left."""

    async def work(services: Services) -> Any:
        account_id = await _factor_account(services, account_ref)
        record = await services.directory.get(account_id)
        bound = bool(record is not None and record.factors)
        return await services.directory.factors(account_id), bound

    factors, bound = with_services(settings_for_command(), work)
    if not factors and bound:  # an LDAP mark, a host's factor: none kept here yet
        typer.echo(
            f"{account_ref} is bound to a second factor kept elsewhere and has no recovery "
            "code here: only a support claim recovers it until `reclaim accounts mfa "
            "recovery-codes` makes some"
        )
        return
    if not factors:
        typer.echo(f"{account_ref} has no second factor: a contact code alone recovers it")
        return
    for factor in factors:
        line = f"{_FACTOR_NAMES[factor.kind] + ':':16}enrolled {when(factor.enrolled_at)}"
        line += f", last used {when(factor.last_used_at) if factor.last_used_at else 'never'}"
        if factor.remaining is not None:
            line += f", {factor.remaining} left"
        if factor.name is not None:
            line += f", named {factor.name!r}"
        typer.echo(line)


@mfa.command("totp")
def mfa_totp(account_ref: AccountRef) -> None:
    """Enrol a new TOTP secret (replacing any) and print the otpauth:// URI to give the
    holder once: an authenticator app reads it (as a QR code or pasted)."""

    async def work(services: Services) -> Any:
        account_id = await _factor_account(services, account_ref)
        return await services.directory.enrol_totp(account_id, datetime.now(UTC))

    uri = with_services(settings_for_command(), work)
    typer.echo(f"TOTP enrolled for {account_ref}; give the holder this URI, shown only now:")
    typer.echo(uri)


@mfa.command("recovery-codes")
def mfa_recovery_codes(account_ref: AccountRef) -> None:
    """Make ten new recovery codes (the previous set stops working) and print them, one a
    line: give them to the holder, they are not shown again."""

    async def work(services: Services) -> Any:
        account_id = await _factor_account(services, account_ref)
        return await services.directory.new_recovery_codes(account_id, datetime.now(UTC))

    codes = with_services(settings_for_command(), work)
    typer.echo(
        f"{len(codes)} new recovery codes for {account_ref} (the previous ones no longer "
        "work), each good once, shown only now:"
    )
    for code in codes:
        typer.echo(code)


@mfa.command("remove")
def mfa_remove(
    account_ref: AccountRef,
    factor: Annotated[FactorKind, typer.Option("--factor", help="Which second factor")],
) -> None:
    """Remove a second factor (all the recovery codes, for recovery_code; every passkey, for
    webauthn)."""

    async def work(services: Services) -> Any:
        account_id = await _factor_account(services, account_ref)
        return await services.directory.remove_factor(account_id, factor)

    removed = with_services(settings_for_command(), work)
    name = _FACTOR_NAMES[factor]
    if removed:
        typer.echo(f"removed {name} from {account_ref}")
    else:
        typer.echo(f"{account_ref} had no {name}: nothing to remove")
