"""Pages for people, served by the API process: recovery (`/`, `/recover`), support claims
(`/support`), signing in (`/signin`), and the API manual (`/docs`), every asset served by
Reclaim itself (`/assets`). `install` adds them to the app."""

from __future__ import annotations

import mimetypes
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from api.guard import own_path
from api.pages import account_security, lifecycle, recovery, support
from api.pages.forms import FormExpired
from api.pages.render import LANG_COOKIE, render, text_for
from api.pages.security import HEADERS, set_cookie
from api.pages.words import Problem
from reclaim.i18n import supported
from reclaim.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
FAVICON = STATIC / "favicon.svg"  # also /favicon.ico, and linked from every page
LOGO_TYPES = {".png", ".svg", ".jpg", ".jpeg", ".webp"}
# Swagger UI 5 (it reads the OpenAPI 3.1 document FastAPI writes), as the fastapi-offline
# package ships it: swagger-ui-bundle.js and swagger-ui.css, served under /assets/swagger.
SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI, settings: Settings) -> None:
    app.include_router(recovery.router)
    app.include_router(support.router)
    app.include_router(lifecycle.router)
    app.include_router(account_security.router)

    @app.get("/assets/brand.css", include_in_schema=False)
    async def brand_css() -> Response:
        css = f":root {{ --accent: {settings.brand_accent}; }}\n"
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=300"})

    @app.get("/assets/logo", include_in_schema=False)
    async def logo() -> Response:
        path = settings.brand_logo
        if path is None or path.suffix.lower() not in LOGO_TYPES or not path.is_file():
            return Response(status_code=404)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return Response(path.read_bytes(), media_type=media)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """What a browser asks for on any page, whatever the pages link (an SVG icon)."""
        return Response(
            FAVICON.read_bytes(),
            media_type="image/svg+xml",
            headers={"Cache-Control": "max-age=86400"},
        )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI from the fastapi-offline package: it works offline."""
        return HTMLResponse(DOCS_PAGE.replace("{title}", f"{settings.product_name} API"))

    app.mount(
        "/assets/swagger",
        StaticFiles(directory=SWAGGER_UI),
        name="swagger",
    )
    app.mount("/assets", StaticFiles(directory=STATIC), name="assets")

    def error_page(request: Request, status: int, reference: str | None) -> Response:
        if status == 503:  # the database does not answer: nothing was done, try again
            t = text_for(request, settings)
            problem = Problem(t("We cannot answer right now. Try again in a few seconds."))
            response = render(request, settings, "unavailable.html", status, problem=problem)
        else:
            response = render(request, settings, "error.html", status, reference=reference)
        del response.headers["set-cookie"]  # not even a form token: it has no form
        # A 500's page leaves from outside every middleware: the pages' headers go with it.
        for name, value in HEADERS.items():
            response.headers.setdefault(name.decode(), value.decode())
        return response

    app.state.error_page = error_page  # api.errors: a browser's page for a 404, 405, 500, 503

    @app.exception_handler(FormExpired)
    async def _expired(request: Request, exc: FormExpired) -> Response:
        return render(request, settings, "expired.html", 403)


class LanguageSwitch:
    """`?lang=fr` on any page: remembered in a cookie, then the same page without it (a
    path of one of Reclaim's routes, relative; any other, `//evil.example/` included: `/`).
    Every other request goes straight through (as a BaseHTTPMiddleware around all of them,
    this cost the API about 9 % of its CPU)."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") != "GET"
            or b"lang=" not in scope.get("query_string", b"")
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        chosen = request.query_params.get("lang")
        if chosen is None:
            await self.app(scope, receive, send)
            return
        kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        path = own_path(scope["path"])
        if path == "/" or not self._routed(scope):
            path, kept = "/", []
        target = path + (f"?{urlencode(kept)}" if kept else "")
        response = RedirectResponse(target, status_code=303)
        if supported(chosen):
            set_cookie(response, request, LANG_COOKIE, supported(chosen) or "", path="/")
        await response(scope, receive, send)

    def _routed(self, scope: Scope) -> bool:
        """A route of the app answers this GET (not just a 404)."""
        return any(route.matches(scope)[0] is not Match.NONE for route in self.router.routes)


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/swagger/swagger-ui.css">
<link rel="stylesheet" href="/assets/docs.css">
</head>
<body>
<main id="swagger-ui"></main>
<script src="/assets/swagger/swagger-ui-bundle.js"></script>
<script src="/assets/docs.js"></script>
</body>
</html>
"""
