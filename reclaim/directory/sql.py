"""The built-in directory: accounts in Reclaim's own database (`reclaim.directory.tables`).

It does everything the port allows: accounts made with `reclaim accounts add`, sign-in and
sessions, a password history (reuse refused, previous passwords as claim evidence), past
contacts, deactivation with a purge after the grace period, bans, the record of every
status change, and second factors (a TOTP secret sealed at rest, ten recovery codes kept as
keyed digests: `reclaim.directory.sql_factors`; passkeys: `reclaim.directory.sql_passkeys`).
The account's status and its record (deactivation, bans, the purge, the case in charge of
each) are `reclaim.directory.sql_status`'.

The SQL is synchronous: each method runs its transaction in a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, func, literal, union_all, update
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from reclaim.contracts import (
    ACCOUNT_HOLDER,
    AccountState,
    AccountStatus,
    Actor,
    Channel,
    PurgeAccount,
    StatusChange,
)
from reclaim.directory import sql_factors, sql_passkeys, sql_status
from reclaim.directory.port import (
    AccountExists,
    AccountGone,
    AccountOverview,
    AccountRecord,
    Capability,
    FactorCheck,
    FactorKind,
    FactorSummary,
    NewPassword,
    Passkey,
    SessionView,
    SignIn,
    UsernameReserved,
    unseal_password,
)
from reclaim.directory.sql_status import Action
from reclaim.directory.tables import (
    Account,
    AccountEvent,
    LoginSession,
    PasswordHistory,
    PastContact,
    ReservedUsername,
)
from reclaim.identifiers import Identifier, IdentifierKind, identifier_digest
from reclaim.security import Keys, Passwords, new_token
from reclaim.store.engine import in_session
from reclaim.store.models import utcnow

T = TypeVar("T")

PASSWORD_HISTORY_DEPTH = 5
# Seconds `decoy` keeps the highest account id before reading it again.
DECOY_SPAN_TTL = 60.0

_KIND = {Channel.EMAIL: IdentifierKind.EMAIL, Channel.SMS: IdentifierKind.PHONE}


class SqlDirectory:
    name = "sql"
    capabilities = frozenset(Capability)

    def __init__(
        self, engine: Engine, keys: Keys, passwords: Passwords, *, issuer: str = "Reclaim"
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._passwords = passwords
        # Who the authenticator app says a TOTP secret is for (the product's name).
        self._issuer = issuer
        # (when read, the highest account id) for `decoy`.
        self._decoy_top: tuple[float, int] | None = None

    async def _run(self, work: Callable[[Session], T]) -> T:
        return await in_session(self._engine, work)

    async def ping(self) -> None:
        """The accounts are in Reclaim's own database, which `/readyz` checks already."""

    async def aclose(self) -> None:
        pass

    # -- finding and reading -----------------------------------------------------------------

    async def find(self, identifier: Identifier) -> AccountRecord | None:
        return await self._run(lambda s: _record(s, _naming(identifier)))

    async def get(self, account_id: int) -> AccountRecord | None:
        return await self._run(lambda s: _record(s, col(Account.id) == account_id))

    async def find_claimed(self, username: str) -> AccountRecord | None:
        def work(session: Session) -> AccountRecord | None:
            record = _record(session, _naming(Identifier(IdentifierKind.USERNAME, username)))
            if record is None:
                reserved = session.get(ReservedUsername, self._username_digest(username))
                if reserved is not None and reserved.account_id is not None:
                    record = _record(session, col(Account.id) == reserved.account_id)
            return record

        return await self._run(work)

    async def decoy(self, seed: bytes) -> AccountRecord | None:
        """The first account at or after an id the seed picks: `seed mod 2^k + 1`, 2^k the
        power of two just above the highest id (re-read every `DECOY_SPAN_TTL` seconds), or
        `seed mod 2^(k-1) + 1` when that is past the highest id. Every account can be picked
        (the lower half at most twice as often), one indexed read; a new account changes the
        pick only of the seeds that land on it, and crossing a power of two half of them."""
        pick = int.from_bytes(seed[:8], "big")

        def work(session: Session) -> AccountRecord | None:
            now = time.monotonic()
            if self._decoy_top is None or now - self._decoy_top[0] > DECOY_SPAN_TTL:
                self._decoy_top = (now, session.exec(select(func.max(Account.id))).one() or 0)
            top = self._decoy_top[1]
            bits = max(top.bit_length(), 1)
            start = pick % (1 << bits) + 1
            if start > top:
                start = pick % (1 << (bits - 1)) + 1
            return _decoy(session, start)

        return await self._run(work)

    async def overview(self, account_id: int) -> AccountOverview | None:
        def work(session: Session) -> AccountOverview | None:
            account = session.get(Account, account_id)
            if account is None:
                return None
            active = session.exec(
                select(func.count())
                .select_from(LoginSession)
                .where(
                    LoginSession.account_id == account_id, col(LoginSession.revoked_at).is_(None)
                )
            ).one()
            changes = sql_status.changes(session, account_id)
            return AccountOverview(
                _view(account, sql_factors.factor_kinds(session, account_id)), int(active), changes
            )

        return await self._run(work)

    async def status_counts(self) -> dict[str, int]:
        def work(session: Session) -> dict[str, int]:
            rows = session.exec(
                select(col(Account.status), func.count()).group_by(col(Account.status))
            ).all()
            return {status: int(count) for status, count in rows}

        return await self._run(work)

    # -- passwords ---------------------------------------------------------------------------

    async def matching_passwords(self, account_id: int | None, candidates: list[str]) -> int:
        def work(session: Session) -> int:
            hashes: list[str | None] = []
            if account_id is not None:
                hashes += _recent_hashes(session, account_id)
            # Padded with the decoy: every candidate costs the same number of verifications
            # whatever the account and its history.
            hashes += [None] * (PASSWORD_HISTORY_DEPTH - len(hashes))
            return sum(
                1
                for password in candidates
                # Every comparison is made, even after a match: constant work per password.
                if [self._passwords.verify(h, password) for h in hashes].count(True) > 0
            )

        return await self._run(work)

    async def password_reused(self, account_id: int, password: str) -> bool:
        def work(session: Session) -> bool:
            recent = _recent_hashes(session, account_id)
            return any(self._passwords.verify(old, password) for old in recent)

        return await self._run(work)

    async def is_current_password(self, account_id: int, password: str) -> bool:
        def work(session: Session) -> bool:
            account = session.get(Account, account_id)
            return self._passwords.verify(account.password_hash if account else None, password)

        return await self._run(work)

    async def new_password(self, case_id: str, password: str) -> NewPassword:
        return NewPassword(hash=await asyncio.to_thread(self._passwords.hash, password))

    async def set_password(
        self, account_id: int, password: NewPassword, *, case_id: str, at: datetime
    ) -> str | None:
        password_hash = password.hash
        if not password_hash and password.sealed:  # sealed for a directory that needed it
            clear = unseal_password(self._keys, case_id, password.sealed)
            password_hash = await asyncio.to_thread(self._passwords.hash, clear)

        def work(session: Session) -> str | None:
            account = session.get(Account, account_id)
            if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
                raise AccountGone(account_id)
            done = session.exec(
                select(PasswordHistory.id).where(
                    PasswordHistory.account_id == account_id, PasswordHistory.case_id == case_id
                )
            ).first()
            if done is not None:
                return None  # a retried activity: applied already
            account.password_hash = password_hash
            account.password_changed_at = at
            session.add(account)
            session.add(
                PasswordHistory(
                    account_id=account_id,
                    password_hash=password_hash,
                    case_id=case_id,
                    created_at=at,
                )
            )
            sql_status.revoke_all_sessions(session, account_id, at)
            deletion = sql_status.reactivate(session, account, at, ACCOUNT_HOLDER, case_id=case_id)
            session.commit()
            return deletion

        return await self._run(work)

    # -- second factors: `reclaim.directory.sql_factors`, passkeys `sql_passkeys` -------------

    async def factors(self, account_id: int) -> list[FactorSummary]:
        """The TOTP secret, the recovery code set, the passkeys; never a secret."""

        def work(session: Session) -> list[FactorSummary]:
            found = sql_factors.summaries(session, account_id)
            return found + sql_passkeys.summaries(session, account_id)

        return await self._run(work)

    async def verify_factor(
        self, account_id: int, kind: FactorKind, code: str, *, case_id: str, at: datetime
    ) -> FactorCheck:
        """TOTP: a code of the step of `at` or one either side, each step accepted once per
        account, remembered with the case that spent it. Recovery code: one of the current
        set not used yet (case, spaces and dashes ignored), spent by this case. The same case
        with the same code again (a retried activity) is answered as the first time: accepted,
        with the same count of codes left. Anything else (a replay by another case, a wrong
        code, a kind the account does not have, a passkey: proven by `use_passkey`) is
        `accepted=False`, nothing more."""

        def work(session: Session) -> FactorCheck:
            if _locked(session, account_id) is None:
                return FactorCheck(accepted=False)
            return sql_factors.verify(
                session, self._keys, account_id, kind, code, case_id=case_id, at=at
            )

        return await self._run(work)

    async def enrol_totp(self, account_id: int, at: datetime, *, secret: str | None = None) -> str:
        secret = secret or sql_factors.new_totp_secret()

        def work(session: Session) -> str:
            account = _locked(session, account_id)
            if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
                raise AccountGone(account_id)
            return sql_factors.enrol_totp(
                session, self._keys, account, secret, at, issuer=self._issuer
            )

        return await self._run(work)

    async def new_recovery_codes(self, account_id: int, at: datetime) -> list[str]:
        shown = sql_factors.new_recovery_codes()

        def work(session: Session) -> list[str]:
            account = _locked(session, account_id)
            if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
                raise AccountGone(account_id)
            sql_factors.replace_recovery_codes(session, self._keys, account_id, shown, at)
            return shown

        return await self._run(work)

    async def remove_factor(self, account_id: int, kind: FactorKind) -> bool:
        """See `sql_factors.remove`."""

        def work(session: Session) -> bool:
            _locked(session, account_id)
            return sql_factors.remove(session, account_id, kind)

        return await self._run(work)

    async def passkeys(self, account_id: int) -> list[Passkey]:
        return await self._run(lambda session: sql_passkeys.passkeys(session, account_id))

    async def add_passkey(self, account_id: int, passkey: Passkey) -> None:
        def work(session: Session) -> None:
            account = _locked(session, account_id)
            if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
                raise AccountGone(account_id)
            sql_passkeys.add(session, account_id, passkey)

        await self._run(work)

    async def use_passkey(
        self, account_id: int, credential_id: bytes, sign_count: int, *, case_id: str, at: datetime
    ) -> bool:
        def work(session: Session) -> bool:
            if _locked(session, account_id) is None:
                return False
            return sql_passkeys.use(
                session, account_id, credential_id, sign_count, case_id=case_id, at=at
            )

        return await self._run(work)

    async def remove_passkey(self, account_id: int, credential_id: bytes) -> bool:
        def work(session: Session) -> bool:
            _locked(session, account_id)
            return sql_passkeys.remove(session, account_id, credential_id)

        return await self._run(work)

    # -- contacts ----------------------------------------------------------------------------

    async def was_contact(self, account_id: int, channel: Channel, address: str) -> bool:
        kind = _KIND[channel]
        digest = identifier_digest(self._keys, kind, address)

        def work(session: Session) -> bool:
            return (
                session.exec(
                    select(PastContact.id).where(
                        PastContact.account_id == account_id,
                        PastContact.kind == kind.value,
                        PastContact.digest == digest,
                    )
                ).first()
                is not None
            )

        return await self._run(work)

    async def replace_contacts(
        self,
        account_id: int,
        *,
        email: str,
        case_id: str,
        at: datetime,
        actor: Actor,
        reason: str,
    ) -> str | None:
        def work(session: Session) -> str | None:
            account = _locked(session, account_id)
            if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
                raise AccountGone(account_id)
            done = session.exec(
                select(AccountEvent.id).where(
                    AccountEvent.account_id == account_id,
                    AccountEvent.case_id == case_id,
                    AccountEvent.action == Action.CONTACT_REPLACED,
                )
            ).first()
            if done is not None:
                return None  # a retried activity: replaced already
            taken = session.exec(
                select(Account.id).where(Account.email == email, Account.id != account_id)
            ).first()
            if taken is not None:
                raise AccountExists("email")
            old = [(IdentifierKind.PHONE, account.phone)]
            if account.email != email:
                old.append((IdentifierKind.EMAIL, account.email))
            for kind, address in old:
                if address:
                    session.add(
                        PastContact(
                            account_id=account_id,
                            kind=kind.value,
                            digest=identifier_digest(self._keys, kind, address),
                            replaced_at=at,
                            case_id=case_id,
                        )
                    )
            account.email, account.phone = email, None
            account.contacts_changed_at = at
            deletion = sql_status.reactivate(
                session, account, at, actor, case_id=case_id, reason=reason
            )
            session.add(account)
            sql_status.revoke_all_sessions(session, account_id, at)
            sql_status.note(session, account, Action.CONTACT_REPLACED, actor, at, reason, case_id)
            session.commit()
            return deletion

        return await self._run(work)

    # -- sessions ----------------------------------------------------------------------------

    async def sign_in(self, identifier: Identifier, password: str) -> SignIn:
        def work(session: Session) -> SignIn:
            account = _find(session, identifier)
            if not self._passwords.verify(account.password_hash if account else None, password):
                return SignIn(problem="invalid_credentials")
            assert account is not None and account.id is not None
            if account.status == AccountStatus.BANNED:
                return SignIn(problem="account_banned", until=account.status_until)
            # Signing in during the grace period of a deactivation keeps the account.
            reactivated = sql_status.reactivate(session, account, utcnow(), ACCOUNT_HOLDER)
            if account.status != AccountStatus.ACTIVE:
                return SignIn(problem=f"account_{account.status}")
            if self._passwords.needs_rehash(account.password_hash):
                account.password_hash = self._passwords.hash(password)
                session.add(account)
            token = new_token()
            session.add(
                LoginSession(account_id=account.id, token_digest=self._keys.token_digest(token))
            )
            session.commit()
            return SignIn(token=token, reactivated=reactivated)

        return await self._run(work)

    async def session(self, token: str) -> SessionView | None:
        digest = self._keys.token_digest(token)

        def work(session: Session) -> SessionView | None:
            row = session.exec(
                select(LoginSession, Account)
                .join(Account, col(Account.id) == LoginSession.account_id)
                .where(
                    LoginSession.token_digest == digest,
                    col(LoginSession.revoked_at).is_(None),
                    Account.status == AccountStatus.ACTIVE,
                )
            ).first()
            if row is None:
                return None
            login_session, account = row
            assert account.id is not None
            return SessionView(account.id, account.username, login_session.created_at)

        return await self._run(work)

    async def end_session(self, token: str) -> bool:
        digest = self._keys.token_digest(token)

        def work(session: Session) -> bool:
            result = session.execute(
                update(LoginSession)
                .where(
                    col(LoginSession.token_digest) == digest,
                    col(LoginSession.revoked_at).is_(None),
                )
                .values(revoked_at=utcnow())
            )
            session.commit()
            return bool(getattr(result, "rowcount", 0))

        return await self._run(work)

    async def revoke_sessions(self, account_id: int, at: datetime) -> int:
        def work(session: Session) -> int:
            count = sql_status.revoke_all_sessions(session, account_id, at)
            session.commit()
            return count

        return await self._run(work)

    # -- status: `reclaim.directory.sql_status` ---------------------------------------------

    async def deactivate(self, change: StatusChange) -> AccountState:
        def work(session: Session) -> AccountState:
            return sql_status.deactivate(session, _locked(session, change.account_id), change)

        return await self._run(work)

    async def ban(self, change: StatusChange) -> AccountState:
        def work(session: Session) -> AccountState:
            return sql_status.ban(session, _locked(session, change.account_id), change)

        return await self._run(work)

    async def lift_ban(self, change: StatusChange) -> AccountState:
        def work(session: Session) -> AccountState:
            return sql_status.lift_ban(session, _locked(session, change.account_id), change)

        return await self._run(work)

    async def reactivate(
        self,
        account_id: int,
        at: datetime,
        actor: Actor,
        *,
        case_id: str | None = None,
        reason: str | None = None,
    ) -> str | None:
        def work(session: Session) -> str | None:
            account = _locked(session, account_id)
            if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
                raise AccountGone(account_id)
            deletion = sql_status.reactivate(
                session, account, at, actor, case_id=case_id, reason=reason
            )
            session.commit()
            return deletion

        return await self._run(work)

    async def purge(self, request: PurgeAccount) -> AccountState:
        def work(session: Session) -> AccountState:
            account = _locked(session, request.account_id)
            return sql_status.purge(session, account, request, self._username_digest)

        return await self._run(work)

    # -- creation ----------------------------------------------------------------------------

    async def create(
        self, *, username: str, email: str, phone: str | None, password: str
    ) -> AccountRecord:
        """A new active account. A username still reserved after the purge of its previous
        owner is refused."""
        password_hash = await asyncio.to_thread(self._passwords.hash, password)

        def work(session: Session) -> AccountRecord:
            reserved = session.get(ReservedUsername, self._username_digest(username))
            if reserved is not None and reserved.until > utcnow():
                raise UsernameReserved(reserved.until)
            for field, value in (("username", username), ("email", email), ("phone", phone)):
                if (
                    value is not None
                    and session.exec(
                        select(Account.id).where(getattr(Account, field) == value)
                    ).first()
                ):
                    raise AccountExists(field)
            account = Account(
                username=username, email=email, phone=phone, password_hash=password_hash
            )
            session.add(account)
            session.flush()
            assert account.id is not None
            session.add(PasswordHistory(account_id=account.id, password_hash=password_hash))
            session.commit()
            session.refresh(account)
            return _view(account)

        return await self._run(work)

    def _username_digest(self, username: str) -> str:
        return identifier_digest(self._keys, IdentifierKind.USERNAME, username)


