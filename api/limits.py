"""Refuse request bodies over `RECLAIM_MAX_BODY_BYTES` before anything reads them."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refusal(self) -> ApiError:
        return ApiError(
            413, "payload_too_large", f"The request body is over {self.max_bytes} bytes."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refusal().response()(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            # A body sent without Content-Length (chunked) is counted as it arrives; FastAPI
            # lets an HTTPException raised while reading the body through to the handlers.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, self._refusal().message)
            return message

        await self.app(scope, counting_receive, send)
