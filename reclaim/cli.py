"""`reclaim`: run the stack, manage accounts, look at cases."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import re
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlmodel import Session, col, select

from reclaim.settings import CannotStart, Settings, load_settings

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Engine

    from reclaim.contracts import Actor
    from reclaim.security import Keys

app = typer.Typer(
    help="Reclaim: account recovery cases as durable Temporal workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
accounts_app = typer.Typer(
    help="Create, inspect, deactivate and ban accounts.", no_args_is_help=True
)
cases_app = typer.Typer(help="Look at and stop recovery cases.", no_args_is_help=True)
temporal_app = typer.Typer(help="Prepare a Temporal cluster for Reclaim.", no_args_is_help=True)
staff_app = typer.Typer(help="The support team and their API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Reclaim's database schema (migrations).", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(cases_app, name="cases")
app.add_typer(temporal_app, name="temporal")
app.add_typer(staff_app, name="staff")
app.add_typer(db_app, name="db")


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


def _settings() -> Settings:
    from reclaim.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    return settings


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


def _with_dev_secret(settings: Settings) -> Settings:
    """An operator's command next to `reclaim dev` uses the secret it keeps, unless
    RECLAIM_SECRET_KEY says otherwise."""
    if settings.secret_key is None and settings.secret_file.exists():
        return settings.model_copy(update={"dev_mode": True})
    return settings


def _keys(settings: Settings) -> Keys:
    """The server's keys: from RECLAIM_SECRET_KEY, or the one `reclaim dev` keeps."""
    from reclaim.security import Keys

    return Keys(_with_dev_secret(settings).secret_bytes())


def _engine(settings: Settings) -> Engine:
    """The database, at the schema revision this release needs (else a one-line refusal)."""
    from reclaim.db import make_engine
    from reclaim.migrations import require_current

    engine = make_engine(settings.resolved_database_url)
    require_current(engine)
    return engine


AccountRef = Annotated[
    str,
    typer.Argument(metavar="ACCOUNT", help="A username, or #ID (a purged account has only its id)"),
]
By = Annotated[
    str | None, typer.Option("--by", help="Who is doing this, for the record [default: $USER]")
]


def _account_id(engine: Engine, ref: str) -> int:
    from reclaim.models import Account

    with Session(engine) as session:
        if ref.startswith("#") and ref[1:].isdigit():
            account = session.get(Account, int(ref[1:]))
        else:
            account = session.exec(select(Account).where(Account.username == ref.lower())).first()
    if account is None or account.id is None:
        raise _fail(f"no account named {ref}")
    return account.id


def _operator(by: str | None) -> Actor:
    from reclaim.contracts import Actor, ActorKind

    return Actor(ActorKind.OPERATOR, by or getpass.getuser())


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" if at else "-"


@app.command()
def dev() -> None:
    """Everything on this machine: Temporal dev server + Web UI, SMTP sink, worker, API."""
    from reclaim.devstack import DevStack

    settings = _settings().model_copy(update={"dev_mode": True})
    raise typer.Exit(DevStack(settings).run())


@app.command()
def worker() -> None:
    """Run one worker: every workflow and activity on the task queue."""
    from worker import run_worker

    settings = _settings()
    settings.secret_bytes()
    asyncio.run(run_worker(settings))


@app.command()
def api() -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from reclaim.logs import uvicorn_log_config

    settings = _settings()
    settings.secret_bytes()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=uvicorn_log_config(),
        proxy_headers=True,
    )


@accounts_app.command("add")
def accounts_add(
    username: Annotated[str, typer.Option(help="3-32 letters, digits, '.', '_', '-'")],
    email: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    phone: Annotated[str | None, typer.Option(help="E.164, e.g. +14155550123")] = None,
) -> None:
    """Create an account ready to sign in (and to be recovered)."""
    from reclaim.accounts import AccountExists, create_account
    from reclaim.identifiers import (
        InvalidIdentifier,
        normalize_email,
        normalize_phone,
        normalize_username,
    )
    from reclaim.passwords import check_password
    from reclaim.security import Passwords

    settings = _settings()
    try:
        name = normalize_username(username)
        address = normalize_email(email)
        number = normalize_phone(phone, settings.default_region) if phone else None
    except InvalidIdentifier as err:
        raise _fail(f"invalid: {err}") from err
    verdict = check_password(password, username=name, email=address, phone=number)
    if not verdict.ok:
        raise _fail(f"password refused ({', '.join(verdict.reasons)}): {' '.join(verdict.hints)}")
    hasher = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )
    with Session(_engine(settings)) as session:
        try:
            account = create_account(
                session,
                username=name,
                email=address,
                phone=number,
                password_hash=hasher.hash(password),
                keys=_keys(settings),
            )
        except AccountExists as err:
            raise _fail(str(err)) from err
        typer.echo(f"created account {account.username} (id {account.id})")


