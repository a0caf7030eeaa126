"""What the HTTP layer refuses before any route sees a request, and what it never answers.

- `AllowedHosts`: a request naming a host that is not Reclaim's (`RECLAIM_ALLOWED_HOSTS`,
  default the public URL's host) gets 400 `host_not_allowed` (health checks and /metrics
  excepted: a probe names the address it dials).
- `IdShapes`: a path whose case or claim id has not the shape Reclaim gives its ids
  (`rc_`/`sc_` and 22 URL-safe base64 characters) is not found: the JSON 404 under /v1, the
  pages' "this link does not work" page elsewhere. No route then puts such an id into a
  cookie, a header or a query.
- `SafeRedirects`: a `Location` is a path of Reclaim's own (made relative when it names the
  request's own host, as Starlette's trailing-slash redirect does), or another site a route
  chose (the identity provider); never a `//host` path.
- `own_path`: a request's path as a link or redirect target on this site.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError
from reclaim.security import CASE_ID_PREFIX, CLAIM_CASE_PREFIX
from reclaim.settings import Settings

# `new_case_id`: a prefix and secrets.token_urlsafe(16), 22 characters.
CASE_ID = re.compile(rf"{CASE_ID_PREFIX}[A-Za-z0-9_-]{{22}}")
CLAIM_ID = re.compile(rf"{CLAIM_CASE_PREFIX}[A-Za-z0-9_-]{{22}}")

# The routes with an id in their path: the prefix before it, and the id's shape.
ID_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("/v1/recovery/", CASE_ID),
    ("/v1/support-cases/", CLAIM_ID),
    ("/v1/staff/cases/", CLAIM_ID),
    ("/recover/", CASE_ID),
    ("/stop/", CASE_ID),
    ("/support/claims/", CLAIM_ID),
    ("/console/cases/", CLAIM_ID),
)
JSON_PREFIXES = ("/v1/",)
HOST_FREE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


def is_case_id(value: str) -> bool:
    return CASE_ID.fullmatch(value) is not None


def is_claim_id(value: str) -> bool:
    return CLAIM_ID.fullmatch(value) is not None


def own_path(path: str) -> str:
    """`path` as a target on this site: one leading slash (`//evil.example/` would be
    another host), no backslash or control character, percent-encoded; else `/`."""
    if not path.startswith("/") or "//" in path or _CONTROL.search(path):
        return "/"
    return quote(path, safe="/:@!$&'()*+,;=-._~")


def _host_name(host: str) -> str:
    """The name of a `Host` header's value, without the port, lower-case."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    name, _, _port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return name.rstrip(".")


class AllowedHosts:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.allowed = settings.resolved_allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HOST_FREE_PATHS:
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
                break
        if _host_name(host) in self.allowed:
            await self.app(scope, receive, send)
            return
        refused = ApiError(
            400,
            "host_not_allowed",
            "This server does not answer for the host the request names.",
        )
        await refused.response()(scope, receive, send)


class IdShapes:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._well_shaped(scope["path"]):
            await self._not_found(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _well_shaped(path: str) -> bool:
        for prefix, shape in ID_ROUTES:
            if path.startswith(prefix):
                named = path[len(prefix) :].split("/", 1)[0]
                return not named or shape.fullmatch(named) is not None
        return True

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if scope["path"].startswith(JSON_PREFIXES):
            response = ApiError(404, "not_found", "There is no such case.").response()
        else:
            from api.pages.render import render  # the pages import this module's helpers

            response = render(Request(scope, receive), self.settings, "gone.html", 404)
            del response.headers["set-cookie"]  # not even a form token: it has no form
        await response(scope, receive, send)


class SafeRedirects:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own_host = ""
        for name, value in scope.get("headers", []):
            if name == b"host":
                own_host = value.decode("latin-1").lower()
                break

        async def relative(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, _safe_location(value.decode("latin-1"), own_host).encode("latin-1"))
                    if name.lower() == b"location"
                    else (name, value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, relative)


def _safe_location(location: str, own_host: str) -> str:
    # Unpacked, not `.query`: the architecture test keeps that name for workflow queries.
    scheme, netloc, target, search, _ = urlsplit(location)
    if scheme or netloc:
        if netloc.lower() != own_host or scheme not in ("http", "https"):
            return location if scheme in ("http", "https") else "/"
        # Built from the request (Starlette's trailing-slash redirect): our own path.
        path = own_path(target or "/")
        return path + (f"?{search}" if search and path != "/" else "")
    if not location.startswith("/") or location.startswith("//") or _CONTROL.search(location):
        return "/"
    return location
