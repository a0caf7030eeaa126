"""Reading a posted form (with its CSRF check) and answering it: the post/redirect/get pattern,
and the page that says a form expired."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse

from api.pages.security import csrf_ok
from reclaim.settings import Settings

MAX_FIELD = 4096  # longer than any field a page has; a longer value is refused


class FormExpired(Exception):
    """The post did not come from one of Reclaim's pages in this browser (or the page was
    too old): nothing was done."""


async def posted(request: Request, settings: Settings) -> dict[str, str]:
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    if not csrf_ok(request, values, settings):
        raise FormExpired
    return {key: value[:MAX_FIELD] for key, value in values.items()}


def see_other(url: str) -> RedirectResponse:
    """After a post that worked: the browser gets the page anew (reloading it posts nothing)."""
    return RedirectResponse(url, status_code=303)
