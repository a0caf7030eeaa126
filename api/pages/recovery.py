"""The pages of a self-service recovery: the start (one field), the case (the code, a new one,
the delivery state), the new password, and the end. They call the recovery service, and show
an unknown account exactly as a known one: the service's answers are the same.

The case id is in the address (it names the case, like in the logs); the code never is. A
code's message links to the case with the code's proof: the page keeps it in a cookie scoped
to the case's pages, takes it out of the address at once, and offers to continue without
typing the code. The reset token lives in a cookie scoped to the case's pages too.

A held recovery's other contacts get a "Wasn't you? Stop it" link (`/stop/<case>`), signed for
each of them: the page says what stopping does and asks to confirm.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import AppServices
from api.errors import from_domain
from api.guard import is_case_id
from api.pages.forms import posted, see_other
from api.pages.refusals import Refusal, forget, refused, shown
from api.pages.render import page_locale, render, text_for
from api.pages.security import set_cookie
from api.pages.words import Problem, problem
from reclaim.contracts import CaseError, Channel
from reclaim.errors import DomainError, NotFound, Refused
from reclaim.recovery.contracts import CaseState, Delivery, RecoveryStatus
from reclaim.recovery.factors import MAX_ASSERTION
from reclaim.services import Services
from reclaim.settings import Settings

router = APIRouter(include_in_schema=False)

RESET_COOKIE = "reclaim_reset"
PROOF_COOKIE = "reclaim_proof"
STOP_COOKIE = "reclaim_stop"
CODE = re.compile(r"^\d{6}$")
START = "/recover"


def _case_path(case_id: str) -> str:
    """The case's pages, where its cookies live: from the route, for an id of a case's
    shape only (`api.guard.IdShapes` answers 404 for any other before a route runs)."""
    if not is_case_id(case_id):
        raise ValueError("not a case id")
    return f"/recover/{case_id}"


def _stop_path(case_id: str) -> str:
    if not is_case_id(case_id):
        raise ValueError("not a case id")
    return f"/stop/{case_id}"


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, services: AppServices) -> Response:
    return render(request, services.settings, "home.html")


@router.get("/recover", response_class=HTMLResponse)
async def start(request: Request, services: AppServices) -> Response:
    """The form; after a refused one, its problem and the identifier typed."""
    again = await shown(request, services, START)
    typed = again.typed if again else {}
    page = render(
        request,
        services.settings,
        "recover_start.html",
        again.status if again else 200,
        problem=again.problem if again else None,
        identifier=typed.get("identifier", ""),
        channel=typed.get("channel", ""),
        challenge=again.extra.get("challenge") if again else None,
    )
    return forget(page, request, START)


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
        return await _start_again(request, services, again, Problem("", "identifier"), 422)
    try:
        status = await services.recovery.open(
            identifier, channel, page_locale(request, settings), form.get("altcha") or None
        )
    except DomainError as err:
        return await _start_again(request, services, again, None, 422, err)
    return see_other(f"/recover/{status.case_id}")


async def _start_again(
    request: Request,
    services: Services,
    typed: dict[str, str],
    found: Problem | None,
    status: int,
    error: DomainError | None = None,
) -> Response:
    """Back to the form, which shows the problem and keeps what was typed."""
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
    extra = {"challenge": challenge} if challenge else {}
    return await refused(request, services, START, Refusal(found, status, typed, extra))


@router.get("/recover/{case_id}", response_class=HTMLResponse)
async def case_page(request: Request, case_id: str, services: AppServices) -> Response:
    proof = request.query_params.get("proof")
    if proof:  # a code message's link: keep the proof, take it out of the address
        response = see_other(_case_path(case_id))
        set_cookie(
            response,
            request,
            PROOF_COOKIE,
            proof[:64],
            path=_case_path(case_id),
            max_age=services.settings.case_ttl,
            samesite="lax",  # kept from a message's link
        )
        return response
    again = await shown(request, services, _case_path(case_id))
    found, status = (again.problem, again.status) if again else (None, 200)
    # The second step's "use a recovery code instead" link, or the way a refused proof took.
    chosen = request.query_params.get("with") or (again.typed.get("method") if again else None)
    page = await _case(request, services, case_id, found, status, chosen)
    return forget(page, request, _case_path(case_id))


@router.get("/recover/{case_id}/code")
@router.get("/recover/{case_id}/password")
@router.get("/recover/{case_id}/proof")
@router.get("/recover/{case_id}/resend")
@router.get("/recover/{case_id}/second-factor")
async def back_to_case(case_id: str) -> Response:
    """The address a form posts to, opened as a page: a refused form is shown there, so its
    language links, a reload from the address bar or a bookmark lead here. The case's page."""
    return see_other(_case_path(case_id))


