"""The account holder's own account: signing in with a password, the session that results, and
deactivating the account (the first step of deleting it)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import SessionToken
from api.deps import AppServices
from reclaim.lifecycle.service import Pending

sessions = APIRouter(prefix="/v1/sessions", tags=["sessions"])
accounts = APIRouter(prefix="/v1/accounts", tags=["accounts"])

_ERROR = {"description": "JSON error: `{error, message, ...}`"}


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"identifier": "jane@example.com", "password": "correct horse battery"}]
        },
    )

    identifier: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class SessionTokenOut(BaseModel):
    session_token: str


class SessionInfo(BaseModel):
    username: str
    created_at: datetime


@sessions.post(
    "", response_model=SessionTokenOut, responses={401: _ERROR, 403: _ERROR}, summary="Sign in"
)
async def sign_in(body: LoginRequest, services: AppServices) -> SessionTokenOut:
    """Signing in inside a deactivation's grace period keeps the account."""
    token = await services.lifecycle.sign_in(body.identifier, body.password)
    return SessionTokenOut(session_token=token)


@sessions.get(
    "/current", response_model=SessionInfo, responses={401: _ERROR}, summary="The session"
)
async def current(services: AppServices, token: SessionToken) -> SessionInfo:
    view = await services.lifecycle.session(token)
    return SessionInfo(username=view.username, created_at=view.created_at)


@sessions.delete("/current", status_code=204, responses={401: _ERROR}, summary="Sign out")
async def sign_out(services: AppServices, token: SessionToken) -> Response:
    await services.lifecycle.sign_out(token)
    return Response(status_code=204)


class DeactivateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class Deactivation(BaseModel):
    status: str
    # When the account and its personal data are deleted, unless its holder signs in (or
    # recovers it) before then. None while the deactivation is still being applied.
    purge_at: datetime | None


@accounts.post(
    "/deactivate",
    status_code=202,
    response_model=Deactivation,
    responses={401: _ERROR, 409: _ERROR, 503: _ERROR},
    summary="Deactivate my account (deleted after the grace period)",
)
async def deactivate(
    services: AppServices, token: SessionToken, body: DeactivateRequest | None = None
) -> Deactivation:
    outcome = await services.lifecycle.deactivate_own(token, body.reason if body else None)
    if isinstance(outcome, Pending):
        # Accepted by Temporal: the deactivation happens as soon as a worker runs it.
        return Deactivation(status="deactivating", purge_at=None)
    return Deactivation(status="deactivated", purge_at=outcome.until)
