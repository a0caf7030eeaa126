"""Signing in with the built-in directory's accounts: the page the mails point to when they
say "sign in" (a deactivated account signing in inside its grace period stays; a ban that
ended lets its holder back), and the signed-in page with its sign-out button."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import AppServices
from api.errors import from_domain
from api.pages.forms import posted, see_other
from api.pages.refusals import Refusal, forget, refused, shown
from api.pages.render import render, text_for
from api.pages.security import set_cookie
from api.pages.words import Problem, problem
from reclaim.errors import DomainError, Refused, Unauthorized

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "reclaim_session"
SIGN_IN = "/signin"
# Where signing in may lead, named by the page that sent the person to sign in; nothing else
# (never an address a request brings).
AFTER_SIGN_IN = {"account": "/account", "security": "/account/security"}


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_form(request: Request, services: AppServices) -> Response:
    """The form; after a refused one, why, and the identifier typed (never the password)."""
    settings = services.settings
    again = await shown(request, services, SIGN_IN)
    then = _then(request.query_params.get("then") or (again.typed.get("then") if again else None))
    if again is None:
        return render(request, settings, "signin.html", problem=None, identifier="", then=then)
    page = render(
        request,
        settings,
        "signin.html",
        again.status,
        problem=again.problem,
        then=then,
        identifier=again.typed.get("identifier", ""),
        suspended=bool(again.extra.get("suspended")),
        ends_at=_moment(again.extra.get("ends_at")),
        appeal=settings.links.support("banned"),
    )
    return forget(page, request, SIGN_IN)


@router.post("/signin", response_class=HTMLResponse)
async def sign_in(request: Request, services: AppServices) -> Response:
    settings = services.settings
    form = await posted(request, settings)
    t = text_for(request, settings)
    identifier = form.get("identifier", "").strip()
    then = _then(form.get("then"))
    typed = {"identifier": identifier, "then": then}
    try:
        token = await services.lifecycle.sign_in(identifier, form.get("password", ""))
    except Unauthorized:
        found = Problem(t("The identifier or the password is not right."), "identifier")
        return await refused(request, services, SIGN_IN, Refusal(found, 401, typed))
    except Refused as err:
        extra = {"suspended": err.code == "account_banned", "ends_at": err.details.get("ends_at")}
        refusal = Refusal(problem(t, err), from_domain(err).status, typed, extra)
        return await refused(request, services, SIGN_IN, refusal)
    except DomainError as err:
        refusal = Refusal(problem(t, err), from_domain(err).status, typed)
        return await refused(request, services, SIGN_IN, refusal)
    response = see_other(AFTER_SIGN_IN[then])
    set_cookie(response, request, SESSION_COOKIE, token, path="/")
    return response


def _then(name: str | None) -> str:
    return name if name in AFTER_SIGN_IN else "account"


def _moment(iso: object) -> datetime | None:
    return datetime.fromisoformat(iso) if isinstance(iso, str) else None


@router.get("/account", response_class=HTMLResponse)
async def account(request: Request, services: AppServices) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    view = None
    if token:
        try:
            view = await services.lifecycle.session(token)
        except Unauthorized:
            view = None
    if view is None:
        return see_other("/signin")
    return render(request, services.settings, "account.html", username=view.username)


@router.get("/signout")
async def sign_out_page() -> Response:
    """Only a form signs out; the address opened as a page (the language links of an expired
    sign-out form) leads to the account."""
    return see_other("/account")


@router.post("/signout", response_class=HTMLResponse)
async def sign_out(request: Request, services: AppServices) -> Response:
    await posted(request, services.settings)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            await services.lifecycle.sign_out(token)
        except Unauthorized:
            pass  # signed out already
    response = see_other("/signin?out=1")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
