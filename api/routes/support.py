"""Support claims, for the claimant: file one, follow it, answer questions. The claim token
(`Authorization: Bearer <claim_token>`) is the claimant's only key to the claim."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import AppServices
from api.errors import CLAIM_NOT_FOUND, ApiError
from api.routes.sessions import bearer
from api.support_calls import check_claim_id
from reclaim import claims
from reclaim.claims import ClaimLimited, ClaimRequest
from reclaim.contracts import ClaimantView, ClaimCalls, ClaimReason, ClaimState, ProvideInfo
from reclaim.identifiers import (
    InvalidIdentifier,
    normalize_email,
    normalize_phone,
    normalize_username,
)
from reclaim.models import SupportClaim, utcnow

router = APIRouter(prefix="/v1/support-cases", tags=["support claims"])

_ERROR = {"description": "JSON error: `{error, message, ...}`"}


class ClaimBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "username": "jane",
                    "contact_email": "jane.new@example.net",
                    "reason": "compromised",
                    "registered_email": "jane@example.com",
                    "previous_passwords": ["an old password I remember"],
                    "description": "Someone changed my email and phone on Monday.",
                }
            ]
        },
    )

    username: str = Field(min_length=1, max_length=64)
    contact_email: str = Field(min_length=3, max_length=254, description="Where to reach you now")
    reason: ClaimReason
    registered_email: str | None = Field(default=None, max_length=254)
    registered_phone: str | None = Field(default=None, max_length=32)
    previous_passwords: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list, max_length=claims.MAX_PREVIOUS_PASSWORDS
    )
    description: str | None = Field(default=None, max_length=4000)


class Filed(BaseModel):
    case_id: str
    claim_token: str = Field(description="Shown once (and mailed to the contact address)")
    state: ClaimState


class QuestionOut(BaseModel):
    text: str
    asked_at: datetime
    answered: bool


class DecisionOut(BaseModel):
    outcome: ClaimState
    at: datetime
    note: str | None
    recovery_case_id: str | None = Field(
        description="The self-service case opened to the verified contact, when approved"
    )


class ClaimStatus(BaseModel):
    case_id: str
    state: ClaimState
    questions: list[QuestionOut]
    answer_by: datetime | None
    decision: DecisionOut | None


class AnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=4000)


def _invalid(field: str, err: InvalidIdentifier) -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        f"The request is not valid ({field}: {err}).",
        fields=[{"field": field, "problem": str(err)}],
    )


def _request(body: ClaimBody, region: str | None) -> ClaimRequest:
    fields: dict[str, str | None] = {}
    try:
        fields["username"] = normalize_username(body.username)
    except InvalidIdentifier as err:
        raise _invalid("username", err) from err
    for name, raw in (
        ("contact_email", body.contact_email),
        ("registered_email", body.registered_email),
    ):
        try:
            fields[name] = normalize_email(raw) if raw else None
        except InvalidIdentifier as err:
            raise _invalid(name, err) from err
    try:
        phone = normalize_phone(body.registered_phone, region) if body.registered_phone else None
    except InvalidIdentifier as err:
        raise _invalid("registered_phone", err) from err
    return ClaimRequest(
        username=str(fields["username"]),
        contact_email=str(fields["contact_email"]),
        reason=body.reason,
        registered_email=fields["registered_email"],
        registered_phone=phone,
        previous_passwords=tuple(body.previous_passwords),
        description=body.description,
    )


@router.post(
    "",
    status_code=202,
    response_model=Filed,
    responses={422: _ERROR, 429: _ERROR, 503: _ERROR},
    summary="File a support claim",
)
async def file_claim(body: ClaimBody, services: AppServices) -> Filed:
    """The evidence is checked now; only its results reach the case. An unknown username
    gets the same answer (a reviewer will reject the claim)."""
    request = _request(body, services.settings.default_region)
    filed = await services.cases.call(lambda: services.claims.file(request))
    if isinstance(filed, ClaimLimited):
        raise ApiError(
            429,
            "rate_limited",
            "Too many claims for this contact address: try again later.",
            headers={"Retry-After": str(filed.retry_after)},
            retry_after_seconds=filed.retry_after,
        )
    return Filed(case_id=filed.case_id, claim_token=filed.claim_token, state=filed.state)


async def _claim_for(services: AppServices, case_id: str, authorization: str | None) -> str:
    """The claim a claim token opens; 404 for an unknown claim, 401 for a wrong token."""
    check_claim_id(case_id)
    token = bearer(authorization)

    def read() -> SupportClaim | None:
        with Session(services.engine) as session:
            return session.get(SupportClaim, case_id)

    claim = await asyncio.to_thread(read)
    if claim is None:
        raise CLAIM_NOT_FOUND
    if not claims.token_matches(claim, services.keys, token):
        raise ApiError(
            401,
            "invalid_token",
            "This claim token is not valid for this claim.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return case_id


def _status(view: ClaimantView) -> ClaimStatus:
    decision = view.decision
    return ClaimStatus(
        case_id=view.case_id,
        state=view.state,
        questions=[
            QuestionOut(text=q.text, asked_at=q.asked_at, answered=q.answered_at is not None)
            for q in view.questions
        ],
        answer_by=view.answer_by,
        decision=DecisionOut(
            outcome=decision.outcome,
            at=decision.at,
            note=decision.note,
            recovery_case_id=decision.recovery_case_id,
        )
        if decision
        else None,
    )


@router.get(
    "/{case_id}",
    response_model=ClaimStatus,
    responses={401: _ERROR, 404: _ERROR},
    summary="Follow a claim (claim token)",
)
async def claim_status(
    case_id: str, services: AppServices, authorization: Annotated[str | None, Header()] = None
) -> ClaimStatus:
    await _claim_for(services, case_id, authorization)
    return _status(await services.support.claimant_view(case_id))


@router.post(
    "/{case_id}/info",
    status_code=202,
    response_model=ClaimStatus,
    responses={401: _ERROR, 404: _ERROR, 409: _ERROR},
    summary="Answer the reviewer's questions (claim token)",
)
async def answer(
    case_id: str,
    body: AnswerBody,
    services: AppServices,
    authorization: Annotated[str | None, Header()] = None,
) -> ClaimStatus:
    await _claim_for(services, case_id, authorization)
    at = utcnow()

    def keep() -> int:
        with Session(services.engine) as session:
            return claims.add_answer(session, case_id, body.answer, at)

    def withdraw(round_: int) -> None:
        with Session(services.engine) as session:
            claims.withdraw_answer(session, case_id, round_)

    round_ = await asyncio.to_thread(keep)
    try:
        view = await services.support.update(
            case_id, ClaimCalls.PROVIDE_INFO, ProvideInfo(at), ClaimantView
        )
    except ApiError as err:
        if err.status < 500:  # the case refused it (after a 503 it may have taken it: keep)
            await asyncio.to_thread(withdraw, round_)
        raise
    return _status(view)
