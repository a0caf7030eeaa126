"""Self-service recovery: open a case, prove the code, choose a new password."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.deps import AppServices
from reclaim.contracts import Channel
from reclaim.recovery.challenge import MAX_PAYLOAD
from reclaim.recovery.contracts import CaseState, Delivery, RecoveryStatus, SecondFactor
from reclaim.recovery.factors import MAX_ASSERTION

router = APIRouter(prefix="/v1/recovery", tags=["recovery"])

_ERROR = {"description": "JSON error: `{error, message, ...}`"}


class RecoveryRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"identifier": "jane@example.com"}]},
    )

    identifier: str = Field(
        min_length=1,
        max_length=254,
        description="The account's email address, phone number (E.164) or username.",
    )
    channel: Channel | None = Field(
        None, description="Where to send the code; by default the kind of identifier given."
    )
    altcha: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_PAYLOAD,
        description="Over the rate limit: the solution of the `challenge` a 429 "
        "`challenge_required` gave, as ALTCHA's payload (base64 of the JSON "
        "`{algorithm, challenge, number, salt, signature}`).",
    )


class CaseView(BaseModel):
    """A recovery case as its owner sees it. The same whether or not an account exists."""

    case_id: str
    state: CaseState
    channel: Channel
    destination: str = Field(description="Where the code goes, masked.")
    attempts_left: int
    code_expires_at: datetime | None
    resend_available_at: datetime | None = Field(
        description="When another code may be asked for; null when no more can be."
    )
    reset_expires_at: datetime | None = None
    hold_until: datetime | None = Field(
        None,
        description="While `held`: when the new password takes effect, unless one of the "
        "account's other contacts stops it.",
    )
    delivery: Literal["sending", "retrying", "sent", "failed"] = Field(
        description="Where the current code is: `retrying` while the provider is failing."
    )
    delivery_attempts: int | None = None
    factors: list[SecondFactor] | None = Field(
        None,
        description="Once the contact code was right, for an account with a second factor: "
        "those it may prove (`POST …/second-factor`). Null before, and for other accounts.",
    )

    second_factor: SecondFactor | None = Field(
        None, description="The second factor proven, once it was."
    )
    recovery_codes_left: int | None = Field(
        None,
        description="When a recovery code proved it: how many of the set are left (make new "
        "ones on the security page before they run out).",
    )

    @classmethod
    def of(cls, status: RecoveryStatus, delivery_attempts: int = 0) -> CaseView:
        delivery: Any = status.delivery.value
        if status.delivery is Delivery.SENDING and delivery_attempts > 1:
            delivery = "retrying"
        return cls(
            case_id=status.case_id,
            state=status.state,
            channel=status.channel,
            destination=status.destination,
            attempts_left=status.attempts_left,
            code_expires_at=status.code_expires_at,
            resend_available_at=status.resend_available_at,
            reset_expires_at=status.reset_expires_at,
            hold_until=status.hold_until,
            delivery=delivery,
            delivery_attempts=delivery_attempts or None,
            factors=[SecondFactor(kind) for kind in status.factors]
            if status.factors is not None
            else None,
            second_factor=SecondFactor(status.second_factor) if status.second_factor else None,
            recovery_codes_left=status.recovery_codes_left,
        )


_CODE = re.compile(r"^\d{6}$")


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "042917"}]})

    code: str = Field(min_length=1, max_length=16, description="The 6-digit code received.")

    @field_validator("code")
    @classmethod
    def _six_digits(cls, value: str) -> str:
        code = re.sub(r"[\s-]", "", value)
        if not _CODE.match(code):
            raise ValueError("a code is 6 digits")
        return code


class ProofRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    proof: str = Field(
        min_length=1,
        max_length=64,
        description="The `proof` parameter of the link in the code's message.",
    )


class ResetGranted(BaseModel):
    """A right code: the reset token; or, for an account with a second factor, the state
    `awaiting_second_factor` and the factors it may prove next (and no token yet)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reset_token": "…", "reset_expires_at": "2026-12-07T12:15:00Z"},
                {"state": "awaiting_second_factor", "factors": ["totp", "recovery_code"]},
            ]
        }
    )

    reset_token: str | None = Field(None, description="Single-use; send it with the new password.")
    reset_expires_at: datetime | None = None
    state: CaseState | None = Field(
        None, description="`awaiting_second_factor` when a second factor must be proven first."
    )
    factors: list[SecondFactor] | None = Field(
        None, description="The second factors the account may prove (`POST …/second-factor`)."
    )

    @classmethod
    def of(cls, granted: Any) -> ResetGranted:
        if granted.reset_token is None:
            return cls(
                state=CaseState.AWAITING_SECOND_FACTOR,
                factors=[SecondFactor(kind) for kind in granted.factors],
            )
        return cls(reset_token=granted.reset_token, reset_expires_at=granted.reset_expires_at)


class SecondFactorRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"method": "totp", "code": "492039"},
                {"method": "recovery_code", "code": "7kq2m-x9fpd"},
                {
                    "method": "webauthn",
                    "assertion": {
                        "id": "…",
                        "rawId": "…",
                        "type": "public-key",
                        "response": {
                            "clientDataJSON": "…",
                            "authenticatorData": "…",
                            "signature": "…",
                            "userHandle": "…",
                        },
                    },
                },
            ]
        },
    )

    method: SecondFactor = Field(description="Which of the account's second factors.")
    code: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="For `totp` and `recovery_code`: the 6 digits the authenticator app shows "
        "now, or one saved recovery code.",
    )
    assertion: dict[str, Any] | None = Field(
        None,
        description="For `webauthn`: the browser's answer to the options of "
        "`GET …/second-factor/webauthn`, as `PublicKeyCredential.toJSON()` gives it (base64url "
        "fields `id`, `rawId`, `response.clientDataJSON`, `authenticatorData`, `signature`, "
        "`userHandle`).",
    )

    @model_validator(mode="after")
    def _one_proof(self) -> SecondFactorRequest:
        if self.method is SecondFactor.WEBAUTHN:
            if self.assertion is None or self.code is not None:
                raise ValueError("a passkey's proof is an `assertion` (and no `code`)")
            if len(self.proof) > MAX_ASSERTION:
                raise ValueError("the assertion is too long")
        elif self.code is None or self.assertion is not None:
            raise ValueError(f"a {self.method.value} proof is a `code` (and no `assertion`)")
        return self

    @property
    def proof(self) -> str:
        if self.assertion is not None:
            return json.dumps(self.assertion, separators=(",", ":"))
        return self.code or ""


class PasswordRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reset_token": "…", "new_password": "correct horse battery staple"}]
        },
    )

    reset_token: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=1024)


class PasswordChanged(BaseModel):
    case_id: str
    state: CaseState


@router.post(
    "",
    status_code=202,
    response_model=CaseView,
    responses={422: _ERROR, 429: _ERROR, 503: _ERROR},
    summary="Open a recovery case",
)
async def open_case(body: RecoveryRequest, services: AppServices) -> CaseView:
    """A code goes to the account's email or phone. The answer is the same whether or not
    an account exists under the identifier.

    After `RECLAIM_CASES_PER_HOUR` cases for one identifier in an hour, the answer is 429
    `challenge_required` with `Retry-After` and a `challenge` (ALTCHA v1: find `number` in
    [0, `maxNumber`] with SHA-256(`salt` + `number`) = `challenge`); send the request again
    with its solution as `altcha`, or wait. Each case over the limit makes the next
    challenge harder (up to a cap); a solution opens one case, for this identifier only."""
    return CaseView.of(
        await services.recovery.open(body.identifier, body.channel, proof=body.altcha)
    )


@router.get(
    "/{case_id}", response_model=CaseView, responses={404: _ERROR}, summary="Where a case is"
)
async def get_case(case_id: str, services: AppServices) -> CaseView:
    status = await services.recovery.status(case_id)
    attempts = 0
    if status.delivery is Delivery.SENDING and status.state.is_open:
        attempts = await services.recovery.delivery_attempts(case_id)
    return CaseView.of(status, attempts)


