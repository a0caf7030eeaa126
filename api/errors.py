"""Every error leaves as JSON `{"error": code, "message": text, ...}`: never a stack trace,
never a 500 for bad input. The services' domain errors (`reclaim.errors`) are mapped to HTTP
here, in one table. A browser (`Accept: text/html`) asking for a path outside `/v1/`,
`/codec/` and `/dev/` gets a page instead for a 404, a 405 and an unexpected 500
(`app.state.error_page`, set by the pages); an unexpected error's page and JSON name a
`reference`, its details only in the log. Reclaim's own database not answering (down,
restarting: `reclaim.store.engine.database_unreachable`) is no bug of ours: a 503 with
`Retry-After`, as for Temporal, and the "please try again" page for a browser."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from reclaim.contracts import CaseError
from reclaim.directory import CapabilityMissing, DirectoryUnavailable
from reclaim.errors import DomainError, NotFound, Refused, Unauthorized, Unavailable
from reclaim.store.engine import database_unreachable

log = structlog.get_logger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "message": self.message, **self.extra},
            status_code=self.status,
            headers=self.headers,
        )


# The HTTP status of each refusal code a service raises (`reclaim.errors.Refused.code`).
REFUSAL_STATUS = {
    CaseError.INVALID_CODE: 400,
    CaseError.CODE_EXPIRED: 410,
    CaseError.CODE_REPLACED: 410,
    CaseError.CASE_LOCKED: 423,
    CaseError.INVALID_STATE: 409,
    CaseError.RESEND_COOLDOWN: 429,
    CaseError.RESEND_LIMIT: 429,
    CaseError.INVALID_TOKEN: 403,
    CaseError.RESET_EXPIRED: 410,
    "token_used": 409,
    CaseError.WEAK_PASSWORD: 422,
    CaseError.PASSWORD_REUSED: 422,
    CaseError.SUPERVISOR_REQUIRED: 403,
    CaseError.NOT_ASSIGNEE: 403,
    "reviewer_required": 403,
    CaseError.CANNOT_RESOLVE: 409,
    "lift_refused": 409,
    "invalid_link": 400,
    CaseError.SAME_PERSON: 403,
    "invalid_identifier": 422,
    "invalid_request": 422,
    "invalid_cursor": 422,  # a queue page's `after` the queue did not give
    "unknown_assignee": 422,
    "invalid_factor": 422,  # an approval naming no second factor (lost_authenticator)
    "rate_limited": 429,
    "challenge_required": 429,
    "invalid_proof": 422,
    "account_banned": 403,
    "account_deactivated": 403,
    "account_purged": 403,
    "account_unavailable": 403,
    "passkey_refused": 422,  # a registration the browser answered wrongly (security page)
    "passkey_cloned": 422,
}


def from_domain(error: DomainError) -> ApiError:
    """A service's error as the JSON answer the user gets."""
    if isinstance(error, NotFound):
        return ApiError(404, "not_found", error.message)
    if isinstance(error, Unavailable):
        return ApiError(
            503,
            "temporarily_unavailable",
            error.message,
            headers={"Retry-After": str(error.retry_after)},
        )
    if isinstance(error, Unauthorized):
        return ApiError(401, error.code, error.message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(error, Refused):
        status = REFUSAL_STATUS.get(error.code)
        if status is None:
            log.error("unexpected_refusal", code=error.code)
            return ApiError(500, "internal_error", "Something went wrong on our side.")
        headers = {}
        if error.retry_after is not None:
            headers["Retry-After"] = str(error.retry_after)
        return ApiError(status, error.code, error.message, headers=headers, **error.details)
    return ApiError(500, "internal_error", "Something went wrong on our side.")


def unavailable_directory() -> ApiError:
    return from_domain(Unavailable("The account directory"))


_HTTP_ERRORS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


# Paths that answer programs only: JSON whatever the Accept header says.
JSON_PREFIXES = ("/v1/", "/codec/", "/dev/")


def wants_page(scope: Scope) -> bool:
    """A person's browser (a page, a form post) rather than a program calling the API."""
    path: str = scope.get("path", "")
    if path.startswith(JSON_PREFIXES) or path == "/v1":
        return False
    accept = dict(scope.get("headers") or []).get(b"accept", b"")
    return b"text/html" in accept


# The statuses a browser gets a page for; any other error is JSON whoever asks.
PAGE_STATUSES = frozenset({404, 405, 500, 503})
# `(request, status, reference)` -> the page (api.pages sets it as `app.state.error_page`);
# a 503's is the "please try again" page.
ErrorPage = Callable[[Request, int, str | None], Response]


def _page(request: Request, status: int, reference: str | None = None) -> Response | None:
    """The error's page when a browser asked for a page, else None (JSON)."""
    if status not in PAGE_STATUSES or not wants_page(request.scope):
        return None
    error_page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    if error_page is None:
        return None
    try:
        return error_page(request, status, reference)
    except Exception:  # the page itself failed: the JSON answer still goes out
        log.exception("error_page_failed", status=status)
        return None


def database_down(request: Request, error: BaseException) -> Response:
    """The answer while the database does not answer: nothing was done, try again. Logged
    as a warning naming the error's type only (its text may carry SQL and its parameters)."""
    log.warning("database_unavailable", path=request.url.path, error=type(error).__name__)
    answer = from_domain(Unavailable("The service's database"))
    answer.headers["Cache-Control"] = "no-store"
    page = _page(request, answer.status)
    if page is not None:
        page.headers.update(answer.headers)
        return page
    return answer.response()


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return from_domain(exc).response()

    @app.exception_handler(DirectoryUnavailable)
    async def _directory_down(_request: Request, exc: DirectoryUnavailable) -> JSONResponse:
        return unavailable_directory().response()

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> Response:
        if database_unreachable(exc):
            return database_down(request, exc)
        raise exc  # our mistake (bad SQL, a broken constraint): `_unexpected`, a 500

    @app.exception_handler(CapabilityMissing)
    async def _cannot(_request: Request, exc: CapabilityMissing) -> JSONResponse:
        return ApiError(501, "not_supported", str(exc)).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return ApiError(400, "invalid_json", "The request body is not valid JSON.").response()
        fields = [
            {"field": _field(tuple(p.get("loc", ()))), "problem": p.get("msg", "invalid")}
            for p in problems
        ]
        summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields[:3])
        return ApiError(
            422, "invalid_request", f"The request is not valid ({summary}).", fields=fields
        ).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        page = _page(request, exc.status_code)
        if page is not None:
            page.headers.update(exc.headers or {})  # a 405's Allow
            return page
        code = _HTTP_ERRORS.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return ApiError(exc.status_code, code, message, headers=exc.headers).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if database_unreachable(exc):  # raised outside the routes (a middleware)
            return database_down(request, exc)
        reference = secrets.token_hex(6)
        log.exception(
            "unhandled_error",
            path=request.url.path,
            error=type(exc).__name__,
            reference=reference,
        )
        page = _page(request, 500, reference)
        if page is not None:
            return page
        return ApiError(
            500, "internal_error", "Something went wrong on our side.", reference=reference
        ).response()
