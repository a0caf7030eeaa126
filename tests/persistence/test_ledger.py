"""What must outlive a workflow, on SQLite and (with RECLAIM_TEST_POSTGRES_URL) PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reclaim import accounts, cases
from reclaim.contracts import ApplyReset, CaseClosing, CaseState
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.models import Account, LoginSession, Notification, PasswordHistory, RecoveryCase
from reclaim.security import Keys, Passwords, new_case_id

KEYS = Keys(b"persistence-tests-secret-012345")
HASHER = Passwords(1, 1024, 1)
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _account(engine: Engine, username: str = "jane", phone: str | None = "+14155550123") -> int:
    with Session(engine) as session:
        account = accounts.create_account(
            session,
            username=username,
            email=f"{username}@example.com",
            phone=phone,
            password_hash=HASHER.hash("first password"),
        )
        assert account.id is not None
        return account.id


def _open(engine: Engine, digest: str, at: datetime, account_id: int | None = None) -> object:
    with Session(engine) as session:
        return cases.open_case(
            session,
            RecoveryCase(
                case_id=new_case_id(),
                account_id=account_id,
                identifier_digest=digest,
                channel="email",
                opened_at=at,
            ),
            per_hour=5,
        )


def test_accounts_are_found_by_any_identifier_and_are_unique(engine: Engine):
    account_id = _account(engine)

    with Session(engine) as session:
        for identifier in (
            Identifier(IdentifierKind.USERNAME, "jane"),
            Identifier(IdentifierKind.EMAIL, "jane@example.com"),
            Identifier(IdentifierKind.PHONE, "+14155550123"),
        ):
            found = accounts.find_account(session, identifier)
            assert found is not None and found.id == account_id
        assert accounts.find_account(session, Identifier(IdentifierKind.USERNAME, "bob")) is None
        with pytest.raises(accounts.AccountExists) as taken:
            accounts.create_account(
                session,
                username="jane2",
                email="jane@example.com",
                phone=None,
                password_hash="x",
            )
        assert taken.value.field == "email"


def test_datetimes_come_back_aware_and_in_utc(engine: Engine):
    _open(engine, "d", T0.astimezone(timezone_plus_two()))

    with Session(engine) as session:
        row = session.exec(select(RecoveryCase)).one()
    assert row.opened_at == T0 and row.opened_at.tzinfo is not None


def timezone_plus_two():
    from datetime import timezone

    return timezone(timedelta(hours=2))


def test_an_identifier_opens_five_cases_an_hour_then_waits(engine: Engine):
    digest = KEYS.identifier_digest("username:jane")
    for minute in range(5):
        assert isinstance(_open(engine, digest, T0 + timedelta(minutes=minute)), cases.CaseOpened)

    refused = _open(engine, digest, T0 + timedelta(minutes=30))

    assert isinstance(refused, cases.RateLimited)
    assert refused.retry_after == 30 * 60  # when the first of the five leaves the window
    assert isinstance(_open(engine, digest, T0 + timedelta(minutes=61)), cases.CaseOpened)
    assert isinstance(_open(engine, "another identifier", T0), cases.CaseOpened)
    with Session(engine) as session:
        assert len(session.exec(select(RecoveryCase)).all()) == 7


def test_concurrent_openings_cannot_slip_past_the_limit(engine: Engine):
    digest = KEYS.identifier_digest("email:jane@example.com")
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda i: _open(engine, digest, T0), range(12)))

    assert sum(isinstance(o, cases.CaseOpened) for o in outcomes) == 5


def test_a_new_case_names_the_open_ones_it_supersedes(engine: Engine):
    account_id = _account(engine)
    _open(engine, "a", T0, account_id)
    _open(engine, "b", T0 + timedelta(seconds=1), account_id)
    with Session(engine) as session:
        first, second = session.exec(
            select(RecoveryCase.case_id).order_by(RecoveryCase.opened_at)
        ).all()
        cases.close_case(session, CaseClosing(first, CaseState.EXPIRED, T0, 0, 0))

    third = _open(engine, "c", T0 + timedelta(seconds=2), account_id)

    assert isinstance(third, cases.CaseOpened)
    assert third.superseded == [second]


def _reset(case_id: str, account_id: int, password_hash: str) -> ApplyReset:
    return ApplyReset(case_id, account_id, password_hash, T0 + timedelta(minutes=5), 1, 0)


def test_a_reset_changes_the_password_once_even_when_applied_twice(engine: Engine):
    account_id = _account(engine)
    _open(engine, "a", T0, account_id)
    with Session(engine) as session:
        session.add(LoginSession(account_id=account_id, token_digest="s1", created_at=T0))
        session.add(LoginSession(account_id=account_id, token_digest="s2", created_at=T0))
        session.commit()
        case_id = session.exec(select(RecoveryCase.case_id)).one()
    new_hash = HASHER.hash("violet tangerine marmalade kayak")

    for _ in range(2):  # a retried activity
        with Session(engine) as session:
            cases.apply_reset(session, _reset(case_id, account_id, new_hash))

    with Session(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None and account.password_hash == new_hash
        history = session.exec(
            select(PasswordHistory).where(PasswordHistory.account_id == account_id)
        ).all()
        assert len(history) == 2
        assert all(s.revoked_at is not None for s in session.exec(select(LoginSession)).all())
        row = session.get(RecoveryCase, case_id)
        assert row is not None and (row.state, row.wrong_codes) == ("completed", 1)
        assert accounts.recent_password_hashes(session, account_id)[0] == new_hash


def test_an_older_case_may_not_reset_once_a_newer_one_exists(engine: Engine):
    account_id = _account(engine)
    _open(engine, "a", T0, account_id)
    _open(engine, "b", T0 + timedelta(seconds=1), account_id)
    with Session(engine) as session:
        older = session.exec(select(RecoveryCase).order_by(RecoveryCase.opened_at)).first()
        assert older is not None

        with pytest.raises(cases.Superseded):
            cases.apply_reset(session, _reset(older.case_id, account_id, "new"))

        account = session.get(Account, account_id)
        assert account is not None and account.password_hash != "new"


def test_closing_a_case_keeps_the_first_ending_and_wipes_kept_codes(engine: Engine):
    _open(engine, "a", T0)
    with Session(engine) as session:
        row = session.exec(select(RecoveryCase)).one()
        row.unknown_address = "nobody@example.com"
        session.add(row)
        session.add(
            Notification(
                case_id=row.case_id,
                kind="code",
                channel="email",
                recipient="x@example.com",
                sealed_code=KEYS.seal("123456", "ctx"),
            )
        )
        session.commit()
        case_id = row.case_id

        cases.close_case(session, CaseClosing(case_id, CaseState.LOCKED, T0, 5, 0))
        cases.close_case(session, CaseClosing(case_id, CaseState.EXPIRED, T0, 5, 0))

        session.expire_all()
        row = session.get(RecoveryCase, case_id)
        assert row is not None and (row.state, row.unknown_address) == ("locked", None)
        assert session.exec(select(Notification.sealed_code)).all() == [None]


def test_sign_in_opens_a_session_that_sign_out_ends(engine: Engine):
    _account(engine)
    jane = Identifier(IdentifierKind.USERNAME, "jane")

    wrong = accounts.login(engine, KEYS, HASHER, jane, "not it")
    nobody = accounts.login(engine, KEYS, HASHER, Identifier(IdentifierKind.USERNAME, "bob"), "x")
    result = accounts.login(engine, KEYS, HASHER, jane, "first password")

    assert wrong.problem == nobody.problem == "invalid_credentials"
    assert result.token is not None
    view = accounts.current_session(engine, KEYS, result.token)
    assert view is not None and view.username == "jane"
    assert accounts.end_session(engine, KEYS, result.token)
    assert accounts.current_session(engine, KEYS, result.token) is None


def test_a_weaker_stored_hash_is_upgraded_at_sign_in(engine: Engine):
    _account(engine)  # hashed with the cheap test profile
    stronger = Passwords(2, 2048, 1)

    accounts.login(
        engine, KEYS, stronger, Identifier(IdentifierKind.USERNAME, "jane"), "first password"
    )

    with Session(engine) as session:
        account = session.exec(select(Account)).one()
        assert not stronger.needs_rehash(account.password_hash)
