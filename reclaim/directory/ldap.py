"""The LDAP directory (`RECLAIM_DIRECTORY=ldap`): the accounts an OpenLDAP server or Active
Directory already holds.

What it does, and what it leaves to the directory's own tools:

- **Finding.** By username, email or phone (`RECLAIM_LDAP_USERNAME_ATTR`, `_EMAIL_ATTR`,
  `_PHONE_ATTR`), under `RECLAIM_LDAP_USER_BASE`, among the entries `RECLAIM_LDAP_USER_FILTER`
  selects. Every value typed is escaped (`escape_filter_chars`): `*`, `(`, `)` and `\\` match
  themselves and nothing else. An identifier two entries share names nobody. Each entry gets
  a stable integer id through `directory_link`, keyed by its `entryUUID` (`objectGUID` on AD),
  so renaming or moving the entry keeps its cases.
- **The new password.** Sealed for its case on its way through the workflow, unsealed here, set
  with the Password Modify extended operation (RFC 3062) on OpenLDAP, `unicodePwd` on AD (which
  wants TLS). The server's password policy is the last word: a refusal (ppolicy's
  `passwordInHistory`, `passwordTooShort`, `insufficientPasswordQuality`, AD's
  `0000052D`) comes back as `PasswordRejected`, which the person sees as `password_reused` or
  `weak_password`, their case still verified. A change applied once is applied: a retried
  activity whose password the server calls reused checks it with a bind and takes success.
- **Status.** An entry locked for good by an administrator (OpenLDAP
  `pwdAccountLockedTime: 000001010000Z`) or disabled (AD `userAccountControl` bit 2) reads as
  `banned`: no code, the holder is told it is suspended. An entry locked by failed binds is
  `active`: recovering it sets a new password and clears the lock (`pwdAccountLockedTime`,
  AD's `lockoutTime`). Bans, deactivation and purges are the directory's business
  (`Capability.STATUS`, `PURGE` are not declared).
- **Recent contact changes.** `RECLAIM_LDAP_CONTACTS_CHANGED_ATTRIBUTE` (`modifyTimestamp`
  by default) is read as when the entry's contacts last changed, so a recovery soon after is
  held as on the other directories. `modifyTimestamp` is an approximation that errs on the
  safe side: any change to the entry counts, a recovery's own password change included (the
  next recovery within `RECLAIM_RECENT_CONTACT_DAYS` is held too). An entry unchanged since
  it was created counts as never changed.
- **Claims.** The current and previous passwords are checked against `userPassword` and
  `pwdHistory` where the service account may read them (salted SHA schemes); otherwise the
  current password alone, by a bind (which counts toward the server's lockout). An approved
  claim writes the new email and removes the phone.
- **Sessions.** None are Reclaim's: people sign in to the applications using the directory.

ldap3 is synchronous: every operation runs in a thread, on a connection from a small pool
(`RECLAIM_LDAP_POOL_SIZE`), each bound as the service account. A server that does not answer
(`RECLAIM_LDAP_TIMEOUT`), refuses the service account or reports itself busy raises
`DirectoryUnavailable`: an activity retries, the API answers 503, `/readyz` says why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import math
import os
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import phonenumbers
import structlog
from ldap3 import BASE, MODIFY_DELETE, MODIFY_REPLACE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPStartTLSError
from ldap3.utils.conv import escape_bytes, escape_filter_chars

from reclaim.contracts import (
    AccountState,
    AccountStatus,
    Actor,
    CaseError,
    Channel,
    PurgeAccount,
    StatusChange,
)
from reclaim.directory.kept_codes import KeptCodes, KeptSecondFactors
from reclaim.directory.ldap_mfa import MfaMarks
from reclaim.directory.links import Links
from reclaim.directory.port import (
    AccountExists,
    AccountGone,
    AccountOverview,
    AccountRecord,
    Capability,
    CapabilityMissing,
    DirectoryUnavailable,
    FactorKind,
    NewPassword,
    PasswordRejected,
    SessionView,
    SignIn,
    seal_password,
    unseal_password,
)
from reclaim.identifiers import (
    Identifier,
    IdentifierKind,
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
)
from reclaim.security import Keys
from reclaim.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

# The password policy request control (draft-behera-ldap-password-policy): with it, OpenLDAP
# says which rule a refused password broke.
PPOLICY_CONTROL = "1.3.6.1.4.1.42.2.27.8.5.1"
# Its error values.
PPOLICY_INSUFFICIENT_QUALITY = 5
PPOLICY_TOO_SHORT = 6
PPOLICY_TOO_YOUNG = 7
PPOLICY_IN_HISTORY = 8
# OpenLDAP's value of pwdAccountLockedTime for an account locked by an administrator until
# they unlock it (any other value is a lockout after failed binds).
ADMIN_LOCK = "000001010000Z"
AD_ACCOUNT_DISABLED = 0x2
# LDAP_SERVER_POLICY_HINTS_OID with its value SEQUENCE { Flags INTEGER 1 }: a password reset
# that AD checks against the domain's policy and history (Windows Server 2012 R2 and later).
# Not critical: an older domain controller ignores it and applies no history to resets.
AD_POLICY_HINTS = ("1.2.840.113556.1.4.2239", False, b"\x30\x03\x02\x01\x01")
# Result codes that mean "not now" rather than "no".
_RESULT_UNAVAILABLE = {3, 11, 51, 52, 53, 80}
_NO_SUCH_OBJECT = 32
_NO_SUCH_ATTRIBUTE = 16
_CONSTRAINT_VIOLATION = 19
_INSUFFICIENT_ACCESS = 50
# How many stored hashes every candidate password is compared with, whatever the account has
# (claim evidence costs the same work for every account).
_HASHES_COMPARED = 6
# Seconds a count of the entries by status (the metrics) is reused before it is made again.
_COUNTED_FOR = 60.0
_SHA = {"SHA": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


@dataclass(frozen=True)
class _Entry:
    """One user entry as read: its DN, the record the features see, and what the password
    checks need."""

    dn: str
    record: AccountRecord
    hashes: tuple[str, ...]  # userPassword and pwdHistory values, where readable
    locked: bool  # locked by failed binds: a recovery clears it


class LdapDirectory(KeptSecondFactors):
    name = "ldap"

    def __init__(self, settings: Settings, links: Links, keys: Keys) -> None:
        self._settings = settings
        self._links = links
        self._keys = keys
        self._ad = settings.ldap_flavor == "ad"
        self._mfa = MfaMarks(settings)
        self._kept = KeptCodes(links.engine, keys)
        self.capabilities = frozenset(
            (
                {Capability.CONTACTS}
                if self._ad
                else {Capability.CONTACTS, Capability.PASSWORD_HISTORY}
            )
            | ({Capability.SECOND_FACTORS} if self._mfa.configured else set())
        )
        assert settings.ldap_url and settings.ldap_bind_dn and settings.ldap_user_base
        assert settings.ldap_bind_password is not None
        self._base = settings.ldap_user_base
        self._filter = settings.resolved_ldap_user_filter
        self._username = settings.resolved_ldap_username_attr
        self._email = settings.ldap_email_attr
        self._phone = settings.ldap_phone_attr
        self._key = "objectGUID" if self._ad else "entryUUID"
        self._state_attrs = (
            ["whenCreated", "pwdLastSet", "userAccountControl", "lockoutTime"]
            if self._ad
            else ["createTimestamp", "pwdChangedTime", "pwdAccountLockedTime", "pwdHistory"]
        )
        self._attributes = [self._username, self._email, self._phone, self._key]
        self._attributes += self._state_attrs + ([] if self._ad else ["userPassword"])
        self._attributes += self._mfa.attributes
        self._contacts_changed = settings.ldap_contacts_changed_attribute.strip()
        if self._contacts_changed:
            self._attributes.append(self._contacts_changed)
        self._pool = _Pool(self._connect, settings.ldap_pool_size, settings.ldap_timeout)
        self._counted: tuple[float, dict[str, int]] | None = None  # (monotonic time, counts)
        self._hints_checked = False  # AD: whether the DC's support of AD_POLICY_HINTS was read

    # -- plumbing ----------------------------------------------------------------------------

    def _connect(self) -> Connection:
        """A connection bound as the service account (StartTLS first when asked)."""
        settings = self._settings
        assert settings.ldap_bind_password is not None
        connection = Connection(
            # A Server of its own: ldap3 remembers an address that failed as unavailable for
            # a while, and a restarted server must be found again at once.
            _server(settings),
            user=settings.ldap_bind_dn,
            password=settings.ldap_bind_password.get_secret_value(),
            receive_timeout=_seconds(settings.ldap_timeout),
            raise_exceptions=False,
            auto_referrals=False,
        )
        connection.open()
        if settings.ldap_starttls and not connection.start_tls():
            connection.unbind()
            raise DirectoryUnavailable("the LDAP server refused StartTLS")
        if not connection.bind():
            description = connection.result.get("description", "refused")
            connection.unbind()
            log.error("ldap_service_bind_refused", result=description)
            raise DirectoryUnavailable(
                f"the LDAP server refused Reclaim's service account ({description}): check "
                "RECLAIM_LDAP_BIND_DN and RECLAIM_LDAP_BIND_PASSWORD"
            )
        if self._ad and not self._hints_checked:
            self._hints_checked = True
            self._check_policy_hints(connection)
        return connection

    def _check_policy_hints(self, connection: Connection) -> None:
        """Say once, in the log, when the domain controller does not know the control that
        applies the domain's password history to a reset: there, a recovery may set a password
        used before (Samba 4.17, Windows before 2012 R2)."""
        connection.search("", "(objectClass=*)", BASE, attributes=["supportedControl"])
        entries = [e for e in connection.response or [] if e.get("type") == "searchResEntry"]
        raw = entries[0].get("raw_attributes", {}) if entries else {}
        controls = {v.decode("ascii", "replace") for k, vs in raw.items() for v in vs}
        if entries and AD_POLICY_HINTS[0] not in controls:
            log.warning(
                "ldap_ad_history_not_applied_to_resets",
                message="this domain controller does not support LDAP_SERVER_POLICY_HINTS: "
                "a recovery's new password is checked against the domain's length and "
                "complexity rules but not its password history",
            )

    async def _run(self, work: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(self._pool.run, work)

    async def ping(self) -> None:
        def work(connection: Connection) -> None:
            connection.search(self._base, "(objectClass=*)", BASE, attributes=["1.1"])
            _check(connection, "read the user base")

        await self._run(work)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._pool.close)

    # -- finding and reading -----------------------------------------------------------------

    def _search(self, connection: Connection, condition: str) -> list[dict[str, Any]]:
        """The user entries matching `condition` (an escaped filter), at most two."""
        connection.search(
            self._base,
            f"(&{self._filter}{condition})",
            SUBTREE,
            attributes=self._attributes,
            size_limit=2,
        )
        code = connection.result.get("result")
        if code == _NO_SUCH_OBJECT:
            return []
        if code != 4:  # sizeLimitExceeded: two entries, which is all we need to know
            _check(connection, "search the users")
        return [e for e in connection.response or [] if e.get("type") == "searchResEntry"]

    def _only(self, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        if len(entries) > 1:
            log.warning("ldap_identifier_ambiguous", entries=len(entries))
            return None
        return entries[0] if entries else None

    async def _entry_by_identifier(self, identifier: Identifier) -> _Entry | None:
        attribute = {
            IdentifierKind.EMAIL: self._email,
            IdentifierKind.PHONE: self._phone,
            IdentifierKind.USERNAME: self._username,
        }[identifier.kind]
        values = [identifier.value]
        if self._ad and identifier.kind is IdentifierKind.PHONE:
            values = _phone_forms(identifier.value, self._settings.default_region)
        conditions = "".join(f"({attribute}={escape_filter_chars(v)})" for v in values)
        condition = conditions if len(values) == 1 else f"(|{conditions})"
        raw = await self._run(lambda c: self._only(self._search(c, condition)))
        return await self._entry(raw)

    async def _entry_by_id(self, account_id: int) -> _Entry | None:
        key = await self._links.key_for(account_id)
        if key is None:
            return None
        if self._ad:
            condition = f"(objectGUID={escape_bytes(uuid.UUID(key).bytes_le)})"
        else:
            condition = f"(entryUUID={escape_filter_chars(key)})"
        raw = await self._run(lambda c: self._only(self._search(c, condition)))
        return await self._entry(raw, account_id)

    async def _entry(
        self, raw: dict[str, Any] | None, account_id: int | None = None
    ) -> _Entry | None:
        if raw is None:
            return None
        attrs: dict[str, list[bytes]] = {
            name.lower(): values for name, values in raw.get("raw_attributes", {}).items()
        }

        def text(name: str) -> str | None:
            values = attrs.get(name.lower()) or []
            return values[0].decode("utf-8", "replace").strip() if values else None

        key_values = attrs.get(self._key.lower()) or []
        if not key_values:
            log.warning("ldap_entry_without_key", attribute=self._key)
            return None
        key = (
            str(uuid.UUID(bytes_le=key_values[0]))
            if self._ad
            else key_values[0].decode("ascii").lower()
        )
        if account_id is None:
            account_id = await self._links.id_for(key)
        status, reason, locked = AccountStatus.ACTIVE, None, False
        if self._ad:
            control = int(text("userAccountControl") or 0)
            if control & AD_ACCOUNT_DISABLED:
                status, reason = AccountStatus.BANNED, "disabled in the directory"
            locked = int(text("lockoutTime") or 0) > 0
            created = _generalized(text("whenCreated"))
            changed = _filetime(text("pwdLastSet"))
        else:
            lock = text("pwdAccountLockedTime")
            if lock == ADMIN_LOCK:
                status, reason = AccountStatus.BANNED, "locked by the directory's administrators"
            locked = lock is not None and lock != ADMIN_LOCK
            created = _generalized(text("createTimestamp"))
            changed = _generalized(text("pwdChangedTime"))
        contacts_changed = (
            _generalized(text(self._contacts_changed)) if self._contacts_changed else None
        )
        if contacts_changed is not None and created is not None and contacts_changed <= created:
            contacts_changed = None  # as created: nothing changed since
        hashes = [v.decode("utf-8", "replace") for v in attrs.get("userpassword", [])]
        hashes += [_history_hash(v) for v in attrs.get("pwdhistory", [])]
        record = AccountRecord(
            id=account_id,
            username=text(self._username) or "",
            email=_email(text(self._email)),
            phone=_phone(text(self._phone), self._settings.default_region),
            status=status,
            created_at=created,
            password_changed_at=changed,
            contacts_changed_at=contacts_changed,
            factors=await self._bound(raw["dn"], attrs),
            status_reason=reason,
        )
        return _Entry(raw["dn"], record, tuple(h for h in hashes if h), locked)

    async def _bound(self, dn: str, attrs: dict[str, list[bytes]]) -> tuple[FactorKind, ...]:
        """An account bound to a second factor proves one of the codes Reclaim keeps."""
        bound = self._mfa.by_attribute(attrs)
        if not bound and self._mfa.group:
            bound = await self._run(lambda c: self._mfa.in_group(c, dn, ad=self._ad))
        return (FactorKind.RECOVERY_CODE,) if bound else ()

    async def find(self, identifier: Identifier) -> AccountRecord | None:
        entry = await self._entry_by_identifier(identifier)
        if entry is None:
            await self._links.id_for_nobody()  # the SQL a found entry costs
            return None
        return entry.record

    async def decoy(self, seed: bytes) -> AccountRecord | None:
        """An LDAP server has no cheap way to pick the n-th entry (a paged search would read
        them all): unknown identifiers get invented destinations (`reclaim.identifiers`)."""
        return None

    async def get(self, account_id: int) -> AccountRecord | None:
        entry = await self._entry_by_id(account_id)
        return entry.record if entry is not None else None

    async def find_claimed(self, username: str) -> AccountRecord | None:
        return await self.find(Identifier(IdentifierKind.USERNAME, username))

    async def overview(self, account_id: int) -> AccountOverview | None:
        account = await self.get(account_id)
        return AccountOverview(account, None, []) if account is not None else None

    async def status_counts(self) -> dict[str, int]:
        """The user entries by status as this directory reads it: `banned` for an entry locked
        by an administrator (OpenLDAP) or disabled (AD), `active` for the rest (a lockout
        after failed binds included: a recovery clears it). One paged search reading only the
        lock attribute, made at most once a minute (`_COUNTED_FOR`): a scrape in between is
        answered with the last count."""
        now = time.monotonic()
        if self._counted is not None and now - self._counted[0] < _COUNTED_FOR:
            return dict(self._counted[1])
        attribute = "userAccountControl" if self._ad else "pwdAccountLockedTime"

        def work(connection: Connection) -> dict[str, int]:
            counts = {AccountStatus.ACTIVE.value: 0, AccountStatus.BANNED.value: 0}
            entries = connection.extend.standard.paged_search(
                self._base,
                self._filter,
                SUBTREE,
                attributes=[attribute],
                paged_size=500,
                generator=True,
            )
            for entry in entries:
                if entry.get("type") != "searchResEntry":
                    continue
                values = {k.lower(): v for k, v in entry.get("raw_attributes", {}).items()}
                raw = values.get(attribute.lower()) or [b""]
                value = raw[0].decode("utf-8", "replace").strip()
                if self._ad:
                    banned = bool(int(value or 0) & AD_ACCOUNT_DISABLED)
                else:
                    banned = value == ADMIN_LOCK
                status = AccountStatus.BANNED if banned else AccountStatus.ACTIVE
                counts[status.value] += 1
            if connection.result.get("result") != _NO_SUCH_OBJECT:
                _check(connection, "count the users")
            return counts

        try:
            counts = await self._run(work)
        except DirectoryUnavailable as err:  # the metrics go on without the accounts
            log.warning("ldap_count_failed", error=str(err))
            return dict(self._counted[1]) if self._counted is not None else {}
        self._counted = (now, counts)
        return dict(counts)

    # -- passwords ---------------------------------------------------------------------------

    async def matching_passwords(self, account_id: int | None, candidates: list[str]) -> int:
        entry = await self._entry_by_id(account_id) if account_id is not None else None
        if entry is not None and not entry.hashes and candidates:
            # Nothing readable (Active Directory): the current password alone, by a bind.
            for password in candidates:
                if await self._binds(entry.dn, password):
                    return 1
            return 0
        hashes: list[str | None] = list(entry.hashes[:_HASHES_COMPARED]) if entry else []
        hashes += [None] * (_HASHES_COMPARED - len(hashes))
        return sum(
            1
            for password in candidates
            # Every comparison is made, even after a match: the same work for every account.
            if [_verify(h, password) for h in hashes].count(True) > 0
        )

    async def password_reused(self, account_id: int, password: str) -> bool:
        """Reuse Reclaim can see (a readable history); the server refuses the rest itself."""
        entry = await self._entry_by_id(account_id)
        return entry is not None and any(_verify(h, password) for h in entry.hashes)

    async def is_current_password(self, account_id: int, password: str) -> bool:
        entry = await self._entry_by_id(account_id)
        return entry is not None and await self._binds(entry.dn, password)

    async def new_password(self, case_id: str, password: str) -> NewPassword:
        return NewPassword(sealed=seal_password(self._keys, case_id, password))

    async def set_password(
        self, account_id: int, password: NewPassword, *, case_id: str, at: datetime
    ) -> str | None:
        if not password.sealed:  # prepared for another directory: choose it again
            raise PasswordRejected(CaseError.WEAK_PASSWORD, ["choose the new password again"])
        entry = await self._entry_by_id(account_id)
        if entry is None or entry.record.status is AccountStatus.BANNED:
            raise AccountGone(account_id)
        clear = unseal_password(self._keys, case_id, password.sealed)
        refusal = await self._run(lambda c: self._modify_password(c, entry, clear))
        if refusal is not None:
            if refusal.error is CaseError.PASSWORD_REUSED and await self._binds(entry.dn, clear):
                # A retried activity: the first attempt went through, the server now sees the
                # password as its own. Done.
                log.info("ldap_password_already_set", case_id=case_id)
            else:
                raise refusal
        if entry.locked:
            await self._run(lambda c: self._unlock(c, entry.dn))
        return None

    def _modify_password(
        self, connection: Connection, entry: _Entry, clear: str
    ) -> PasswordRejected | None:
        if self._ad:
            # A reset by an administrator skips the domain's password history unless it asks
            # for the policy to be applied, as a user's own change would be.
            connection.extend.microsoft.modify_password(entry.dn, clear, controls=[AD_POLICY_HINTS])
        else:
            connection.extend.standard.modify_password(
                entry.dn, new_password=clear, controls=[(PPOLICY_CONTROL, False, None)]
            )
        result = connection.result
        code = result.get("result")
        if code == 0:
            return None
        message = str(result.get("message") or "")
        error = _ppolicy_error(result)
        if code == _CONSTRAINT_VIOLATION or error is not None or "0000052D" in message:
            return _rejection(error, message)
        if code == _INSUFFICIENT_ACCESS:
            log.error("ldap_password_change_denied")
            raise DirectoryUnavailable(
                "the LDAP service account may not set passwords: grant it write access to "
                "userPassword (unicodePwd on AD)"
            )
        _check(connection, "set the password")
        return None

    def _unlock(self, connection: Connection, dn: str) -> None:
        """The lockout after failed binds ends with the new password (OpenLDAP clears it on a
        password change already; AD keeps `lockoutTime` until it is reset)."""
        if self._ad:
            connection.modify(dn, {"lockoutTime": [(MODIFY_REPLACE, ["0"])]})
        else:
            connection.modify(dn, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]})
        if connection.result.get("result") not in (0, _NO_SUCH_ATTRIBUTE):
            log.warning("ldap_unlock_failed", result=connection.result.get("description"))

    async def _binds(self, dn: str, password: str) -> bool:
        """Whether `password` is the entry's current one: a bind on a connection of its own."""

        def bind() -> bool:
            connection = Connection(
                _server(self._settings),
                user=dn,
                password=password,
                receive_timeout=_seconds(self._settings.ldap_timeout),
                raise_exceptions=False,
            )
            try:
                connection.open()
                # Never a password in clear: a refused StartTLS stops here, as in _connect.
                if self._settings.ldap_starttls and not connection.start_tls():
                    raise DirectoryUnavailable("the LDAP server refused StartTLS")
                return bool(connection.bind())
            except LDAPStartTLSError as err:
                raise DirectoryUnavailable("the LDAP server refused StartTLS") from err
            except LDAPException as err:
                raise DirectoryUnavailable(
                    f"the LDAP server does not answer ({_name(err)})"
                ) from err
            finally:
                connection.unbind()

        return await asyncio.to_thread(bind)

    # -- contacts ----------------------------------------------------------------------------

    async def was_contact(self, account_id: int, channel: Channel, address: str) -> bool:
        """An LDAP entry keeps no past addresses."""
        return False

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
        entry = await self._entry_by_id(account_id)
        if entry is None or entry.record.status is AccountStatus.BANNED:
            raise AccountGone(account_id)
        holder = await self._entry_by_identifier(Identifier(IdentifierKind.EMAIL, email))
        if holder is not None and holder.dn != entry.dn:
            raise AccountExists("email")
        changes: dict[str, Any] = {self._email: [(MODIFY_REPLACE, [email])]}
        if entry.record.phone is not None:
            changes[self._phone] = [(MODIFY_DELETE, [])]

        def work(connection: Connection) -> None:
            connection.modify(entry.dn, changes)
            if connection.result.get("result") == _INSUFFICIENT_ACCESS:
                raise DirectoryUnavailable(
                    "the LDAP service account may not write the mail and phone attributes"
                )
            if connection.result.get("result") != _NO_SUCH_ATTRIBUTE:  # phone gone already
                _check(connection, "replace the contacts")

        await self._run(work)
        return None

    # -- what the directory does not do ------------------------------------------------------

    async def sign_in(self, identifier: Identifier, password: str) -> SignIn:
        raise CapabilityMissing(self.name, Capability.SIGN_IN)

    async def session(self, token: str) -> SessionView | None:
        raise CapabilityMissing(self.name, Capability.SIGN_IN)

    async def end_session(self, token: str) -> bool:
        raise CapabilityMissing(self.name, Capability.SIGN_IN)

    async def revoke_sessions(self, account_id: int, at: datetime) -> int:
        return 0  # sessions are the applications' own

    async def deactivate(self, change: StatusChange) -> AccountState:
        raise CapabilityMissing(self.name, Capability.STATUS)

    async def ban(self, change: StatusChange) -> AccountState:
        raise CapabilityMissing(self.name, Capability.STATUS)

    async def lift_ban(self, change: StatusChange) -> AccountState:
        raise CapabilityMissing(self.name, Capability.STATUS)

    async def reactivate(
        self,
        account_id: int,
        at: datetime,
        actor: Actor,
        *,
        case_id: str | None = None,
        reason: str | None = None,
    ) -> str | None:
        """An LDAP account is never deactivated by Reclaim: nothing to do unless it is gone."""
        account = await self.get(account_id)
        if account is None or account.status is AccountStatus.BANNED:
            raise AccountGone(account_id)
        return None

    async def purge(self, request: PurgeAccount) -> AccountState:
        raise CapabilityMissing(self.name, Capability.PURGE)

    async def create(
        self, *, username: str, email: str, phone: str | None, password: str
    ) -> AccountRecord:
        raise CapabilityMissing(self.name, Capability.CREATE)


