"""Accounts, login sessions and password history (synchronous; callers off the event loop
run these in a thread)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reclaim import lifecycle  # module import: lifecycle uses this module too
from reclaim.contracts import Actor, ActorKind
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.models import Account, AccountStatus, LoginSession, PasswordHistory, utcnow
from reclaim.security import Keys, Passwords, new_token

PASSWORD_HISTORY_DEPTH = 5


class AccountExists(ValueError):
    def __init__(self, field: str) -> None:
        super().__init__(f"an account with this {field} already exists")
        self.field = field


class UsernameReserved(AccountExists):
    def __init__(self, until: datetime) -> None:
        ValueError.__init__(
            self,
            "this username belonged to a deleted account: it is reserved until "
            f"{until:%Y-%m-%d %H:%M} UTC",
        )
        self.field = "username"
        self.until = until


# How the account holder appears in the lifecycle record (never by name: the record outlives
# the purge of their personal data).
ACCOUNT_HOLDER = Actor(ActorKind.USER, "account holder")


def username_digest(keys: Keys, username: str) -> str:
    return keys.identifier_digest(Identifier(IdentifierKind.USERNAME, username).key)


def create_account(
    session: Session,
    *,
    username: str,
    email: str,
    phone: str | None,
    password_hash: str,
    keys: Keys | None = None,
) -> Account:
    """A new active account. With `keys`, a username still reserved after the purge of its
    previous owner is refused."""
    if keys is not None:
        until = lifecycle.reserved_until(session, username_digest(keys, username), utcnow())
        if until is not None:
            raise UsernameReserved(until)
    for field, value in (("username", username), ("email", email), ("phone", phone)):
        if (
            value is not None
            and session.exec(select(Account.id).where(getattr(Account, field) == value)).first()
        ):
            raise AccountExists(field)
    account = Account(username=username, email=email, phone=phone, password_hash=password_hash)
    session.add(account)
    session.flush()
    assert account.id is not None
    session.add(PasswordHistory(account_id=account.id, password_hash=password_hash))
    session.commit()
    session.refresh(account)
    return account


def find_account(session: Session, identifier: Identifier) -> Account | None:
    """The account an identifier names; purged accounts name nobody."""
    column = {
        IdentifierKind.EMAIL: Account.email,
        IdentifierKind.PHONE: Account.phone,
        IdentifierKind.USERNAME: Account.username,
    }[identifier.kind]
    return session.exec(
        select(Account).where(column == identifier.value, Account.status != AccountStatus.PURGED)
    ).first()


def recent_password_hashes(
    session: Session, account_id: int, depth: int = PASSWORD_HISTORY_DEPTH
) -> list[str]:
    """The hashes of the last `depth` passwords, the current one included."""
    return list(
        session.exec(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.account_id == account_id)
            .order_by(col(PasswordHistory.id).desc())
            .limit(depth)
        ).all()
    )


def revoke_all_sessions(session: Session, account_id: int, at: datetime) -> int:
    result = session.execute(
        update(LoginSession)
        .where(col(LoginSession.account_id) == account_id, col(LoginSession.revoked_at).is_(None))
        .values(revoked_at=at)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class LoginResult:
    """`token` on success; otherwise `problem` is `invalid_credentials` or `account_<status>`
    (with `until`, when a ban ends). `reactivated` names the deletion case a sign-in inside
    the grace period stopped: its workflow must hear of it."""

    token: str | None = None
    problem: str | None = None
    until: datetime | None = None
    reactivated: str | None = None


def login(
    engine: Engine, keys: Keys, passwords: Passwords, identifier: Identifier, password: str
) -> LoginResult:
    """Check a password and open a session. An unknown identifier costs one argon2
    verification like a known one, so timing does not tell them apart."""
    with Session(engine) as session:
        account = find_account(session, identifier)
        if not passwords.verify(account.password_hash if account else None, password):
            return LoginResult(problem="invalid_credentials")
        assert account is not None and account.id is not None
        if account.status == AccountStatus.BANNED:
            return LoginResult(problem="account_banned", until=account.status_until)
        # Signing in during the grace period of a deactivation keeps the account.
        reactivated = lifecycle.reactivate(session, account, utcnow(), ACCOUNT_HOLDER)
        if account.status != AccountStatus.ACTIVE:
            return LoginResult(problem=f"account_{account.status}")
        if passwords.needs_rehash(account.password_hash):
            account.password_hash = passwords.hash(password)
            session.add(account)
        token = new_token()
        session.add(LoginSession(account_id=account.id, token_digest=keys.token_digest(token)))
        session.commit()
        return LoginResult(token=token, reactivated=reactivated)


@dataclass(frozen=True)
class SessionView:
    account_id: int
    username: str
    created_at: datetime


def current_session(engine: Engine, keys: Keys, token: str) -> SessionView | None:
    with Session(engine) as session:
        row = session.exec(
            select(LoginSession, Account)
            .join(Account, col(Account.id) == LoginSession.account_id)
            .where(
                LoginSession.token_digest == keys.token_digest(token),
                col(LoginSession.revoked_at).is_(None),
                Account.status == AccountStatus.ACTIVE,
            )
        ).first()
        if row is None:
            return None
        login_session, account = row
        assert account.id is not None
        return SessionView(
            account_id=account.id, username=account.username, created_at=login_session.created_at
        )


def end_session(engine: Engine, keys: Keys, token: str) -> bool:
    with Session(engine) as session:
        result = session.execute(
            update(LoginSession)
            .where(
                col(LoginSession.token_digest) == keys.token_digest(token),
                col(LoginSession.revoked_at).is_(None),
            )
            .values(revoked_at=utcnow())
        )
        session.commit()
        return bool(getattr(result, "rowcount", 0))
