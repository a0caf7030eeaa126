"""Self-service recovery: open a case, prove the code, choose a new password."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import AppServices
from api.errors import ApiError, refusal_for
from reclaim import cases
from reclaim.contracts import (
    CaseError,
    CaseState,
    Channel,
    Delivery,
    RecoveryInput,
    RecoveryStatus,
    SetPassword,
    SubmitCode,
)
from reclaim.identifiers import InvalidIdentifier, parse_identifier
from reclaim.recovery import PasswordRefused, forget_case, open_recovery_case, prepare_new_password
from reclaim.security import new_case_id, new_token

log = structlog.get_logger(__name__)
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
    delivery: Literal["sending", "retrying", "sent", "failed"] = Field(
        description="Where the current code is: `retrying` while the provider is failing."
    )
    delivery_attempts: int | None = None

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
            delivery=delivery,
            delivery_attempts=delivery_attempts or None,
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


class ResetGranted(BaseModel):
    reset_token: str = Field(description="Single-use; send it with the new password.")
    reset_expires_at: datetime


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
    an account exists under the identifier."""
    settings = services.settings
    try:
        identifier = parse_identifier(body.identifier, settings.default_region)
    except InvalidIdentifier as err:
        raise ApiError(
            422,
            "invalid_identifier",
            f"Give the email address, phone number or username of the account ({err}).",
        ) from err
    case_id = new_case_id()
    opened_at = datetime.now(UTC)
    opening = await asyncio.to_thread(
        lambda: open_recovery_case(
            services.engine,
            services.keys,
            case_id=case_id,
            identifier=identifier,
            requested=body.channel,
            opened_at=opened_at,
            per_hour=settings.cases_per_hour,
            region=settings.default_region,
        )
    )
    if isinstance(opening.outcome, cases.RateLimited):
        retry_after = opening.outcome.retry_after
        raise ApiError(
            429,
            "rate_limited",
            "Too many recovery requests for this account. Try again later.",
            headers={"Retry-After": str(retry_after)},
            retry_after_seconds=retry_after,
        )
    plan = opening.plan
    case = RecoveryInput(
        case_id=case_id,
        account_id=plan.account_id,
        channel=plan.channel,
        destination=plan.destination,
        opened_at=opened_at,
        rules=settings.recovery_rules,
    )
    status = RecoveryStatus.at_opening(case)
    try:
        await services.cases.start(case, status)
    except Exception as err:
        log.warning("case_start_failed", case_id=case_id, error=type(err).__name__)
        await asyncio.to_thread(forget_case, services.engine, case_id)
        raise ApiError(
            503,
            "temporarily_unavailable",
            "Recovery is not available right now. Try again in a few seconds.",
            headers={"Retry-After": "5"},
        ) from err
    await services.cases.supersede(opening.outcome.superseded)
    return CaseView.of(status)


@router.get(
    "/{case_id}", response_model=CaseView, responses={404: _ERROR}, summary="Where a case is"
)
async def get_case(case_id: str, services: AppServices) -> CaseView:
    status = await services.cases.status(case_id)
    attempts = 0
    if status.delivery is Delivery.SENDING and status.state.is_open:
        attempts = await services.cases.delivery_attempts(case_id)
    return CaseView.of(status, attempts)


@router.post(
    "/{case_id}/code",
    response_model=ResetGranted,
    responses={400: _ERROR, 404: _ERROR, 409: _ERROR, 410: _ERROR, 423: _ERROR},
    summary="Prove the code",
)
async def submit_code(case_id: str, body: CodeRequest, services: AppServices) -> ResetGranted:
    """A right code returns a single-use reset token; a wrong one says how many tries are
    left; the last wrong one locks the case."""
    keys = services.keys
    token = new_token()
    accepted = await services.cases.submit_code(
        case_id, SubmitCode(keys.code_digest(case_id, body.code), keys.token_digest(token))
    )
    return ResetGranted(reset_token=token, reset_expires_at=accepted.reset_expires_at)


@router.post(
    "/{case_id}/resend",
    status_code=202,
    response_model=CaseView,
    responses={404: _ERROR, 409: _ERROR, 423: _ERROR, 429: _ERROR},
    summary="Send a fresh code",
)
async def resend_code(case_id: str, services: AppServices) -> CaseView:
    """The previous code stops working. The wait between codes doubles each time."""
    return CaseView.of(await services.cases.resend_code(case_id))


@router.post(
    "/{case_id}/password",
    response_model=PasswordChanged,
    responses={403: _ERROR, 404: _ERROR, 409: _ERROR, 410: _ERROR, 422: _ERROR},
    summary="Choose the new password",
)
async def set_password(
    case_id: str, body: PasswordRequest, services: AppServices
) -> PasswordChanged:
    """Every session of the account is signed out and every contact told."""
    token_digest = services.keys.token_digest(body.reset_token)
    # The token is checked first: nobody without one makes the server hash anything.
    context = await services.cases.reset_context(case_id, token_digest)
    if context.problem is not None or context.account_id is None:
        raise refusal_for(context.problem or CaseError.INVALID_TOKEN)
    try:
        password_hash = await asyncio.to_thread(
            prepare_new_password,
            services.engine,
            services.passwords,
            context.account_id,
            body.new_password,
        )
    except PasswordRefused as refused:
        raise _password_refusal(refused) from refused
    status = await services.cases.set_password(case_id, SetPassword(token_digest, password_hash))
    return PasswordChanged(case_id=case_id, state=status.state)


def _password_refusal(refused: PasswordRefused) -> ApiError:
    if refused.error == "weak_password" and refused.verdict is not None:
        return ApiError(
            422,
            "weak_password",
            "Choose a stronger password.",
            reasons=refused.verdict.reasons,
            hints=refused.verdict.hints,
        )
    if refused.error == "password_reused":
        return ApiError(
            422, "password_reused", "Choose a password you have not used for this account."
        )
    return ApiError(409, "invalid_state", "This case cannot change the password now.")