# -- helpers, inside the caller's transaction --------------------------------------------------


def _naming(identifier: Identifier) -> Any:
    """The condition an account an identifier names meets; purged accounts name nobody."""
    column = {
        IdentifierKind.EMAIL: Account.email,
        IdentifierKind.PHONE: Account.phone,
        IdentifierKind.USERNAME: Account.username,
    }[identifier.kind]
    return and_(col(column) == identifier.value, col(Account.status) != AccountStatus.PURGED.value)


def _find(session: Session, identifier: Identifier) -> Account | None:
    """The account an identifier names; purged accounts name nobody."""
    return session.exec(select(Account).where(_naming(identifier))).first()


def _record(session: Session, where: Any) -> AccountRecord | None:
    """The account meeting `where` with its factor kinds, in one statement."""
    row = session.execute(
        sa_select(Account, *sql_factors.has_factors()).where(where).limit(1)
    ).first()
    if row is None:
        return None
    account, *has = row
    return _view(account, sql_factors.kinds(*has))


def _decoy(session: Session, start: int) -> AccountRecord | None:
    """The first account that is not purged at or after id `start`, else the first of all:
    one statement, two index seeks, whatever the accounts."""
    alive = col(Account.status) != AccountStatus.PURGED.value
    after = (
        select(col(Account.id).label("id"), literal(0).label("rank"))
        .where(col(Account.id) >= start, alive)
        .order_by(col(Account.id))
        .limit(1)
        .subquery()
    )
    first = (
        select(col(Account.id).label("id"), literal(1).label("rank"))
        .where(alive)
        .order_by(col(Account.id))
        .limit(1)
        .subquery()
    )
    picked = union_all(sa_select(after), sa_select(first)).subquery()
    row = session.execute(
        sa_select(Account, *sql_factors.has_factors())
        .join(picked, col(Account.id) == picked.c.id)
        .order_by(picked.c.rank)
        .limit(1)
    ).first()
    if row is None:
        return None
    account, *has = row
    return _view(account, sql_factors.kinds(*has))


def _view(account: Account, factors: tuple[FactorKind, ...] = ()) -> AccountRecord:
    assert account.id is not None
    return AccountRecord(
        id=account.id,
        username=account.username,
        email=account.email,
        phone=account.phone,
        status=AccountStatus(account.status),
        created_at=account.created_at,
        password_changed_at=account.password_changed_at,
        contacts_changed_at=account.contacts_changed_at,
        factors=factors,
        status_since=account.status_since,
        status_until=account.status_until,
        status_reason=account.status_reason,
        status_case=account.status_case,
    )


def _recent_hashes(session: Session, account_id: int) -> list[str]:
    """The hashes of the last passwords, the current one included."""
    return list(
        session.exec(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.account_id == account_id)
            .order_by(col(PasswordHistory.id).desc())
            .limit(PASSWORD_HISTORY_DEPTH)
        ).all()
    )


def _locked(session: Session, account_id: int) -> Account | None:
    """The account row, locked until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway)."""
    return session.exec(select(Account).where(Account.id == account_id).with_for_update()).first()
