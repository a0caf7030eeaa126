"""The pages of a self-service recovery: the start (one field), the case (the code, a new one,
the delivery state), the new password, and the end. They call the recovery service, and show
an unknown account exactly as a known one: the service's answers are the same.

The case id is in the address (it names the case, like in the logs); the code never is (a
code mail's link carries it in the fragment, which stays in the browser); the reset token
lives in a cookie scoped to the case's pages.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import AppServices
from api.errors import from_domain
from api.pages.forms import posted, see_other
from api.pages.render import page_locale, render, text_for
from api.pages.security import set_cookie
from api.pages.words import Problem, problem
from reclaim.contracts import Channel
from reclaim.errors import DomainError, NotFound, Refused
from reclaim.recovery.contracts import CaseState, Delivery, RecoveryStatus
from reclaim.services import Services

router = APIRouter(include_in_schema=False)

RESET_COOKIE = "reclaim_reset"
CODE = re.compile(r"^\d{6}$")


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, services: AppServices) -> Response:
    return render(request, services.settings, "home.html")


@router.get("/recover", response_class=HTMLResponse)
async def start(request: Request, services: AppServices) -> Response:
    return render(
        request,
        services.settings,
        "recover_start.html",
        problem=None,
        identifier="",
        channel="",
        challenge=None,
    )


@router.post("/recover", response_class=HTMLResponse)
async def open_case(request: Request, services: AppServices) -> Response:
    """Over the rate limit the form comes back with a proof-of-work challenge: /assets/pow.js
    solves it and posts the form again with the solution (`altcha`); without JavaScript the
    page says when to try again."""
    settings = services.settings
    form = await posted(request, settings)
    identifier = form.get("identifier", "").strip()
    chosen = form.get("channel", "")
    channel = {"email": Channel.EMAIL, "sms": Channel.SMS}.get(chosen)
    again = {"identifier": identifier, "channel": chosen if channel else ""}
    if not identifier:
        return _start_again(request, services, again, Problem("", "identifier"), 422)
    try:
        status = await services.recovery.open(
            identifier, channel, page_locale(request, settings), form.get("altcha") or None
        )
    except DomainError as err:
        return _start_again(request, services, again, None, 422, err)
    return see_other(f"/recover/{status.case_id}")


def _start_again(
    request: Request,
    services: Services,
    typed: dict[str, str],
    found: Problem | None,
    status: int,
    error: DomainError | None = None,
) -> Response:
    t = text_for(request, services.settings)
    challenge = None
    if error is not None:
        found = problem(t, error)
        status = _status(error)
        if isinstance(error, Refused) and "challenge" in error.details:
            challenge = json.dumps(error.details["challenge"], separators=(",", ":"))
    elif found is not None and not found.message:
        found = Problem(
            t("Enter the email address, phone number or username of your account."),
            "identifier",
        )
    return render(
        request,
        services.settings,
        "recover_start.html",
        status,
        problem=found,
        challenge=challenge,
        **typed,
    )


@router.get("/recover/{case_id}", response_class=HTMLResponse)
async def case_page(request: Request, case_id: str, services: AppServices) -> Response:
    return await _case(request, services, case_id)


@router.post("/recover/{case_id}/code", response_class=HTMLResponse)
async def submit_code(request: Request, case_id: str, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    code = re.sub(r"[\s-]", "", form.get("code", ""))
    if not CODE.match(code):
        t = text_for(request, settings)
        found = Problem(t("A code is 6 digits: type the one we sent you."), "code")
        return await _case(request, services, case_id, found, 422)
    try:
        granted = await services.recovery.submit_code(case_id, code)
    except DomainError as err:
        return await _case(request, services, case_id, error=err)
    response = see_other(f"/recover/{case_id}")
    set_cookie(
        response,
        request,
        RESET_COOKIE,
        granted.reset_token,
        path=f"/recover/{case_id}",
        max_age=settings.reset_window,
    )
    return response


@router.post("/recover/{case_id}/resend", response_class=HTMLResponse)
async def resend(request: Request, case_id: str, services: AppServices) -> Response:
    await posted(request, services.settings)
    try:
        await services.recovery.resend(case_id)
    except DomainError as err:
        return await _case(request, services, case_id, error=err)
    return see_other(f"/recover/{case_id}?resent=1")


@router.post("/recover/{case_id}/password", response_class=HTMLResponse)
async def set_password(request: Request, case_id: str, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    t = text_for(request, settings)
    password, again = form.get("password", ""), form.get("confirm", "")
    token = request.cookies.get(RESET_COOKIE, "")
    if not password:
        found = Problem(t("Choose a new password."), "password")
        return await _case(request, services, case_id, found, 422)
    if password != again:
        found = Problem(t("The two passwords are not the same: type it again."), "confirm")
        return await _case(request, services, case_id, found, 422)
    if not token:
        found = Problem(
            t("This browser did not enter the code: enter it again, or start again."), None, True
        )
        return await _case(request, services, case_id, found, 409)
    try:
        await services.recovery.set_password(case_id, token, password)
    except DomainError as err:
        return await _case(request, services, case_id, error=err)
    response = see_other(f"/recover/{case_id}")
    response.delete_cookie(RESET_COOKIE, path=f"/recover/{case_id}")
    return response


async def _case(
    request: Request,
    services: Services,
    case_id: str,
    found: Problem | None = None,
    status: int = 200,
    error: DomainError | None = None,
) -> Response:
    """The case's page in its current state, with `found` (or `error`, in words) if any."""
    settings = services.settings
    t = text_for(request, settings)
    if error is not None:
        found, status = problem(t, error), _status(error)
    try:
        case = await services.recovery.status(case_id)
        attempts = 0
        if case.delivery is Delivery.SENDING and case.state.is_open:
            attempts = await services.recovery.delivery_attempts(case_id)
    except NotFound:
        return render(request, settings, "gone.html", 404)
    except DomainError as err:
        return render(request, settings, "unavailable.html", _status(err), problem=problem(t, err))
    return render(
        request,
        settings,
        "recover_case.html",
        status,
        case=_facts(case, attempts),
        problem=found,
        has_reset=bool(request.cookies.get(RESET_COOKIE)),
        resent=request.query_params.get("resent") == "1",
    )


def _facts(case: RecoveryStatus, attempts: int) -> dict[str, Any]:
    delivery = case.delivery.value
    if case.delivery is Delivery.SENDING and attempts > 1:
        delivery = "retrying"
    return {
        "case_id": case.case_id,
        "state": case.state.value,
        "open": case.state.is_open,
        "awaiting_code": case.state is CaseState.AWAITING_CODE,
        "verified": case.state is CaseState.VERIFIED,
        "channel": case.channel.value,
        "destination": case.destination,
        "attempts_left": case.attempts_left,
        "code_expires_at": case.code_expires_at,
        "resend_available_at": case.resend_available_at,
        "reset_expires_at": case.reset_expires_at,
        "delivery": delivery,
    }


def _status(error: DomainError) -> int:
    return from_domain(error).status
