"""What must outlive a workflow, on SQLite and (with RECLAIM_TEST_POSTGRES_URL) PostgreSQL: the
recovery ledger (rate limit, superseding, closing), a new password applied once, and the
built-in directory's accounts and sessions."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reclaim.directory import AccountExists
from reclaim.directory.sql import SqlDirectory
from reclaim.directory.tables import Account, LoginSession, PasswordHistory
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.recovery import ledger
from reclaim.recovery.challenge import Proof
from reclaim.recovery.contracts import ApplyReset, CaseClosing, CaseState
from reclaim.recovery.steps import Superseded
from reclaim.security import Keys, Passwords, new_case_id
from reclaim.services import Services
from reclaim.store.models import Notification, RecoveryCase, SpentChallenge
from tests.stack import TEST_PASSWORDS, TEST_SECRET, sql_directory

KEYS = Keys(TEST_SECRET.encode())
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FIRST = "first password"


async def _account(engine: Engine, username: str = "jane", phone: str | None = "+14155550123"):
    account = await sql_directory(engine).create(
        username=username, email=f"{username}@example.com", phone=phone, password=FIRST
    )
    return account.id


def _open(
    engine: Engine,
    digest: str,
    at: datetime,
    account_id: int | None = None,
    proof: Proof | None = None,
) -> object:
    with Session(engine) as session:
        return ledger.open_case(
            session,
            RecoveryCase(
                case_id=new_case_id(),
                account_id=account_id,
                identifier_digest=digest,
                channel="email",
                opened_at=at,
            ),
            per_hour=5,
            proof=proof,
        )


async def test_accounts_are_found_by_any_identifier_and_are_unique(engine: Engine):
    directory = sql_directory(engine)
    account_id = await _account(engine)

    for identifier in (
        Identifier(IdentifierKind.USERNAME, "jane"),
        Identifier(IdentifierKind.EMAIL, "jane@example.com"),
        Identifier(IdentifierKind.PHONE, "+14155550123"),
    ):
        found = await directory.find(identifier)
        assert found is not None and found.id == account_id
    assert await directory.find(Identifier(IdentifierKind.USERNAME, "bob")) is None
    with pytest.raises(AccountExists) as taken:
        await directory.create(username="jane2", email="jane@example.com", phone=None, password="x")
    assert taken.value.field == "email"


def test_datetimes_come_back_aware_and_in_utc(engine: Engine):
    _open(engine, "d", T0.astimezone(timezone(timedelta(hours=2))))

    with Session(engine) as session:
        row = session.exec(select(RecoveryCase)).one()
    assert row.opened_at == T0 and row.opened_at.tzinfo is not None


def test_an_identifier_opens_five_cases_an_hour_then_waits(engine: Engine):
    digest = KEYS.identifier_digest("username:jane")
    for minute in range(5):
        assert isinstance(_open(engine, digest, T0 + timedelta(minutes=minute)), ledger.CaseOpened)

    refused = _open(engine, digest, T0 + timedelta(minutes=30))

    assert isinstance(refused, ledger.RateLimited)
    assert refused.retry_after == 30 * 60  # when the first of the five leaves the window
    assert isinstance(_open(engine, digest, T0 + timedelta(minutes=61)), ledger.CaseOpened)
    assert isinstance(_open(engine, "another identifier", T0), ledger.CaseOpened)
    with Session(engine) as session:
        assert len(session.exec(select(RecoveryCase)).all()) == 7


def _proof(name: str, level: int = 1) -> Proof:
    return Proof(name, level, T0 + timedelta(minutes=10))


def test_over_the_limit_a_proof_of_work_opens_one_case_and_the_level_rises(engine: Engine):
    digest = KEYS.identifier_digest("username:jane")
    for minute in range(5):
        _open(engine, digest, T0 + timedelta(minutes=minute))
    at = T0 + timedelta(minutes=6)

    refused = _open(engine, digest, at)
    assert isinstance(refused, ledger.RateLimited) and refused.level == 1
    assert isinstance(_open(engine, digest, at, proof=_proof("a")), ledger.CaseOpened)
    again = _open(engine, digest, at, proof=_proof("a", level=9))  # spent: worth nothing
    assert isinstance(again, ledger.RateLimited) and again.level == 2
    low = _open(engine, digest, at, proof=_proof("b", level=1))  # made before the last case
    assert isinstance(low, ledger.RateLimited)
    assert isinstance(_open(engine, digest, at, proof=_proof("b", level=2)), ledger.CaseOpened)
    # A proof that opened nothing was not spent: "b" at level 1 was refused, then "b" opened
    # one. Under the limit a proof is not needed and not spent.
    assert isinstance(_open(engine, "another", at, proof=_proof("c")), ledger.CaseOpened)
    with Session(engine) as session:
        spent = session.exec(select(SpentChallenge.challenge)).all()
    assert sorted(spent) == ["a", "b"]


def test_concurrent_proofs_open_one_case_each_level(engine: Engine):
    digest = KEYS.identifier_digest("email:jane@example.com")
    for _ in range(5):
        _open(engine, digest, T0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        replays = list(pool.map(lambda i: _open(engine, digest, T0, proof=_proof("x")), range(8)))
        others = list(
            pool.map(lambda i: _open(engine, digest, T0, proof=_proof(f"y{i}", 2)), range(8))
        )

    assert sum(isinstance(o, ledger.CaseOpened) for o in replays) == 1
    assert sum(isinstance(o, ledger.CaseOpened) for o in others) == 1


def test_concurrent_openings_cannot_slip_past_the_limit(engine: Engine):
    digest = KEYS.identifier_digest("email:jane@example.com")
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda i: _open(engine, digest, T0), range(12)))

    assert sum(isinstance(o, ledger.CaseOpened) for o in outcomes) == 5


def _case_of(engine: Engine, account_id: int | None, identifier: str = "username:jane") -> str:
    case_id = new_case_id()
    with Session(engine) as session:
        session.add(
            RecoveryCase(
                case_id=case_id,
                account_id=account_id,
                identifier_digest=KEYS.identifier_digest(identifier),
                channel="email",
                opened_at=T0,
            )
        )
        session.commit()
    return case_id


def _budget(subject: str) -> str:
    return KEYS.identifier_digest(f"guess-budget:{subject}")


async def test_the_guess_budget_spans_an_accounts_cases_and_frees_up_after_an_hour(
    engine: Engine,
):
    recovery = ledger.RecoveryLedger(engine)
    cases = [_case_of(engine, 7, identifier) for identifier in ("a", "b", "c")]
    other = _case_of(engine, 8)
    nobody = _case_of(engine, None)

    guesses = [
        await recovery.reserve_guess(cases[n % 3], f"guess-{n}", T0, 10, _budget) for n in range(12)
    ]
    again = await recovery.reserve_guess(cases[0], "guess-0", T0, 10, _budget)

    assert [g is not None for g in guesses] == [True] * 10 + [False] * 2
    assert again == guesses[0]  # the same code again: the same reservation
    assert await recovery.reserve_guess(other, "guess-0", T0, 10, _budget) is not None
    assert await recovery.reserve_guess(nobody, "guess-0", T0, 10, _budget) is not None
    assert await recovery.reserve_guess("rc_none", "guess-0", T0, 10, _budget) is None
    forgiven = guesses[3]
    assert forgiven is not None
    await recovery.forgive_guess(forgiven)  # a right code costs nothing
    assert await recovery.reserve_guess(cases[1], "guess-x", T0, 10, _budget) is not None
    later = T0 + timedelta(hours=1, seconds=1)
    assert await recovery.reserve_guess(cases[2], "guess-y", later, 10, _budget) is not None


def test_concurrent_guesses_cannot_slip_past_the_budget(engine: Engine):
    recovery = ledger.RecoveryLedger(engine)
    case_id = _case_of(engine, 7)
    start = threading.Barrier(16)

    def guess(n: int) -> int | None:
        start.wait()  # all at once
        return asyncio.run(recovery.reserve_guess(case_id, f"guess-{n}", T0, 10, _budget))

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(guess, range(16)))

    assert sum(o is not None for o in outcomes) == 10


async def test_a_self_service_case_stops_nobody_a_claim_s_case_takes_the_account_over(
    engine: Engine,
):
    account_id = await _account(engine)
    _open(engine, "a", T0, account_id)
    _open(engine, "b", T0 + timedelta(seconds=1), account_id)
    with Session(engine) as session:
        first, second = session.exec(
            select(RecoveryCase.case_id).order_by(RecoveryCase.opened_at)
        ).all()
    await ledger.RecoveryLedger(engine).close(CaseClosing(first, CaseState.EXPIRED, T0, 0, 0))
    third = _open(engine, "c", T0 + timedelta(seconds=2), account_id)
    assert isinstance(third, ledger.CaseOpened) and third.superseded == []

    with Session(engine) as session:
        handover = ledger.open_case(
            session,
            RecoveryCase(
                case_id=new_case_id(),
                account_id=account_id,
                identifier_digest="d",
                channel="email",
                opened_at=T0 + timedelta(seconds=3),
            ),
            per_hour=None,
        )

    assert isinstance(handover, ledger.CaseOpened)
    assert sorted(handover.superseded) == sorted([second, third_id(engine, "c")])
    assert await ledger.RecoveryLedger(engine).superseded(second)


def third_id(engine: Engine, digest: str) -> str:
    with Session(engine) as session:
        return session.exec(
            select(RecoveryCase.case_id).where(RecoveryCase.identifier_digest == digest)
        ).one()


def _reset(case_id: str, account_id: int, password_hash: str) -> ApplyReset:
    return ApplyReset(case_id, account_id, password_hash, T0 + timedelta(minutes=5), 1, 0)


async def test_a_reset_changes_the_password_once_even_when_applied_twice(
    engine: Engine, offline_services: Services
):
    account_id = await _account(engine)
    _open(engine, "a", T0, account_id)
    with Session(engine) as session:
        session.add(LoginSession(account_id=account_id, token_digest="s1", created_at=T0))
        session.add(LoginSession(account_id=account_id, token_digest="s2", created_at=T0))
        session.commit()
        case_id = session.exec(select(RecoveryCase.case_id)).one()
    new_hash = TEST_PASSWORDS.hash("violet tangerine marmalade kayak")

    for _ in range(2):  # a retried activity
        await offline_services.recovery_steps.apply_reset(_reset(case_id, account_id, new_hash))

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
    assert await sql_directory(engine).password_reused(
        account_id, "violet tangerine marmalade kayak"
    )


async def test_a_case_a_claim_took_over_may_not_reset(engine: Engine, offline_services: Services):
    account_id = await _account(engine)
    _open(engine, "a", T0, account_id)
    _open(engine, "b", T0 + timedelta(seconds=1), account_id)  # another self-service case
    with Session(engine) as session:
        older = session.exec(select(RecoveryCase.case_id).order_by(RecoveryCase.opened_at)).first()
        assert older is not None
        ledger.open_case(
            session,
            RecoveryCase(
                case_id=new_case_id(),
                account_id=account_id,
                identifier_digest="claim",
                channel="email",
                opened_at=T0 + timedelta(seconds=2),
            ),
            per_hour=None,
        )

    with pytest.raises(Superseded):
        await offline_services.recovery_steps.apply_reset(_reset(older, account_id, "new"))

    with Session(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None and account.password_hash != "new"


async def test_closing_a_case_keeps_the_first_ending_and_wipes_kept_codes(
    engine: Engine, offline_services: Services
):
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

    await offline_services.recovery_steps.close(CaseClosing(case_id, CaseState.LOCKED, T0, 5, 0))
    await offline_services.recovery_steps.close(CaseClosing(case_id, CaseState.EXPIRED, T0, 5, 0))

    with Session(engine) as session:
        row = session.get(RecoveryCase, case_id)
        assert row is not None and (row.state, row.unknown_address) == ("locked", None)
        assert session.exec(select(Notification.sealed_code)).all() == [None]


# Six passwords of one account, oldest first: the one it was created with, then five resets.
SIX_PASSWORDS = [
    f"{word} harbour lantern quince" for word in ("amber", "birch", "cobalt", "dune", "ember")
] + ["fjord harbour lantern quince"]


async def test_the_last_five_passwords_are_refused_and_the_sixth_is_accepted(engine: Engine):
    directory = sql_directory(engine)
    account = await directory.create(
        username="jane", email="jane@example.com", phone=None, password=SIX_PASSWORDS[0]
    )
    for n, password in enumerate(SIX_PASSWORDS[1:], start=1):
        case_id = f"rc_history_{n}"
        await directory.set_password(
            account.id,
            await directory.new_password(case_id, password),
            case_id=case_id,
            at=T0 + timedelta(days=n),
        )

    newest_first = SIX_PASSWORDS[::-1]
    reused = [await directory.password_reused(account.id, p) for p in newest_first]
    # A claim's evidence is checked against the same five.
    matched = [await directory.matching_passwords(account.id, [p]) for p in newest_first]

    assert reused == [True, True, True, True, True, False]  # the 5th refused, the 6th not
    assert matched == [1, 1, 1, 1, 1, 0]
    assert not await directory.password_reused(account.id, "never used harbour lantern")


async def test_sign_in_opens_a_session_that_sign_out_ends(engine: Engine):
    directory = sql_directory(engine)
    await _account(engine)
    jane = Identifier(IdentifierKind.USERNAME, "jane")

    wrong = await directory.sign_in(jane, "not it")
    nobody = await directory.sign_in(Identifier(IdentifierKind.USERNAME, "bob"), "x")
    result = await directory.sign_in(jane, FIRST)

    assert wrong.problem == nobody.problem == "invalid_credentials"
    assert result.token is not None
    view = await directory.session(result.token)
    assert view is not None and view.username == "jane"
    assert await directory.end_session(result.token)
    assert await directory.session(result.token) is None


async def test_a_weaker_stored_hash_is_upgraded_at_sign_in(engine: Engine):
    await _account(engine)  # hashed with the cheap test profile
    stronger = Passwords(2, 2048, 1)

    await SqlDirectory(engine, KEYS, stronger).sign_in(
        Identifier(IdentifierKind.USERNAME, "jane"), FIRST
    )

    with Session(engine) as session:
        account = session.exec(select(Account)).one()
        assert not stronger.needs_rehash(account.password_hash)
