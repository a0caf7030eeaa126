"""Second factors in the built-in directory, on SQLite and (with RECLAIM_TEST_POSTGRES_URL)
PostgreSQL: a TOTP secret sealed at rest whose codes are good for their step and one either
side, once per account and step; ten recovery codes kept as digests, each good once; a retried
check of the same case answered as the first time; the kinds an account has on its record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from reclaim.directory import FactorCheck, FactorKind
from reclaim.directory.sql import SqlDirectory
from reclaim.directory.tables import AccountTotp, RecoveryCode, TotpStep
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.security import Keys
from tests.conftest import Seen
from tests.stack import TEST_PASSWORDS, TEST_SECRET, sql_directory

# The start of a 30 s step, and 10 s into it.
T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
AT = T0 + timedelta(seconds=10)
STEP = timedelta(seconds=30)


async def _jane(directory: SqlDirectory) -> int:
    account = await directory.create(
        username="jane", email="jane@example.com", phone=None, password="first password"
    )
    return account.id


async def _enrolled(engine: Engine) -> tuple[SqlDirectory, int, pyotp.TOTP]:
    """Jane with TOTP, and the authenticator app that scanned the URI she was shown."""
    directory = sql_directory(engine)
    account_id = await _jane(directory)
    uri = await directory.enrol_totp(account_id, T0)
    return directory, account_id, pyotp.parse_uri(uri)  # type: ignore[return-value]


async def test_enrolling_totp_gives_the_uri_an_app_reads_and_seals_the_secret(engine: Engine):
    directory = SqlDirectory(engine, Keys(TEST_SECRET.encode()), TEST_PASSWORDS, issuer="Acme")
    account_id = await _jane(directory)

    uri = await directory.enrol_totp(account_id, T0)

    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", "/Acme:jane")
    assert query["issuer"] == ["Acme"]
    secret = query["secret"][0]
    assert len(secret) == 32
    with Session(engine) as session:
        kept = session.exec(select(AccountTotp)).one()
    assert kept.account_id == account_id and kept.enrolled_at == T0
    assert secret.encode() not in kept.sealed_secret
    assert secret.lower().encode() not in kept.sealed_secret.lower()


async def test_enrolling_a_secret_the_app_already_proved_keeps_that_secret(engine: Engine):
    """The security page makes the secret first and stores it once the app's first code is
    right: the directory then keeps that secret, sealed, and its codes are the app's."""
    directory = sql_directory(engine)
    account_id = await _jane(directory)
    secret = pyotp.random_base32()

    uri = await directory.enrol_totp(account_id, T0, secret=secret)

    assert parse_qs(urlsplit(uri).query)["secret"] == [secret]
    with Session(engine) as session:
        kept = session.exec(select(AccountTotp)).one()
    assert secret.encode() not in kept.sealed_secret
    code = pyotp.TOTP(secret).at(AT)
    check = await directory.verify_factor(account_id, FactorKind.TOTP, code, case_id="c1", at=AT)
    assert check == FactorCheck(accepted=True)


async def test_a_totp_code_is_good_for_its_step_and_one_either_side_not_two(
    engine: Engine, comparisons: Seen
):
    directory, account_id, app = await _enrolled(engine)

    async def check(code: str, case: str) -> FactorCheck:
        return await directory.verify_factor(account_id, FactorKind.TOTP, code, case_id=case, at=AT)

    now = await check(app.at(AT), "rc_now")
    before = await check(app.at(AT - STEP), "rc_before")
    after = await check(app.at(AT + STEP), "rc_after")
    two_before = await check(app.at(AT - 2 * STEP), "rc_two_before")
    two_after = await check(app.at(AT + 2 * STEP), "rc_two_after")
    wrong = await check("000000" if app.at(AT) != "000000" else "111111", "rc_wrong")
    garbage = await check("abcdef", "rc_garbage")

    assert [c.accepted for c in (now, before, after)] == [True, True, True]
    assert [c.accepted for c in (two_before, two_after, wrong, garbage)] == [False] * 4
    assert now.recovery_codes_left is None
    with Session(engine) as session:
        steps = session.exec(select(TotpStep).order_by(TotpStep.step)).all()
        kept = session.exec(select(AccountTotp)).one()
    step = int(AT.timestamp()) // 30
    assert [(s.step, s.case_id) for s in steps] == [
        (step - 1, "rc_before"),
        (step, "rc_now"),
        (step + 1, "rc_after"),
    ]
    assert kept.last_used_at == AT
    # The codes were compared in constant time (tests/e2e/test_constant_time.py).
    assert comparisons[("reclaim/directory/sql_factors.py", "_check_totp")] == {True, False}