@accounts_app.command("show")
def accounts_show(account_ref: AccountRef) -> None:
    """An account: status, sessions, recent recovery cases and every lifecycle change."""
    from reclaim import lifecycle
    from reclaim.models import Account, LoginSession, RecoveryCase

    settings = _settings()
    engine = _engine(settings)
    account_id = _account_id(engine, account_ref)
    with Session(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None
        live_sessions = session.exec(
            select(LoginSession).where(
                LoginSession.account_id == account.id, col(LoginSession.revoked_at).is_(None)
            )
        ).all()
        recent = session.exec(
            select(RecoveryCase)
            .where(RecoveryCase.account_id == account.id)
            .order_by(col(RecoveryCase.opened_at).desc())
            .limit(10)
        ).all()
        changes = lifecycle.events(session, account_id)
    typer.echo(f"username:   {account.username} (id {account.id})")
    status = account.status
    if account.status_since:
        status += f" since {_when(account.status_since)}"
    if account.status_until:
        status += f" until {_when(account.status_until)}"
    typer.echo(f"status:     {status}")
    if account.status_reason:
        typer.echo(f"reason:     {account.status_reason}")
    if account.status_case:
        typer.echo(f"case:       {account.status_case}")
    typer.echo(f"email:      {account.email}")
    typer.echo(f"phone:      {account.phone or '-'}")
    typer.echo(f"created:    {_when(account.created_at)}")
    changed = account.password_changed_at
    typer.echo(f"password:   {f'changed {_when(changed)}' if changed else 'as created'}")
    typer.echo(f"sessions:   {len(live_sessions)} active")
    typer.echo("recent recovery cases:" if recent else "recent recovery cases: none")
    for case in recent:
        typer.echo(
            f"  {case.case_id}  {case.opened_at:%Y-%m-%d %H:%M:%S}  {case.channel:5}  "
            f"{case.state or 'open'}"
        )
    typer.echo("lifecycle:" if changes else "lifecycle: no change since creation")
    for event in changes:
        line = f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.action:12} by {event.actor_kind}"
        line += f" ({event.actor})"
        if event.until:
            line += f"  until {_when(event.until)}"
        if event.reason:
            line += f"  reason: {event.reason}"
        if event.case_id:
            line += f"  [{event.case_id}]"
        typer.echo(line)


def _lifecycle_call(settings: Settings, engine: Engine, call: Any) -> Any:
    from temporalio.client import RPCTimeoutOrCancelledError
    from temporalio.service import RPCError

    from reclaim.account_cases import AccountCases

    async def work(client: Any) -> Any:
        return await call(AccountCases(client, engine, settings))

    try:
        return asyncio.run(_with_client(settings, work))
    except RPCTimeoutOrCancelledError as err:
        raise _fail("no worker answered in time: run one (reclaim worker) and retry") from err
    except (RPCError, RuntimeError) as err:
        raise _fail(f"Temporal at {settings.temporal_address} is not answering: {err}") from err


def _report(outcome: Any, done: str) -> None:
    from reclaim.account_cases import Pending
    from reclaim.contracts import LifecycleState

    if isinstance(outcome, Pending):
        typer.echo(f"requested ({outcome.case_id}): it applies as soon as a worker runs it")
        return
    if outcome.state is LifecycleState.REFUSED:
        raise _fail(f"refused: the account is {outcome.account_status} ({outcome.case_id})")
    until = f"until {_when(outcome.until)}" if outcome.until else "until lifted"
    typer.echo(f"{done} {until} ({outcome.case_id})")


@accounts_app.command("deactivate")
def accounts_deactivate(
    account_ref: AccountRef,
    reason: Annotated[str | None, typer.Option(help="Kept in the account's record")] = None,
    by: By = None,
) -> None:
    """Deactivate an account: signed out everywhere, purged after RECLAIM_DELETION_GRACE
    unless its holder signs in or recovers it before then."""
    settings = _settings()
    engine = _engine(settings)
    account_id = _account_id(engine, account_ref)
    outcome = _lifecycle_call(
        settings, engine, lambda cases: cases.deactivate(account_id, _operator(by), reason)
    )
    _report(outcome, "deactivated; purge scheduled")