class _Pool:
    """A few connections bound as the service account, each used by one thread at a time. A
    connection that fails is dropped; a kept one that went stale (the server restarted) is
    replaced once at once."""

    def __init__(self, connect: Callable[[], Connection], size: int, timeout: float) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._timeout = timeout

    def run(self, work: Callable[[Connection], T]) -> T:
        if not self._slots.acquire(timeout=self._timeout):
            raise DirectoryUnavailable("every LDAP connection is busy")
        try:
            for attempt in range(2):
                with self._lock:
                    kept = self._idle.pop() if self._idle else None
                try:
                    connection = kept or self._connect()
                except LDAPException as err:
                    raise DirectoryUnavailable(
                        f"the LDAP server does not answer ({_name(err)})"
                    ) from err
                try:
                    answer = work(connection)
                except LDAPException as err:
                    _close(connection)
                    if kept is not None and attempt == 0:
                        continue  # a stale kept connection: once more on a fresh one
                    raise DirectoryUnavailable(
                        f"the LDAP server does not answer ({_name(err)})"
                    ) from err
                except BaseException:
                    _close(connection)
                    raise
                with self._lock:
                    self._idle.append(connection)
                return answer
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            _close(connection)


def _close(connection: Connection) -> None:
    with contextlib.suppress(Exception):  # closing a connection that may be broken already
        connection.unbind()


