"""How staff sign in to the console (through the OpenID provider, or with a staff key
without one), whose session a cookie is, signing out; and who a bearer token names for the
codec endpoint. Each sign-in, refused or done, is audited.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Awaitable
from dataclasses import asdict
from datetime import timedelta
from typing import TypeVar

import structlog
from cryptography.exceptions import InvalidTag

from reclaim.errors import Refused, Unauthorized, Unavailable
from reclaim.security import Keys
from reclaim.settings import Settings
from reclaim.support.audit import AuditLog, Origin
from reclaim.support.contracts import Reviewer, StaffRole
from reclaim.support.members import INVALID_STAFF_KEY, StaffMembers
from reclaim.support.oidc import (
    LoginRequest,
    OidcError,
    OidcProvider,
    ProviderUnavailable,
    new_login,
)
from reclaim.support.staff import NameTaken, SignedIn, StaffRoster

log = structlog.get_logger(__name__)
T = TypeVar("T")
NO_CONSOLE_SESSION = Unauthorized(
    "no_session", "Sign in to the console: your session ended or was never opened."
)
SIGN_IN_FAILED = Unauthorized(
    "sign_in_failed", "The sign-in did not come back as it left: start it again."
)
LOGIN_CONTEXT = "console/oidc-login"


class StaffSignIn:
    """Console sign-in and sessions, and bearer tokens for the codec endpoint."""

    def __init__(
        self,
        staff: StaffRoster,
        members: StaffMembers,
        keys: Keys,
        settings: Settings,
        audit: AuditLog,
        oidc: OidcProvider | None = None,
    ) -> None:
        self._staff = staff
        self._members = members
        self._keys = keys
        self._settings = settings
        self._audit = audit
        self._oidc = oidc

    async def aclose(self) -> None:
        if self._oidc is not None:
            await self._oidc.aclose()

    @property
    def identity_provider(self) -> str | None:
        """The host name of the identity provider staff sign in with, None: staff keys."""
        return self._oidc.label if self._oidc is not None else None

    async def begin_sign_in(self) -> tuple[str, str]:
        """Where to send the browser at the identity provider, and the sealed request the
        browser keeps (a cookie) until it comes back."""
        provider = self._provider()
        login = new_login()
        url = await self._from_provider(provider.authorization_url(login))
        sealed = self._keys.seal(json.dumps(asdict(login)), LOGIN_CONTEXT)
        return url, base64.urlsafe_b64encode(sealed).decode()

    async def finish_sign_in(
        self, code: str, state: str, sealed_login: str, origin: Origin
    ) -> tuple[Reviewer, str]:
        """The provider sent the browser back: check it is the sign-in this browser started,
        exchange the code, verify the ID token, find or add the member of staff, and open a
        console session (its token, for the cookie, returned once)."""
        provider = self._provider()
        login = self._unseal_login(sealed_login)
        if not hmac.compare_digest(state.encode(), login.state.encode()) or not code:
            await self._audit_sign_in("(unknown)", None, origin, "refused: sign_in_failed")
            raise SIGN_IN_FAILED
        try:
            identity = await self._from_provider(provider.finish(code, login))
        except Unauthorized as err:
            await self._audit_sign_in("(unknown)", None, origin, f"refused: {err.code}")
            raise
        if identity.role is None:
            await self._audit_sign_in(identity.name, None, origin, "refused: no_role")
            raise Unauthorized(
                "no_role",
                f"Your account at {provider.label} gives you no role in the support console: "
                "ask whoever manages it to add you to the reviewers or the supervisors.",
            )
        try:
            row = await self._staff.from_provider(identity.subject, identity.name, identity.role)
        except NameTaken as err:
            await self._audit_sign_in(identity.name, None, origin, "refused: name_taken")
            raise Unauthorized(
                "name_taken",
                f"Another member of staff is already named {identity.name}: ask an "
                "administrator to sort it out.",
            ) from err
        assert row.id is not None
        member = Reviewer(row.id, row.name, StaffRole(row.role))
        if row.disabled_at is not None:
            await self._audit_sign_in(member.name, member.role.value, origin, "refused: disabled")
            raise Unauthorized("staff_disabled", "Your access to the console was turned off.")
        return member, await self._open_session(member, "oidc", origin)

    async def sign_in_with_key(self, key: str, origin: Origin) -> tuple[Reviewer, str]:
        """Without an identity provider: a staff key, exchanged for a console session."""
        member = await self._staff.authenticate(key)
        if member is None:
            await self._audit_sign_in("(unknown)", None, origin, "refused: invalid_key")
            raise Unauthorized(
                "invalid_key",
                "This staff key does not work: it is wrong, was replaced, or was turned off.",
            )
        return member, await self._open_session(member, "key", origin)

    async def console_member(self, token: str | None) -> SignedIn:
        """Whose console session this cookie is, now."""
        signed_in = await self._staff.session(token or "")
        if signed_in is None:
            raise NO_CONSOLE_SESSION
        return signed_in

    async def sign_out(self, token: str, member: Reviewer, origin: Origin) -> None:
        await self._staff.close_session(token)
        await self._audit.record(
            who=member.name,
            role=member.role.value,
            origin=origin,
            action="sign out",
            outcome="done",
        )

    async def staff_for_bearer(self, token: str) -> Reviewer:
        """A staff key, or a token the identity provider signed for Reclaim (ID or access
        token) naming someone with a role, who is not disabled: for the codec endpoint."""
        if token.startswith("rk_") or self._oidc is None:
            return await self._members.staff_member(token)
        try:
            claims = await self._from_provider(self._oidc.verify(token))
        except Unauthorized as err:
            raise INVALID_STAFF_KEY from err
        identity = self._oidc.identity(claims)
        if identity.role is None:
            raise INVALID_STAFF_KEY
        known = await self._staff.get(identity.name)
        if known is not None and known.disabled_at is not None:
            raise INVALID_STAFF_KEY
        return Reviewer(known.id if known and known.id else 0, identity.name, identity.role)

    async def _open_session(self, member: Reviewer, via: str, origin: Origin) -> str:
        lifetime = timedelta(seconds=self._settings.console_session_ttl)
        token = await self._staff.open_session(member, via, origin.address, lifetime)
        await self._audit_sign_in(member.name, member.role.value, origin, "done", detail=via)
        return token

    async def _audit_sign_in(
        self, who: str, role: str | None, origin: Origin, outcome: str, detail: str | None = None
    ) -> None:
        await self._audit.record(
            who=who, role=role, origin=origin, action="sign in", outcome=outcome, detail=detail
        )

    def _provider(self) -> OidcProvider:
        if self._oidc is None:
            raise Refused("not_configured", "Staff sign in with their staff key here.")
        return self._oidc

    async def _from_provider(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except ProviderUnavailable as err:
            log.warning("identity_provider_unavailable", reason=str(err))
            raise Unavailable("The identity provider") from err
        except OidcError as err:
            log.info("identity_provider_refused", reason=str(err))
            raise Unauthorized("sign_in_failed", str(err)) from err

    def _unseal_login(self, sealed: str) -> LoginRequest:
        try:
            raw = self._keys.unseal(base64.urlsafe_b64decode(sealed.encode()), LOGIN_CONTEXT)
            return LoginRequest(**json.loads(raw))
        except (ValueError, TypeError, binascii.Error, InvalidTag) as err:
            raise SIGN_IN_FAILED from err
