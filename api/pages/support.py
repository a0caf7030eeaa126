"""The pages of a support claim, for the person who cannot use self-service: the form (the
reason in plain words, what to prepare, the evidence), what happens next, and the claim's
page (its state in plain words, the questions and an answer form, the decision and, for an
approval, the way on into the recovery).

The claim token is the claimant's only key. The link in the first mail carries it once: the
page keeps it in a cookie scoped to the claim's pages and sends the browser to the address
without it, so it stays out of the history, the logs and any `Referer`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import AppServices
from api.errors import from_domain
from api.guard import is_claim_id
from api.pages.forms import posted, see_other
from api.pages.refusals import Refusal, forget, refused, shown
from api.pages.render import page_locale, render, text_for
from api.pages.security import set_cookie
from api.pages.words import Problem, problem
from reclaim.errors import DomainError, NotFound, Unauthorized
from reclaim.i18n import Text
from reclaim.services import Services
from reclaim.support.contracts import ClaimantView, ClaimReason, ClaimState
from reclaim.support.evidence import MAX_PREVIOUS_PASSWORDS

router = APIRouter(include_in_schema=False)

CLAIM_COOKIE = "reclaim_claim"
REASONS = [reason.value for reason in ClaimReason]
PASSWORD_FIELDS = (
    MAX_PREVIOUS_PASSWORDS  # all without JavaScript; with it, one, then more on demand
)
CLAIM_COOKIE_AGE = 60 * 86_400  # a claim lives for days or weeks
FORM = "/support"


@router.get("/support", response_class=HTMLResponse)
async def claim_form(request: Request, services: AppServices) -> Response:
    """The form; after a refused one, its problem and what was typed (never a password)."""
    again = await shown(request, services, FORM)
    if again is not None:
        page = _form(request, services, again.typed, again.problem, again.status)
        return forget(page, request, FORM)
    reason = request.query_params.get("reason")
    values = {"reason": reason if reason in REASONS else ""}
    if request.query_params.get("about") == "authenticator":
        # From a recovery's second-factor step ("I lost my authenticator"): the reason chosen,
        # and a start of the description.
        values["reason"] = ClaimReason.LOST_AUTHENTICATOR.value
        t = text_for(request, services.settings)
        values["description"] = t(
            "I lost my second factor (my authenticator app or passkey, and my recovery codes)."
        )
    return _form(request, services, values)


def _form(
    request: Request,
    services: Services,
    values: dict[str, str],
    found: Problem | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        services.settings,
        "support_form.html",
        status,
        values=values,
        reasons=REASONS,
        password_fields=PASSWORD_FIELDS,
        problem=found,
        sla=services.settings.first_response_sla,
    )


@router.post("/support", response_class=HTMLResponse)
async def file_claim(request: Request, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    t = text_for(request, settings)
    values = {k: form.get(k, "").strip() for k in _KEPT}
    reason = form.get("reason", "")
    if reason not in REASONS:
        found = Problem(t("Choose what happened."), "reason")
        return await refused(request, services, FORM, Refusal(found, 422, values))
    for field in ("username", "contact_email"):
        if not values[field]:
            found = Problem(_REQUIRED[field](t), field)
            return await refused(request, services, FORM, Refusal(found, 422, values))
    passwords = [form.get(f"password_{n}", "") for n in range(PASSWORD_FIELDS)]
    try:
        filed = await services.claims.file(
            username=values["username"],
            contact_email=values["contact_email"],
            reason=ClaimReason(reason),
            registered_email=values["registered_email"] or None,
            registered_phone=values["registered_phone"] or None,
            previous_passwords=[p for p in passwords if p],
            description=values["description"] or None,
            locale=page_locale(request, settings),
        )
    except DomainError as err:
        status = from_domain(err).status
        return await refused(request, services, FORM, Refusal(problem(t, err), status, values))
    response = see_other(f"/support/claims/{filed.case_id}?filed=1")
    _keep_token(response, request, filed.case_id, filed.claim_token)
    return response


_KEPT = (
    "reason",
    "username",
    "contact_email",
    "registered_email",
    "registered_phone",
    "description",
)
_REQUIRED = {
    "username": lambda t: t("Enter the username of the account."),
    "contact_email": lambda t: t("Enter an email address where we can reach you now."),
}


@router.get("/support/claims/{case_id}", response_class=HTMLResponse)
async def claim_page(request: Request, case_id: str, services: AppServices) -> Response:
    token = request.query_params.get("token")
    if token:  # the link from the first mail: keep the token, take it out of the address
        try:
            await services.claims.claimant_view(case_id, token)
        except DomainError as err:
            return await _claim(request, services, case_id, None, err)
        response = see_other(_claim_path(case_id))
        _keep_token(response, request, case_id, token)
        return response
    again = await shown(request, services, _claim_path(case_id))
    token = request.cookies.get(CLAIM_COOKIE)
    if again is None:
        return await _claim(request, services, case_id, token)
    page = await _claim(
        request, services, case_id, token, None, again.problem, again.status, again.typed
    )
    return forget(page, request, _claim_path(case_id))


@router.get("/support/claims/{case_id}/answer")
@router.get("/support/claims/{case_id}/token")
async def back_to_claim(case_id: str) -> Response:
    """The address a form posts to, opened as a page (a refused form is shown there: its
    language links, a reload from the address bar): the claim's page."""
    return see_other(_claim_path(case_id))