def _server(settings: Settings) -> Server:
    assert settings.ldap_url is not None
    url = urlsplit(settings.ldap_url)
    secure = url.scheme == "ldaps"
    tls = None
    if secure or settings.ldap_starttls:
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(settings.ldap_ca_file) if settings.ldap_ca_file else None,
        )
    return Server(
        url.hostname or "localhost",
        port=url.port or (636 if secure else 389),
        use_ssl=secure,
        tls=tls,
        get_info=NONE,
        connect_timeout=settings.ldap_timeout,
    )


def _check(connection: Connection, doing: str) -> None:
    """Raise `DirectoryUnavailable` unless the last operation succeeded."""
    result = connection.result or {}
    code = result.get("result")
    if code == 0:
        return
    description = result.get("description", "no answer")
    if code not in _RESULT_UNAVAILABLE:
        log.error("ldap_operation_failed", doing=doing, result=description)
    raise DirectoryUnavailable(f"the LDAP server could not {doing} ({description})")


def _seconds(timeout: float) -> int:
    """ldap3 packs its receive timeout as whole seconds."""
    return max(1, math.ceil(timeout))


def _name(err: Exception) -> str:
    return type(err).__name__


def _ppolicy_error(result: dict[str, Any]) -> int | None:
    """The `error` of a password policy response control (`[1] ENUMERATED`), if any."""
    control = (result.get("controls") or {}).get(PPOLICY_CONTROL) or {}
    value = control.get("value") or b""
    # SEQUENCE { warning [0] OPTIONAL, error [1] ENUMERATED OPTIONAL }: find the error's tag.
    index = 2
    while index + 2 <= len(value):
        tag, length = value[index], value[index + 1]
        if tag == 0x81 and length == 1 and index + 2 < len(value):
            return int(value[index + 2])
        index += 2 + length
    return None


