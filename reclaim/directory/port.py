"""The account directory port: everything Reclaim's features need of the store that holds the
accounts, and nothing more.

The features (recovery, support, lifecycle) reach accounts only through a `Directory`. The
built-in SQL directory (`reclaim.directory.sql`) is the first implementation and the default;
a directory backed by LDAP or by the organisation's own application implements the same
methods and declares, in `capabilities`, what it can do. A feature that needs a capability the
configured directory lacks refuses with a clear message instead of doing half the work.

Account ids are integers the directory hands out and keeps stable (the built-in one uses its
row ids; a directory whose accounts are named otherwise, a DN or a host's user id, keeps a
table of its own mapping them to integers). Workflow histories hold these ids, never a name or
an address.

Every method is a coroutine: a directory may be a database, an LDAP server or an HTTP service,
and its callers (services and activities) run on the event loop.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from reclaim.contracts import (
    AccountState,
    AccountStatus,
    Actor,
    CaseError,
    Channel,
    PurgeAccount,
    StatusChange,
)

if TYPE_CHECKING:
    from reclaim.identifiers import Identifier
    from reclaim.security import Keys


class Capability(StrEnum):
    """What a directory can do beyond finding accounts, reading them and setting a password."""

    CREATE = "create"  # `reclaim accounts add`
    SIGN_IN = "sign_in"  # passwords checked and sessions kept here (`/v1/sessions`)
    PASSWORD_HISTORY = "password_history"  # reuse refused; previous passwords as claim evidence
    PAST_CONTACTS = "past_contacts"  # a claim's registered address recognised as a former one
    CONTACTS = "contacts"  # an approved claim replaces the account's addresses
    STATUS = "status"  # deactivation, bans, their record
    PURGE = "purge"  # a deactivated account's personal data erased after its grace period
    SECOND_FACTORS = "second_factors"  # TOTP, recovery codes and passkeys kept and checked here


class FactorKind(StrEnum):
    """A second factor an account may have. A recovery of an account with one needs a proof
    of one of them after the contact code (NIST SP 800-63B-4: an account bound to more than
    one factor is not recovered by a contact code alone)."""

    TOTP = "totp"  # RFC 6238, 6 digits, 30 s steps
    RECOVERY_CODE = "recovery_code"  # one of ten saved codes, each usable once
    WEBAUTHN = "webauthn"  # passkeys (WebAuthn credentials), any number per account


@dataclass(frozen=True)
class FactorSummary:
    """One second factor of an account, as operators may see it: never a secret."""

    kind: FactorKind
    enrolled_at: datetime
    last_used_at: datetime | None = None
    remaining: int | None = None  # recovery codes not used yet
    # A passkey's name (its owner's words) and credential id (base64url, no padding), so a
    # page can say which one to remove; None for other kinds.
    name: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class Passkey:
    """A WebAuthn credential registered to an account: its id and COSE public key as the
    authenticator gave them, the last signature counter seen (0: the authenticator keeps
    none), how it may be reached (`usb`, `nfc`, `ble`, `internal`, `hybrid`), and its name."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    name: str
    created_at: datetime
    last_used_at: datetime | None = None


def passkey_key(credential_id: bytes) -> str:
    """A credential id as text: base64url without padding (`FactorSummary.key`)."""
    return base64.urlsafe_b64encode(credential_id).rstrip(b"=").decode()


def passkey_id(key: str) -> bytes:
    """The credential id `passkey_key` wrote (raises `ValueError` on text that is not one)."""
    return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))


@dataclass(frozen=True)
class FactorCheck:
    """What a second-factor proof was worth: `accepted`, and for a recovery code, how many of
    the set are left after it."""

    accepted: bool
    recovery_codes_left: int | None = None


@dataclass(frozen=True)
class AccountRecord:
    """What the features may know of an account."""

    id: int
    username: str
    email: str | None
    phone: str | None
    status: AccountStatus
    created_at: datetime | None = None
    password_changed_at: datetime | None = None
    # When the email or phone last changed (None: as created, or the directory cannot say).
    contacts_changed_at: datetime | None = None
    # The kinds of second factor the account has (none: a contact code alone recovers it).
    factors: tuple[FactorKind, ...] = ()
    # The current status since when, until when (purge time, end of a ban), why, and the
    # lifecycle case in charge of it.
    status_since: datetime | None = None
    status_until: datetime | None = None
    status_reason: str | None = None
    status_case: str | None = None

    def address(self, channel: Channel) -> str | None:
        return self.phone if channel is Channel.SMS else self.email

    @property
    def contacts(self) -> list[tuple[Channel, str]]:
        """Every address the account can be told something at."""
        found = [(Channel.EMAIL, self.email), (Channel.SMS, self.phone)]
        return [(channel, address) for channel, address in found if address]


