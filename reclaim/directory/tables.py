"""The built-in SQL directory's tables: accounts, their sessions, password history, past
contacts, reserved usernames, the record of every status change and second factors (a TOTP
secret, recovery codes, the TOTP steps already used, passkeys).

Only `reclaim.directory.sql` and its `sql_factors`, `sql_passkeys` and `sql_status` (and
the schema migrations) import this module: every other part of Reclaim reaches accounts
through the `Directory` port.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from reclaim.contracts import AccountStatus
from reclaim.store.models import utcnow, when


class AccountBase(SQLModel):
    username: str = Field(max_length=32, unique=True, index=True)
    email: str = Field(max_length=254, unique=True, index=True)
    phone: str | None = Field(default=None, max_length=20, unique=True, index=True)
    status: str = Field(default=AccountStatus.ACTIVE, max_length=16)


class Account(AccountBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_column=when())
    password_changed_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    # When the email or phone was last changed (an approved claim; None: as created): a
    # recovery through a contact changed this lately is held.
    contacts_changed_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    # The current status, since when, until when (purge time of a deactivation, end of a
    # ban), why (a ban's reason), and the lifecycle case (workflow) in charge of it: only
    # that case may move the account on (purge it, lift the ban) when its timer fires.
    status_since: datetime | None = Field(default=None, sa_column=when(nullable=True))
    status_until: datetime | None = Field(default=None, sa_column=when(nullable=True))
    status_reason: str | None = Field(default=None, max_length=500)
    status_case: str | None = Field(default=None, max_length=40)


class AccountEvent(SQLModel, table=True):
    """Every change of an account's status: what, when, who (operator, system or user) and
    why. Kept when the account is purged: it is the audit record."""

    __tablename__ = "account_event"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    at: datetime = Field(sa_column=when())
    action: str = Field(max_length=24)
    status: str = Field(max_length=16)  # the status after the change
    actor_kind: str = Field(max_length=16)
    actor: str = Field(max_length=64)
    reason: str | None = Field(default=None, max_length=500)
    until: datetime | None = Field(default=None, sa_column=when(nullable=True))
    # The lifecycle or recovery case that made the change, if any.
    case_id: str | None = Field(default=None, max_length=40)


class ReservedUsername(SQLModel, table=True):
    """The username of a purged account, kept from reuse for a while (so nobody can pose as
    the departed user right away). Only a keyed digest of the name is stored."""

    __tablename__ = "reserved_username"

    digest: str = Field(primary_key=True, max_length=64)
    until: datetime = Field(sa_column=when())
    # The purged account it belonged to: a claim naming the username finds its record.
    account_id: int | None = Field(default=None, foreign_key="account.id")


class PastContact(SQLModel, table=True):
    """An address an account used to have (replaced by an approved support claim), kept as a
    keyed digest: enough to recognise it as evidence, useless to anyone reading the table."""

    __tablename__ = "past_contact"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    kind: str = Field(max_length=8)  # "email" or "phone"
    digest: str = Field(max_length=64)
    replaced_at: datetime = Field(sa_column=when())
    case_id: str | None = Field(default=None, max_length=40)


class LoginSession(SQLModel, table=True):
    __tablename__ = "login_session"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    token_digest: str = Field(max_length=64, unique=True, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=when())
    revoked_at: datetime | None = Field(default=None, sa_column=when(nullable=True))


class PasswordHistory(SQLModel, table=True):
    __tablename__ = "password_history"
    __table_args__ = (UniqueConstraint("account_id", "case_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    password_hash: str = Field(max_length=255)
    # The recovery case that set this password; None for the one the account was created with.
    case_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=when())


class AccountTotp(SQLModel, table=True):
    """An account's TOTP secret (RFC 6238, base32), sealed at rest with a key derived from the
    server secret and bound to the account (`totp:<account id>`): the table alone gives
    nobody a code. One per account; enrolling again replaces it."""

    __tablename__ = "account_totp"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    sealed_secret: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    enrolled_at: datetime = Field(sa_column=when())
    last_used_at: datetime | None = Field(default=None, sa_column=when(nullable=True))


class TotpStep(SQLModel, table=True):
    """A TOTP time step an account's code was accepted for, and by which case: a code is good
    once per account and step (a replay within its 30 s is refused), and the same case asking
    again with it (a retried activity) is answered as the first time."""

    __tablename__ = "totp_step"

    account_id: int = Field(foreign_key="account.id", primary_key=True)
    step: int = Field(primary_key=True)  # seconds since the epoch // 30
    case_id: str = Field(max_length=40)
    used_at: datetime = Field(sa_column=when())


class RecoveryCode(SQLModel, table=True):
    """One of an account's ten recovery codes, as a keyed digest only (never the code), when
    it was used, by which case, and how many of its set were left then (what a retry of that
    case is answered). A new set deletes the previous one."""

    __tablename__ = "recovery_code"
    __table_args__ = (UniqueConstraint("account_id", "digest"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    digest: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=when())
    used_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    used_by_case: str | None = Field(default=None, max_length=40)
    left_after: int | None = None


class AccountPasskey(SQLModel, table=True):
    """A passkey (WebAuthn credential) of an account: its credential id (base64url, unique
    across accounts), its COSE public key (public: nothing to seal), the last signature
    counter seen, its transports (JSON list), its owner's name for it, and the case whose
    assertion last used it (a retry of that case with the same counter is answered alike)."""

    __tablename__ = "passkey"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    # WebAuthn allows ids of up to 1023 bytes: 1364 base64url characters.
    credential_id: str = Field(sa_column=Column(String(1400), nullable=False, unique=True))
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # An unsigned 32-bit counter: past a 32-bit signed column's range.
    sign_count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    transports: str = Field(default="[]", max_length=200)
    name: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=when())
    last_used_at: datetime | None = Field(default=None, sa_column=when(nullable=True))
    last_case_id: str | None = Field(default=None, max_length=40)
