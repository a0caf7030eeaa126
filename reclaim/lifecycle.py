"""Account statuses in the database: deactivation, reactivation, purge, bans.

The database is the truth about an account's status; the lifecycle workflows only keep the
time (grace periods, ban ends). Each status set by a workflow names that workflow in
`Account.status_case`, and a timer's action (purge, lift the ban) only applies while the
account still names the case that set it: a user who signed in meanwhile, a newer ban, a
second deactivation all make an old timer's action a no-op, even if the signal that should
have stopped it was lost.

Every change writes an `AccountEvent` in the same transaction. Synchronous SQL: callers on
the event loop run these in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from reclaim import accounts  # module import: accounts.login uses this module too
from reclaim.contracts import (
    AccountState,
    AccountStatus,
    Actor,
    ActorKind,
    PurgeAccount,
    StatusChange,
)
from reclaim.models import (
    Account,
    AccountEvent,
    ClaimAnswer,
    LoginSession,
    Notification,
    PasswordHistory,
    PastContact,
    RecoveryCase,
    ReservedUsername,
    SupportClaim,
)

# What a purged account's unique columns hold: no address or name, and never a value anybody
# could type (a username or an address cannot contain '~').
PURGED_MARK = "~purged~"


class Action(StrEnum):
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"
    PURGED = "purged"
    BANNED = "banned"
    UNBANNED = "unbanned"  # lifted by someone before its end
    BAN_ENDED = "ban_ended"  # its time was up
    CONTACT_REPLACED = "contact_replaced"  # an approved support claim gave it new addresses


def record(
    session: Session,
    account: Account,
    action: Action,
    actor: Actor,
    at: datetime,
    *,
    reason: str | None = None,
    until: datetime | None = None,
    case_id: str | None = None,
) -> None:
    assert account.id is not None
    session.add(
        AccountEvent(
            account_id=account.id,
            at=at,
            action=action.value,
            status=account.status,
            actor_kind=actor.kind.value,
            actor=actor.name[:64],
            reason=reason[:500] if reason else None,
            until=until,
            case_id=case_id,
        )
    )


def _set_status(
    account: Account,
    status: AccountStatus,
    at: datetime,
    *,
    until: datetime | None = None,
    reason: str | None = None,
    case_id: str | None = None,
) -> None:
    account.status = status.value
    account.status_since = at
    account.status_until = until
    account.status_reason = reason[:500] if reason else None
    account.status_case = case_id


def _locked(session: Session, account_id: int) -> Account | None:
    """The account row, locked until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway)."""
    return session.exec(select(Account).where(Account.id == account_id).with_for_update()).first()


def _state(account: Account | None, *, applied: bool, previous: str | None = None) -> AccountState:
    if account is None:
        return AccountState(applied=False, status=AccountStatus.PURGED)
    return AccountState(
        applied=applied,
        status=AccountStatus(account.status),
        until=account.status_until,
        case_id=account.status_case,
        previous_case=previous,
    )


def deactivate(session: Session, change: StatusChange) -> AccountState:
    """Active → deactivated until `change.until`, every session signed out. Running it again
    for the same case changes nothing; an account deactivated by another case, banned or
    purged is left as it is (`applied=False` says so)."""
    account = _locked(session, change.account_id)
    if account is None or account.status_case == change.case_id:
        return _state(account, applied=account is not None)
    if account.status != AccountStatus.ACTIVE:
        return _state(account, applied=False)
    _take_away(session, account, AccountStatus.DEACTIVATED, Action.DEACTIVATED, change)
    return _state(account, applied=True)


def reactivate(
    session: Session, account: Account, at: datetime, actor: Actor, *, case_id: str | None = None
) -> str | None:
    """Deactivated → active, inside the caller's transaction (a sign-in, a completed
    recovery). Returns the deletion case that must stop waiting, if the account was
    deactivated."""
    if account.status != AccountStatus.DEACTIVATED:
        return None
    deletion = account.status_case
    _set_status(account, AccountStatus.ACTIVE, at)
    session.add(account)
    how = "completed a recovery" if case_id else "signed in"
    record(session, account, Action.REACTIVATED, actor, at, reason=how, case_id=case_id)
    return deletion


def purge(
    session: Session, request: PurgeAccount, username_digest: Callable[[str], str]
) -> AccountState:
    """The end of a grace period: anonymise the account and keep only an audit record.

    The username is kept from reuse for `request.quarantine` seconds (by its keyed digest);
    email, phone and password go; sessions, password history and past contacts are deleted;
    the addresses in the notification log and what the account's support claims said are
    wiped. Applies only if the account is still deactivated by
    this case; running it again changes nothing."""
    account = _locked(session, request.account_id)
    if account is None or account.status_case != request.case_id:
        return _state(account, applied=False)
    if account.status == AccountStatus.PURGED:
        return _state(account, applied=True)  # a retried activity: done already
    if account.status != AccountStatus.DEACTIVATED:
        return _state(account, applied=False)
    assert account.id is not None
    reserved = session.merge(
        ReservedUsername(
            digest=username_digest(account.username),
            until=request.at + timedelta(seconds=request.quarantine),
            account_id=account.id,
        )
    )
    placeholder = f"{PURGED_MARK}{account.id}"
    account.username = placeholder
    account.email = placeholder
    account.phone = None
    account.password_hash = ""
    account.password_changed_at = None
    _set_status(account, AccountStatus.PURGED, request.at, case_id=request.case_id)
    session.add(account)
    session.execute(delete(LoginSession).where(col(LoginSession.account_id) == account.id))
    session.execute(delete(PasswordHistory).where(col(PasswordHistory.account_id) == account.id))
    recovery_cases = select(col(RecoveryCase.case_id)).where(
        col(RecoveryCase.account_id) == account.id
    )
    lifecycle_cases = select(col(AccountEvent.case_id)).where(
        col(AccountEvent.account_id) == account.id, col(AccountEvent.case_id).is_not(None)
    )
    claims = select(col(SupportClaim.case_id)).where(col(SupportClaim.account_id) == account.id)
    session.execute(
        update(Notification)
        .where(
            col(Notification.case_id).in_(recovery_cases)
            | col(Notification.case_id).in_(lifecycle_cases)
            | col(Notification.case_id).in_(claims)
        )
        .values(recipient=PURGED_MARK, sealed_code=None)
    )
    session.execute(delete(PastContact).where(col(PastContact.account_id) == account.id))
    session.execute(delete(ClaimAnswer).where(col(ClaimAnswer.case_id).in_(claims)))
    session.execute(
        update(SupportClaim)
        .where(col(SupportClaim.account_id) == account.id)
        .values(contact_email=PURGED_MARK, description=None, sealed_token=None)
    )
    record(
        session,
        account,
        Action.PURGED,
        Actor(ActorKind.SYSTEM, "deletion grace period"),
        request.at,
        until=reserved.until,
        reason="username reserved until the date given",
        case_id=request.case_id,
    )
    session.commit()
    return _state(account, applied=True)


def ban(session: Session, change: StatusChange) -> AccountState:
    """Ban the account until `change.until` (None: until lifted), every session signed out.
    A ban replaces the status set by another case (an earlier ban, a deactivation: its
    timer will find it no longer in charge); `previous_case` names that case."""
    account = _locked(session, change.account_id)
    if account is None or account.status_case == change.case_id:
        return _state(account, applied=account is not None)
    if account.status == AccountStatus.PURGED:
        return _state(account, applied=False)
    previous = account.status_case
    _take_away(session, account, AccountStatus.BANNED, Action.BANNED, change)
    return _state(account, applied=True, previous=previous)


def _take_away(
    session: Session, account: Account, status: AccountStatus, action: Action, change: StatusChange
) -> None:
    """Put the account in `status` for `change`'s case, sign it out everywhere, record it."""
    _set_status(
        account, status, change.at, until=change.until, reason=change.reason, case_id=change.case_id
    )
    assert account.id is not None
    accounts.revoke_all_sessions(session, account.id, change.at)
    record(
        session,
        account,
        action,
        change.actor,
        change.at,
        reason=change.reason,
        until=change.until,
        case_id=change.case_id,
    )
    session.commit()


