"""Account statuses in the database, on SQLite and (with RECLAIM_TEST_POSTGRES_URL)
PostgreSQL: the guards that keep a stale timer from acting, and a purge that leaves nothing
personal behind, once, however often it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from reclaim import accounts, cases, lifecycle
from reclaim.contracts import (
    AccountStatus,
    Actor,
    ActorKind,
    ApplyReset,
    PurgeAccount,
    StatusChange,
)
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.models import (
    Account,
    AccountEvent,
    LoginSession,
    Notification,
    RecoveryCase,
    ReservedUsername,
)
from reclaim.security import Keys, Passwords, new_case_id

KEYS = Keys(b"lifecycle-tests-secret-0123456789")
HASHER = Passwords(1, 1024, 1)
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OPERATOR = Actor(ActorKind.OPERATOR, "olivia")
PASSWORD = "first password"
JANE = {"username": "jane", "email": "jane@example.com", "phone": "+14155550123"}


def _account(engine: Engine) -> int:
    with Session(engine) as session:
        account = accounts.create_account(
            session, password_hash=HASHER.hash(PASSWORD), keys=KEYS, **JANE
        )
        assert account.id is not None
        return account.id


def _deactivate(engine: Engine, account_id: int, case_id: str = "del_1") -> None:
    with Session(engine) as session:
        change = StatusChange(case_id, account_id, T0, OPERATOR, until=T0 + timedelta(days=30))
        assert lifecycle.deactivate(session, change).applied


def _purge(engine: Engine, account_id: int, case_id: str = "del_1") -> bool:
    with Session(engine) as session:
        request = PurgeAccount(case_id, account_id, T0 + timedelta(days=30), quarantine=86_400)
        return lifecycle.purge(
            session, request, lambda name: accounts.username_digest(KEYS, name)
        ).applied


def _login(
    engine: Engine, identifier: Identifier, password: str = PASSWORD
) -> accounts.LoginResult:
    return accounts.login(engine, KEYS, HASHER, identifier, password)


def _everything(engine: Engine) -> str:
    """Every row of every table, as text."""
    with engine.connect() as connection:
        return "\n".join(
            repr(tuple(row))
            for table in SQLModel.metadata.sorted_tables
            for row in connection.execute(sql_select(table))
        )


def test_a_purge_leaves_no_personal_data_and_runs_once_however_often_it_is_retried(
    engine: Engine,
):
    account_id = _account(engine)
    assert _login(engine, Identifier(IdentifierKind.USERNAME, "jane")).token
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
    _deactivate(engine, account_id)
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

    assert _purge(engine, account_id)
    before_retry = _everything(engine)
    assert _purge(engine, account_id)  # the activity, retried after its answer was lost

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
        with Session(engine) as session:
            assert accounts.find_account(session, identifier) is None
        assert _login(engine, identifier).problem == "invalid_credentials"


def test_a_stale_deletion_case_purges_nothing(engine: Engine):
    account_id = _account(engine)
    _deactivate(engine, account_id, "del_old")
    assert (
        _login(engine, Identifier(IdentifierKind.EMAIL, "jane@example.com")).reactivated
        == "del_old"
    )
    _deactivate(engine, account_id, "del_new")

    assert not _purge(engine, account_id, "del_old")

    with Session(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None and account.username == "jane"
        assert account.status == AccountStatus.DEACTIVATED and account.status_case == "del_new"


def test_a_reserved_username_is_free_again_when_its_quarantine_ends(engine: Engine):
    account_id = _account(engine)
    _deactivate(engine, account_id)
    _purge(engine, account_id)
    with Session(engine) as session:
        with pytest.raises(accounts.UsernameReserved) as reserved:
            accounts.create_account(
                session,
                username="jane",
                email="new@example.com",
                phone=None,
                password_hash="x",
                keys=KEYS,
            )
        assert "2026-12-25" in str(reserved.value)
        row = session.exec(select(ReservedUsername)).one()
        row.until = datetime.now(UTC) - timedelta(seconds=1)
        session.add(row)
        session.commit()

        again = accounts.create_account(
            session,
            username="jane",
            email="new@example.com",
            phone=None,
            password_hash="x",
            keys=KEYS,
        )
    assert again.username == "jane"


def test_an_old_ban_case_cannot_lift_a_newer_ban(engine: Engine):
    account_id = _account(engine)
    with Session(engine) as session:
        lifecycle.ban(session, StatusChange("ban_old", account_id, T0, OPERATOR, "spam"))
        newer = lifecycle.ban(
            session,
            StatusChange("ban_new", account_id, T0, OPERATOR, "fraud", T0 + timedelta(days=9)),
        )
        assert newer.previous_case == "ban_old"
        ended = Actor(ActorKind.SYSTEM, "ban timer")

        assert not lifecycle.lift_ban(
            session, StatusChange("ban_old", account_id, T0, ended)
        ).applied

        account = session.get(Account, account_id)
        assert account is not None and account.status == AccountStatus.BANNED
        assert account.status_reason == "fraud"


def test_signing_in_answers_by_status(engine: Engine):
    account_id = _account(engine)
    jane = Identifier(IdentifierKind.USERNAME, "jane")
    with Session(engine) as session:
        lifecycle.ban(
            session, StatusChange("ban_1", account_id, T0, OPERATOR, "spam", T0 + timedelta(days=2))
        )

    banned = _login(engine, jane)
    wrong_password = _login(engine, jane, "not the password")

    assert (banned.problem, banned.until, banned.token) == (
        "account_banned",
        T0 + timedelta(days=2),
        None,
    )
    # The status shows only to someone who knows the password.
    assert wrong_password.problem == "invalid_credentials"
    with Session(engine) as session:
        lifecycle.lift_ban(session, StatusChange("ban_1", account_id, T0, OPERATOR))
    _deactivate(engine, account_id)
    reactivated = _login(engine, jane)
    assert reactivated.token is not None and reactivated.reactivated == "del_1"
    assert accounts.current_session(engine, KEYS, reactivated.token) is not None


def test_a_recovery_reactivates_a_deactivated_account_but_not_a_banned_one(engine: Engine):
    account_id = _account(engine)
    _deactivate(engine, account_id)
    reset = ApplyReset(new_case_id(), account_id, HASHER.hash("a new password"), T0, 0, 0)
    with Session(engine) as session:
        done = cases.apply_reset(session, reset)
    assert done.reactivated == "del_1" and done.account.status == AccountStatus.ACTIVE

    with Session(engine) as session:
        lifecycle.ban(session, StatusChange("ban_1", account_id, T0, OPERATOR, "spam"))
        with pytest.raises(cases.NoAccount):
            cases.apply_reset(session, ApplyReset(new_case_id(), account_id, "h", T0, 0, 0))
