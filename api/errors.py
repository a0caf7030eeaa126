"""Every error leaves as JSON `{"error": code, "message": text, ...}`: never a stack trace,
never a 500 for bad input. Workflow refusals are mapped to HTTP here, in one table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.exceptions import ApplicationError

from reclaim.contracts import CaseError

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


CASE_NOT_FOUND = ApiError(404, "not_found", "No recovery case has this id.")
CLAIM_NOT_FOUND = ApiError(404, "not_found", "No support claim has this id.")


def unavailable(what: str = "The recovery service") -> ApiError:
    return ApiError(
        503,
        "temporarily_unavailable",
        f"{what} is not answering right now. Try again in a few seconds.",
        headers={"Retry-After": "5"},
    )


_CASE_ERROR_STATUS = {
    CaseError.INVALID_CODE: 400,
    CaseError.CODE_EXPIRED: 410,
    CaseError.CASE_LOCKED: 423,
    CaseError.INVALID_STATE: 409,
    CaseError.RESEND_COOLDOWN: 429,
    CaseError.RESEND_LIMIT: 429,
    CaseError.INVALID_TOKEN: 403,
    CaseError.RESET_EXPIRED: 410,
    CaseError.SUPERVISOR_REQUIRED: 403,
    CaseError.NOT_ASSIGNEE: 403,
    CaseError.CANNOT_RESOLVE: 409,
}


def from_refusal(error: ApplicationError) -> ApiError:
    """A workflow update refused or failed with `ApplicationError(type=CaseError...)`."""
    try:
        case_error = CaseError(error.type or "")
        status = _CASE_ERROR_STATUS[case_error]
    except (ValueError, KeyError):
        log.error("unexpected_workflow_error", type=error.type)
        return ApiError(500, "internal_error", "Something went wrong on our side.")
    extra: dict[str, Any] = {}
    if error.details and isinstance(error.details[0], Mapping):
        extra = dict(error.details[0])
    headers = {}
    if "retry_after_seconds" in extra:
        headers["Retry-After"] = str(extra["retry_after_seconds"])
    return ApiError(status, case_error.value, error.message, headers=headers, **extra)


def refusal_for(error: CaseError, state: str | None = None) -> ApiError:
    """The refusal a workflow would have given, for a case that has already ended."""
    messages = {
        CaseError.CASE_LOCKED: "Too many wrong codes: this case is locked. Start a new recovery.",
        CaseError.CODE_EXPIRED: "This case has expired. Start a new recovery.",
        CaseError.RESET_EXPIRED: "The time to choose a new password ran out. Start again.",
        CaseError.INVALID_TOKEN: "This reset token is not valid.",
    }
    extra: dict[str, Any] = {}
    if error is CaseError.CASE_LOCKED:
        extra["attempts_left"] = 0
    if error is CaseError.INVALID_STATE and state:
        extra["state"] = state
    message = messages.get(error, f"This case is {state or 'closed'}.")
    return ApiError(_CASE_ERROR_STATUS[error], error.value, message, **extra)


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


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

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
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_ERRORS.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return ApiError(exc.status_code, code, message, headers=exc.headers).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, error=type(exc).__name__)
        return ApiError(500, "internal_error", "Something went wrong on our side.").response()