def _rejection(error: int | None, message: str) -> PasswordRejected:
    if error == PPOLICY_IN_HISTORY or "history" in message.lower():
        return PasswordRejected(CaseError.PASSWORD_REUSED)
    if error == PPOLICY_TOO_SHORT or "too short" in message.lower():
        return PasswordRejected(CaseError.WEAK_PASSWORD, ["too short for the directory's policy"])
    if error == PPOLICY_TOO_YOUNG:
        return PasswordRejected(
            CaseError.WEAK_PASSWORD, ["the directory allows no new password this soon"]
        )
    if error == PPOLICY_INSUFFICIENT_QUALITY or "quality" in message.lower():
        return PasswordRejected(
            CaseError.WEAK_PASSWORD, ["refused by the directory's quality rules"]
        )
    # Active Directory says only 0000052D, whichever rule refused it (length, complexity,
    # history or minimum age).
    return PasswordRejected(
        CaseError.WEAK_PASSWORD,
        ["refused by the directory's password rules (too short, too simple or used before)"],
    )


def _history_hash(value: bytes) -> str:
    """A pwdHistory value is `time#syntax#length#value`: the stored password is the rest."""
    parts = value.split(b"#", 3)
    return parts[3].decode("utf-8", "replace") if len(parts) == 4 else ""


