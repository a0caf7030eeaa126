"""Recovery codes Reclaim keeps itself, for the accounts of a directory that keeps no second
factor Reclaim can check: an LDAP or Active Directory server, whose accounts' factors live in
another system (the directory only says, by an attribute or a group, that an account is bound
to one), or a host application that says it cannot verify its factors.

An account so bound is not recovered by a contact code alone (NIST SP 800-63B-4): its second
step takes one of these codes, and without one its holder goes through a support claim. The
codes are made with `reclaim accounts mfa recovery-codes` and given to the account's holder;
they are kept as keyed digests only, each usable once, like the built-in directory's.

Only the directories that need it (`reclaim.directory.ldap`, `reclaim.directory.http`) and the
schema migrations import this module.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint, delete
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from reclaim.directory import recovery_codes
from reclaim.directory.port import (
    FactorCheck,
    FactorKind,
    FactorSummary,
    WithoutSecondFactors,
)
from reclaim.directory.recovery_codes import code_digest, new_codes
from reclaim.security import Keys
from reclaim.store.engine import in_session
from reclaim.store.models import when


class KeptRecoveryCode(SQLModel, table=True):
    """One recovery code of an outside directory's account (`directory_link.id`), as a keyed
    digest, when it was used, by which case, and how many of its set were left then (what a
    retry of that case is answered). A new set deletes the previous one."""

    __tablename__ = "kept_recovery_code"
    __table_args__ = (UniqueConstraint("account_id", "digest"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="directory_link.id", index=True)
    digest: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=when())
    used_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    used_by_case: str | None = Field(default=None, max_length=40)
    left_after: int | None = None


class KeptCodes:
    """The kept recovery codes of one Reclaim database."""

    def __init__(self, engine: Engine, keys: Keys) -> None:
        self._engine = engine
        self._keys = keys

    async def summary(self, account_id: int) -> FactorSummary | None:
        def work(session: Session) -> FactorSummary | None:
            rows = session.exec(
                select(KeptRecoveryCode).where(KeptRecoveryCode.account_id == account_id)
            ).all()
            return recovery_codes.summary(rows)

        return await in_session(self._engine, work)

    async def spend(self, account_id: int, code: str, case_id: str, at: datetime) -> FactorCheck:
        """Accept a code of the current set once; the same case asking again (a retried
        activity) is answered as the first time."""
        digest = code_digest(self._keys, account_id, code)
        return await in_session(
            self._engine,
            lambda session: recovery_codes.spend(
                session, KeptRecoveryCode, account_id, digest, case_id, at
            ),
        )

    async def replace(self, account_id: int, at: datetime) -> list[str]:
        shown = new_codes()

        def work(session: Session) -> list[str]:
            session.execute(
                delete(KeptRecoveryCode).where(col(KeptRecoveryCode.account_id) == account_id)
            )
            for code in shown:
                digest = code_digest(self._keys, account_id, code)
                session.add(KeptRecoveryCode(account_id=account_id, digest=digest, created_at=at))
            session.commit()
            return shown

        return await in_session(self._engine, work)

    async def remove(self, account_id: int) -> bool:
        def work(session: Session) -> bool:
            gone = session.execute(
                delete(KeptRecoveryCode).where(col(KeptRecoveryCode.account_id) == account_id)
            )
            session.commit()
            return bool(getattr(gone, "rowcount", 0))

        return await in_session(self._engine, work)


class KeptSecondFactors(WithoutSecondFactors):
    """The second factors of a directory whose accounts' factors Reclaim cannot check: the
    recovery codes Reclaim keeps (`KeptCodes`). Which accounts need a second proof is the
    directory's to say (its records' `factors`)."""

    name: str
    _kept: KeptCodes

    async def factors(self, account_id: int) -> list[FactorSummary]:
        summary = await self._kept.summary(account_id)
        return [summary] if summary is not None else []

    async def verify_factor(
        self, account_id: int, kind: FactorKind, code: str, *, case_id: str, at: datetime
    ) -> FactorCheck:
        if kind is not FactorKind.RECOVERY_CODE:
            return FactorCheck(accepted=False)
        return await self._kept.spend(account_id, code, case_id, at)

    async def new_recovery_codes(self, account_id: int, at: datetime) -> list[str]:
        return await self._kept.replace(account_id, at)

    async def remove_factor(self, account_id: int, kind: FactorKind) -> bool:
        if kind is not FactorKind.RECOVERY_CODE:
            return False
        return await self._kept.remove(account_id)
