"""The console's pages: signing in and out, the queue, a case file with its actions, and a
claim's audit. Post/redirect/get like the pages; a refused action comes back on the case file
with the refusal in words, where the reviewer acted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.auth import client_address
from api.console import view
from api.deps import AppServices
from api.pages.forms import posted, see_other
from api.pages.render import TEMPLATES as PAGE_TEMPLATES
from api.pages.render import page_locale, render, text_for
from api.pages.security import set_cookie
from reclaim.errors import DomainError, NotFound, Unauthorized, Unavailable
from reclaim.i18n import Text
from reclaim.recovery.lost_factors import choice_key
from reclaim.services import Services
from reclaim.support.audit import Origin
from reclaim.support.claims import CaseFile
from reclaim.support.contracts import ClaimReason, ClaimState, Reviewer, Risk, StaffRole
from reclaim.support.queue import QUEUE_VIEWS, QueueFilter
from reclaim.support.staff import SignedIn

router = APIRouter(prefix="/console", include_in_schema=False)

SESSION_COOKIE = "reclaim_console"
LOGIN_COOKIE = "reclaim_console_login"
LOGIN_PATH = "/console/oidc"
LOGIN_AGE = 600
MAX_QUESTIONS = 10
MAX_TEXT = 2000

templates = Environment(
    loader=ChoiceLoader(
        [
            FileSystemLoader(Path(__file__).resolve().parent / "templates"),
            FileSystemLoader(PAGE_TEMPLATES),
        ]
    ),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _page(
    request: Request,
    services: Services,
    template: str,
    status: int = 200,
    member: Reviewer | None = None,
    **facts: Any,
) -> HTMLResponse:
    """A console page, in the reviewer's language (the language links' choice, else the
    browser's), for `member` (None: signed out)."""
    return render(
        request,
        services.settings,
        template,
        status,
        templates=templates,
        locale=page_locale(request, services.settings),
        member=member,
        provider=services.signin.identity_provider,
        words=view,
        **facts,
    )


def _origin(request: Request) -> Origin:
    return Origin("console", client_address(request))


async def _signed_in(request: Request, services: Services) -> SignedIn | None:
    try:
        return await services.signin.console_member(request.cookies.get(SESSION_COOKIE))
    except Unauthorized:
        return None


def _to_sign_in() -> RedirectResponse:
    return RedirectResponse("/console/signin", status_code=303)


def _signed_out(request: Request, services: Services, status: int = 401) -> HTMLResponse:
    """A post without a session: nothing was done; sign in again."""
    t = text_for(request, services.settings)
    problem = view.Problem(
        t("Your console session ended, or you never signed in: nothing was done.")
    )
    response = _page(request, services, "console_signin.html", status, problem=problem)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


# -- signing in and out ------------------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_page(request: Request, services: AppServices) -> Response:
    if await _signed_in(request, services) is not None:
        return see_other("/console")
    return _page(request, services, "console_signin.html", problem=None)


@router.post("/signin", response_class=HTMLResponse)
async def sign_in_with_key(request: Request, services: AppServices) -> Response:
    form = await posted(request, services.settings)
    t = text_for(request, services.settings)
    if services.signin.identity_provider is not None:
        problem = view.Problem(t("Sign in with your organisation's account."), status=400)
        return _page(request, services, "console_signin.html", 400, problem=problem)
    key = form.get("key", "").strip()
    if not key:
        problem = view.Problem(t("Enter your staff key."), "key", 422)
        return _page(request, services, "console_signin.html", 422, problem=problem)
    try:
        _, token = await services.signin.sign_in_with_key(key, _origin(request))
    except Unauthorized as err:
        problem = view.Problem(view.said(t, err), "key", 401)
        return _page(request, services, "console_signin.html", 401, problem=problem)
    return _session_opened(request, services, token)


@router.get("/signin/sso")
async def sign_in_with_provider(request: Request, services: AppServices) -> Response:
    try:
        url, sealed = await services.signin.begin_sign_in()
    except DomainError as err:
        problem = view.refusal(text_for(request, services.settings), err)
        return _page(request, services, "console_signin.html", problem.status, problem=problem)
    response = RedirectResponse(url, status_code=303)
    set_cookie(
        response, request, LOGIN_COOKIE, sealed, path=LOGIN_PATH, max_age=LOGIN_AGE, samesite="lax"
    )
    return response