async def test_a_totp_code_is_spent_once_but_its_case_retrying_is_accepted_again(engine: Engine):
    directory, account_id, app = await _enrolled(engine)
    code = app.at(AT)

    first = await directory.verify_factor(
        account_id, FactorKind.TOTP, code, case_id="rc_first", at=AT
    )
    retried = await directory.verify_factor(
        account_id, FactorKind.TOTP, code, case_id="rc_first", at=AT + timedelta(seconds=5)
    )
    replayed = await directory.verify_factor(
        account_id, FactorKind.TOTP, code, case_id="rc_other", at=AT + timedelta(seconds=5)
    )
    # The same code a step later still falls in the window, and is still spent.
    replayed_later = await directory.verify_factor(
        account_id, FactorKind.TOTP, code, case_id="rc_other", at=AT + STEP
    )
    next_code = await directory.verify_factor(
        account_id, FactorKind.TOTP, app.at(AT + STEP), case_id="rc_other", at=AT + STEP
    )

    assert (first.accepted, retried.accepted) == (True, True)
    assert (replayed.accepted, replayed_later.accepted) == (False, False)
    assert next_code.accepted


async def test_a_factor_the_account_does_not_have_is_refused_like_a_wrong_code(engine: Engine):
    directory = sql_directory(engine)
    account_id = await _jane(directory)
    stray = pyotp.TOTP(pyotp.random_base32())

    totp = await directory.verify_factor(
        account_id, FactorKind.TOTP, stray.at(AT), case_id="rc_1", at=AT
    )
    code = await directory.verify_factor(
        account_id, FactorKind.RECOVERY_CODE, "abcde-fghjk", case_id="rc_1", at=AT
    )
    nobody = await directory.verify_factor(
        account_id + 1, FactorKind.TOTP, stray.at(AT), case_id="rc_1", at=AT
    )

    assert totp.accepted is code.accepted is nobody.accepted is False
    assert code.recovery_codes_left is None
    assert await directory.factors(account_id) == []


async def test_enrolling_again_replaces_the_secret(engine: Engine):
    directory, account_id, old_app = await _enrolled(engine)

    new_app = pyotp.parse_uri(await directory.enrol_totp(account_id, T0 + STEP))
    # A moment when the two secrets give different codes (almost any).
    later = next(
        AT + n * STEP
        for n in range(4, 100)
        if old_app.at(AT + n * STEP) != new_app.at(AT + n * STEP)
    )

    old = await directory.verify_factor(
        account_id, FactorKind.TOTP, old_app.at(later), case_id="rc_1", at=later
    )
    new = await directory.verify_factor(
        account_id, FactorKind.TOTP, new_app.at(later), case_id="rc_1", at=later
    )
    assert old_app.secret != new_app.secret
    assert (old.accepted, new.accepted) == (False, True)


async def test_ten_recovery_codes_each_good_once_the_tenth_leaves_none(engine: Engine):
    directory = sql_directory(engine)
    account_id = await _jane(directory)

    codes = await directory.new_recovery_codes(account_id, T0)

    assert len(codes) == len(set(codes)) == 10
    assert all(len(c) == 11 and c[5] == "-" for c in codes)
    answers = []
    for n, code in enumerate(codes):
        answers.append(
            await directory.verify_factor(
                account_id, FactorKind.RECOVERY_CODE, code, case_id=f"rc_{n}", at=AT
            )
        )
    assert [(a.accepted, a.recovery_codes_left) for a in answers] == [
        (True, left) for left in range(9, -1, -1)
    ]
    again = await directory.verify_factor(
        account_id, FactorKind.RECOVERY_CODE, codes[0], case_id="rc_someone_else", at=AT
    )
    assert again.accepted is False
    [summary] = await directory.factors(account_id)
    assert (summary.kind, summary.enrolled_at, summary.last_used_at, summary.remaining) == (
        FactorKind.RECOVERY_CODE,
        T0,
        AT,
        0,
    )
    record = await directory.get(account_id)
    assert record is not None and record.factors == ()


