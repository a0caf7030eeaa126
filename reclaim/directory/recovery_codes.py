"""Recovery codes, wherever they are kept (the built-in directory's `recovery_code`, or
`kept_recovery_code` for an outside directory's accounts): how a set is made, how a code is
digested, how one is spent and how a set is summed up (both tables have the same columns:
account_id, digest, created_at, used_at, used_by_case, left_after). Ten codes of 10
characters from 31 that cannot be mistaken for one another (no 0/o, 1/i/l), shown as
xxxxx-xxxxx: about 49.5 bits each."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from reclaim.directory.port import FactorCheck, FactorKind, FactorSummary
from reclaim.security import Keys

CODES = 10
ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
LENGTH = 10


def new_codes() -> list[str]:
    """A fresh set, as shown to the account holder (xxxxx-xxxxx, sorted)."""
    codes: set[str] = set()
    while len(codes) < CODES:
        codes.add("".join(secrets.choice(ALPHABET) for _ in range(LENGTH)))
    return [f"{c[:5]}-{c[5:]}" for c in sorted(codes)]


def code_digest(keys: Keys, account_id: int, code: str) -> str:
    """A recovery code's keyed HMAC digest, bound to its account; spaces, dashes and case do
    not matter. HMAC rather than argon2: the codes are random, not chosen by people, so there
    is no small dictionary for a slow hash to slow down, and without the server secret the
    table cannot be tried offline at all. A digest is also looked up by value in one indexed
    read, where salted argon2 hashes would cost ten verifications per attempt."""
    normal = "".join(ch for ch in code.lower() if ch not in " -\t")
    return keys.scoped_digest(f"recovery-code:{account_id}", normal)


def spend(
    session: Session, table: Any, account_id: int, digest: str, case_id: str, at: datetime
) -> FactorCheck:
    """The code of `table` (a recovery-code table) with this digest, spent by this case once;
    the same case with the same code again is answered as the first time. Commits."""
    row = session.exec(
        select(table)
        .where(table.account_id == account_id, table.digest == digest)
        .with_for_update()
    ).first()
    if row is None:
        return FactorCheck(accepted=False)
    if row.used_at is not None:
        if row.used_by_case != case_id:
            return FactorCheck(accepted=False)
        return FactorCheck(accepted=True, recovery_codes_left=row.left_after)
    left = session.exec(
        select(func.count())
        .select_from(table)
        .where(table.account_id == account_id, col(table.used_at).is_(None), table.id != row.id)
    ).one()
    row.used_at, row.used_by_case, row.left_after = at, case_id, int(left)
    session.add(row)
    session.commit()
    return FactorCheck(accepted=True, recovery_codes_left=int(left))


def summary(rows: Sequence[Any]) -> FactorSummary | None:
    """A set as operators see it (when made, last used, how many left; shown even when none
    is left, so an exhausted set is seen), never a code."""
    if not rows:
        return None
    used = [r.used_at for r in rows if r.used_at is not None]
    return FactorSummary(
        FactorKind.RECOVERY_CODE,
        min(r.created_at for r in rows),
        max(used) if used else None,
        remaining=len(rows) - len(used),
    )
