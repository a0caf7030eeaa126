"""The built-in directory's passkeys (`reclaim.directory.tables.AccountPasskey`): functions
working inside the caller's transaction (`reclaim.directory.sql` opens it and locks the
account first). The WebAuthn ceremony itself is `reclaim.passkeys`'; what is kept here is what
it verified: the credential id, the public key, the signature counter.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from reclaim.directory.port import (
    FactorKind,
    FactorSummary,
    Passkey,
    PasskeyTaken,
    passkey_id,
    passkey_key,
)
from reclaim.directory.tables import Account, AccountPasskey


def has_passkey() -> Any:
    """Whether the account of the row has a passkey: a correlated EXISTS, a column of the
    statement that reads the account (as `sql_factors.has_factors`)."""
    return exists().where(col(AccountPasskey.account_id) == col(Account.id)).label("has_passkey")


def passkeys(session: Session, account_id: int) -> list[Passkey]:
    return [_passkey(row) for row in _rows(session, account_id)]


def summaries(session: Session, account_id: int) -> list[FactorSummary]:
    """One summary per passkey: when added, last used, its name and its key (never the public
    key, though it is no secret: an operator has no use for it)."""
    return [
        FactorSummary(
            FactorKind.WEBAUTHN,
            row.created_at,
            row.last_used_at,
            name=row.name,
            key=row.credential_id,
        )
        for row in _rows(session, account_id)
    ]


def add(session: Session, account_id: int, passkey: Passkey) -> None:
    """Keep a verified passkey; `PasskeyTaken` if its credential id is anyone's already (the
    unique index settles two registrations racing)."""
    key = passkey_key(passkey.credential_id)
    if _find(session, key) is not None:
        raise PasskeyTaken()
    session.add(
        AccountPasskey(
            account_id=account_id,
            credential_id=key,
            public_key=passkey.public_key,
            sign_count=passkey.sign_count,
            transports=json.dumps(list(passkey.transports)),
            name=passkey.name,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
        )
    )
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise PasskeyTaken() from error


def use(
    session: Session,
    account_id: int,
    credential_id: bytes,
    sign_count: int,
    *,
    case_id: str,
    at: datetime,
) -> bool:
    """Record an assertion's counter. Refused (nothing written) for another account's or an
    unknown credential, and for a counter that did not go up while either is non-zero: two
    authenticators answer for one credential (W3C WebAuthn §6.1.1). The case that last used
    it, asking again with the same counter, is answered as the first time."""
    row = _find(session, passkey_key(credential_id), lock=True)
    if row is None or row.account_id != account_id:
        return False
    if row.last_case_id == case_id and row.sign_count == sign_count:
        return True
    if (sign_count or row.sign_count) and sign_count <= row.sign_count:
        return False
    row.sign_count, row.last_used_at, row.last_case_id = sign_count, at, case_id
    session.add(row)
    session.commit()
    return True


def remove(session: Session, account_id: int, credential_id: bytes) -> bool:
    result = session.execute(
        delete(AccountPasskey).where(
            col(AccountPasskey.account_id) == account_id,
            col(AccountPasskey.credential_id) == passkey_key(credential_id),
        )
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def remove_all(session: Session, account_id: int) -> bool:
    """Every passkey of the account (`remove_factor(WEBAUTHN)`, a purge); in the caller's
    transaction, not committed."""
    result = session.execute(
        delete(AccountPasskey).where(col(AccountPasskey.account_id) == account_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _rows(session: Session, account_id: int) -> list[AccountPasskey]:
    return list(
        session.exec(
            select(AccountPasskey)
            .where(AccountPasskey.account_id == account_id)
            .order_by(col(AccountPasskey.id))
        ).all()
    )


def _find(session: Session, key: str, *, lock: bool = False) -> AccountPasskey | None:
    query = select(AccountPasskey).where(AccountPasskey.credential_id == key)
    return session.exec(query.with_for_update() if lock else query).first()


def _passkey(row: AccountPasskey) -> Passkey:
    return Passkey(
        credential_id=passkey_id(row.credential_id),
        public_key=row.public_key,
        sign_count=row.sign_count,
        transports=tuple(str(t) for t in json.loads(row.transports)),
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )
