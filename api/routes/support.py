"""Support claims over HTTP. For the claimant (`/v1/support-cases`): file one, follow it,
answer questions, with the claim token (`Authorization: Bearer <claim_token>`) as the only key
to the claim. For the support team (`/v1/staff`): the claim queue, a claim in full, and the
decisions, each with a staff key (`Authorization: Bearer rk_…`, from `reclaim staff add`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.auth import ApiOrigin, ClaimToken, StaffMember
from api.deps import AppServices
from reclaim.recovery.lost_factors import choice_key
from reclaim.support.contracts import (
    ClaimantView,
    ClaimReason,
    ClaimState,
    ClaimView,
    Decision,
    Evidence,
    Question,
    Risk,
    TimelineEntry,
)
from reclaim.support.evidence import MAX_PREVIOUS_PASSWORDS
from reclaim.support.members import STAFF_NAME
from reclaim.support.queue import decode_cursor, encode_cursor, page_after

claimant = APIRouter(prefix="/v1/support-cases", tags=["support claims"])
staff = APIRouter(prefix="/v1/staff", tags=["support staff"])

_ERROR = {"description": "JSON error: `{error, message, ...}`"}


# -- the claimant ------------------------------------------------------------------------------


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
        default_factory=list, max_length=MAX_PREVIOUS_PASSWORDS
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


@claimant.post(
    "",
    status_code=202,
    response_model=Filed,
    responses={422: _ERROR, 429: _ERROR, 503: _ERROR},
    summary="File a support claim",
)
async def file_claim(body: ClaimBody, services: AppServices) -> Filed:
    """The evidence is checked now; only its results reach the case. An unknown username
    gets the same answer (a reviewer will reject the claim)."""
    filed = await services.claims.file(
        username=body.username,
        contact_email=body.contact_email,
        reason=body.reason,
        registered_email=body.registered_email,
        registered_phone=body.registered_phone,
        previous_passwords=body.previous_passwords,
        description=body.description,
    )
    return Filed(case_id=filed.case_id, claim_token=filed.claim_token, state=filed.state)


@claimant.get(
    "/{case_id}",
    response_model=ClaimStatus,
    responses={401: _ERROR, 404: _ERROR},
    summary="Follow a claim (claim token)",
)
async def claim_status(case_id: str, services: AppServices, token: ClaimToken) -> ClaimStatus:
    return _status(await services.claims.claimant_view(case_id, token))


@claimant.post(
    "/{case_id}/info",
    status_code=202,
    response_model=ClaimStatus,
    responses={401: _ERROR, 404: _ERROR, 409: _ERROR},
    summary="Answer the reviewer's questions (claim token)",
)
async def answer(
    case_id: str, body: AnswerBody, services: AppServices, token: ClaimToken
) -> ClaimStatus:
    return _status(await services.claims.answer(case_id, token, body.answer))


# -- the support team --------------------------------------------------------------------------


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
    next: str | None = Field(
        default=None,
        description="The `after` of the next page; none when this page is the last",
    )


class AnswerOut(BaseModel):
    round: int
    text: str
    at: datetime


class Claimant(BaseModel):
    contact_email: str
    description: str | None


class FactorOut(BaseModel):
    """One second factor of the claim's account: never a secret."""

    choice: str = Field(description="How an approval's remove_factors names it")
    kind: str = Field(description="totp, recovery_code or webauthn (a passkey)")
    name: str | None = Field(default=None, description="A passkey's name")
    enrolled_at: datetime
    last_used_at: datetime | None
    remaining: int | None = Field(default=None, description="Recovery codes left")


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
    factors: list[FactorOut] = Field(
        default_factory=list, description="The account's second factors, when they were used"
    )
    approval_request: dict[str, Any] | None = Field(
        default=None, description="A reviewer's approval waiting for a supervisor"
    )


def _plain(value: Question | TimelineEntry | Decision | Evidence) -> dict[str, Any]:
    return asdict(value)


@staff.get(
    "/cases",
    response_model=Queue,
    responses={401: _ERROR},
    summary="The claim queue (open claims unless a state is asked for), nearest deadline first",
    description="A page at a time: pass the answer's `next` as `after` for the next page. "
    "Pages neither skip nor repeat a claim that did not change meanwhile (a claim whose "
    "deadline moved may move to another page).",
)
async def queue(
    services: AppServices,
    member: StaffMember,
    state: ClaimState | None = None,
    reason: ClaimReason | None = None,
    risk: Risk | None = None,
    assignee: Annotated[str | None, Query(pattern=STAFF_NAME.pattern)] = None,
    escalated: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[str | None, Query(max_length=200, description="A page's `next`")] = None,
) -> Queue:
    filters: dict[str, str | bool] = {}
    for name, value in (("state", state), ("reason", reason), ("risk", risk)):
        if value is not None:
            filters[name] = value.value
    if assignee is not None:
        filters["assignee"] = assignee
    if escalated is not None:
        filters["escalated"] = escalated
    place = decode_cursor(after) if after is not None else None
    found = await services.claim_queue.queue(filters, limit + 1, place)
    page, more = found[:limit], len(found) > limit
    last = page[-1] if more else None
    return Queue(
        cases=[QueueItem(**asdict(case)) for case in page],
        next=encode_cursor(page_after(last)) if last else None,
    )


