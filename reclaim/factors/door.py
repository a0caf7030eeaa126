"""The security page's door: a signed-in person's own second factors.

Pages call only this; it reaches the account through the directory port and tells every
contact of the account about each change through the notifier. The session token names the
account (`Directory.session`); an unknown or ended session is `Unauthorized`.

Enrolling an authenticator app takes two steps. `start_totp` makes a secret and hands it back
sealed for the account (AES-GCM under a key of the server secret, bound to the account id,
stamped with its time): the page keeps it in a short-lived cookie, never in a URL, a log or
the database. Only `confirm_totp` with a right first code from the app stores it as the
account's factor, so a secret nobody scanned never replaces a working one.

Registering a passkey takes two steps too: `start_passkey` gives the browser its options and
hands back the challenge sealed the same way (five minutes), `add_passkey` checks what the
browser answered against it (`reclaim.passkeys`) and keeps the passkey.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import structlog
from cryptography.exceptions import InvalidTag

from reclaim import passkeys
from reclaim.directory import (
    Capability,
    Directory,
    FactorKind,
    FactorSummary,
    PasskeyTaken,
    passkey_id,
    require,
)
from reclaim.errors import Refused, Unauthorized
from reclaim.i18n import Text, supported
from reclaim.notify import messages
from reclaim.notify.notifier import Contact, Notifier
from reclaim.security import Keys, new_case_id
from reclaim.settings import Settings

log = structlog.get_logger(__name__)

PENDING_TTL = timedelta(minutes=10)
PASSKEY_TTL = timedelta(minutes=5)  # the browser's prompt waits two; the rest is typing a name
CHANGE_PREFIX = "fc_"  # a change's id: its notices are sent once per change and contact
NOTICE_KIND = "factors_changed"
TOTP_STEP = timedelta(seconds=30)

NOT_SIGNED_IN = Unauthorized(
    "invalid_session", "This session is not valid (signed out or revoked)."
)
WRONG_CODE = Refused("wrong_code", "That code is not right.")
ENROLMENT_EXPIRED = Refused("enrolment_expired", "The enrolment expired: start it again.")
WRONG_PASSWORD = Refused("wrong_password", "The password is not right.")
NO_SUCH_FACTOR = Refused("no_such_factor", "The account has no such second factor.")
PASSKEY_REGISTERED = Refused("passkey_registered", "This passkey is registered already.")


@dataclass(frozen=True)
class Holder:
    """The signed-in person: their account id and username."""

    account_id: int
    username: str


@dataclass(frozen=True)
class Security:
    """What the security page shows: who, and the account's second factors."""

    holder: Holder
    factors: list[FactorSummary]

    def factor(self, kind: FactorKind) -> FactorSummary | None:
        return next((f for f in self.factors if f.kind is kind), None)

    @property
    def passkeys(self) -> list[FactorSummary]:
        return [f for f in self.factors if f.kind is FactorKind.WEBAUTHN]


@dataclass(frozen=True)
class PendingTotp:
    """An authenticator app being set up: `sealed` for the cookie, `secret` and `uri` for the
    page (shown while it waits for the first code), and when it expires."""

    sealed: str
    secret: str
    uri: str
    expires_at: datetime


@dataclass(frozen=True)
class PasskeyPrompt:
    """A passkey being registered: the `options` for `navigator.credentials.create`, and
    their challenge `sealed` for the holder's cookie."""

    options: dict[str, Any]
    sealed: str