@router.get("/oidc/callback", response_class=HTMLResponse)
async def provider_callback(request: Request, services: AppServices) -> Response:
    """The identity provider sends the browser back with a code (or an error)."""
    params = request.query_params
    sealed = request.cookies.get(LOGIN_COOKIE, "")
    t = text_for(request, services.settings)
    if params.get("error"):
        said = params.get("error_description") or params["error"]
        problem = view.Problem(
            t("The identity provider did not sign you in: %(said)s", said=said[:200]), None, 401
        )
    elif not sealed:
        problem = view.Problem(
            t("This sign-in was not started in this browser, or took too long: start again."),
            None,
            400,
        )
    else:
        try:
            _, token = await services.signin.finish_sign_in(
                params.get("code", ""), params.get("state", ""), sealed, _origin(request)
            )
        except DomainError as err:
            problem = view.refusal(t, err)
        else:
            response = _session_opened(request, services, token)
            response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
            return response
    response = _page(request, services, "console_signin.html", problem.status, problem=problem)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


def _session_opened(request: Request, services: Services, token: str) -> Response:
    response = see_other("/console")
    set_cookie(
        response,
        request,
        SESSION_COOKIE,
        token,
        path="/console",
        max_age=services.settings.console_session_ttl,
        samesite="lax",  # it must come back on the identity provider's redirect
    )
    return response


@router.post("/signout", response_class=HTMLResponse)
async def sign_out(request: Request, services: AppServices) -> Response:
    await posted(request, services.settings)
    signed_in = await _signed_in(request, services)
    if signed_in is not None:
        token = request.cookies.get(SESSION_COOKIE, "")
        await services.signin.sign_out(token, signed_in.member, _origin(request))
    response = see_other("/console/signin?out=1")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


# -- the queue ---------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def queue(request: Request, services: AppServices) -> Response:
    signed_in = await _signed_in(request, services)
    if signed_in is None:
        return _to_sign_in()
    member = signed_in.member
    t = text_for(request, services.settings)
    params = request.query_params
    chosen = QueueFilter(
        view=params.get("view") if params.get("view") in QUEUE_VIEWS else None,
        reason=params.get("reason") if params.get("reason") in _REASONS else None,
        state=params.get("state") if params.get("state") in _OPEN_STATES else None,
    )
    try:
        page = await services.claim_queue.console_queue(member, chosen)
    except Unavailable as err:
        problem = view.refusal(t, err)
        return _page(request, services, "console_unavailable.html", 503, member, problem=problem)
    now = datetime.now(UTC)
    rows = []
    for claim in page.claims:
        due, overdue = view.due(t, claim.next_deadline, now)
        rows.append(
            {
                "case_id": claim.case_id,
                "state": view.state_words(t, claim.state),
                "reason": view.words(t, view.REASONS, claim.reason),
                "risk": claim.risk or "-",
                "risk_words": view.words(t, view.RISKS, claim.risk),
                "assignee": claim.assignee,
                "escalated": claim.escalated,
                "age": view.span(t, now - claim.opened_at),
                "opened_at": view.when(claim.opened_at),
                "due": due,
                "overdue": overdue,
                "deadline_for": view.words(t, view.DEADLINES, claim.state, t("deadline")),
                "deadline_at": view.when(claim.next_deadline),
            }
        )
    views = [("", t("All"), page.counts["all"])] + [
        (key, t(label), page.counts.get(key, 0)) for key, label in view.VIEWS.items()
    ]
    return _page(
        request,
        services,
        "console_queue.html",
        200,
        member,
        rows=rows,
        views=views,
        chosen=chosen,
        reasons=[(r, t(view.REASONS[r]), page.counts.get(f"reason:{r}", 0)) for r in _REASONS],
        states=[
            (s, view.state_words(t, s), page.counts.get(f"state:{s}", 0)) for s in _OPEN_STATES
        ],
        truncated=page.truncated,
        matching=page.matching,
        limit=page.limit,
        refresh=services.settings.console_refresh,
        updated_at=f"{now:%H:%M:%S} UTC",
        filtered=chosen != QueueFilter(),
        here=request.url.path + (f"?{_query_string(request)}" if _query_string(request) else ""),
    )


def _query_string(request: Request) -> str:
    return bytes(request.scope.get("query_string", b"")).decode("latin-1")


_REASONS = [reason.value for reason in ClaimReason]
_OPEN_STATES = [state.value for state in ClaimState if state.is_open]


# -- a case file -------------------------------------------------------------------------------


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_file(request: Request, case_id: str, services: AppServices) -> Response:
    signed_in = await _signed_in(request, services)
    if signed_in is None:
        return _to_sign_in()
    done = request.query_params.get("done") or ""
    t = text_for(request, services.settings)
    notice = t(view.DONE[done]) if done in view.DONE else None
    return await _case(request, services, signed_in.member, case_id, notice=notice)


