"""Refuse request bodies over `RECLAIM_MAX_BODY_BYTES` before anything reads them."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError


class BodySizeLimit:
    """`max_bytes` for every route, except the path prefixes given a larger limit of their
    own (the codec endpoint carries whole histories' payloads)."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}

    def _refusal(self, limit: int) -> ApiError:
        return ApiError(413, "payload_too_large", f"The request body is over {limit} bytes.")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = next(
            (n for prefix, n in self.larger.items() if path.startswith(prefix)), self.max_bytes
        )
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refusal(limit).response()(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            # A body sent without Content-Length (chunked) is counted as it arrives; FastAPI
            # lets an HTTPException raised while reading the body through to the handlers.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, self._refusal(limit).message)
            return message

        await self.app(scope, counting_receive, send)