@dataclass(frozen=True)
class NewPassword:
    """A new password on its way to the directory: an argon2id `hash` for a directory that
    keeps hashes, or the password `sealed` for its case (AES-GCM, key derived from the server
    secret) for one that needs it in clear (an LDAP password modify, a host's endpoint).
    Either way nothing in clear reaches workflow history."""

    hash: str = ""
    sealed: str | None = None


def seal_password(keys: Keys, case_id: str, password: str) -> str:
    """The new password, encrypted for this case only (`NewPassword.sealed`)."""
    return base64.b64encode(keys.seal(password, f"{case_id}/new-password")).decode()


def unseal_password(keys: Keys, case_id: str, sealed: str) -> str:
    return keys.unseal(base64.b64decode(sealed), f"{case_id}/new-password")


SEALED_HASH = "sealed:"


def seal_hash(keys: Keys, case_id: str, password_hash: str) -> str:
    """A new password's hash as it travels through workflow history: sealed for its case with
    a key derived from the server secret, which the codec endpoint's keys are not, so whoever
    may read a case's history there still cannot take the hash away to crack it."""
    if not password_hash:
        return ""
    sealed = keys.seal(password_hash, f"{case_id}/new-password-hash")
    return SEALED_HASH + base64.b64encode(sealed).decode()


def open_hash(keys: Keys, case_id: str, carried: str) -> str:
    """The hash `seal_hash` sealed (a case started before hashes were sealed carries it as
    it is)."""
    if not carried.startswith(SEALED_HASH):
        return carried
    sealed = base64.b64decode(carried.removeprefix(SEALED_HASH))
    return keys.unseal(sealed, f"{case_id}/new-password-hash")


@dataclass(frozen=True)
class SignIn:
    """`token` on success; otherwise `problem` is `invalid_credentials` or `account_<status>`
    (with `until`, when a ban ends). `reactivated` names the deletion case a sign-in inside
    the grace period stopped: its workflow must hear of it."""

    token: str | None = None
    problem: str | None = None
    until: datetime | None = None
    reactivated: str | None = None


@dataclass(frozen=True)
class SessionView:
    account_id: int
    username: str
    created_at: datetime


@dataclass(frozen=True)
class AccountChange:
    """One entry of an account's record: every status change, who made it, why, which case."""

    at: datetime
    action: str
    status: str
    actor_kind: str
    actor: str
    reason: str | None = None
    until: datetime | None = None
    case_id: str | None = None


@dataclass(frozen=True)
class AccountOverview:
    """What `reclaim accounts show` prints besides the record and its changes."""

    account: AccountRecord
    active_sessions: int | None  # None: sessions are not Reclaim's (an LDAP or HTTP directory)
    changes: list[AccountChange] = field(default_factory=list)


class DirectoryError(Exception):
    pass


class AccountExists(DirectoryError, ValueError):
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


class AccountGone(DirectoryError):
    """The account was purged or is banned: no password change, no contact change."""


class PasswordRejected(DirectoryError):
    """The directory's own password policy refused the new password (a server-side history or
    length rule): the same answers Reclaim's policy gives."""

    def __init__(self, error: CaseError, reasons: list[str] | None = None) -> None:
        super().__init__(error.value)
        self.error = error
        self.reasons = reasons or []


class PasskeyTaken(DirectoryError):
    """A passkey whose credential id is registered already (to this account or another): a
    credential belongs to one account once."""

    def __init__(self) -> None:
        super().__init__("this passkey is registered already")


class DirectoryUnavailable(DirectoryError):
    """The directory did not answer: the caller retries (an activity) or answers 503."""


class CapabilityMissing(DirectoryError):
    def __init__(self, directory: str, capability: Capability) -> None:
        super().__init__(
            f"the {directory} account directory cannot do this ({capability.value}): "
            f"{_MISSING.get(capability, 'see docs/directories.md')}"
        )
        self.capability = capability


# What to do instead, said with the refusal.
_MISSING = {
    Capability.CREATE: "accounts are made in the directory itself",
    Capability.SIGN_IN: "people sign in to the applications that use the directory",
    Capability.STATUS: "lock, disable or unlock the account in the directory itself",
    Capability.PURGE: "delete the account in the directory itself",
    Capability.CONTACTS: "change the account's addresses in the directory itself",
    Capability.PASSWORD_HISTORY: "the directory keeps no readable password history",
    Capability.PAST_CONTACTS: "the directory keeps no former addresses",
    Capability.SECOND_FACTORS: (
        "no account of this directory is bound to a second factor (on LDAP, mark them with "
        "RECLAIM_LDAP_MFA_ATTRIBUTE or RECLAIM_LDAP_MFA_GROUP: docs/directories.md)"
    ),
}


