"""Account statuses in the built-in directory, on SQLite and (with RECLAIM_TEST_POSTGRES_URL)
PostgreSQL: the guards that keep a stale timer from acting, and a purge that leaves nothing
personal behind, once, however often it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from activities.lifecycle import LifecycleActivities
from reclaim.contracts import AccountStatus, Actor, ActorKind, PurgeAccount, StatusChange
from reclaim.directory import AccountGone, SignIn, UsernameReserved
from reclaim.directory.tables import Account, AccountEvent, LoginSession, ReservedUsername
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.recovery.contracts import ApplyReset
from reclaim.security import new_case_id
from reclaim.services import Services
from reclaim.store.models import Notification, RecoveryCase
from tests.stack import TEST_PASSWORDS, sql_directory

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OPERATOR = Actor(ActorKind.OPERATOR, "olivia")
PASSWORD = "first password"
JANE = {"username": "jane", "email": "jane@example.com", "phone": "+14155550123"}


async def _account(engine: Engine) -> int:
    return (await sql_directory(engine).create(password=PASSWORD, **JANE)).id


async def _deactivate(engine: Engine, account_id: int, case_id: str = "del_1") -> None:
    change = StatusChange(case_id, account_id, T0, OPERATOR, until=T0 + timedelta(days=30))
    assert (await sql_directory(engine).deactivate(change)).applied


def _purge_request(account_id: int, case_id: str = "del_1") -> PurgeAccount:
    return PurgeAccount(case_id, account_id, T0 + timedelta(days=30), quarantine=86_400)


async def _purge(engine: Engine, account_id: int, case_id: str = "del_1") -> bool:
    return (await sql_directory(engine).purge(_purge_request(account_id, case_id))).applied


async def _login(engine: Engine, identifier: Identifier, password: str = PASSWORD) -> SignIn:
    return await sql_directory(engine).sign_in(identifier, password)


def _everything(engine: Engine) -> str:
    """Every row of every table, as text."""
    with engine.connect() as connection:
        return "\n".join(
            repr(tuple(row))
            for table in SQLModel.metadata.sorted_tables
            for row in connection.execute(sql_select(table))
        )


async def test_a_purge_leaves_no_personal_data_and_runs_once_however_often_it_is_retried(
    engine: Engine, offline_services: Services
):
    """The purge activity: the directory erases the account, then every feature forgets
    what it kept (the addresses its messages went to)."""
    account_id = await _account(engine)
    assert (await _login(engine, Identifier(IdentifierKind.USERNAME, "jane"))).token
    case_id = new_case_id()
    with Session(engine) as session:
        session.add(
            RecoveryCase(
                case_id=case_id,
                account_id=account_id,
                identifier_digest="d",
                channel="sms",
                opened_at=T0,
            )
        )
        session.add(
            Notification(case_id=case_id, kind="code", channel="sms", recipient=JANE["phone"])
        )
        session.commit()
    await _deactivate(engine, account_id)
    with Session(engine) as session:
        session.add(
            Notification(
                case_id="del_1",
                kind="account_deactivated",
                channel="email",
                recipient=JANE["email"],
            )
        )
        session.commit()

    services = offline_services
    purge = LifecycleActivities(services.lifecycle, services.recovery_steps, services.claim_steps)
    assert (await purge.purge_account(_purge_request(account_id))).applied
    before_retry = _everything(engine)
    # The activity, retried after its answer was lost.
    assert (await purge.purge_account(_purge_request(account_id))).applied

    assert _everything(engine) == before_retry
    for value in JANE.values():
        assert value not in before_retry.lower(), value
    with Session(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None and account.status == AccountStatus.PURGED
        assert session.exec(select(LoginSession)).all() == []
        reserved = session.exec(select(ReservedUsername)).all()
        assert [r.until for r in reserved] == [T0 + timedelta(days=31)]
        actions = [e.action for e in session.exec(select(AccountEvent)).all()]
        assert actions == ["deactivated", "purged"]
    for identifier in (
        Identifier(IdentifierKind.USERNAME, "jane"),
        Identifier(IdentifierKind.EMAIL, "jane@example.com"),
        Identifier(IdentifierKind.PHONE, "+14155550123"),
    ):
        assert await sql_directory(engine).find(identifier) is None
        assert (await _login(engine, identifier)).problem == "invalid_credentials"


async def test_a_stale_deletion_case_purges_nothing(engine: Engine):
    account_id = await _account(engine)
    await _deactivate(engine, account_id, "del_old")
    signed_in = await _login(engine, Identifier(IdentifierKind.EMAIL, "jane@example.com"))
    assert signed_in.reactivated == "del_old"
    await _deactivate(engine, account_id, "del_new")

    assert not await _purge(engine, account_id, "del_old")

    with Session(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None and account.username == "jane"
        assert account.status == AccountStatus.DEACTIVATED and account.status_case == "del_new"


async def test_a_reserved_username_is_free_again_when_its_quarantine_ends(engine: Engine):
    directory = sql_directory(engine)
    account_id = await _account(engine)
    await _deactivate(engine, account_id)
    await _purge(engine, account_id)
    jane = {"username": "jane", "email": "new@example.com", "phone": None, "password": "x"}
    with pytest.raises(UsernameReserved) as reserved:
        await directory.create(**jane)
    assert "2026-12-25" in str(reserved.value)
    with Session(engine) as session:
        row = session.exec(select(ReservedUsername)).one()
        row.until = datetime.now(UTC) - timedelta(seconds=1)
        session.add(row)
        session.commit()

    again = await directory.create(**jane)

    assert again.username == "jane"


async def test_an_old_ban_case_cannot_lift_a_newer_ban(engine: Engine):
    directory = sql_directory(engine)
    account_id = await _account(engine)
    await directory.ban(StatusChange("ban_old", account_id, T0, OPERATOR, "spam"))
    newer = await directory.ban(
        StatusChange("ban_new", account_id, T0, OPERATOR, "fraud", T0 + timedelta(days=9))
    )
    assert newer.previous_case == "ban_old"
    ended = Actor(ActorKind.SYSTEM, "ban timer")

    lifted = await directory.lift_ban(StatusChange("ban_old", account_id, T0, ended))

    assert not lifted.applied
    account = await directory.get(account_id)
    assert account is not None and account.status == AccountStatus.BANNED
    assert account.status_reason == "fraud"


async def test_signing_in_answers_by_status(engine: Engine):
    directory = sql_directory(engine)
    account_id = await _account(engine)
    jane = Identifier(IdentifierKind.USERNAME, "jane")
    await directory.ban(
        StatusChange("ban_1", account_id, T0, OPERATOR, "spam", T0 + timedelta(days=2))
    )

    banned = await _login(engine, jane)
    wrong_password = await _login(engine, jane, "not the password")

    assert (banned.problem, banned.until, banned.token) == (
        "account_banned",
        T0 + timedelta(days=2),
        None,
    )
    # The status shows only to someone who knows the password.
    assert wrong_password.problem == "invalid_credentials"
    await directory.lift_ban(StatusChange("ban_1", account_id, T0, OPERATOR))
    await _deactivate(engine, account_id)
    reactivated = await _login(engine, jane)
    assert reactivated.token is not None and reactivated.reactivated == "del_1"
    assert await directory.session(reactivated.token) is not None


async def test_a_recovery_reactivates_a_deactivated_account_but_not_a_banned_one(
    engine: Engine, offline_services: Services
):
    directory = sql_directory(engine)
    account_id = await _account(engine)
    await _deactivate(engine, account_id)
    reset = ApplyReset(new_case_id(), account_id, TEST_PASSWORDS.hash("a new password"), T0, 0, 0)

    account = await offline_services.recovery_steps.apply_reset(reset)

    assert account.status == AccountStatus.ACTIVE
    changes = (await directory.overview(account_id)).changes  # type: ignore[union-attr]
    assert [(c.action, c.reason) for c in changes][-1] == ("reactivated", "completed a recovery")
    await directory.ban(StatusChange("ban_1", account_id, T0, OPERATOR, "spam"))
    with pytest.raises(AccountGone):
        await offline_services.recovery_steps.apply_reset(
            ApplyReset(new_case_id(), account_id, "h", T0, 0, 0)
        )
