"""The built-in directory's account status and its record (`reclaim.directory.tables.Account`'s
status columns, `AccountEvent`): deactivation, bans, reactivation, the purge, signing an
account out everywhere. Functions working inside the caller's transaction:
`reclaim.directory.sql` opens it and hands over the account row it locked first.

The database is the truth about an account's status; the lifecycle workflows only keep the
time. Each status set for a case names that case in `Account.status_case`, and a timer's
action (purge, lift the ban) applies only while the account still names the case that set it:
a user who signed in meanwhile, a newer ban, a second deactivation all make an old timer's
action a no-op, even if the signal that should have stopped it was lost. Every change writes
an `AccountEvent` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from reclaim.contracts import (
    AccountState,
    AccountStatus,
    Actor,
    ActorKind,
    PurgeAccount,
    StatusChange,
)
from reclaim.directory import sql_factors
from reclaim.directory.port import AccountChange
from reclaim.directory.tables import (
    Account,
    AccountEvent,
    LoginSession,
    PasswordHistory,
    PastContact,
    ReservedUsername,
)
from reclaim.store.models import FORGOTTEN

# What a purged account's unique columns hold (followed by its id, to stay unique).
PURGED_MARK = FORGOTTEN


class Action(StrEnum):
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"
    PURGED = "purged"
    BANNED = "banned"
    UNBANNED = "unbanned"  # lifted by someone before its end
    BAN_ENDED = "ban_ended"  # its time was up
    CONTACT_REPLACED = "contact_replaced"  # an approved support claim gave it new addresses


def changes(session: Session, account_id: int) -> list[AccountChange]:
    """The account's record, oldest first."""
    events = session.exec(
        select(AccountEvent)
        .where(AccountEvent.account_id == account_id)
        .order_by(col(AccountEvent.id))
    ).all()
    return [
        AccountChange(e.at, e.action, e.status, e.actor_kind, e.actor, e.reason, e.until, e.case_id)
        for e in events
    ]


def deactivate(session: Session, account: Account | None, change: StatusChange) -> AccountState:
    """Active → deactivated until `change.until`, every session signed out. Running it
    again for the same case changes nothing; an account deactivated by another case,
    banned or purged is left as it is (`applied=False` says so)."""
    if account is None or account.status_case == change.case_id:
        return _state(account, applied=account is not None)
    if account.status != AccountStatus.ACTIVE:
        return _state(account, applied=False)
    _take_away(session, account, AccountStatus.DEACTIVATED, Action.DEACTIVATED, change)
    return _state(account, applied=True)


def ban(session: Session, account: Account | None, change: StatusChange) -> AccountState:
    """Ban the account until `change.until` (None: until lifted), every session signed
    out. A ban replaces the status set by another case (an earlier ban, a deactivation:
    its timer will find it no longer in charge); `previous_case` names that case."""
    if account is None or account.status_case == change.case_id:
        return _state(account, applied=account is not None)
    if account.status == AccountStatus.PURGED:
        return _state(account, applied=False)
    previous = account.status_case
    _take_away(session, account, AccountStatus.BANNED, Action.BANNED, change)
    return _state(account, applied=True, previous=previous)


def lift_ban(session: Session, account: Account | None, change: StatusChange) -> AccountState:
    """Banned → active, if the ban is still the one `change.case_id` set ("" for a ban no
    case is in charge of). The system lifting it records `ban_ended`, anybody else
    `unbanned`."""
    if (
        account is None
        or account.status != AccountStatus.BANNED
        or (account.status_case or "") != change.case_id
    ):
        return _state(account, applied=False)
    _set_status(account, AccountStatus.ACTIVE, change.at)
    ended = change.actor.kind is ActorKind.SYSTEM
    action = Action.BAN_ENDED if ended else Action.UNBANNED
    note(session, account, action, change.actor, change.at, change.reason, change.case_id)
    session.commit()
    return _state(account, applied=True)


def purge(
    session: Session,
    account: Account | None,
    request: PurgeAccount,
    username_digest: Callable[[str], str],
) -> AccountState:
    """The end of a grace period: anonymise the account and keep only its record.

    The username is kept from reuse for `request.quarantine` seconds (by its keyed
    digest); email, phone and password go; sessions, password history, past contacts and
    second factors are deleted. Applies only if the account is still deactivated by this
    case; running it again changes nothing. What the features kept about the account
    (notifications, claims) is theirs to forget (`LifecycleService.forget_account`)."""
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
    for table in (LoginSession, PasswordHistory, PastContact):
        session.execute(delete(table).where(col(table.account_id) == account.id))
    sql_factors.forget(session, account.id)
    note(
        session,
        account,
        Action.PURGED,
        Actor(ActorKind.SYSTEM, "deletion grace period"),
        request.at,
        "username reserved until the date given",
        request.case_id,
        until=reserved.until,
    )
    session.commit()
    return _state(account, applied=True)


def reactivate(
    session: Session,
    account: Account,
    at: datetime,
    actor: Actor,
    *,
    case_id: str | None = None,
    reason: str | None = None,
) -> str | None:
    """Deactivated → active, inside the caller's transaction (a sign-in, a completed
    recovery, an approved claim, an operator). Returns the deletion case that must stop
    waiting, if the account was deactivated."""
    if account.status != AccountStatus.DEACTIVATED:
        return None
    deletion = account.status_case
    _set_status(account, AccountStatus.ACTIVE, at)
    session.add(account)
    how = reason or ("completed a recovery" if case_id else "signed in")
    note(session, account, Action.REACTIVATED, actor, at, how, case_id)
    return deletion


def revoke_all_sessions(session: Session, account_id: int, at: datetime) -> int:
    """Sign the account out everywhere, in the caller's transaction; how many sessions."""
    result = session.execute(
        update(LoginSession)
        .where(col(LoginSession.account_id) == account_id, col(LoginSession.revoked_at).is_(None))
        .values(revoked_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def note(
    session: Session,
    account: Account,
    action: Action,
    actor: Actor,
    at: datetime,
    reason: str | None = None,
    case_id: str | None = None,
    *,
    until: datetime | None = None,
) -> None:
    """One entry in the account's record, in the caller's transaction."""
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


def _take_away(
    session: Session, account: Account, status: AccountStatus, action: Action, change: StatusChange
) -> None:
    """Put the account in `status` for `change`'s case, sign it out everywhere, record it."""
    _set_status(
        account, status, change.at, until=change.until, reason=change.reason, case_id=change.case_id
    )
    assert account.id is not None
    revoke_all_sessions(session, account.id, change.at)
    note(
        session,
        account,
        action,
        change.actor,
        change.at,
        change.reason,
        change.case_id,
        until=change.until,
    )
    session.commit()
