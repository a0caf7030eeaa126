"""Rendering pages: the Jinja2 templates, in the person's language, with the branding and the
form protection every page needs.

A page's language is the one the switcher stored (cookie), else the best match for the
browser's `Accept-Language`, else RECLAIM_DEFAULT_LOCALE. Templates are handed facts by the
routes (states, times, masked destinations) and never compute a rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.guard import own_path
from api.pages.security import csrf_token, set_cookie
from reclaim.i18n import LOCALES, NAMES, Text, negotiate, supported
from reclaim.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANG_COOKIE = "reclaim_lang"

environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page_locale(request: Request, settings: Settings) -> str:
    chosen = supported(request.cookies.get(LANG_COOKIE))
    return chosen or negotiate(request.headers.get("accept-language"), settings.default_locale)


def text_for(request: Request, settings: Settings) -> Text:
    return Text(page_locale(request, settings))


def render(
    request: Request,
    settings: Settings,
    template: str,
    status: int = 200,
    *,
    templates: Environment = environment,
    locale: str | None = None,
    **facts: Any,
) -> HTMLResponse:
    """`template` with `facts`, in the person's language (or `locale`), with a fresh form
    token. The console renders its own `templates`, which extend these."""
    t = Text(locale) if locale else text_for(request, settings)
    token, fresh = csrf_token(request)
    context = {
        "t": t,
        "_": t,
        "ngettext": t.plural,
        "locale": t.locale,
        "direction": t.direction,
        "languages": [(code, NAMES[code]) for code in LOCALES],
        "path": own_path(request.url.path),
        "product": settings.product_name,
        "has_logo": settings.brand_logo is not None,
        "support_contact": settings.support_contact,
        "csrf": token,
        "now": datetime.now(UTC),
        **facts,
    }
    response = HTMLResponse(templates.get_template(template).render(context), status_code=status)
    if fresh:
        set_cookie(response, request, "reclaim_csrf", token, path="/")
    # Pages show a case's state: never from a cache, never stored by a shared one.
    response.headers["Cache-Control"] = "no-store"
    return response