class AccountFactors:
    def __init__(
        self, directory: Directory, notifier: Notifier, keys: Keys, settings: Settings
    ) -> None:
        self._directory = directory
        self._notifier = notifier
        self._keys = keys
        self._settings = settings

    async def holder(self, token: str) -> Holder:
        """Whose session `token` is; `Unauthorized` for none, an ended one or a directory
        that keeps no sessions."""
        if not token or Capability.SIGN_IN not in self._directory.capabilities:
            raise NOT_SIGNED_IN
        view = await self._directory.session(token)
        if view is None:
            raise NOT_SIGNED_IN
        return Holder(view.account_id, view.username)

    async def security(self, token: str) -> Security:
        holder = await self.holder(token)
        require(self._directory, Capability.SECOND_FACTORS)
        return Security(holder, await self._directory.factors(holder.account_id))

    # -- an authenticator app ----------------------------------------------------------------

    async def start_totp(self, token: str) -> PendingTotp:
        """A new secret, not stored yet: sealed for the holder's cookie."""
        holder = await self.holder(token)
        require(self._directory, Capability.SECOND_FACTORS)
        secret, at = pyotp.random_base32(), datetime.now(UTC)
        payload = json.dumps({"secret": secret, "at": at.isoformat()})
        sealed = self._keys.seal(payload, _pending_context(holder.account_id))
        return self._pending(holder, base64.urlsafe_b64encode(sealed).decode(), secret, at)

    async def pending_totp(self, token: str, sealed: str | None) -> PendingTotp | None:
        """The enrolment the cookie `sealed` holds, if it is the holder's and not expired."""
        holder = await self.holder(token)
        return self._open(holder, sealed)

    async def confirm_totp(
        self, token: str, sealed: str | None, code: str, *, locale: str | None = None
    ) -> bool:
        """Store the pending secret once its first code is right: `WRONG_CODE` (the enrolment
        stays pending), `ENROLMENT_EXPIRED`. True when it replaced an app."""
        holder = await self.holder(token)
        pending = self._open(holder, sealed)
        if pending is None:
            raise ENROLMENT_EXPIRED
        given, at = "".join(code.split()), datetime.now(UTC)
        totp = pyotp.TOTP(pending.secret)
        if (
            len(given) != 6
            or not given.isdigit()
            or not totp.verify(given, for_time=at, valid_window=1)
        ):
            raise WRONG_CODE
        had = await self._has(holder, FactorKind.TOTP)
        change_id = new_case_id(CHANGE_PREFIX)
        await self._directory.enrol_totp(holder.account_id, at, secret=pending.secret)
        # The first code is spent by the enrolment: whoever saw it typed cannot use it again.
        await self._directory.verify_factor(
            holder.account_id, FactorKind.TOTP, given, case_id=change_id, at=at
        )
        await self._tell(holder, "totp_replaced" if had else "totp_added", at, locale, change_id)
        return had

    # -- recovery codes ----------------------------------------------------------------------

    async def new_recovery_codes(self, token: str, *, locale: str | None = None) -> list[str]:
        """Ten new codes, the old set gone: to show once."""
        holder = await self.holder(token)
        require(self._directory, Capability.SECOND_FACTORS)
        had = await self._has(holder, FactorKind.RECOVERY_CODE)
        at = datetime.now(UTC)
        codes = await self._directory.new_recovery_codes(holder.account_id, at)
        await self._tell(holder, "codes_replaced" if had else "codes_created", at, locale)
        return codes

    # -- passkeys ----------------------------------------------------------------------------

    async def start_passkey(self, token: str) -> PasskeyPrompt:
        """The options a browser registers a new passkey with (the account's passkeys
        excluded), and their challenge sealed for the holder's cookie."""
        holder = await self.holder(token)
        require(self._directory, Capability.SECOND_FACTORS)
        challenge, at = secrets.token_bytes(32), datetime.now(UTC)
        options = passkeys.registration_options(
            self._settings,
            user_id=self._user_handle(holder),
            username=holder.username,
            exclude=await self._directory.passkeys(holder.account_id),
            challenge=challenge,
        )
        payload = json.dumps({"challenge": challenge.hex(), "at": at.isoformat()})
        sealed = self._keys.seal(payload, _passkey_context(holder.account_id))
        return PasskeyPrompt(options, base64.urlsafe_b64encode(sealed).decode())

    async def add_passkey(
        self,
        token: str,
        sealed: str | None,
        credential: str,
        name: str,
        *,
        locale: str | None = None,
    ) -> None:
        """Keep the passkey the browser registered (`credential`, its JSON) under `name`:
        `ENROLMENT_EXPIRED` past its challenge's time, `PasskeyRefused` for an answer that does
        not check out, `PASSKEY_REGISTERED` for one this or another account has."""
        holder = await self.holder(token)
        require(self._directory, Capability.SECOND_FACTORS)
        challenge = self._challenge(holder, sealed)
        if challenge is None:
            raise ENROLMENT_EXPIRED
        at = datetime.now(UTC)
        passkey = passkeys.verify_registration(self._settings, credential, challenge, name, at)
        try:
            await self._directory.add_passkey(holder.account_id, passkey)
        except PasskeyTaken:
            raise PASSKEY_REGISTERED from None
        await self._tell(holder, "passkey_added", at, locale)

    async def remove_passkey(
        self, token: str, key: str, password: str, *, locale: str | None = None
    ) -> None:
        """Remove one passkey (`key`: its credential id, as `FactorSummary.key` gives it)
        once the password is given again: `WRONG_PASSWORD`, `NO_SUCH_FACTOR`."""
        holder = await self.holder(token)
        require(self._directory, Capability.SECOND_FACTORS)
        await self._check_password(holder, password)
        try:
            credential_id = passkey_id(key)
        except ValueError:
            raise NO_SUCH_FACTOR from None
        if not await self._directory.remove_passkey(holder.account_id, credential_id):
            raise NO_SUCH_FACTOR
        await self._tell(holder, "passkey_removed", datetime.now(UTC), locale)

    def _user_handle(self, holder: Holder) -> bytes:
        """The account as passkeys know it: opaque and stable (WebAuthn's user handle)."""
        return self._keys.identifier_digest(f"webauthn-user:{holder.account_id}").encode()[:32]

    def _challenge(self, holder: Holder, sealed: str | None) -> bytes | None:
        if not sealed or len(sealed) > 1024:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            facts = json.loads(self._keys.unseal(raw, _passkey_context(holder.account_id)))
            challenge, at = bytes.fromhex(facts["challenge"]), datetime.fromisoformat(facts["at"])
        except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not datetime.now(UTC) - PASSKEY_TTL < at <= datetime.now(UTC):
            return None
        return challenge

    # -- removing ----------------------------------------------------------------------------

    async def remove(
        self, token: str, kind: FactorKind, password: str, *, locale: str | None = None
    ) -> None:
        """Remove a factor once the password is given again: `WRONG_PASSWORD`,
        `NO_SUCH_FACTOR`."""
        holder = await self.holder(token)
        require(self._directory, Capability.SECOND_FACTORS)
        await self._check_password(holder, password)
        # An exhausted set of recovery codes is still listed, and removable, on the page.
        if not await self._has(holder, kind):
            raise NO_SUCH_FACTOR
        await self._directory.remove_factor(holder.account_id, kind)
        change = {
            FactorKind.TOTP: "totp_removed",
            FactorKind.RECOVERY_CODE: "codes_removed",
            FactorKind.WEBAUTHN: "passkey_removed",  # every passkey
        }[kind]
        await self._tell(holder, change, datetime.now(UTC), locale)

    # -- what they share ---------------------------------------------------------------------

    async def _check_password(self, holder: Holder, password: str) -> None:
        if not password or not await self._directory.is_current_password(
            holder.account_id, password
        ):
            raise WRONG_PASSWORD

    async def _has(self, holder: Holder, kind: FactorKind) -> bool:
        found = await self._directory.factors(holder.account_id)
        return any(f.kind is kind for f in found)

    async def _tell(
        self,
        holder: Holder,
        change: str,
        at: datetime,
        locale: str | None,
        change_id: str | None = None,
    ) -> None:
        """Every contact of the account hears of the change, once (the change's own id). A
        delivery that fails is logged, without the address: the change is made."""
        account = await self._directory.get(holder.account_id)
        if account is None:
            return
        t = Text(supported(locale) or self._settings.default_locale)
        message = messages.factors_changed(
            t,
            product=self._settings.product_name,
            username=account.username,
            change=change,
            at=at,
            links=self._settings.links,
        )
        contacts = [Contact(channel, address) for channel, address in account.contacts]
        change_id = change_id or new_case_id(CHANGE_PREFIX)
        try:
            await self._notifier.tell_every(change_id, NOTICE_KIND, contacts, message)
        except Exception as err:  # an outage: the change stands, the log says it went untold
            log.warning("factors_notice_failed", change_id=change_id, error=type(err).__name__)

    def _pending(self, holder: Holder, sealed: str, secret: str, at: datetime) -> PendingTotp:
        uri = pyotp.TOTP(secret).provisioning_uri(
            name=holder.username, issuer_name=self._settings.product_name
        )
        return PendingTotp(sealed, secret, uri, at + PENDING_TTL)

    def _open(self, holder: Holder, sealed: str | None) -> PendingTotp | None:
        if not sealed or len(sealed) > 1024:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            facts = json.loads(self._keys.unseal(raw, _pending_context(holder.account_id)))
            secret, at = str(facts["secret"]), datetime.fromisoformat(facts["at"])
        except (InvalidTag, ValueError, KeyError, TypeError, binascii.Error):
            return None
        if not datetime.now(UTC) - PENDING_TTL < at <= datetime.now(UTC) + TOTP_STEP:
            return None
        return self._pending(holder, sealed, secret, at)


def _pending_context(account_id: int) -> str:
    return f"totp-pending:{account_id}"


def _passkey_context(account_id: int) -> str:
    return f"passkey-pending:{account_id}"
