"""The HTTP directory (`RECLAIM_DIRECTORY=http`): the accounts of the organisation's own
application, which implements the small JSON contract of docs/directory-http.md
(docs/directory-http.openapi.yaml; a reference host in examples/host_directory/).

Every request is signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`: HMAC-SHA256 over the id, the timestamp and the body, with
`RECLAIM_HTTP_DIRECTORY_SECRET`). A request that changes something carries an idempotency key
as its `webhook-id` (and `Idempotency-Key`), made from the case it is for: an activity retried
after a timeout or a 5xx sends the same key, and the host applies the change once. Nothing
private travels in a URL: identifiers and passwords are in the bodies.

The host's answers: 5xx, a timeout or a refused connection raise `DirectoryUnavailable` (the
activity retries, the API answers 503); 401/403 too, logged as a configuration error (the
secrets differ); 404 is "no such account"; 409 and 422 are the refusals the contract names.

Capabilities: password history (the host checks reuse and claim evidence), contacts (an
approved claim replaces the email), status (a ban, a deactivation and their lifting are sent
to the host, which keeps them and answers them in its reads), purge (the end of a
deactivation's grace period: `POST …/purge`, the host erases the person and keeps a
tombstone). The host keeps its own sessions (a new password, a ban or a deactivation signs
them out there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from standardwebhooks import Webhook

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
from reclaim.directory.links import Links
from reclaim.directory.port import (
    AccountExists,
    AccountGone,
    AccountOverview,
    AccountRecord,
    Capability,
    CapabilityMissing,
    DirectoryUnavailable,
    FactorCheck,
    FactorKind,
    FactorSummary,
    NewPassword,
    PasswordRejected,
    SessionView,
    SignIn,
    seal_password,
    unseal_password,
)
from reclaim.identifiers import Identifier, IdentifierKind
from reclaim.security import Keys
from reclaim.settings import Settings

log = structlog.get_logger(__name__)

# The host's statuses, as Reclaim's: `banned` is a ban Reclaim sent, `disabled` the host's own
# lock (read the same way).
_STATUS = {
    "active": AccountStatus.ACTIVE,
    "banned": AccountStatus.BANNED,
    "disabled": AccountStatus.BANNED,
    "deactivated": AccountStatus.DEACTIVATED,
    "purged": AccountStatus.PURGED,
}


class HttpDirectory(KeptSecondFactors):
    name = "http"
    capabilities = frozenset(
        {
            Capability.PASSWORD_HISTORY,
            Capability.CONTACTS,
            Capability.STATUS,
            Capability.PURGE,
            Capability.SECOND_FACTORS,
        }
    )

    def __init__(self, settings: Settings, links: Links, keys: Keys) -> None:
        from reclaim.directory import secret_bytes

        assert settings.http_directory_url and settings.http_directory_secret
        self._links = links
        self._keys = keys
        self._webhook = Webhook(secret_bytes(settings.http_directory_secret.get_secret_value()))
        self._base = settings.http_directory_url.rstrip("/")
        self._timeout = settings.http_directory_timeout
        self._client: httpx.AsyncClient | None = None
        # The host checks its users' factors; else Reclaim keeps recovery codes for them.
        self._host_factors = settings.http_directory_verifies_factors
        self._kept = KeptCodes(links.engine, keys)

    # -- plumbing ----------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, trust_env=False
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, key: str | None = None
    ) -> httpx.Response:
        """One signed request. `key`, for a change: the idempotency key, the same on every
        retry of the same change. The answer is returned unless it says the host is away."""
        content = "" if body is None else _json(body)
        message_id = key or f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, now, content),
            "content-type": "application/json",
            "accept": "application/json",
        }
        if key is not None:
            headers["idempotency-key"] = key
        try:
            response = await self._http().request(
                method, f"{self._base}{path}", content=content.encode(), headers=headers
            )
        except httpx.TimeoutException as err:
            raise DirectoryUnavailable("the host application did not answer in time") from err
        except httpx.HTTPError as err:
            raise DirectoryUnavailable(
                f"the host application does not answer ({type(err).__name__})"
            ) from err
        status = response.status_code
        if status >= 500:
            raise DirectoryUnavailable(f"the host application answered {status}")
        if status in (401, 403):
            log.error("http_directory_refused_signature", status=status)
            raise DirectoryUnavailable(
                f"the host application refused Reclaim's signature ({status}): check "
                "RECLAIM_HTTP_DIRECTORY_SECRET"
            )
        return response

    @staticmethod
    def _payload(response: httpx.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            log.error("http_directory_bad_answer", status=response.status_code)
            raise DirectoryUnavailable(
                f"the host application's answer ({response.status_code}) is not the contract's"
            )
        return payload

    def _unexpected(self, response: httpx.Response, doing: str) -> DirectoryUnavailable:
        log.error("http_directory_unexpected_answer", doing=doing, status=response.status_code)
        return DirectoryUnavailable(
            f"the host application answered {response.status_code} to {doing}"
        )

    async def ping(self) -> None:
        response = await self._call("GET", "/health")
        if response.status_code != 200:
            raise self._unexpected(response, "the health check")

    # -- finding and reading -----------------------------------------------------------------

    async def _record(self, payload: dict[str, Any], account_id: int | None) -> AccountRecord:
        try:
            key = str(payload["id"])
            status = _STATUS.get(str(payload.get("status", "active")), AccountStatus.ACTIVE)
            record = AccountRecord(
                id=account_id or 0,
                username=str(payload["username"]),
                email=payload.get("email") or None,
                phone=payload.get("phone") or None,
                status=status,
                created_at=_time(payload.get("created_at")),
                password_changed_at=_time(payload.get("password_changed_at")),
                contacts_changed_at=_time(payload.get("contacts_changed_at")),
                factors=self._kinds(payload),
                status_since=_time(payload.get("status_since")),
                status_until=_time(payload.get("status_until")),
                status_reason=payload.get("status_reason") or None,
                status_case=payload.get("status_case") or None,
            )
        except (KeyError, TypeError, ValueError) as err:
            log.error("http_directory_bad_account", error=type(err).__name__)
            raise DirectoryUnavailable(
                "the host application's account is not the contract's"
            ) from err
        if account_id is None:
            return dataclasses.replace(record, id=await self._links.id_for(key))
        return record

    def _kinds(self, payload: dict[str, Any]) -> tuple[FactorKind, ...]:
        """The factors a recovery asks a proof of: the host's (those it can verify), or, when it
        cannot verify, the recovery codes Reclaim keeps for an account that has any."""
        listed = [_factor(f) for f in payload.get("factors") or []]
        kinds = tuple(dict.fromkeys(f.kind for f in listed if f is not None))
        if not self._host_factors:
            return (FactorKind.RECOVERY_CODE,) if kinds else ()
        return kinds

    async def find(self, identifier: Identifier) -> AccountRecord | None:
        body = {"kind": identifier.kind.value, "value": identifier.value}
        response = await self._call("POST", "/accounts/lookup", body)
        if response.status_code == 404:
            await self._links.id_for_nobody()  # the SQL a found account costs
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "a lookup")
        return await self._record(self._payload(response), None)

    async def decoy(self, seed: bytes) -> AccountRecord | None:
        """The contract has no call to pick an account at random: unknown identifiers get
        invented destinations (`reclaim.identifiers`)."""
        return None

    async def _key(self, account_id: int) -> str | None:
        return await self._links.key_for(account_id)

    async def get(self, account_id: int) -> AccountRecord | None:
        key = await self._key(account_id)
        if key is None:
            return None
        response = await self._call("GET", f"/accounts/{_segment(key)}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, "reading an account")
        return await self._record(self._payload(response), account_id)

    async def find_claimed(self, username: str) -> AccountRecord | None:
        return await self.find(Identifier(IdentifierKind.USERNAME, username))

    async def overview(self, account_id: int) -> AccountOverview | None:
        account = await self.get(account_id)
        return AccountOverview(account, None, []) if account is not None else None

    async def status_counts(self) -> dict[str, int]:
        return {}  # the host's own figures

    # -- second factors ----------------------------------------------------------------------

    async def factors(self, account_id: int) -> list[FactorSummary]:
        if not self._host_factors:
            return await super().factors(account_id)
        key = await self._key(account_id)
        if key is None:
            return []
        response = await self._call("GET", f"/accounts/{_segment(key)}")
        if response.status_code != 200:
            return []
        listed = [_factor(f) for f in self._payload(response).get("factors") or []]
        return [f for f in listed if f is not None]

    async def verify_factor(
        self, account_id: int, kind: FactorKind, code: str, *, case_id: str, at: datetime
    ) -> FactorCheck:
        """The host checks the proof (`POST …/factors/verify`; for a passkey, `code` is the
        assertion with the challenge it must sign); a host that cannot: Reclaim's codes."""
        if not self._host_factors:
            return await super().verify_factor(account_id, kind, code, case_id=case_id, at=at)
        key = await self._key(account_id)
        if key is None:
            return FactorCheck(accepted=False)
        body: dict[str, Any] = {"kind": kind.value, "case_id": case_id, "at": at.isoformat()}
        if kind is FactorKind.WEBAUTHN:
            body.update(json.loads(code))
        else:
            body["code"] = code
        response = await self._call("POST", f"/accounts/{_segment(key)}/factors/verify", body)
        if response.status_code == 404:
            return FactorCheck(accepted=False)
        if response.status_code != 200:
            raise self._unexpected(response, "a second factor's check")
        answer = self._payload(response)
        left = answer.get("recovery_codes_left")
        return FactorCheck(bool(answer.get("accepted")), left if isinstance(left, int) else None)

    async def new_recovery_codes(self, account_id: int, at: datetime) -> list[str]:
        if self._host_factors:
            raise CapabilityMissing(self.name, Capability.SECOND_FACTORS)  # the host's own
        return await super().new_recovery_codes(account_id, at)

    async def remove_factor(self, account_id: int, kind: FactorKind) -> bool:
        """After an approved claim (`POST …/factors/remove`), or Reclaim's own codes."""
        if not self._host_factors:
            return await super().remove_factor(account_id, kind)
        key = await self._key(account_id)
        if key is None:
            return False
        response = await self._call(
            "POST",
            f"/accounts/{_segment(key)}/factors/remove",
            {"kind": kind.value},
            key=f"factor-remove:{account_id}:{kind.value}:{uuid.uuid4().hex}",
        )
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise self._unexpected(response, "removing a second factor")
        return bool(self._payload(response).get("removed"))

    # -- passwords ---------------------------------------------------------------------------

    async def _matches(self, account_id: int, candidates: list[str]) -> list[bool]:
        key = await self._key(account_id)
        if key is None or not candidates:
            return [False] * len(candidates)
        response = await self._call(
            "POST", f"/accounts/{_segment(key)}/passwords/check", {"passwords": candidates}
        )
        if response.status_code == 404:
            return [False] * len(candidates)
        if response.status_code != 200:
            raise self._unexpected(response, "a password check")
        matches = self._payload(response).get("matches")
        if not isinstance(matches, list) or len(matches) != len(candidates):
            raise self._unexpected(response, "a password check")
        return [m is True for m in matches]

    async def matching_passwords(self, account_id: int | None, candidates: list[str]) -> int:
        if account_id is None:
            return 0
        return sum(await self._matches(account_id, candidates))

    async def password_reused(self, account_id: int, password: str) -> bool:
        return any(await self._matches(account_id, [password]))

    async def is_current_password(self, account_id: int, password: str) -> bool:
        # The host checks its recent passwords, the current one first: the nearest it offers.
        return any(await self._matches(account_id, [password]))

    async def new_password(self, case_id: str, password: str) -> NewPassword:
        return NewPassword(sealed=seal_password(self._keys, case_id, password))

    async def set_password(
        self, account_id: int, password: NewPassword, *, case_id: str, at: datetime
    ) -> str | None:
        if not password.sealed:  # prepared for another directory: choose it again
            raise PasswordRejected(CaseError.WEAK_PASSWORD, ["choose the new password again"])
        key = await self._key(account_id)
        if key is None:
            raise AccountGone(account_id)
        clear = unseal_password(self._keys, case_id, password.sealed)
        # The same change on every retry: the case, and which sealed password (another try
        # after a refusal is another change).
        change = hashlib.sha256(password.sealed.encode()).hexdigest()[:16]
        response = await self._call(
            "POST",
            f"/accounts/{_segment(key)}/password",
            {"password": clear, "case_id": case_id},
            key=f"pw_{case_id}_{change}",
        )
        if response.status_code == 200:
            # A deactivated account the host reactivated: its deletion case stops waiting.
            reactivated = self._payload(response).get("reactivated")
            return str(reactivated) if reactivated else None
        if response.status_code in (404, 409):
            raise AccountGone(account_id)
        if response.status_code == 422:
            refusal = self._payload(response)
            error = (
                CaseError.PASSWORD_REUSED
                if refusal.get("error") == CaseError.PASSWORD_REUSED
                else CaseError.WEAK_PASSWORD
            )
            reasons = refusal.get("reasons")
            raise PasswordRejected(
                error, [str(r) for r in reasons] if isinstance(reasons, list) else []
            )
        raise self._unexpected(response, "a new password")

    # -- contacts ----------------------------------------------------------------------------

    async def was_contact(self, account_id: int, channel: Channel, address: str) -> bool:
        return False  # the contract keeps no past addresses

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
        key = await self._key(account_id)
        if key is None:
            raise AccountGone(account_id)
        response = await self._call(
            "POST",
            f"/accounts/{_segment(key)}/contacts",
            {"email": email, "phone": None, "case_id": case_id, "reason": reason},
            key=f"ct_{case_id}",
        )
        if response.status_code == 200:
            return None
        if response.status_code == 404:
            raise AccountGone(account_id)
        if response.status_code == 409:
            if self._payload(response).get("error") == "email_taken":
                raise AccountExists("email")
            raise AccountGone(account_id)
        raise self._unexpected(response, "new contacts")

    # -- sessions are the host's ------------------------------------------------------------

    async def sign_in(self, identifier: Identifier, password: str) -> SignIn:
        raise CapabilityMissing(self.name, Capability.SIGN_IN)

    async def session(self, token: str) -> SessionView | None:
        raise CapabilityMissing(self.name, Capability.SIGN_IN)

    async def end_session(self, token: str) -> bool:
        raise CapabilityMissing(self.name, Capability.SIGN_IN)

    async def revoke_sessions(self, account_id: int, at: datetime) -> int:
        key = await self._key(account_id)
        if key is None:
            return 0
        response = await self._call(
            "POST",
            f"/accounts/{_segment(key)}/sessions/revoke",
            {"at": at.isoformat()},
            key=f"rv_{key}_{int(at.timestamp())}",
        )
        if response.status_code == 404:
            return 0
        if response.status_code != 200:
            raise self._unexpected(response, "signing out")
        revoked = self._payload(response).get("revoked", 0)
        return int(revoked) if isinstance(revoked, int) else 0

    # -- status: bans and deactivations sent to the host, the purge asked of it ---------------

    async def deactivate(self, change: StatusChange) -> AccountState:
        """The host deactivates an active account for `change.case_id` until `change.until`
        (the purge time) and signs it out everywhere; any other status is left as it is
        (409 `not_in_charge`: `applied=False`)."""
        return await self._status(change, AccountStatus.DEACTIVATED)

    async def ban(self, change: StatusChange) -> AccountState:
        """The host bans the account for `change.case_id` until `change.until` (None: until
        lifted) and signs it out everywhere; `previous_case` is the case that was in charge."""
        return await self._status(change, AccountStatus.BANNED)

    async def lift_ban(self, change: StatusChange) -> AccountState:
        """Banned → active, if the ban is still the one `change.case_id` set ("" for a ban no
        case is in charge of); otherwise `applied=False` with what the account is."""
        return await self._status(change, AccountStatus.ACTIVE)

    async def _status(self, change: StatusChange, status: AccountStatus) -> AccountState:
        key = await self._key(change.account_id)
        if key is None:
            return AccountState(applied=False, status=AccountStatus.PURGED)
        # One key per case and status (a ban case bans, then lifts); a ban no case is in
        # charge of is lifted once per account and moment.
        change_id = change.case_id or f"{change.account_id}_{int(change.at.timestamp())}"
        response = await self._call(
            "POST",
            f"/accounts/{_segment(key)}/status",
            {
                "status": status.value,
                "case_id": change.case_id or None,
                "since": change.at.isoformat(),
                "until": change.until.isoformat() if change.until else None,
                "reason": change.reason,
                "actor": {"kind": change.actor.kind.value, "name": change.actor.name},
            },
            key=f"st_{change_id}_{status.value}",
        )
        if response.status_code == 404:
            return AccountState(applied=False, status=AccountStatus.PURGED)
        return self._state(response, "a new status")

    def _state(self, response: httpx.Response, doing: str) -> AccountState:
        """A status or purge answer: 200 applied, 409 `not_in_charge` not, both with the
        account as it is."""
        if response.status_code not in (200, 409):
            raise self._unexpected(response, doing)
        answer = self._payload(response)
        if response.status_code == 409 and answer.get("error") != "not_in_charge":
            raise self._unexpected(response, doing)
        try:
            return AccountState(
                applied=response.status_code == 200,
                status=_STATUS[str(answer["status"])],
                until=_time(answer.get("status_until")),
                case_id=answer.get("status_case") or None,
                previous_case=answer.get("previous_case") or None,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise self._unexpected(response, doing) from err

    async def reactivate(
        self,
        account_id: int,
        at: datetime,
        actor: Actor,
        *,
        case_id: str | None = None,
        reason: str | None = None,
    ) -> str | None:
        """Deactivated → active, through the host (`POST …/status` `active` for the deletion
        case in charge); returns that case, which must stop waiting."""
        account = await self.get(account_id)
        if account is None or account.status in (AccountStatus.BANNED, AccountStatus.PURGED):
            raise AccountGone(account_id)
        if account.status is not AccountStatus.DEACTIVATED or not account.status_case:
            return None
        deletion = account.status_case
        change = StatusChange(deletion, account_id, at, actor, reason)
        state = await self._status(change, AccountStatus.ACTIVE)
        if state.status in (AccountStatus.BANNED, AccountStatus.PURGED):
            raise AccountGone(account_id)
        return deletion if state.applied else None

    async def purge(self, request: PurgeAccount) -> AccountState:
        """The end of a grace period: the host erases the person and keeps a tombstone, if
        the account is still deactivated by `request.case_id` (409 `not_in_charge`
        otherwise: `applied=False` with what it is). Once per case."""
        key = await self._key(request.account_id)
        if key is None:
            return AccountState(applied=False, status=AccountStatus.PURGED)
        response = await self._call(
            "POST",
            f"/accounts/{_segment(key)}/purge",
            {
                "case_id": request.case_id,
                "at": request.at.isoformat(),
                "quarantine": request.quarantine,
            },
            key=f"pg_{request.case_id}",
        )
        if response.status_code == 404:  # the host deleted the row itself: nothing is left
            return AccountState(applied=False, status=AccountStatus.PURGED)
        return self._state(response, "a purge")

    async def create(
        self, *, username: str, email: str, phone: str | None, password: str
    ) -> AccountRecord:
        raise CapabilityMissing(self.name, Capability.CREATE)


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _segment(key: str) -> str:
    """The host's id as one path segment."""
    return quote(key, safe="")


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _factor(item: Any) -> FactorSummary | None:
    """One factor of an account's read (`{"kind", "enrolled_at", "last_used_at", "name"}`);
    None for a kind Reclaim does not know."""
    if not isinstance(item, dict):
        return None
    try:
        kind = FactorKind(str(item.get("kind")))
    except ValueError:
        return None
    return FactorSummary(
        kind,
        _time(item.get("enrolled_at")) or datetime.fromtimestamp(0, UTC),
        _time(item.get("last_used_at")),
        name=item.get("name") or None,
    )
