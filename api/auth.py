"""Every credential a request can carry, in one place, as `Annotated` dependencies: a session
token (the account holder), a claim token (the claimant), a staff key (reviewers, and the
codec endpoint). Each is checked by the service it belongs to."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from api.deps import AppServices
from reclaim.errors import Unauthorized
from reclaim.support.audit import Origin
from reclaim.support.contracts import Reviewer


def bearer(authorization: str | None, missing: Unauthorized) -> str:
    """The token of an `Authorization: Bearer <token>` header, or `missing`."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise missing
    return token.strip()


NO_SESSION = Unauthorized(
    "invalid_session", "Send the session token as `Authorization: Bearer <token>`."
)
NO_CLAIM_TOKEN = Unauthorized(
    "invalid_token", "Send the claim token as `Authorization: Bearer <claim token>`."
)
NO_STAFF_KEY = Unauthorized(
    "invalid_key",
    "Send a staff API key as `Authorization: Bearer rk_…` (from `reclaim staff add`).",
)


def session_token(authorization: Annotated[str | None, Header()] = None) -> str:
    return bearer(authorization, NO_SESSION)


def claim_token(authorization: Annotated[str | None, Header()] = None) -> str:
    return bearer(authorization, NO_CLAIM_TOKEN)


async def staff_member(
    services: AppServices, authorization: Annotated[str | None, Header()] = None
) -> Reviewer:
    return await services.support.staff_member(bearer(authorization, NO_STAFF_KEY))


SessionToken = Annotated[str, Depends(session_token)]
ClaimToken = Annotated[str, Depends(claim_token)]
StaffMember = Annotated[Reviewer, Depends(staff_member)]


def client_address(request: Request) -> str | None:
    """The client's address (behind a proxy, the one `reclaim api` trusts it to name)."""
    return request.client.host if request.client else None


def api_origin(request: Request) -> Origin:
    """Where a staff call over the API comes from, for the audit."""
    return Origin("api", client_address(request))


ApiOrigin = Annotated[Origin, Depends(api_origin)]
