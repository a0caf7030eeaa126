"""The ledger of self-service cases: opening (rate limit, superseding), reset, closing.

Synchronous SQL; the API and the activities call it from a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, literal, select, text, update
from sqlmodel import Session, col

from reclaim import lifecycle
from reclaim.accounts import ACCOUNT_HOLDER, revoke_all_sessions
from reclaim.contracts import ApplyReset, CaseClosing, CaseState, seconds_until
from reclaim.models import (
    Account,
    AccountStatus,
    Notification,
    PasswordHistory,
    RecoveryCase,
    UTCDateTime,
)

RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class CaseOpened:
    # Open cases of the same account, older than this one: they must stop (one live code
    # per account).
    superseded: list[str]


@dataclass(frozen=True)
class RateLimited:
    retry_after: int


class Superseded(Exception):
    """A newer case was opened for the account: this one may not change its password."""


class NoAccount(Exception):
    """The account is gone (purged) or banned since the case opened: no password change."""


@dataclass(frozen=True)
class ResetDone:
    account: Account
    # The deletion case stopped because this reset reactivated a deactivated account.
    reactivated: str | None = None


def open_case(session: Session, case: RecoveryCase, *, per_hour: int) -> CaseOpened | RateLimited:
    """Record a new case unless its identifier already opened `per_hour` cases in the last
    hour. Unknown identifiers count the same way, so the limit tells nothing about accounts.

    The count and the insert are one statement (`INSERT ... SELECT ... WHERE count < n`), and
    on PostgreSQL concurrent openings for one identifier also queue on an advisory lock, so
    parallel requests cannot slip past the limit together."""
    since = case.opened_at - RATE_WINDOW
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": case.identifier_digest}
        )
    in_window = (
        select(func.count())
        .select_from(RecoveryCase)
        .where(
            col(RecoveryCase.identifier_digest) == case.identifier_digest,
            col(RecoveryCase.opened_at) > since,
        )
        .scalar_subquery()
    )
    table = RecoveryCase.__table__.c  # type: ignore[attr-defined]
    values = {
        "case_id": case.case_id,
        "account_id": case.account_id,
        "identifier_digest": case.identifier_digest,
        "channel": case.channel,
        "unknown_address": case.unknown_address,
        "opened_at": case.opened_at,
        "wrong_codes": 0,
        "resends": 0,
    }
    row = select(
        *(
            literal(value, type_=UTCDateTime() if name == "opened_at" else table[name].type).label(
                name
            )
            for name, value in values.items()
        )
    ).where(in_window < per_hour)
    inserted = session.execute(
        insert(RecoveryCase).from_select(list(values), row).returning(col(RecoveryCase.case_id))
    ).first()
    if inserted is None:
        session.rollback()
        opened = session.execute(
            select(col(RecoveryCase.opened_at))
            .where(
                col(RecoveryCase.identifier_digest) == case.identifier_digest,
                col(RecoveryCase.opened_at) > since,
            )
            .order_by(col(RecoveryCase.opened_at).desc())
            .limit(per_hour)
        ).scalars()
        # The request may go through once the oldest of the last `per_hour` leaves the window.
        oldest_counted = list(opened)[-1]
        return RateLimited(seconds_until(oldest_counted + RATE_WINDOW, case.opened_at))
    superseded: list[str] = []
    if case.account_id is not None:
        superseded = list(
            session.execute(
                select(col(RecoveryCase.case_id)).where(
                    col(RecoveryCase.account_id) == case.account_id,
                    col(RecoveryCase.closed_at).is_(None),
                    col(RecoveryCase.case_id) != case.case_id,
                    col(RecoveryCase.opened_at) <= case.opened_at,
                )
            ).scalars()
        )
    session.commit()
    return CaseOpened(superseded=superseded)


def forget_case(session: Session, case_id: str) -> None:
    """Undo `open_case` when the workflow could not be started."""
    row = session.get(RecoveryCase, case_id)
    if row is not None:
        session.delete(row)
        session.commit()


def _close(
    session: Session,
    row: RecoveryCase | None,
    state: CaseState,
    at: datetime,
    wrong_codes: int,
    resends: int,
) -> None:
    if row is not None and row.closed_at is None:
        row.state, row.closed_at = state.value, at
        row.wrong_codes, row.resends = wrong_codes, resends
        row.unknown_address = None
        session.add(row)
        # The codes kept for re-sending are of no use once the case is over.
        session.execute(
            update(Notification)
            .where(
                col(Notification.case_id) == row.case_id, col(Notification.sealed_code).is_not(None)
            )
            .values(sealed_code=None)
        )


def apply_reset(session: Session, reset: ApplyReset) -> ResetDone:
    """Set the new password, keep it in the history, sign every session out, reactivate a
    deactivated account and close the case, in one transaction. Running it again for the
    same case changes nothing."""
    account = session.get(Account, reset.account_id)
    if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
        raise NoAccount(reset.account_id)
    row = session.get(RecoveryCase, reset.case_id)
    if row is not None and row.state == CaseState.COMPLETED:
        return ResetDone(account)
    if row is not None:
        newer = session.execute(
            select(col(RecoveryCase.case_id)).where(
                col(RecoveryCase.account_id) == reset.account_id,
                col(RecoveryCase.opened_at) > row.opened_at,
            )
        ).first()
        if newer is not None:
            raise Superseded(reset.case_id)
    account.password_hash = reset.password_hash
    account.password_changed_at = reset.at
    session.add(account)
    session.add(
        PasswordHistory(
            account_id=reset.account_id,
            password_hash=reset.password_hash,
            case_id=reset.case_id,
            created_at=reset.at,
        )
    )
    revoke_all_sessions(session, reset.account_id, reset.at)
    reactivated = lifecycle.reactivate(
        session, account, reset.at, ACCOUNT_HOLDER, case_id=reset.case_id
    )
    _close(session, row, CaseState.COMPLETED, reset.at, reset.wrong_codes, reset.resends)
    session.commit()
    session.refresh(account)
    return ResetDone(account, reactivated)


def close_case(session: Session, closing: CaseClosing) -> None:
    """Record how a case ended (idempotent: the first recorded ending stands)."""
    row = session.get(RecoveryCase, closing.case_id)
    _close(session, row, closing.state, closing.at, closing.wrong_codes, closing.resends)
    session.commit()