class Directory(Protocol):
    """Where the accounts are. docs/architecture.md says how to add one."""

    name: str
    capabilities: frozenset[Capability]

    async def ping(self) -> None:
        """Answer cheaply, or raise `DirectoryUnavailable` saying why (`/readyz`)."""
        ...

    async def aclose(self) -> None:
        """Close what the directory keeps open (connections)."""
        ...

    # -- finding and reading -----------------------------------------------------------------

    async def find(self, identifier: Identifier) -> AccountRecord | None:
        """The account an email, phone number or username names; a purged account names
        nobody."""
        ...

    async def get(self, account_id: int) -> AccountRecord | None:
        """The account with this id, whatever its status (purged included)."""
        ...

    async def find_claimed(self, username: str) -> AccountRecord | None:
        """The account a support claim about `username` is about: the one that has it, or a
        purged one whose username is still reserved (so the claim can be told why it cannot
        be restored)."""
        ...

    async def decoy(self, seed: bytes) -> AccountRecord | None:
        """A real account picked by `seed` (the same for the same seed: a new account changes
        the pick of few seeds), whose contacts an identifier that names nobody is shown in
        place of its own: masked, its destinations then come from the same distribution as
        real ones. Cheap (one indexed read) and called for every identifier, known or not,
        so both do the same work. None when the directory cannot pick one cheaply (LDAP,
        HTTP) or has no account: the caller invents one (`reclaim.identifiers`)."""
        ...

    async def overview(self, account_id: int) -> AccountOverview | None: ...

    async def status_counts(self) -> dict[str, int]:
        """Accounts by status, for the metrics."""
        ...

    # -- passwords ---------------------------------------------------------------------------

    async def matching_passwords(self, account_id: int | None, candidates: list[str]) -> int:
        """How many of `candidates` are among the account's recent passwords (claim evidence).
        Costs the same work whether or not the account exists or has a history."""
        ...

    async def password_reused(self, account_id: int, password: str) -> bool: ...

    async def is_current_password(self, account_id: int, password: str) -> bool:
        """Whether `password` is the account's password now: asked only once a reset token
        is spent, to tell a retried request from another password under the same token."""
        ...

    async def new_password(self, case_id: str, password: str) -> NewPassword:
        """The password prepared for `set_password` (hashed, or sealed for the case)."""
        ...

    # -- second factors (Capability.SECOND_FACTORS) --------------------------------------------

    async def factors(self, account_id: int) -> list[FactorSummary]:
        """The account's second factors, for operators (kinds, when, how many codes left)."""
        ...

    async def verify_factor(
        self, account_id: int, kind: FactorKind, code: str, *, case_id: str, at: datetime
    ) -> FactorCheck:
        """Whether `code` proves the account's factor `kind` now: a TOTP code of the current
        step or one step either side, each step accepted once per account (a replay refused);
        a recovery code of the current set, spent by this. Asked again for the same case with
        the same code (a retried activity), it answers as the first time. A kind the account
        does not have answers not accepted, as a wrong code does."""
        ...

    async def enrol_totp(self, account_id: int, at: datetime, *, secret: str | None = None) -> str:
        """A TOTP secret for the account (replacing any), kept sealed at rest: a new one, or
        `secret` (base32) when the holder's app already proved it (the security page): the
        `otpauth://` URI to show once (an authenticator app reads it)."""
        ...

    async def new_recovery_codes(self, account_id: int, at: datetime) -> list[str]:
        """Ten new recovery codes, replacing the previous set: shown once, kept as hashes."""
        ...

    async def remove_factor(self, account_id: int, kind: FactorKind) -> bool:
        """Remove the factor (for `WEBAUTHN`, every passkey); False when the account did not
        have it."""
        ...

    async def passkeys(self, account_id: int) -> list[Passkey]:
        """The account's passkeys, oldest first (what a ceremony needs: ids, keys, counters)."""
        ...

    async def add_passkey(self, account_id: int, passkey: Passkey) -> None:
        """Register a verified passkey. Raises `PasskeyTaken` when its credential id is
        registered already (anywhere), `AccountGone` when the account is purged or banned."""
        ...

    async def use_passkey(
        self, account_id: int, credential_id: bytes, sign_count: int, *, case_id: str, at: datetime
    ) -> bool:
        """Record a verified assertion: its new signature counter and when. False, and nothing
        changed, when the credential is not the account's or its counter did not go up while
        either counter is non-zero (a cloned authenticator). Asked again for the same case
        with the same counter (a retried activity), it answers as the first time."""
        ...

    async def remove_passkey(self, account_id: int, credential_id: bytes) -> bool:
        """Remove one passkey; False when the account has no such passkey."""
        ...

    async def set_password(
        self, account_id: int, password: NewPassword, *, case_id: str, at: datetime
    ) -> str | None:
        """Set the password, keep it in the history, sign every session out and, if the
        account was deactivated, reactivate it: returns the deletion case that must stop
        waiting. Applying it again for the same case changes nothing. Raises `AccountGone`
        (purged, banned) or `PasswordRejected`."""
        ...

    # -- contacts ----------------------------------------------------------------------------

    async def was_contact(self, account_id: int, channel: Channel, address: str) -> bool:
        """Whether `address` is one the account had before (claim evidence)."""
        ...

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
        """The account answers to `email` alone from now on (the phone goes too), the old
        addresses are remembered as past contacts, every session is signed out, a deactivated
        account is reactivated (its deletion case is returned). Once per case. Raises
        `AccountExists` when another account has `email`, `AccountGone` when purged or banned.
        """
        ...

    # -- sessions (Capability.SIGN_IN) --------------------------------------------------------

    async def sign_in(self, identifier: Identifier, password: str) -> SignIn:
        """Check a password and open a session. An unknown identifier costs one password
        verification like a known one."""
        ...

    async def session(self, token: str) -> SessionView | None: ...

    async def end_session(self, token: str) -> bool: ...

    async def revoke_sessions(self, account_id: int, at: datetime) -> int: ...

    # -- status (Capability.STATUS, PURGE) ----------------------------------------------------

    async def deactivate(self, change: StatusChange) -> AccountState: ...

    async def ban(self, change: StatusChange) -> AccountState: ...

    async def lift_ban(self, change: StatusChange) -> AccountState: ...

    async def reactivate(
        self,
        account_id: int,
        at: datetime,
        actor: Actor,
        *,
        case_id: str | None = None,
        reason: str | None = None,
    ) -> str | None:
        """Deactivated → active (for the record: `reason`, the case that did it); returns the
        deletion case that must stop waiting. Raises `AccountGone` (purged, banned)."""
        ...

    async def purge(self, request: PurgeAccount) -> AccountState:
        """Erase what the directory keeps of a deactivated account (only while `request`'s
        case is in charge of it), keep the record, reserve the username."""
        ...

    # -- creation (Capability.CREATE) ---------------------------------------------------------

    async def create(
        self, *, username: str, email: str, phone: str | None, password: str
    ) -> AccountRecord: ...