def _verify(stored: str | None, password: str) -> bool:
    """`password` against a stored userPassword value: salted or plain SHA schemes, or clear
    text. Other schemes cannot be checked here (False). `None` is a decoy: the same work."""
    if stored is None:
        stored = "{SSHA}" + base64.b64encode(os.urandom(24)).decode()
    if not stored.startswith("{"):
        return hmac.compare_digest(stored.encode(), password.encode())
    scheme, _, encoded = stored[1:].partition("}")
    scheme = scheme.upper()
    salted = scheme.startswith("S") and scheme[1:] in _SHA
    digest = _SHA.get(scheme[1:] if salted else scheme)
    if digest is None:
        return False
    try:
        raw = base64.b64decode(encoded)
    except ValueError:
        return False
    size = digest().digest_size
    hashed, salt = (raw[:size], raw[size:]) if salted else (raw, b"")
    return hmac.compare_digest(digest(password.encode() + salt).digest(), hashed)


def _generalized(value: str | None) -> datetime | None:
    """GeneralizedTime (`20261129201336Z`, `20261129201336.0Z`) as an aware datetime."""
    if not value or value.startswith("0000"):
        return None
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _filetime(value: str | None) -> datetime | None:
    """AD's 100-ns intervals since 1601 (0: never)."""
    try:
        ticks = int(value or 0)
    except ValueError:
        return None
    if ticks <= 0:
        return None
    return datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=ticks // 10)


def _phone_forms(e164: str, region: str | None) -> list[str]:
    """The ways a number is commonly written in AD's `mobile`, a plain string compared whole
    (OpenLDAP's telephoneNumber matching ignores spaces and dashes; AD's does not): E.164 and
    international with dashes or spaces; national, and its digits alone, only for a number of
    `RECLAIM_DEFAULT_REGION` (the region such numbers are read in)."""
    number = phonenumbers.parse(e164, None)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    forms = [e164, international, international.replace("-", " ")]
    if region and phonenumbers.region_code_for_number(number) == region.upper():
        forms.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
        forms.append(phonenumbers.national_significant_number(number))
    return list(dict.fromkeys(forms))


def _email(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize_email(value)
    except InvalidIdentifier:
        return None


def _phone(value: str | None, region: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize_phone(value, region)
    except InvalidIdentifier:
        return None