@accounts_app.command("ban")
def accounts_ban(
    account_ref: AccountRef,
    reason: Annotated[str, typer.Option(help="Shown to the holder if they try to recover")],
    days: Annotated[
        float | None, typer.Option(min=0.001, help="Lift it after this many days [default: never]")
    ] = None,
    by: By = None,
) -> None:
    """Ban an account: signed out everywhere, no sign-in, no recovery code."""
    settings = _settings()
    engine = _engine(settings)
    account_id = _account_id(engine, account_ref)
    duration = round(days * 86_400) if days else None
    outcome = _lifecycle_call(
        settings,
        engine,
        lambda cases: cases.ban(account_id, reason, _operator(by), duration),
    )
    _report(outcome, "banned")


@accounts_app.command("unban")
def accounts_unban(
    account_ref: AccountRef,
    reason: Annotated[str | None, typer.Option(help="Kept in the account's record")] = None,
    by: By = None,
) -> None:
    """Lift a ban now; the holder is told."""
    from reclaim.account_cases import NotBanned

    settings = _settings()
    engine = _engine(settings)
    account_id = _account_id(engine, account_ref)
    try:
        _lifecycle_call(
            settings, engine, lambda cases: cases.unban(account_id, _operator(by), reason)
        )
    except NotBanned as err:
        raise _fail(f"{account_ref} is not banned") from err
    typer.echo(f"lifted the ban on {account_ref}")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


async def _with_client(settings: Settings, work: Any) -> Any:
    from reclaim.temporal import connect

    client = await connect(_with_dev_secret(settings))
    return await work(client)


@cases_app.command("list")
def cases_list(
    state: Annotated[str | None, typer.Option(help="e.g. awaiting_code, verified")] = None,
    limit: int = 50,
) -> None:
    """Self-service cases from Temporal visibility: the open ones, or all in one state."""
    settings = _settings()
    query = 'RecoveryCaseKind="self_service"'
    if state:
        if not state.replace("_", "").isalpha():
            raise _fail(f"not a state: {state}")
        query += f' AND RecoveryCaseState="{state}"'
    else:
        query += ' AND ExecutionStatus="Running"'

    async def work(client: Any) -> None:
        from reclaim import search_attributes as sa

        shown = 0
        async for execution in client.list_workflows(query):
            attrs = execution.typed_search_attributes
            line = f"{execution.id}  {attrs.get(sa.CASE_STATE) or '?':14} "
            line += f"{attrs.get(sa.CHANNEL) or '?':5}"
            deadline = attrs.get(sa.NEXT_DEADLINE)
            if deadline is not None:
                line += f"  next deadline {deadline:%Y-%m-%d %H:%M:%S} UTC"
            typer.echo(line)
            shown += 1
            if shown >= limit:
                break

    asyncio.run(_with_client(settings, work))


@cases_app.command("show")
def cases_show(case_id: str) -> None:
    """The status of one case, as its workflow reports it."""
    from reclaim.contracts import RecoveryCalls, RecoveryStatus

    settings = _settings()

    async def work(client: Any) -> RecoveryStatus:
        handle = client.get_workflow_handle(case_id)
        status: RecoveryStatus = await handle.query(
            RecoveryCalls.STATUS, result_type=RecoveryStatus
        )
        return status

    status = asyncio.run(_with_client(settings, work))
    typer.echo(json.dumps(_jsonable(asdict(status)), indent=2))


@cases_app.command("cancel")
def cases_cancel(
    case_id: str, reason: Annotated[str, typer.Option(help="Kept in the case's history")]
) -> None:
    """Stop an open case (its code stops working at once)."""
    from reclaim.contracts import RecoveryCalls

    settings = _settings()

    async def work(client: Any) -> None:
        await client.get_workflow_handle(case_id).signal(RecoveryCalls.CANCEL, reason)

    asyncio.run(_with_client(settings, work))
    typer.echo(f"asked {case_id} to stop")


@staff_app.command("add")
def staff_add(
    name: Annotated[str, typer.Option(help="1-64 letters, digits, '.', '_', '-'")],
    role: Annotated[str, typer.Option(help="reviewer or supervisor")],
) -> None:
    """Add a member of staff. Their API key is printed once, on the last line: only a
    digest of it is kept."""
    from reclaim import staff
    from reclaim.contracts import StaffRole

    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        raise _fail("a name is 1 to 64 letters, digits, '.', '_' or '-'")
    try:
        staff_role = StaffRole(role)
    except ValueError as err:
        raise _fail("the role is reviewer or supervisor") from err
    settings = _settings()
    with Session(_engine(settings)) as session:
        try:
            member, key = staff.add_staff(session, _keys(settings), name, staff_role)
        except staff.StaffExists as err:
            raise _fail(str(err)) from err
    typer.echo(f"added {member.name} ({member.role}, id {member.id}); their API key, shown once:")
    typer.echo(key)