@router.post("/support/claims/{case_id}/token", response_class=HTMLResponse)
async def enter_token(request: Request, case_id: str, services: AppServices) -> Response:
    form = await posted(request, services.settings)
    token = form.get("token", "").strip()
    try:
        await services.claims.claimant_view(case_id, token)
    except DomainError as err:
        return await _refused(request, services, case_id, err)
    response = see_other(_claim_path(case_id))
    _keep_token(response, request, case_id, token)
    return response


@router.post("/support/claims/{case_id}/answer", response_class=HTMLResponse)
async def answer(request: Request, case_id: str, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    token = request.cookies.get(CLAIM_COOKIE, "")
    text = form.get("answer", "").strip()
    if not text:
        t = text_for(request, settings)
        found = Problem(t("Write your answer before sending it."), "answer")
        return await refused(request, services, _claim_path(case_id), Refusal(found, 422))
    try:
        await services.claims.answer(case_id, token, text[:4000])
    except DomainError as err:
        return await _refused(request, services, case_id, err, {"answer": text[:4000]})
    return see_other(_claim_path(case_id) + "?answered=1")


def _claim_path(case_id: str) -> str:
    """The claim's pages, where its cookie lives: from the route, for an id of a claim's
    shape only (`api.guard.IdShapes` answers 404 for any other before a route runs)."""
    if not is_claim_id(case_id):
        raise ValueError("not a claim id")
    return f"/support/claims/{case_id}"


def _keep_token(response: Response, request: Request, case_id: str, token: str) -> None:
    set_cookie(
        response,
        request,
        CLAIM_COOKIE,
        token,
        path=_claim_path(case_id),
        max_age=CLAIM_COOKIE_AGE,
        samesite="lax",  # kept from a message's link
    )


async def _refused(
    request: Request,
    services: Services,
    case_id: str,
    error: DomainError,
    typed: dict[str, str] | None = None,
) -> Response:
    """A refused form of the claim's: back to its page, which says why and keeps the answer
    typed (never the token). A claim that does not exist is not there to go back to."""
    settings = services.settings
    t = text_for(request, settings)
    if isinstance(error, NotFound):
        return render(request, settings, "gone.html", 404)
    if isinstance(error, Unauthorized):
        found, status = _wrong_token(t), 401
    else:
        found, status = problem(t, error), from_domain(error).status
    refusal = Refusal(found, status, typed or {})
    return await refused(request, services, _claim_path(case_id), refusal)


async def _claim(
    request: Request,
    services: Services,
    case_id: str,
    token: str | None,
    error: DomainError | None = None,
    found: Problem | None = None,
    status: int = 200,
    typed: dict[str, str] | None = None,
) -> Response:
    """The claim's page; without a valid token, the form that asks for it."""
    settings = services.settings
    t = text_for(request, settings)
    if error is not None and not isinstance(error, Unauthorized):
        if isinstance(error, NotFound):
            return render(request, settings, "gone.html", 404)
        found, status = problem(t, error), from_domain(error).status
    view: ClaimantView | None = None
    if token and error is None:
        try:
            view = await services.claims.claimant_view(case_id, token)
        except NotFound:
            return render(request, settings, "gone.html", 404)
        except Unauthorized:
            view = None
        except DomainError as err:
            return render(request, settings, "unavailable.html", 503, problem=problem(t, err))
    if view is None:
        if isinstance(error, Unauthorized):
            found, status = _wrong_token(t), 401
        return render(request, settings, "claim_token.html", status, case_id=case_id, problem=found)
    return render(
        request,
        settings,
        "claim.html",
        status,
        claim=_facts(view),
        problem=found,
        typed_answer=(typed or {}).get("answer", ""),
        filed=request.query_params.get("filed") == "1",
        answered=request.query_params.get("answered") == "1",
        sla=settings.first_response_sla,
    )


def _wrong_token(t: Text) -> Problem:
    return Problem(t("This claim token is not right: copy it again from our mail."), "token")


def _facts(view: ClaimantView) -> dict[str, Any]:
    decision = view.decision
    return {
        "case_id": view.case_id,
        "state": view.state.value,
        "open": view.state.is_open,
        "awaiting": view.state is ClaimState.AWAITING_CLAIMANT,
        "questions": [
            {"text": q.text, "asked_at": q.asked_at, "answered": q.answered_at is not None}
            for q in view.questions
        ],
        "answer_by": view.answer_by,
        "decision": {
            "outcome": decision.outcome.value,
            "at": decision.at,
            "note": decision.note,
            "recovery_case_id": decision.recovery_case_id,
        }
        if decision
        else None,
    }
