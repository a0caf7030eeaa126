"""The support team's API: the claim queue, a claim in full, and the decisions. Every call
needs a staff key (`Authorization: Bearer rk_…`, from `reclaim staff add`)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import AppServices
from api.errors import ApiError
from api.support_calls import check_claim_id
from reclaim import claims, staff
from reclaim.contracts import (
    Approve,
    AssignRequest,
    ClaimCalls,
    ClaimReason,
    ClaimState,
    ClaimView,
    Decision,
    Evidence,
    Question,
    Reject,
    RequestInfo,
    Reviewer,
    Risk,
    TimelineEntry,
)
from reclaim.models import SupportClaim

router = APIRouter(prefix="/v1/staff", tags=["support staff"])

_ERROR = {"description": "JSON error: `{error, message, ...}`"}
STAFF_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


async def staff_member(
    services: AppServices, authorization: Annotated[str | None, Header()] = None
) -> Reviewer:
    scheme, _, key = (authorization or "").partition(" ")

    def check() -> Reviewer | None:
        with Session(services.engine) as session:
            return staff.authenticate(session, services.keys, key.strip())

    member = await asyncio.to_thread(check) if scheme.lower() == "bearer" else None
    if member is None:
        raise ApiError(
            401,
            "invalid_key",
            "Send a staff API key as `Authorization: Bearer rk_…` (from `reclaim staff add`).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return member


Staff = Annotated[Reviewer, Depends(staff_member)]


class QueueItem(BaseModel):
    case_id: str
    state: ClaimState
    reason: ClaimReason | None
    risk: Risk | None
    assignee: str | None
    escalated: bool
    opened_at: datetime
    next_deadline: datetime | None


class Queue(BaseModel):
    cases: list[QueueItem]


class AnswerOut(BaseModel):
    round: int
    text: str
    at: datetime


class Claimant(BaseModel):
    contact_email: str
    description: str | None


class ClaimDetail(BaseModel):
    case_id: str
    state: ClaimState
    reason: ClaimReason
    risk: Risk
    evidence: dict[str, Any]
    assignee: str | None
    escalated: bool
    opened_at: datetime
    next_deadline: datetime | None
    claimant: Claimant
    questions: list[dict[str, Any]]
    answers: list[AnswerOut]
    timeline: list[dict[str, Any]]
    decision: dict[str, Any] | None


def _plain(value: Question | TimelineEntry | Decision | Evidence) -> dict[str, Any]:
    return asdict(value)


@router.get(
    "/cases",
    response_model=Queue,
    responses={401: _ERROR},
    summary="The claim queue (open claims unless a state is asked for), oldest first",
)
async def queue(
    services: AppServices,
    member: Staff,
    state: ClaimState | None = None,
    reason: ClaimReason | None = None,
    risk: Risk | None = None,
    assignee: Annotated[str | None, Query(pattern=STAFF_NAME.pattern)] = None,
    escalated: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Queue:
    filters: dict[str, str | bool] = {}
    for name, value in (("state", state), ("reason", reason), ("risk", risk)):
        if value is not None:
            filters[name] = value.value
    if assignee is not None:
        filters["assignee"] = assignee
    if escalated is not None:
        filters["escalated"] = escalated
    found = await services.support.queue(filters, limit)
    return Queue(cases=[QueueItem(**case) for case in found])


@router.get(
    "/cases/{case_id}",
    response_model=ClaimDetail,
    responses={401: _ERROR, 404: _ERROR},
    summary="A claim in full: evidence, risk, what the claimant wrote, who did what",
)
async def claim(case_id: str, services: AppServices, member: Staff) -> ClaimDetail:
    view = await services.support.staff_view(check_claim_id(case_id))

    def read() -> tuple[SupportClaim | None, list[AnswerOut]]:
        with Session(services.engine) as session:
            row = session.get(SupportClaim, case_id)
            given = [
                AnswerOut(round=a.round, text=a.text, at=a.at)
                for a in claims.answers(session, case_id)
            ]
            return row, given

    row, given = await asyncio.to_thread(read)
    return _detail(view, row, given)


def _detail(view: ClaimView, row: SupportClaim | None, given: list[AnswerOut]) -> ClaimDetail:
    return ClaimDetail(
        case_id=view.case_id,
        state=view.state,
        reason=view.reason,
        risk=view.risk,
        evidence=_plain(view.evidence),
        assignee=view.assignee,
        escalated=view.escalated,
        opened_at=view.opened_at,
        next_deadline=view.next_deadline,
        claimant=Claimant(
            contact_email=row.contact_email if row else "",
            description=row.description if row else None,
        ),
        questions=[_plain(q) for q in view.questions],
        answers=given,
        timeline=[_plain(e) for e in view.timeline],
        decision=_plain(view.decision) if view.decision else None,
    )


class Summary(BaseModel):
    case_id: str
    state: ClaimState
    assignee: str | None
    decision: dict[str, Any] | None


def _summary(view: ClaimView) -> Summary:
    return Summary(
        case_id=view.case_id,
        state=view.state,
        assignee=view.assignee,
        decision=_plain(view.decision) if view.decision else None,
    )


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(
        default=None, pattern=STAFF_NAME.pattern, description="Default: yourself"
    )


class QuestionsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    questions: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(
        min_length=1, max_length=10
    )


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000)


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


_DECISION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _ERROR,
    403: _ERROR,
    404: _ERROR,
    409: _ERROR,
}


@router.post(
    "/cases/{case_id}/assign",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Take a claim (or, as a supervisor, give it to someone)",
)
async def assign(
    case_id: str, services: AppServices, member: Staff, body: AssignBody | None = None
) -> Summary:
    to = body.assignee if body else None
    if to is not None and to != member.name:

        def exists() -> bool:
            with Session(services.engine) as session:
                return staff.find(session, to) is not None

        if not await asyncio.to_thread(exists):
            raise ApiError(422, "unknown_assignee", f"No member of staff is named {to}.")
    request = AssignRequest(member, to)
    return _summary(await services.support.update(case_id, ClaimCalls.ASSIGN, request, ClaimView))


@router.post(
    "/cases/{case_id}/request-info",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Ask the claimant questions (they are mailed; the answer window starts)",
)
async def request_info(
    case_id: str, body: QuestionsBody, services: AppServices, member: Staff
) -> Summary:
    request = RequestInfo(member, list(body.questions))
    return _summary(
        await services.support.update(case_id, ClaimCalls.REQUEST_INFO, request, ClaimView)
    )


@router.post(
    "/cases/{case_id}/approve",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Approve: the resolution is applied before this answers",
)
async def approve(
    case_id: str, services: AppServices, member: Staff, body: ApproveBody | None = None
) -> Summary:
    request = Approve(member, body.note if body else None)
    return _summary(await services.support.update(case_id, ClaimCalls.APPROVE, request, ClaimView))


@router.post(
    "/cases/{case_id}/reject",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Reject, with the reason the claimant will read",
)
async def reject(case_id: str, body: RejectBody, services: AppServices, member: Staff) -> Summary:
    request = Reject(member, body.reason)
    return _summary(await services.support.update(case_id, ClaimCalls.REJECT, request, ClaimView))