class WithoutSecondFactors:
    """For a directory that keeps no second factors (`Capability.SECOND_FACTORS` absent): its
    accounts have none, a proof of one is never accepted, enrolling one is refused."""

    name: str

    async def factors(self, account_id: int) -> list[FactorSummary]:
        return []

    async def verify_factor(
        self, account_id: int, kind: FactorKind, code: str, *, case_id: str, at: datetime
    ) -> FactorCheck:
        return FactorCheck(accepted=False)

    async def enrol_totp(self, account_id: int, at: datetime, *, secret: str | None = None) -> str:
        raise CapabilityMissing(self.name, Capability.SECOND_FACTORS)

    async def new_recovery_codes(self, account_id: int, at: datetime) -> list[str]:
        raise CapabilityMissing(self.name, Capability.SECOND_FACTORS)

    async def remove_factor(self, account_id: int, kind: FactorKind) -> bool:
        raise CapabilityMissing(self.name, Capability.SECOND_FACTORS)

    async def passkeys(self, account_id: int) -> list[Passkey]:
        return []

    async def add_passkey(self, account_id: int, passkey: Passkey) -> None:
        raise CapabilityMissing(self.name, Capability.SECOND_FACTORS)

    async def use_passkey(
        self, account_id: int, credential_id: bytes, sign_count: int, *, case_id: str, at: datetime
    ) -> bool:
        return False

    async def remove_passkey(self, account_id: int, credential_id: bytes) -> bool:
        raise CapabilityMissing(self.name, Capability.SECOND_FACTORS)


def require(directory: Directory, capability: Capability) -> None:
    if capability not in directory.capabilities:
        raise CapabilityMissing(directory.name, capability)