@staff.get(
    "/cases/{case_id}",
    response_model=ClaimDetail,
    responses={401: _ERROR, 404: _ERROR},
    summary="A claim in full: evidence, risk, what the claimant wrote, who did what",
)
async def claim(case_id: str, services: AppServices, member: StaffMember) -> ClaimDetail:
    found = await services.claims.case_file(case_id)
    view = found.view
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
        claimant=Claimant(contact_email=found.contact_email, description=found.description),
        questions=[_plain(q) for q in view.questions],
        answers=[AnswerOut(round=a.round, text=a.text, at=a.at) for a in found.answers],
        timeline=[_plain(e) for e in view.timeline],
        decision=_plain(view.decision) if view.decision else None,
        factors=[
            FactorOut(
                choice=choice_key(f),
                kind=f.kind.value,
                name=f.name,
                enrolled_at=f.enrolled_at,
                last_used_at=f.last_used_at,
                remaining=f.remaining,
            )
            for f in (found.account.factors if found.account else [])
        ],
        approval_request=asdict(view.approval_request) if view.approval_request else None,
    )


class Summary(BaseModel):
    case_id: str
    state: ClaimState
    assignee: str | None
    decision: dict[str, Any] | None


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
    remove_factors: list[Annotated[str, Field(min_length=1, max_length=1400)]] | None = Field(
        default=None,
        max_length=50,
        description="A lost_authenticator claim: the second factors (each factor's `choice` in "
        "the claim) removed when the recovery's hold ends; default: all of them",
    )


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


_DECISION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _ERROR,
    403: _ERROR,
    404: _ERROR,
    409: _ERROR,
}


def _summary(view: ClaimView) -> Summary:
    return Summary(
        case_id=view.case_id,
        state=view.state,
        assignee=view.assignee,
        decision=_plain(view.decision) if view.decision else None,
    )


@staff.post(
    "/cases/{case_id}/assign",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Take a claim (or, as a supervisor, give it to someone)",
)
async def assign(
    case_id: str,
    services: AppServices,
    member: StaffMember,
    origin: ApiOrigin,
    body: AssignBody | None = None,
) -> Summary:
    to = body.assignee if body else None
    return _summary(await services.claims.assign(case_id, member, to, origin))


@staff.post(
    "/cases/{case_id}/release",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Give a claim back to the queue (its assignee, or a supervisor)",
)
async def release(
    case_id: str, services: AppServices, member: StaffMember, origin: ApiOrigin
) -> Summary:
    return _summary(await services.claims.release(case_id, member, origin))


@staff.post(
    "/cases/{case_id}/request-info",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Ask the claimant questions (they are mailed; the answer window starts)",
)
async def request_info(
    case_id: str, body: QuestionsBody, services: AppServices, member: StaffMember, origin: ApiOrigin
) -> Summary:
    questions = list(body.questions)
    return _summary(await services.claims.request_info(case_id, member, questions, origin))


@staff.post(
    "/cases/{case_id}/approve",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Approve: applied before this answers; a reviewer's high-risk approval waits for "
    "a supervisor's confirmation (state awaiting_confirmation)",
)
async def approve(
    case_id: str,
    services: AppServices,
    member: StaffMember,
    origin: ApiOrigin,
    body: ApproveBody | None = None,
) -> Summary:
    note = body.note if body else None
    chosen = body.remove_factors if body else None
    return _summary(await services.claims.approve(case_id, member, note, origin, chosen))


@staff.post(
    "/cases/{case_id}/confirm",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Confirm a reviewer's approval of a high-risk claim (a supervisor, not its author)",
)
async def confirm(
    case_id: str,
    services: AppServices,
    member: StaffMember,
    origin: ApiOrigin,
    body: ApproveBody | None = None,
) -> Summary:
    """The two-person rule: the resolution is applied before this answers."""
    note = body.note if body else None
    return _summary(await services.claims.confirm(case_id, member, note, origin))


@staff.post(
    "/cases/{case_id}/reject",
    status_code=202,
    response_model=Summary,
    responses=_DECISION_ERRORS,
    summary="Reject, with the reason the claimant will read",
)
async def reject(
    case_id: str, body: RejectBody, services: AppServices, member: StaffMember, origin: ApiOrigin
) -> Summary:
    return _summary(await services.claims.reject(case_id, member, body.reason, origin))
