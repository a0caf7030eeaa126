"""A refused form answered with a redirect: the page it leads to shows the problem and what
the person typed (never a password or a code), and a reload of it posts nothing.

`refused` keeps the refusal (`reclaim.store.flash`) and sends the browser to the form's page
with a cookie scoped to that page; `shown` takes it back there, once. The page answers with the
refusal's status (a 4xx, as the post would have), so scripts and tests see what a person sees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from api.pages.forms import see_other
from api.pages.security import set_cookie
from api.pages.words import Problem
from reclaim.services import Services

FLASH_COOKIE = "reclaim_flash"
# Typed values longer than any field takes are not kept (the form refused them anyway).
MAX_TYPED = 4096


@dataclass(frozen=True)
class Refusal:
    problem: Problem | None
    status: int
    typed: dict[str, str] = field(default_factory=dict)
    # What else the page needs to show it (a proof-of-work challenge, say).
    extra: dict[str, Any] = field(default_factory=dict)


async def refused(
    request: Request,
    services: Services,
    page: str,
    refusal: Refusal,
) -> Response:
    """Redirect to `page` (a path built from our routes), which will show `refusal`."""
    typed = {k: v for k, v in refusal.typed.items() if isinstance(v, str) and len(v) <= MAX_TYPED}
    facts = {
        "problem": asdict(refusal.problem) if refusal.problem is not None else None,
        "status": refusal.status,
        "typed": typed,
        "extra": refusal.extra,
    }
    flash_id = await services.flashes.keep(page, facts)
    response = see_other(page)
    set_cookie(
        response,
        request,
        FLASH_COOKIE,
        flash_id,
        path=page,
        max_age=int(services.flashes.ttl.total_seconds()),
    )
    return response


async def shown(request: Request, services: Services, page: str) -> Refusal | None:
    """The refusal a redirect to `page` carries, if any (once: a reload shows the page)."""
    flash_id = request.cookies.get(FLASH_COOKIE)
    if not flash_id:
        return None
    facts = await services.flashes.take(page, flash_id)
    if facts is None:
        return None
    found = facts.get("problem")
    return Refusal(
        problem=Problem(**found) if isinstance(found, dict) else None,
        status=int(facts.get("status") or 200),
        typed={k: v for k, v in (facts.get("typed") or {}).items() if isinstance(v, str)},
        extra=dict(facts.get("extra") or {}),
    )


def forget(response: Response, request: Request, page: str) -> Response:
    """The flash cookie goes with the page that showed it."""
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path=page)
    return response
