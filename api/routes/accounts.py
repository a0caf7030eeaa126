"""What an account holder does to their own account: deactivate it (the first step of
deleting it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AppServices
from api.errors import ApiError
from api.routes.sessions import current_session
from reclaim.account_cases import Pending
from reclaim.accounts import ACCOUNT_HOLDER
from reclaim.contracts import LifecycleState

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

_ERROR = {"description": "JSON error: `{error, message, ...}`"}


class DeactivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class Deactivation(BaseModel):
    status: str
    # When the account and its personal data are deleted, unless its holder signs in (or
    # recovers it) before then. None while the deactivation is still being applied.
    purge_at: datetime | None


@router.post(
    "/deactivate",
    status_code=202,
    response_model=Deactivation,
    responses={401: _ERROR, 409: _ERROR, 503: _ERROR},
    summary="Deactivate my account (deleted after the grace period)",
)
async def deactivate(
    services: AppServices,
    body: DeactivateRequest | None = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Deactivation:
    view = await current_session(services, authorization)
    outcome = await services.cases.call(
        lambda: services.accounts.deactivate(
            view.account_id, ACCOUNT_HOLDER, body.reason if body else None
        )
    )
    if isinstance(outcome, Pending):
        # Accepted by Temporal: the deactivation happens as soon as a worker runs it.
        return Deactivation(status="deactivating", purge_at=None)
    if outcome.state is not LifecycleState.DEACTIVATED:
        raise ApiError(409, "invalid_state", "This account cannot be deactivated now.")
    return Deactivation(status="deactivated", purge_at=outcome.until)
