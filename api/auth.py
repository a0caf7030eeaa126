"""Every credential a request can carry, in one place, as `Annotated` dependencies: a session
token (the account holder), a claim token (the claimant), a staff key or single sign-on token
(reviewers, and the codec endpoint's callers), the metrics token (Prometheus). Each is checked
by the service it belongs to, or here in constant time for the metrics token (a setting)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from api.deps import AppServices
from api.errors import ApiError
from reclaim.errors import Unauthorized, Unavailable
from reclaim.support.audit import Origin
from reclaim.support.contracts import Reviewer, StaffRole


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
    return await services.staff_members.staff_member(bearer(authorization, NO_STAFF_KEY))


CODEC_NEEDS_KEY = ApiError(
    401,
    "invalid_key",
    "The codec endpoint needs a staff key (`Authorization: Bearer rk_…`) or, with single "
    "sign-on, a token from the identity provider (`Authorization: Bearer <ID or access "
    "token>`).",
    headers={"WWW-Authenticate": "Bearer"},
)


async def codec_reader(
    request: Request,
    services: AppServices,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    await _codec_caller(request, services, authorization, sealing=False)


async def codec_sealer(
    request: Request,
    services: AppServices,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    await _codec_caller(request, services, authorization, sealing=True)


async def _codec_caller(
    request: Request, services: AppServices, authorization: str | None, *, sealing: bool
) -> None:
    """Who may open or seal payloads: a member of staff (key or single sign-on token) whose
    role RECLAIM_CODEC_ROLES names, for this deployment's namespace, and never a reviewer to
    seal; in dev mode, the `reclaim dev` Web UI on this machine."""
    settings = services.settings
    namespace = request.headers.get("x-namespace")
    if namespace and namespace != settings.temporal_namespace:
        raise ApiError(403, "wrong_namespace", f"This codec serves {settings.temporal_namespace}.")
    origin = request.headers.get("origin", "").rstrip("/")
    if settings.dev_mode and origin in settings.resolved_ui_origins:
        return  # the `reclaim dev` Web UI on this machine
    try:
        member = await services.signin.staff_for_bearer(bearer(authorization, NO_STAFF_KEY))
    except Unauthorized as err:
        raise CODEC_NEEDS_KEY from err
    except Unavailable as err:  # the identity provider's keys could not be fetched
        raise ApiError(
            503, "temporarily_unavailable", err.message, headers={"Retry-After": "5"}
        ) from err
    roles = settings.resolved_codec_roles - ({StaffRole.REVIEWER.value} if sealing else set())
    if member.role.value not in roles:
        raise ApiError(
            403,
            "role_not_allowed",
            f"The codec endpoint {'seals' if sealing else 'opens'} payloads for "
            f"{', '.join(sorted(roles)) or 'nobody'} only; a {member.role.value} reads "
            "claims in the console.",
        )


def metrics_scraper(
    services: AppServices, authorization: Annotated[str | None, Header()] = None
) -> None:
    """With RECLAIM_METRICS_TOKEN set, `/metrics` wants it as a bearer token."""
    token = services.settings.metrics_token
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise ApiError(
            401,
            "invalid_token",
            "Metrics need `Authorization: Bearer <RECLAIM_METRICS_TOKEN>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )


SessionToken = Annotated[str, Depends(session_token)]
ClaimToken = Annotated[str, Depends(claim_token)]
StaffMember = Annotated[Reviewer, Depends(staff_member)]
CodecReader = Depends(codec_reader)
CodecSealer = Depends(codec_sealer)
MetricsScraper = Depends(metrics_scraper)


def client_address(request: Request) -> str | None:
    """The client's address (behind a proxy, the one `reclaim api` trusts it to name)."""
    return request.client.host if request.client else None


def api_origin(request: Request) -> Origin:
    """Where a staff call over the API comes from, for the audit."""
    return Origin("api", client_address(request))


ApiOrigin = Annotated[Origin, Depends(api_origin)]
