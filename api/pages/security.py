"""What keeps the pages safe: the headers every response carries, cookies that scripts cannot
read, and a token on every form (CSRF).

- `Content-Security-Policy` allows scripts, styles and images from Reclaim itself only (no
  inline script, no CDN), no framing, forms posting to Reclaim only; `Referrer-Policy:
  no-referrer`, `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`.
- Forms carry the value of a random `reclaim_csrf` cookie (SameSite=Strict, HttpOnly) in a
  hidden field: a post whose field and cookie differ (another site's form, an expired page)
  is refused, as is one whose `Origin` is not the public URL's (RECLAIM_PUBLIC_URL; never
  the origin the request's own `Host` names).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Literal

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reclaim.settings import Settings, origin_of

CSRF_COOKIE = "reclaim_csrf"
CSRF_FIELD = "csrf"

POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
HEADERS = {
    b"content-security-policy": POLICY.encode(),
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
}


HSTS = b"max-age=31536000; includeSubDomains"
# Staff's answers (claims, evidence, contacts) are never kept by a cache, the browser's included.
NO_STORE_PREFIXES = ("/v1/staff/", "/console")


class SecurityHeaders:
    """Every response, pages and JSON alike, carries the headers above (a header the route
    set itself wins); `Strict-Transport-Security` when the public URL is https; `Cache-Control:
    no-store` on the staff's JSON and the console, whatever the route said."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = dict(HEADERS)
        if settings.public_https:
            self.headers[b"strict-transport-security"] = HSTS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        staff = scope["path"] == "/v1/staff" or scope["path"].startswith(NO_STORE_PREFIXES)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if staff:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                present = {name.lower() for name, _ in headers}
                extra = [(k, v) for k, v in self.headers.items() if k not in present]
                message["headers"] = [*headers, *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def set_cookie(
    response: Response,
    request: Request,
    name: str,
    value: str,
    *,
    path: str,
    max_age: int | None = None,
    samesite: Literal["strict", "lax"] = "strict",
) -> None:
    """A cookie only Reclaim's pages send back, never a script, never another site; `Secure`
    whenever the page came over HTTPS (behind a proxy: `X-Forwarded-Proto`, which `reclaim
    api` trusts from its proxy). `lax` only where a cookie must come back on a page reached
    from another site: kept from a message's link (a browser sends a Strict cookie on no page
    reached from a mail's link, not even the one its redirect leads to), or the console's
    after the identity provider's redirect. Every post still needs the Strict form token."""
    response.set_cookie(
        name,
        value,
        path=path,
        max_age=max_age,
        httponly=True,
        samesite=samesite,
        secure=request.url.scheme == "https",
    )


def csrf_token(request: Request) -> tuple[str, bool]:
    """The form token of this browser, and whether it is new (then the response sets it)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) >= 32:
        return existing, False
    return secrets.token_urlsafe(32), True


def csrf_ok(request: Request, form: Mapping[str, object], settings: Settings) -> bool:
    """The post comes from one of Reclaim's own pages in this browser."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    field = form.get(CSRF_FIELD)
    if not cookie or not isinstance(field, str):
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin_of(origin) != settings.public_origin:
        return False
    return hmac.compare_digest(cookie.encode(), field.encode())
