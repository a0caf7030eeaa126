"""The codec endpoint: the Temporal Web UI and the `temporal` CLI send encrypted payloads
here to read them (`/codec/decode`) or to send a signal or query with arguments
(`/codec/encode`).

Staff whose role RECLAIM_CODEC_ROLES names (supervisors and operators by default; sealing never
for a reviewer): `Authorization: Bearer rk_…` (the CLI's `--codec-auth`), or, when staff sign in
through the identity provider (RECLAIM_OIDC_ISSUER), one of its ID or access tokens for
Reclaim's client id naming someone with a role (the Web UI behind the same single sign-on).
The one exception is the
`reclaim dev` UI on this machine: in dev mode a request from the configured UI origin needs no
key. Browsers may call it from the UI origin only (CORS).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payload

from api.auth import CodecReader, CodecSealer
from api.deps import AppServices
from api.errors import ApiError
from reclaim.settings import Settings
from reclaim.temporal.codec import CodecKeyError

router = APIRouter(prefix="/codec", tags=["codec"])
PREFIX = "/codec"
_ERROR = {"description": "JSON error: `{error, message, ...}`"}


class PayloadJson(BaseModel):
    """A payload in protobuf's JSON form: metadata values and data in base64."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class Payloads(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payloads: list[PayloadJson] = Field(max_length=1000)


def _from_json(item: PayloadJson) -> Payload:
    try:
        return Payload(
            metadata={k: base64.b64decode(v, validate=True) for k, v in item.metadata.items()},
            data=base64.b64decode(item.data, validate=True),
        )
    except (binascii.Error, ValueError) as err:
        raise ApiError(400, "invalid_payload", "Metadata and data must be base64.") from err


def _to_json(payload: Payload) -> PayloadJson:
    return PayloadJson(
        metadata={k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        data=base64.b64encode(payload.data).decode(),
    )


@router.post(
    "/encode",
    response_model=Payloads,
    responses={400: _ERROR, 401: _ERROR, 403: _ERROR},
    dependencies=[CodecSealer],
)
async def encode(body: Payloads, services: AppServices) -> Payloads:
    encoded = await services.codec.encode([_from_json(p) for p in body.payloads])
    return Payloads(payloads=[_to_json(p) for p in encoded])


@router.post(
    "/decode",
    response_model=Payloads,
    responses={400: _ERROR, 401: _ERROR, 403: _ERROR},
    dependencies=[CodecReader],
)
async def decode(body: Payloads, services: AppServices) -> Payloads:
    try:
        decoded = services.codec.reveal([_from_json(p) for p in body.payloads])
    except (CodecKeyError, InvalidTag) as err:
        raise ApiError(
            400, "undecryptable", "A payload was not encrypted with any key this codec has."
        ) from err
    return Payloads(payloads=[_to_json(p) for p in decoded])


class CodecCors:
    """CORS for the codec endpoint only, and for the Web UI's origin only. Every other
    request goes straight through (a BaseHTTPMiddleware around all of them cost the API about
    7 % of its CPU)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._codec = _CodecCors(app, set(settings.resolved_ui_origins))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(PREFIX):
            await self._codec(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class _CodecCors(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, origins: set[str]) -> None:
        super().__init__(app)
        self._origins = origins

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        origin = request.headers.get("origin", "").rstrip("/")
        allowed = origin in self._origins
        if request.method == "OPTIONS" and request.headers.get("access-control-request-method"):
            if not allowed:
                return Response(status_code=403)
            response = Response(status_code=204)
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, X-Namespace"
            )
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await call_next(request)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
        return response