async def test_a_recovery_code_ignores_case_spaces_and_dashes_and_a_retry_is_answered_alike(
    engine: Engine,
):
    directory = sql_directory(engine)
    account_id = await _jane(directory)
    codes = await directory.new_recovery_codes(account_id, T0)
    typed = " " + codes[3].upper().replace("-", " - ") + " "

    first = await directory.verify_factor(
        account_id, FactorKind.RECOVERY_CODE, typed, case_id="rc_1", at=AT
    )
    other = await directory.verify_factor(
        account_id, FactorKind.RECOVERY_CODE, codes[4], case_id="rc_2", at=AT
    )
    retried = await directory.verify_factor(
        account_id, FactorKind.RECOVERY_CODE, codes[3], case_id="rc_1", at=AT + STEP
    )

    assert (first.accepted, first.recovery_codes_left) == (True, 9)
    assert (other.accepted, other.recovery_codes_left) == (True, 8)
    assert (retried.accepted, retried.recovery_codes_left) == (True, 9)
    with Session(engine) as session:
        spent = session.exec(select(RecoveryCode).where(RecoveryCode.used_by_case == "rc_1")).one()
    assert spent.used_at == AT


async def test_a_new_set_of_recovery_codes_invalidates_the_old_and_only_digests_are_kept(
    engine: Engine,
):
    directory = sql_directory(engine)
    account_id = await _jane(directory)
    old = await directory.new_recovery_codes(account_id, T0)

    new = await directory.new_recovery_codes(account_id, T0 + STEP)

    assert not set(old) & set(new)
    refused = await directory.verify_factor(
        account_id, FactorKind.RECOVERY_CODE, old[0], case_id="rc_1", at=AT
    )
    accepted = await directory.verify_factor(
        account_id, FactorKind.RECOVERY_CODE, new[0], case_id="rc_1", at=AT
    )
    assert (refused.accepted, accepted.accepted, accepted.recovery_codes_left) == (False, True, 9)
    with Session(engine) as session:
        kept = session.exec(select(RecoveryCode)).all()
    assert len(kept) == 10
    stored = " ".join(f"{r.digest} {r.used_by_case}" for r in kept)
    for code in new:
        assert code not in stored and code.replace("-", "") not in stored


async def test_the_record_names_the_kinds_an_account_has_from_find_and_get(engine: Engine):
    directory = sql_directory(engine)
    account_id = await _jane(directory)
    jane = Identifier(IdentifierKind.USERNAME, "jane")

    async def kinds() -> set[tuple[FactorKind, ...]]:
        """The kinds on every record of Jane the directory builds."""
        records = [
            await directory.find(jane),
            await directory.get(account_id),
            await directory.find_claimed("jane"),
            await directory.decoy(b"\0" * 8),
        ]
        overview = await directory.overview(account_id)
        assert overview is not None
        records.append(overview.account)
        assert all(r is not None and r.id == account_id for r in records)
        return {r.factors for r in records if r is not None}

    assert await kinds() == {()}
    await directory.enrol_totp(account_id, T0)
    assert await kinds() == {(FactorKind.TOTP,)}
    await directory.new_recovery_codes(account_id, T0)
    assert await kinds() == {(FactorKind.TOTP, FactorKind.RECOVERY_CODE)}

    assert await directory.remove_factor(account_id, FactorKind.TOTP) is True
    assert await directory.remove_factor(account_id, FactorKind.TOTP) is False
    assert await kinds() == {(FactorKind.RECOVERY_CODE,)}
    assert await directory.remove_factor(account_id, FactorKind.RECOVERY_CODE) is True
    assert await directory.remove_factor(account_id, FactorKind.RECOVERY_CODE) is False
    assert await kinds() == {()}
    assert await directory.factors(account_id) == []


async def test_factors_show_when_but_never_a_secret(engine: Engine):
    directory, account_id, app = await _enrolled(engine)
    await directory.new_recovery_codes(account_id, T0 + STEP)
    await directory.verify_factor(account_id, FactorKind.TOTP, app.at(AT), case_id="rc_1", at=AT)

    totp, codes = await directory.factors(account_id)

    assert (totp.kind, totp.enrolled_at, totp.last_used_at, totp.remaining) == (
        FactorKind.TOTP,
        T0,
        AT,
        None,
    )
    assert (codes.kind, codes.enrolled_at, codes.last_used_at, codes.remaining) == (
        FactorKind.RECOVERY_CODE,
        T0 + STEP,
        None,
        10,
    )