@staff_app.command("list")
def staff_list() -> None:
    """The members of staff (never their keys)."""
    from reclaim.models import Staff

    with Session(_engine(_settings())) as session:
        members = session.exec(select(Staff).order_by(col(Staff.id))).all()
    for member in members:
        state = "disabled" if member.disabled_at else "active"
        typer.echo(f"{member.id:>4}  {member.name:20} {member.role:10} {state}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database to the newest schema revision (safe to run at every deploy and from
    several places at once). A database made before migrations is checked and recorded."""
    from reclaim.db import make_engine
    from reclaim.migrations import upgrade

    engine = make_engine(_settings().resolved_database_url)
    done = upgrade(engine)
    typer.echo(f"{engine.url.render_as_string(hide_password=True)}: {done.describe()}")


@db_app.command("current")
def db_current() -> None:
    """The database's schema revision, and whether it is the one this release needs."""
    from reclaim.db import make_engine
    from reclaim.migrations import SchemaNotCurrent, current_revision, head, require_current

    engine = make_engine(_settings().resolved_database_url)
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


@db_app.command("revision")
def db_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the change does")],
) -> None:
    """For developers: write a migration for what reclaim/models.py has that the newest
    revision lacks (compared on a scratch SQLite database). Review it before committing."""
    import tempfile
    from pathlib import Path

    from reclaim.db import make_engine
    from reclaim.migrations import new_revision

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        path = new_revision(message, engine)
        engine.dispose()
    typer.echo(f"wrote {path}")


@temporal_app.command("setup")
def temporal_setup(
    create_namespace: Annotated[
        bool,
        typer.Option(
            "--create-namespace",
            help="Register the namespace first if it does not exist (a self-hosted cluster; "
            "on Temporal Cloud namespaces are made in Cloud).",
        ),
    ] = False,
    retention_days: Annotated[
        int, typer.Option(min=1, help="How long a created namespace keeps closed cases.")
    ] = 30,
    wait: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the server to answer.")
    ] = 60,
) -> None:
    """Register Reclaim's search attributes on the configured namespace (idempotent)."""
    from reclaim.temporal import connect_when_up, ensure_namespace, register_search_attributes

    settings = _with_dev_secret(_settings())
    namespace = settings.temporal_namespace

    async def work() -> tuple[bool, list[str]]:
        client = await connect_when_up(settings, wait_up_to=wait)
        created = False
        if create_namespace:
            created = await ensure_namespace(client, namespace, retention_days)
        return created, await register_search_attributes(client, namespace, wait_up_to=wait)

    created, added = asyncio.run(work())
    if created:
        typer.echo(f"created namespace {namespace} (closed cases kept {retention_days} days)")
    typer.echo(
        f"registered on {namespace}: {', '.join(added)}"
        if added
        else f"search attributes already on {namespace}"
    )


@app.command()
def healthcheck(
    what: Annotated[str, typer.Argument(metavar="api|worker")],
    timeout: Annotated[float, typer.Option(min=0.1)] = 5,
) -> None:
    """For container health checks, on the machine that runs the process: `api` answers when
    its /healthz says the database and Temporal answer; `worker` when its SDK metrics
    (RECLAIM_WORKER_METRICS_ADDRESS) show it polling its task queue. Exit 1 saying why."""
    from reclaim.health import api_health, worker_health

    settings = load_settings()
    checks = {"api": api_health, "worker": worker_health}
    if what not in checks:
        raise typer.BadParameter("api or worker", param_hint="WHAT")
    problem = checks[what](settings, timeout)
    if problem:
        raise _fail(f"{what} unhealthy: {problem}")
    typer.echo(f"{what} healthy")


@temporal_app.command("new-codec-key")
def temporal_new_codec_key(
    key_id: Annotated[str, typer.Option("--id", help="A name for the key, e.g. 2026-11.")],
    keep: Annotated[
        str | None,
        typer.Option(help="The current RECLAIM_CODEC_KEYS, kept after the new key to decrypt."),
    ] = None,
) -> None:
    """Print a fresh AES-256 key for RECLAIM_CODEC_KEYS (the first key encrypts)."""
    from reclaim.codec import new_key_spec, parse_keys

    if not re.fullmatch(r"[A-Za-z0-9._-]{1,40}", key_id):
        raise typer.BadParameter("letters, digits, '.', '_' or '-', at most 40", param_hint="--id")
    spec = new_key_spec(key_id)
    if keep:
        known = [existing for existing, _ in parse_keys(keep)]
        if key_id in known:
            raise typer.BadParameter(f"{key_id} is already a key id", param_hint="--id")
        spec = f"{spec},{keep}"
    typer.echo(spec)
