"""The built-in directory's TOTP secrets and recovery codes
(`reclaim.directory.tables.AccountTotp`, `TotpStep`, `RecoveryCode`), and which second factors
an account has: functions working inside the caller's transaction (`reclaim.directory.sql`
opens it and locks the account first). A TOTP secret is sealed at rest for its account; the
ten recovery codes are kept as keyed digests. Passkeys are `reclaim.directory.sql_passkeys`'.
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import delete, exists
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from reclaim.directory import recovery_codes, sql_passkeys
from reclaim.directory.port import FactorCheck, FactorKind, FactorSummary
from reclaim.directory.recovery_codes import code_digest, new_codes
from reclaim.directory.tables import Account, AccountPasskey, AccountTotp, RecoveryCode, TotpStep
from reclaim.security import Keys

TOTP_STEP = timedelta(seconds=30)


def has_factors() -> tuple[Any, Any, Any]:
    """Whether the account of the row has a TOTP secret, an unused recovery code, a passkey:
    correlated EXISTS, columns of the statement that reads the account, so that reading an
    account costs the same statement whether it exists or not (tests/oracle)."""
    totp = exists().where(col(AccountTotp.account_id) == col(Account.id)).label("has_totp")
    codes = (
        exists()
        .where(col(RecoveryCode.account_id) == col(Account.id), col(RecoveryCode.used_at).is_(None))
        .label("has_codes")
    )
    return totp, codes, sql_passkeys.has_passkey()


def kinds(has_totp: Any, has_codes: Any, has_passkey: Any) -> tuple[FactorKind, ...]:
    """The factor kinds of the columns `has_factors` read."""
    found = (
        (FactorKind.TOTP, has_totp),
        (FactorKind.RECOVERY_CODE, has_codes),
        (FactorKind.WEBAUTHN, has_passkey),
    )
    return tuple(kind for kind, has in found if has)


def factor_kinds(session: Session, account_id: int) -> tuple[FactorKind, ...]:
    row = session.execute(sa_select(*has_factors()).where(col(Account.id) == account_id)).first()
    return kinds(*row) if row is not None else ()


def summaries(session: Session, account_id: int) -> list[FactorSummary]:
    """The TOTP secret (when enrolled, last used) and the recovery code set (when made, last
    used, how many left; shown even when none is left, so an operator sees it exhausted),
    never a secret."""
    found: list[FactorSummary] = []
    totp = session.get(AccountTotp, account_id)
    if totp is not None:
        found.append(FactorSummary(FactorKind.TOTP, totp.enrolled_at, totp.last_used_at))
    codes = session.exec(select(RecoveryCode).where(RecoveryCode.account_id == account_id)).all()
    kept = recovery_codes.summary(codes)
    return found + ([kept] if kept is not None else [])


def verify(
    session: Session,
    keys: Keys,
    account_id: int,
    kind: FactorKind,
    code: str,
    *,
    case_id: str,
    at: datetime,
) -> FactorCheck:
    """A TOTP or recovery code (`SqlDirectory.verify_factor`); a passkey is proven by a
    WebAuthn ceremony (`sql_passkeys.use`), never by a code."""
    if kind is FactorKind.TOTP:
        return _check_totp(session, keys, account_id, code, case_id, at)
    if kind is FactorKind.RECOVERY_CODE:
        digest = code_digest(keys, account_id, code)
        return recovery_codes.spend(session, RecoveryCode, account_id, digest, case_id, at)
    return FactorCheck(accepted=False)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def enrol_totp(
    session: Session, keys: Keys, account: Account, secret: str, at: datetime, *, issuer: str
) -> str:
    """Keep `secret` sealed as the account's TOTP secret (replacing one kept before); the
    provisioning URI for the authenticator app."""
    assert account.id is not None
    account_id = account.id
    # The steps spent with the old secret mean nothing for the new one.
    session.execute(delete(TotpStep).where(col(TotpStep.account_id) == account_id))
    session.merge(
        AccountTotp(
            account_id=account_id,
            sealed_secret=keys.seal(secret, _totp_context(account_id)),
            enrolled_at=at,
            last_used_at=None,
        )
    )
    session.commit()
    return pyotp.TOTP(secret).provisioning_uri(name=account.username, issuer_name=issuer)


def new_recovery_codes() -> list[str]:
    """A fresh set, as shown to the account holder (xxxxx-xxxxx, sorted)."""
    return new_codes()


def replace_recovery_codes(
    session: Session, keys: Keys, account_id: int, shown: list[str], at: datetime
) -> None:
    """`shown` becomes the account's set; the old one goes, used codes too."""
    session.execute(delete(RecoveryCode).where(col(RecoveryCode.account_id) == account_id))
    for code in shown:
        session.add(
            RecoveryCode(
                account_id=account_id,
                digest=code_digest(keys, account_id, code),
                created_at=at,
            )
        )
    session.commit()


def remove(session: Session, account_id: int, kind: FactorKind) -> bool:
    """TOTP: the secret and its spent steps go. Recovery codes: the whole set goes (used
    codes too); True only if a code of it was still unused (an exhausted set is no factor).
    Passkeys: every one (`sql_passkeys.remove_all`)."""
    if kind is FactorKind.TOTP:
        had = session.get(AccountTotp, account_id) is not None
        session.execute(delete(TotpStep).where(col(TotpStep.account_id) == account_id))
        session.execute(delete(AccountTotp).where(col(AccountTotp.account_id) == account_id))
    elif kind is FactorKind.WEBAUTHN:
        had = sql_passkeys.remove_all(session, account_id)
    else:
        had = FactorKind.RECOVERY_CODE in factor_kinds(session, account_id)
        session.execute(delete(RecoveryCode).where(col(RecoveryCode.account_id) == account_id))
    session.commit()
    return had


def forget(session: Session, account_id: int) -> None:
    """Every second factor of the account (a purge), in the caller's transaction, not
    committed."""
    for table in (AccountTotp, TotpStep, RecoveryCode, AccountPasskey):
        session.execute(delete(table).where(col(table.account_id) == account_id))


def _check_totp(
    session: Session, keys: Keys, account_id: int, code: str, case_id: str, at: datetime
) -> FactorCheck:
    """A code of the step of `at` or one either side, each step accepted once per account,
    remembered with the case that spent it; the same case again is accepted again."""
    refused = FactorCheck(accepted=False)
    kept = session.get(AccountTotp, account_id)
    given = "".join(code.split())
    if kept is None or len(given) != 6 or not given.isdigit():
        return refused
    totp = pyotp.TOTP(keys.unseal(kept.sealed_secret, _totp_context(account_id)))
    # pyotp's verify(valid_window=1) says whether, not which step: every step is compared
    # (no early exit), the one that matched is the one spent.
    matched: int | None = None
    for k in (-1, 0, 1):
        moment = at + k * TOTP_STEP
        if hmac.compare_digest(totp.at(moment), given):
            matched = totp.timecode(moment)
    if matched is None:
        return refused
    spent = session.get(TotpStep, (account_id, matched))
    if spent is not None:
        return FactorCheck(accepted=spent.case_id == case_id)
    session.add(TotpStep(account_id=account_id, step=matched, case_id=case_id, used_at=at))
    kept.last_used_at = at
    session.add(kept)
    session.commit()
    return FactorCheck(accepted=True)


def _totp_context(account_id: int) -> str:
    """What a TOTP secret is sealed for: its account only."""
    return f"totp:{account_id}"
