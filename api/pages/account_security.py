"""The security page of a signed-in person (`/account/security`): their second factors, an
authenticator app enrolled with a QR code drawn here, recovery codes shown once, and a factor
removed once the password is given again. Everything goes through `services.factors`.

The secret of an enrolment in progress lives sealed in a cookie scoped to this page (ten
minutes), never in an address or a log; new recovery codes reach the page that shows them in
a one-time flash (`api.pages.refusals`), so a reload shows them no more.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import segno
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from api.deps import AppServices
from api.errors import from_domain
from api.pages.forms import posted, see_other
from api.pages.lifecycle import SESSION_COOKIE
from api.pages.refusals import Refusal, forget, refused, shown
from api.pages.render import page_locale, render, text_for
from api.pages.security import set_cookie
from api.pages.words import Problem, problem
from reclaim.directory import FactorKind
from reclaim.errors import DomainError, Refused, Unauthorized
from reclaim.factors.door import PASSKEY_TTL, PENDING_TTL, PendingTotp, Security
from reclaim.i18n import Text
from reclaim.passkeys import NAME_LENGTH

router = APIRouter(include_in_schema=False)

PAGE = "/account/security"
SIGN_IN_HERE = "/signin?then=security"  # signed in, the person comes back here
TOTP_COOKIE = "reclaim_totp"
PASSKEY_COOKIE = "reclaim_passkey"
# A passkey's registration (JSON from passkey.js) is a few hundred bytes to a few KiB.
MAX_CREDENTIAL = 16_384
KINDS = {kind.value: kind for kind in FactorKind}


@router.get(PAGE, response_class=HTMLResponse)
async def security_page(request: Request, services: AppServices) -> Response:
    token = request.cookies.get(SESSION_COOKIE, "")
    try:
        security = await services.factors.security(token)
    except Unauthorized:
        return see_other(SIGN_IN_HERE)
    pending = await services.factors.pending_totp(token, request.cookies.get(TOTP_COOKIE))
    again = await shown(request, services, PAGE)
    product = services.settings.product_name
    extra = again.extra if again is not None else {}
    codes = extra.get("codes") if extra.get("account") == security.holder.account_id else None
    page = render(
        request,
        services.settings,
        "security.html",
        again.status if again is not None else 200,
        problem=again.problem if again is not None else None,
        done=extra.get("done"),
        typed_name=again.typed.get("name", "") if again is not None else "",
        security=security,
        totp=security.factor(FactorKind.TOTP),
        recovery=security.factor(FactorKind.RECOVERY_CODE),
        pending=_enrolment(pending) if pending is not None else None,
        codes=codes if isinstance(codes, list) else None,
        download=_download(codes, text_for(request, services.settings), product, security)
        if isinstance(codes, list)
        else None,
    )
    if pending is None and request.cookies.get(TOTP_COOKIE):
        page.delete_cookie(TOTP_COOKIE, path=PAGE)
    return forget(page, request, PAGE)


@router.get(PAGE + "/{action:path}")
async def opened_as_a_page(action: str) -> Response:
    """The addresses the forms post to, opened as pages (a bookmark, a language link of a
    refused form), lead to the security page."""
    return see_other(PAGE)


@router.post(PAGE + "/totp", response_class=HTMLResponse)
async def start_totp(request: Request, services: AppServices) -> Response:
    await posted(request, services.settings)
    try:
        pending = await services.factors.start_totp(request.cookies.get(SESSION_COOKIE, ""))
    except Unauthorized:
        return see_other(SIGN_IN_HERE)
    except DomainError as err:
        return await _refused(request, services, err)
    response = see_other(PAGE)
    max_age = int(PENDING_TTL.total_seconds())
    set_cookie(response, request, TOTP_COOKIE, pending.sealed, path=PAGE, max_age=max_age)
    return response


@router.post(PAGE + "/totp/confirm", response_class=HTMLResponse)
async def confirm_totp(request: Request, services: AppServices) -> Response:
    form = await posted(request, services.settings)
    t = text_for(request, services.settings)
    try:
        replaced = await services.factors.confirm_totp(
            request.cookies.get(SESSION_COOKIE, ""),
            request.cookies.get(TOTP_COOKIE),
            form.get("code", ""),
            locale=page_locale(request, services.settings),
        )
    except Unauthorized:
        return see_other(SIGN_IN_HERE)
    except Refused as err:
        if err.code == "wrong_code":
            wrong = Problem(
                t("That code is not right. Type the code your app shows now."),
                "code",
                at_field=t("That code is not right."),
            )
            return await refused(request, services, PAGE, Refusal(wrong, 400))
        if err.code == "enrolment_expired":
            expired = Problem(t("The time to set up the app ran out. Start again."))
            return await refused(request, services, PAGE, Refusal(expired, 400))
        return await _refused(request, services, err)
    except DomainError as err:
        return await _refused(request, services, err)
    response = await _done(request, services, "totp_replaced" if replaced else "totp_added")
    response.delete_cookie(TOTP_COOKIE, path=PAGE)
    return response


@router.post(PAGE + "/totp/cancel", response_class=HTMLResponse)
async def cancel_totp(request: Request, services: AppServices) -> Response:
    await posted(request, services.settings)
    response = see_other(PAGE)
    response.delete_cookie(TOTP_COOKIE, path=PAGE)
    return response


@router.post(PAGE + "/codes", response_class=HTMLResponse)
async def new_codes(request: Request, services: AppServices) -> Response:
    await posted(request, services.settings)
    token = request.cookies.get(SESSION_COOKIE, "")
    try:
        holder = await services.factors.holder(token)
        codes = await services.factors.new_recovery_codes(
            token, locale=page_locale(request, services.settings)
        )
    except Unauthorized:
        return see_other(SIGN_IN_HERE)
    except DomainError as err:
        return await _refused(request, services, err)
    # Shown once: sealed in a one-time flash for this page and this account.
    shown_once = Refusal(None, 200, extra={"codes": codes, "account": holder.account_id})
    return await refused(request, services, PAGE, shown_once)


@router.post(PAGE + "/passkey/options")
async def passkey_options(request: Request, services: AppServices) -> Response:
    """What passkey.js asks before the browser creates a passkey (the form's own fields
    posted, its CSRF token with them): the options as JSON, their challenge in a cookie."""
    await posted(request, services.settings)
    try:
        prompt = await services.factors.start_passkey(request.cookies.get(SESSION_COOKIE, ""))
    except DomainError as err:
        refusal = from_domain(err)
        return JSONResponse({"error": refusal.error, "message": err.message}, refusal.status)
    response = JSONResponse(prompt.options, headers={"Cache-Control": "no-store"})
    max_age = int(PASSKEY_TTL.total_seconds())
    set_cookie(response, request, PASSKEY_COOKIE, prompt.sealed, path=PAGE, max_age=max_age)
    return response


@router.post(PAGE + "/passkey", response_class=HTMLResponse)
async def add_passkey(request: Request, services: AppServices) -> Response:
    form = await posted(request, services.settings)
    t = text_for(request, services.settings)
    name = " ".join(form.get("name", "").split())
    typed = {"name": name[:NAME_LENGTH]}
    if not name or len(name) > NAME_LENGTH:
        named = Problem(t("Give the passkey a name of 1 to 64 characters."), "name")
        return await refused(request, services, PAGE, Refusal(named, 422, typed))
    credential = form.get("credential", "")
    if not credential or len(credential) > MAX_CREDENTIAL:
        unused = Problem(t("The passkey was not added: your browser did not create it. Try again."))
        return await refused(request, services, PAGE, Refusal(unused, 422, typed))
    try:
        await services.factors.add_passkey(
            request.cookies.get(SESSION_COOKIE, ""),
            request.cookies.get(PASSKEY_COOKIE),
            credential,
            name,
            locale=page_locale(request, services.settings),
        )
    except Unauthorized:
        return see_other(SIGN_IN_HERE)
    except Refused as err:
        said = {
            "enrolment_expired": t("The time to add the passkey ran out. Try again."),
            "passkey_registered": t("This passkey is added already."),
        }.get(err.code, t("The passkey was not added: it could not be checked. Try again."))
        return await refused(request, services, PAGE, Refusal(Problem(said), 400, typed))
    except DomainError as err:
        return await _refused(request, services, err)
    response = await _done(request, services, "passkey_added")
    response.delete_cookie(PASSKEY_COOKIE, path=PAGE)
    return response


@router.post(PAGE + "/remove", response_class=HTMLResponse)
async def remove(request: Request, services: AppServices) -> Response:
    form = await posted(request, services.settings)
    t = text_for(request, services.settings)
    kind = KINDS.get(form.get("kind", ""))
    if kind is None:
        return see_other(PAGE)
    token, locale = request.cookies.get(SESSION_COOKIE, ""), page_locale(request, services.settings)
    # One passkey among several: its field is named by its place in the list.
    key, place = form.get("key", ""), form.get("place", "")
    field = f"password-{kind.value}" + (f"-{place}" if place.isdigit() else "")
    try:
        if kind is FactorKind.WEBAUTHN:
            await services.factors.remove_passkey(token, key, form.get(field, ""), locale=locale)
        else:
            await services.factors.remove(token, kind, form.get(field, ""), locale=locale)
    except Unauthorized:
        return see_other(SIGN_IN_HERE)
    except Refused as err:
        if err.code == "wrong_password":
            wrong = Problem(
                t("The password is not right: the second factor was not removed."),
                field,
                at_field=t("The password is not right."),
            )
            return await refused(request, services, PAGE, Refusal(wrong, 401))
        if err.code == "no_such_factor":
            return see_other(PAGE)
        return await _refused(request, services, err)
    except DomainError as err:
        return await _refused(request, services, err)
    return await _done(request, services, f"{kind.value}_removed")


async def _done(request: Request, services: AppServices, done: str) -> Response:
    return await refused(request, services, PAGE, Refusal(None, 200, extra={"done": done}))


async def _refused(request: Request, services: AppServices, err: DomainError) -> Response:
    t = text_for(request, services.settings)
    return await refused(request, services, PAGE, Refusal(problem(t, err), 400))


def _enrolment(pending: PendingTotp) -> dict[str, object]:
    """What the page shows of an enrolment: the QR code (inline SVG, drawn here), the secret
    in groups of four, when it expires."""
    svg = io.BytesIO()
    segno.make(pending.uri, error="m").save(
        svg, kind="svg", xmldecl=False, svgclass="qr", lineclass=None, scale=5, border=4
    )
    groups = " ".join(pending.secret[i : i + 4] for i in range(0, len(pending.secret), 4))
    # segno draws the SVG from the URI's bits alone: no text of ours reaches its markup.
    qr = Markup(svg.getvalue().decode())  # noqa: S704
    return {"qr": qr, "secret": groups, "until": pending.expires_at}


def _download(codes: list[str], t: Text, product: str, security: Security) -> str:
    """The codes as a text file, in a `data:` link (no script needed)."""
    lines = [
        t(
            "Recovery codes of the %(product)s account %(username)s",
            product=product,
            username=security.holder.username,
        ),
        "",
        *codes,
        "",
        t("Each code works once. Keep them somewhere safe."),
    ]
    return "data:text/plain;charset=utf-8," + quote("\n".join(lines) + "\n", safe="")