def lift_ban(session: Session, change: StatusChange) -> AccountState:
    """Banned → active, if the ban is still the one `change.case_id` set ("" for a ban no
    case is in charge of). The system lifting it records `ban_ended`, anybody else
    `unbanned`."""
    account = _locked(session, change.account_id)
    if (
        account is None
        or account.status != AccountStatus.BANNED
        or (account.status_case or "") != change.case_id
    ):
        return _state(account, applied=False)
    _set_status(account, AccountStatus.ACTIVE, change.at)
    ended = change.actor.kind is ActorKind.SYSTEM
    record(
        session,
        account,
        Action.BAN_ENDED if ended else Action.UNBANNED,
        change.actor,
        change.at,
        reason=change.reason,
        case_id=change.case_id,
    )
    session.commit()
    return _state(account, applied=True)


def reserved_until(session: Session, digest: str, now: datetime) -> datetime | None:
    """When a purged account's username becomes free again, if it is still reserved."""
    row = session.get(ReservedUsername, digest)
    return row.until if row is not None and row.until > now else None


def events(session: Session, account_id: int) -> list[AccountEvent]:
    return list(
        session.exec(
            select(AccountEvent)
            .where(AccountEvent.account_id == account_id)
            .order_by(col(AccountEvent.id))
        ).all()
    )