ACTIONS = ("assign", "release", "ask", "approve", "confirm", "reject")


@router.post("/cases/{case_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, case_id: str, action: str, services: AppServices) -> Response:
    form = await posted(request, services.settings)
    signed_in = await _signed_in(request, services)
    if signed_in is None:
        return _signed_out(request, services)
    member = signed_in.member
    if action not in ACTIONS:
        return _page(request, services, "console_gone.html", 404, member)
    claims, origin = services.claims, _origin(request)
    t = text_for(request, services.settings)
    note = form.get("note", "").strip()[:MAX_TEXT] or None
    try:
        if action == "assign":
            to = form.get("to", "").strip() or None
            await claims.assign(case_id, member, to, origin)
            done = "assigned"
        elif action == "release":
            await claims.release(case_id, member, origin)
            done = "released"
        elif action == "ask":
            questions = [q.strip() for q in form.get("questions", "").splitlines() if q.strip()]
            if not questions:
                problem = view.Problem(
                    t("Write at least one question, one per line."), "questions", 422
                )
                return await _case(request, services, member, case_id, problem=problem, kept=form)
            if len(questions) > MAX_QUESTIONS or any(len(q) > 1000 for q in questions):
                problem = view.Problem(
                    t(
                        "Ask at most %(most)d questions of 1000 characters each.",
                        most=MAX_QUESTIONS,
                    ),
                    "questions",
                    422,
                )
                return await _case(request, services, member, case_id, problem=problem, kept=form)
            await claims.request_info(case_id, member, questions, origin)
            done = "asked"
        elif action == "approve":
            # A lost-authenticator claim's form: a box per factor, ticked ones removed.
            chosen = (
                [key.removeprefix("remove:") for key in form if key.startswith("remove:")]
                if form.get("choosing")
                else None
            )
            decided = await claims.approve(case_id, member, note, origin, chosen)
            done = "requested" if decided.state is ClaimState.AWAITING_CONFIRMATION else "approved"
        elif action == "confirm":
            await claims.confirm(case_id, member, note, origin)
            done = "confirmed"
        else:
            reason = form.get("reason", "").strip()[:MAX_TEXT]
            if not reason:
                problem = view.Problem(
                    t("Write the reason: the claimant reads it in our mail."), "reason", 422
                )
                return await _case(request, services, member, case_id, problem=problem, kept=form)
            await claims.reject(case_id, member, reason, origin)
            done = "rejected"
    except DomainError as err:
        if isinstance(err, NotFound):
            return _page(request, services, "console_gone.html", 404, member)
        problem = view.refusal(t, err)
        return await _case(request, services, member, case_id, problem=problem, kept=form)
    return see_other(f"/console/cases/{case_id}?done={done}")


async def _case(
    request: Request,
    services: Services,
    member: Reviewer,
    case_id: str,
    *,
    problem: view.Problem | None = None,
    notice: str | None = None,
    kept: dict[str, str] | None = None,
) -> Response:
    try:
        found = await services.claims.case_file(case_id)
        staff = [m.name for m in await services.staff_members.staff() if m.disabled_at is None]
    except NotFound:
        return _page(request, services, "console_gone.html", 404, member)
    except DomainError as err:
        refused = view.refusal(text_for(request, services.settings), err)
        return _page(request, services, "console_unavailable.html", 503, member, problem=refused)
    status = problem.status if problem else 200
    return _page(
        request,
        services,
        "console_case.html",
        status,
        member,
        claim=_facts(text_for(request, services.settings), found, member),
        staff=staff,
        problem=problem,
        notice=notice,
        kept=kept or {},
    )


def _facts(t: Text, found: CaseFile, member: Reviewer) -> dict[str, Any]:
    v = found.view
    now = datetime.now(UTC)
    due, overdue = view.due(t, v.next_deadline, now)
    answers: dict[int, list[str]] = {}
    for answer in found.answers:
        answers.setdefault(answer.round, []).append(answer.text)
    asked = v.approval_request
    supervisor = member.role is StaffRole.SUPERVISOR
    factors = [
        {
            "kind": view.words(t, view.FACTORS, f.kind.value),
            "name": f.name,
            "choice": choice_key(f),
            "enrolled": view.when(f.enrolled_at),
            "last_used": view.when(f.last_used_at) if f.last_used_at else t("never"),
            "left": f.remaining,
        }
        for f in (found.account.factors if found.account else [])
    ]
    removing = None
    if asked is not None and asked.remove_factors is not None:
        named = {f["choice"]: f for f in factors}
        removing = [named[key] for key in asked.remove_factors if key in named]
    return {
        "case_id": v.case_id,
        "state": v.state.value,
        "state_words": view.state_words(t, v.state.value),
        "open": v.state.is_open,
        "reason": view.words(t, view.REASONS, v.reason.value),
        "risk": v.risk.value,
        "risk_words": view.words(t, view.RISKS, v.risk.value),
        "risk_reason": view.risk_reason(t, v.evidence),
        "high_risk": v.risk is Risk.HIGH,
        "checks": view.evidence_checks(t, v.evidence),
        "account_found": v.evidence.account_found,
        "status_then": view.words(t, view.ACCOUNT_STATUSES, v.evidence.account_status),
        "account_age": (
            t.plural("%(num)d day", "%(num)d days", v.evidence.account_age_days)
            if v.evidence.account_age_days is not None
            else "-"
        ),
        "account": found.account,
        "factors": factors,
        "lost_authenticator": v.reason is ClaimReason.LOST_AUTHENTICATOR,
        "assignee": v.assignee,
        "mine": v.assignee == member.name,
        "escalated": v.escalated,
        "opened_at": view.when(v.opened_at),
        "age": view.span(t, now - v.opened_at),
        "deadline_for": view.words(t, view.DEADLINES, v.state.value, ""),
        "deadline_at": view.when(v.next_deadline),
        "due": due,
        "overdue": overdue,
        "contact_email": found.contact_email,
        "description": found.description,
        "questions": [
            {
                "n": q.n,
                "text": q.text,
                "asked_by": q.asked_by,
                "asked_at": view.when(q.asked_at),
                "answered_at": view.when(q.answered_at) if q.answered_at else None,
            }
            for q in v.questions
        ],
        "answers": sorted(answers.items()),
        "timeline": [
            {"at": view.when(e.at), "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in v.timeline
        ],
        "decision": v.decision,
        "decided_at": view.when(v.decision.at) if v.decision else None,
        "approval_request": {
            "by": asked.by_name,
            "at": view.when(asked.at),
            "note": asked.note,
            "confirm_by": view.when(asked.confirm_by),
            "mine": asked.by_name == member.name,
            "removing": removing,
        }
        if asked
        else None,
        "recovery_cases": [
            {
                "case_id": c.case_id,
                "opened_at": view.when(c.opened_at),
                "state": view.words(t, view.RECOVERY_STATES, c.state, c.state or t("open")),
                "channel": view.words(t, view.CHANNELS, c.channel),
                "second_factor": view.words(t, view.FACTORS, c.second_factor, c.second_factor),
            }
            for c in found.recovery_cases
        ],
        "other_claims": [
            {
                "case_id": c.case_id,
                "opened_at": view.when(c.opened_at),
                "reason": view.words(t, view.REASONS, c.reason),
                "state": view.state_words(t, c.state),
            }
            for c in found.other_claims
        ],
        "supervisor": supervisor,
        "needs_confirmation": (v.risk is Risk.HIGH and not supervisor)
        or v.reason is ClaimReason.LOST_AUTHENTICATOR,
        "can_ask": v.state is ClaimState.IN_REVIEW,
        "can_decide": v.state in (ClaimState.IN_REVIEW, ClaimState.AWAITING_CLAIMANT),
        "awaiting_confirmation": v.state is ClaimState.AWAITING_CONFIRMATION,
    }


# -- a claim's audit ---------------------------------------------------------------------------


@router.get("/cases/{case_id}/audit", response_class=HTMLResponse)
async def case_audit(request: Request, case_id: str, services: AppServices) -> Response:
    signed_in = await _signed_in(request, services)
    if signed_in is None:
        return _to_sign_in()
    member = signed_in.member
    try:
        found = await services.claims.staff_view(case_id)
    except NotFound:
        return _page(request, services, "console_gone.html", 404, member)
    except DomainError as err:
        refused = view.refusal(text_for(request, services.settings), err)
        return _page(request, services, "console_unavailable.html", 503, member, problem=refused)
    entries = await services.staff_members.audit_entries(case_id=case_id)
    return _page(
        request,
        services,
        "console_audit.html",
        200,
        member,
        case_id=found.case_id,
        state_words=view.state_words(text_for(request, services.settings), found.state.value),
        entries=[
            {
                "at": view.when(e.at),
                "who": e.staff_name,
                "role": e.role or "-",
                "where": f"{e.channel} ({e.address})" if e.address else e.channel,
                "action": e.action,
                "detail": e.detail,
                "outcome": e.outcome,
            }
            for e in entries
        ],
    )
