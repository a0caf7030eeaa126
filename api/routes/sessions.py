"""Signing in with a password, and the session that results."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AppServices
from api.errors import ApiError
from reclaim import accounts
from reclaim.account_cases import signal_reactivated
from reclaim.identifiers import InvalidIdentifier, parse_identifier

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

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


class SessionToken(BaseModel):
    session_token: str


class SessionInfo(BaseModel):
    username: str
    created_at: datetime


_INVALID_CREDENTIALS = ApiError(
    401, "invalid_credentials", "The identifier or the password is not right."
)


def bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "invalid_session",
            "Send the session token as `Authorization: Bearer <token>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


@router.post(
    "", response_model=SessionToken, responses={401: _ERROR, 403: _ERROR}, summary="Sign in"
)
async def sign_in(body: LoginRequest, services: AppServices) -> SessionToken:
    try:
        identifier = parse_identifier(body.identifier, services.settings.default_region)
    except InvalidIdentifier as err:
        raise _INVALID_CREDENTIALS from err
    result = await asyncio.to_thread(
        accounts.login,
        services.engine,
        services.keys,
        services.passwords,
        identifier,
        body.password,
    )
    if result.reactivated is not None:
        await signal_reactivated(services.client, result.reactivated)
    if result.token is not None:
        return SessionToken(session_token=result.token)
    if result.problem == "invalid_credentials":
        raise _INVALID_CREDENTIALS
    if result.problem == "account_banned":
        until = result.until
        raise ApiError(
            403,
            "account_banned",
            f"This account is suspended until {until:%Y-%m-%d %H:%M} UTC."
            if until
            else "This account is suspended until further notice.",
            ends_at=until.isoformat() if until else None,
            appeal_url=services.settings.resolved_support_url,
        )
    status = (result.problem or "account_unavailable").removeprefix("account_")
    raise ApiError(403, result.problem or "account_unavailable", f"This account is {status}.")


INVALID_SESSION = ApiError(
    401, "invalid_session", "This session is not valid (signed out or revoked)."
)


async def current_session(services: AppServices, authorization: str | None) -> accounts.SessionView:
    """The session a request's bearer token names; 401 when there is none."""
    token = bearer(authorization)
    view = await asyncio.to_thread(accounts.current_session, services.engine, services.keys, token)
    if view is None:
        raise INVALID_SESSION
    return view


@router.get("/current", response_model=SessionInfo, responses={401: _ERROR}, summary="The session")
async def current(
    services: AppServices, authorization: Annotated[str | None, Header()] = None
) -> SessionInfo:
    view = await current_session(services, authorization)
    return SessionInfo(username=view.username, created_at=view.created_at)


@router.delete("/current", status_code=204, responses={401: _ERROR}, summary="Sign out")
async def sign_out(
    services: AppServices, authorization: Annotated[str | None, Header()] = None
) -> Response:
    token = bearer(authorization)
    if not await asyncio.to_thread(accounts.end_session, services.engine, services.keys, token):
        raise INVALID_SESSION
    return Response(status_code=204)