@router.post(
    "/{case_id}/code",
    response_model=ResetGranted,
    response_model_exclude_none=True,
    responses={400: _ERROR, 404: _ERROR, 409: _ERROR, 410: _ERROR, 423: _ERROR},
    summary="Prove the code",
)
async def submit_code(case_id: str, body: CodeRequest, services: AppServices) -> ResetGranted:
    """A right code returns a reset token; a wrong one says how many tries are left; the last
    wrong one locks the case. At most `RECLAIM_GUESSES_PER_HOUR` wrong codes per account and
    hour are compared (beyond, a code answers as a wrong one: the link in the message still
    works). The same code again after a lost answer returns the same reset token.

    For an account with a second factor a right code answers `{"state":
    "awaiting_second_factor", "factors": [...]}` and no token: `POST …/second-factor` next."""
    granted = await services.recovery.submit_code(case_id, body.code)
    return ResetGranted.of(granted)


@router.post(
    "/{case_id}/second-factor",
    response_model=ResetGranted,
    response_model_exclude_none=True,
    responses={400: _ERROR, 404: _ERROR, 409: _ERROR, 410: _ERROR, 423: _ERROR},
    summary="Prove the account's second factor",
)
async def submit_second_factor(
    case_id: str, body: SecondFactorRequest, services: AppServices
) -> ResetGranted:
    """After a right code for an account with a second factor (`awaiting_second_factor`): a
    TOTP code (the current 30 s step or one either side, each accepted once) or one unused
    recovery code. Right: the reset token, as `…/code` gives it for other accounts. Wrong,
    used already, or a method the account does not have: 400 `invalid_code` with
    `attempts_left`; the last wrong one locks the case (423). Each wrong one counts in the
    account's guess budget. The same proof again after a lost answer returns the same token."""
    granted = await services.recovery.submit_second_factor(case_id, body.method.value, body.proof)
    return ResetGranted.of(granted)


@router.get(
    "/{case_id}/second-factor/webauthn",
    responses={404: _ERROR, 409: _ERROR, 410: _ERROR, 423: _ERROR},
    summary="The options a passkey is asked with",
)
async def passkey_options(case_id: str, services: AppServices) -> dict[str, Any]:
    """At the second step (`awaiting_second_factor`) of an account with a passkey
    (`webauthn` among `factors`): the WebAuthn request options for
    `navigator.credentials.get`, as JSON (base64url `challenge`, the `rpId`, the account's
    credentials in `allowCredentials`). Each call makes a new challenge, good for one answer
    (`POST …/second-factor` with `method` `webauthn`); an earlier one stops working. Before
    the contact code, or for an account without a passkey: 409 `invalid_state`."""
    return await services.recovery.passkey_options(case_id)


@router.post(
    "/{case_id}/proof",
    response_model=ResetGranted,
    response_model_exclude_none=True,
    responses={400: _ERROR, 404: _ERROR, 409: _ERROR, 410: _ERROR, 423: _ERROR},
    summary="Prove the code with the link from its message",
)
async def submit_proof(case_id: str, body: ProofRequest, services: AppServices) -> ResetGranted:
    """The link in a code's message carries the code's proof (`?proof=`): as good as the
    code, and still checked when the account's guess budget is spent. Sending the same proof
    (or code) again after a lost answer returns the same reset token."""
    granted = await services.recovery.submit_proof(case_id, body.proof)
    return ResetGranted.of(granted)


@router.post(
    "/{case_id}/resend",
    status_code=202,
    response_model=CaseView,
    responses={404: _ERROR, 409: _ERROR, 423: _ERROR, 429: _ERROR},
    summary="Send a fresh code",
)
async def resend_code(case_id: str, services: AppServices) -> CaseView:
    """The previous code stops working. The wait between codes doubles each time."""
    return CaseView.of(await services.recovery.resend(case_id))


@router.post(
    "/{case_id}/password",
    response_model=PasswordChanged,
    responses={403: _ERROR, 404: _ERROR, 409: _ERROR, 410: _ERROR, 422: _ERROR},
    summary="Choose the new password",
)
async def set_password(
    case_id: str, body: PasswordRequest, services: AppServices
) -> PasswordChanged:
    """Every session of the account is signed out and every contact told. A recovery through
    a contact changed lately answers `held`: the password takes effect at `hold_until`.
    Sending the same request again after a lost answer says where it went."""
    status = await services.recovery.set_password(case_id, body.reset_token, body.new_password)
    return PasswordChanged(case_id=case_id, state=status.state)