@router.post("/recover/{case_id}/proof", response_class=HTMLResponse)
async def submit_proof(request: Request, case_id: str, services: AppServices) -> Response:
    """ "Continue" on a page opened from the code's message: the proof it kept does what
    typing the code would."""
    settings = services.settings
    await posted(request, settings)
    proof = request.cookies.get(PROOF_COOKIE, "")
    if not proof:
        t = text_for(request, settings)
        found = Problem(t("This browser did not open the link from the message: type the code."))
        return await _refused(request, services, case_id, found, 409)
    try:
        granted = await services.recovery.submit_proof(case_id, proof)
    except DomainError as err:
        if isinstance(err, Refused) and err.code == CaseError.INVALID_CODE:
            # Not this case's link (or a link whose code was already used).
            err = Refused("invalid_link", err.message)
        elif isinstance(err, Refused) and err.code == CaseError.CODE_REPLACED:
            err = Refused("replaced_link", err.message)
        response = await _refused(request, services, case_id, error=err)
        response.delete_cookie(PROOF_COOKIE, path=_case_path(case_id))
        return response
    return _verified(request, settings, case_id, granted.reset_token)


@router.post("/recover/{case_id}/code", response_class=HTMLResponse)
async def submit_code(request: Request, case_id: str, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    code = re.sub(r"[\s-]", "", form.get("code", ""))
    if not CODE.match(code):
        t = text_for(request, settings)
        found = Problem(t("A code is 6 digits: type the one we sent you."), "code")
        return await _refused(request, services, case_id, found, 422)
    try:
        granted = await services.recovery.submit_code(case_id, code)
    except DomainError as err:
        return await _refused(request, services, case_id, error=err)
    return _verified(request, settings, case_id, granted.reset_token)


def _verified(
    request: Request, settings: Settings, case_id: str, reset_token: str | None
) -> Response:
    """The code (or its link, or the second factor) was right: on to the new password, with
    the reset token; or, for an account with a second factor, on to its proof."""
    response = see_other(_case_path(case_id))
    if reset_token is None:
        response.delete_cookie(PROOF_COOKIE, path=_case_path(case_id))
        return response
    set_cookie(
        response,
        request,
        RESET_COOKIE,
        reset_token,
        path=_case_path(case_id),
        max_age=settings.reset_window,
    )
    response.delete_cookie(PROOF_COOKIE, path=_case_path(case_id))
    return response


@router.post("/recover/{case_id}/second-factor", response_class=HTMLResponse)
async def submit_second_factor(request: Request, case_id: str, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    method = form.get("method", "")
    typed = {"method": method}
    if method == "webauthn":  # the browser's answer to the passkey's challenge (passkey.js)
        code = form.get("assertion", "")[:MAX_ASSERTION]
    else:
        code = form.get("code", "").strip()[:32]
    if not code:
        t = text_for(request, settings)
        found = (
            Problem(t("The passkey was not used. Try again, or use another way below."))
            if method == "webauthn"
            else Problem(t("Type the code from your authenticator app or a recovery code."), "code")
        )
        return await _refused(request, services, case_id, found, 422, typed=typed)
    try:
        granted = await services.recovery.submit_second_factor(case_id, method, code)
    except DomainError as err:
        if method == "webauthn" and isinstance(err, Refused) and err.code == CaseError.INVALID_CODE:
            left = int(err.details.get("attempts_left") or 0)
            wrong = Problem(
                text_for(request, settings).plural(
                    "That passkey was not accepted. You have %(num)d try left.",
                    "That passkey was not accepted. You have %(num)d tries left.",
                    left,
                )
            )
            return await _refused(request, services, case_id, wrong, 400, typed=typed)
        return await _refused(request, services, case_id, error=err, typed=typed)
    return _verified(request, settings, case_id, granted.reset_token)


@router.post("/recover/{case_id}/resend", response_class=HTMLResponse)
async def resend(request: Request, case_id: str, services: AppServices) -> Response:
    await posted(request, services.settings)
    try:
        await services.recovery.resend(case_id)
    except DomainError as err:
        return await _refused(request, services, case_id, error=err)
    return see_other(_case_path(case_id) + "?resent=1")


@router.post("/recover/{case_id}/password", response_class=HTMLResponse)
async def set_password(request: Request, case_id: str, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    t = text_for(request, settings)
    password, again = form.get("password", ""), form.get("confirm", "")
    token = request.cookies.get(RESET_COOKIE, "")
    if not password:
        found = Problem(t("Choose a new password."), "password")
        return await _refused(request, services, case_id, found, 422)
    if password != again:
        found = Problem(t("The two passwords are not the same: type it again."), "confirm")
        return await _refused(request, services, case_id, found, 422)
    if not token:
        found = Problem(
            t("This browser did not enter the code: enter it again, or start again."), None, True
        )
        return await _refused(request, services, case_id, found, 409)
    try:
        await services.recovery.set_password(case_id, token, password)
    except DomainError as err:
        return await _refused(request, services, case_id, error=err)
    response = see_other(_case_path(case_id))
    response.delete_cookie(RESET_COOKIE, path=_case_path(case_id))
    return response


async def _refused(
    request: Request,
    services: Services,
    case_id: str,
    found: Problem | None = None,
    status: int = 200,
    error: DomainError | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    """A refused form of the case's: back to its page, which says `found` (or `error`, in
    words). Nothing typed is kept (the case's forms take only codes and passwords) but the
    way a second factor was proven."""
    if error is not None:
        found, status = problem(text_for(request, services.settings), error), _status(error)
    refusal = Refusal(found, status, typed or {})
    return await refused(request, services, _case_path(case_id), refusal)


async def _case(
    request: Request,
    services: Services,
    case_id: str,
    found: Problem | None = None,
    status: int = 200,
    chosen: str | None = None,
) -> Response:
    """The case's page in its current state, with `found` if any (and, at the second step,
    the way of proving it `chosen`, when the account has it)."""
    settings = services.settings
    t = text_for(request, settings)
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
        has_proof=bool(request.cookies.get(PROOF_COOKIE)),
        resent=request.query_params.get("resent") == "1",
        chosen=chosen,
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
        "awaiting_second_factor": case.state is CaseState.AWAITING_SECOND_FACTOR,
        "factors": case.factors or [],
        "verified": case.state is CaseState.VERIFIED,
        "held": case.state is CaseState.HELD,
        "hold_until": case.hold_until,
        "channel": case.channel.value,
        "destination": case.destination,
        "attempts_left": case.attempts_left,
        "code_expires_at": case.code_expires_at,
        "resend_available_at": case.resend_available_at,
        "reset_expires_at": case.reset_expires_at,
        "delivery": delivery,
        "recovery_codes_left": case.recovery_codes_left,
    }


# -- "Wasn't you? Stop it" -------------------------------------------------------------------


@router.get("/stop/{case_id}", response_class=HTMLResponse)
async def stop_page(request: Request, case_id: str, services: AppServices) -> Response:
    token = request.query_params.get("token")
    if token:  # the link from the message: keep its signature, take it out of the address
        response = see_other(_stop_path(case_id))
        set_cookie(
            response,
            request,
            STOP_COOKIE,
            token[:64],
            path=_stop_path(case_id),
            max_age=services.settings.claim_recovery_hold + 86_400,
            samesite="lax",  # kept from a message's link
        )
        return response
    again = await shown(request, services, _stop_path(case_id))
    found, status = (again.problem, again.status) if again else (None, 200)
    page = await _stop(request, services, case_id, found, status)
    return forget(page, request, _stop_path(case_id))


@router.post("/stop/{case_id}", response_class=HTMLResponse)
async def stop(request: Request, case_id: str, services: AppServices) -> Response:
    settings = services.settings
    await posted(request, settings)
    token = request.cookies.get(STOP_COOKIE, "")
    try:
        stopped, claim = await services.stop_recovery(
            case_id, token, page_locale(request, settings)
        )
    except DomainError as err:
        found = problem(text_for(request, settings), err)
        return await refused(request, services, _stop_path(case_id), Refusal(found, _status(err)))
    return render(
        request,
        settings,
        "stop.html",
        case={"state": stopped.status.state.value, "hold_until": None},
        stopped=True,
        claim=claim.case_id if claim else None,
        problem=None,
    )


async def _stop(
    request: Request,
    services: Services,
    case_id: str,
    found: Problem | None = None,
    status: int = 200,
) -> Response:
    settings = services.settings
    t = text_for(request, settings)
    try:
        case = await services.recovery.hold_stop_preview(
            case_id, request.cookies.get(STOP_COOKIE, "")
        )
    except NotFound:
        return render(request, settings, "gone.html", 404)
    except Refused as err:
        return render(
            request, settings, "stop.html", _status(err), case=None, stopped=False, claim=None,
            problem=problem(t, err),
        )  # fmt: skip
    except DomainError as err:
        return render(request, settings, "unavailable.html", _status(err), problem=problem(t, err))
    return render(
        request,
        settings,
        "stop.html",
        status,
        case={"state": case.state.value, "hold_until": case.hold_until},
        stopped=False,
        claim=None,
        problem=found,
    )


def _status(error: DomainError) -> int:
    return from_domain(error).status
