"""The FastAPI application: `create_app()` for uvicorn, tests build it with their own parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import console, pages
from api.admission import Admission
from api.errors import install_error_handlers
from api.guard import AllowedHosts, IdShapes, SafeRedirects
from api.limits import BodySizeLimit
from api.metrics import ApiMetrics, RequestObserver
from api.pages.security import SecurityHeaders
from api.routes import codec, dev, health, lifecycle, recovery, support
from reclaim.services import Services, build_services
from reclaim.settings import Settings, load_settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import require_current
from reclaim.temporal.connection import connect
from reclaim.tracing import API, Tracing, from_env

CODEC_MAX_BODY_BYTES = 4 * 1024 * 1024

DESCRIPTION = """
Account recovery for people who lost access: a one-time code by email or SMS, then a new
password. Every case is a durable Temporal workflow. Errors are JSON
`{"error": "<code>", "message": "..."}`.
"""


async def services_for(settings: Settings, tracing: Tracing | None = None) -> Services:
    """The API process's services: its database (at the schema this release needs) and a
    Temporal client connected lazily, so the API starts (and /healthz says what is missing)
    even if Temporal is not up yet."""
    engine = make_engine(settings.resolved_database_url)
    require_current(engine)  # the schema is `reclaim db upgrade`'s business, not the API's
    client = await connect(settings, lazy=True, tracing=tracing)
    return build_services(settings, client, engine)


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    tracing: Tracing | None = None,
) -> FastAPI:
    """The app. Without `services` it is the API process's own (uvicorn's factory): it
    builds them at start, and traces as the OTEL_* variables say (reclaim/tracing.py).
    Given `tracing`, requests get spans whatever the variables say (the services given
    should then have a client connected with the same tracing)."""
    settings = settings or (services.settings if services else load_settings())
    owned = services is None
    if owned and tracing is None:
        tracing = from_env(API)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = services or await services_for(settings, tracing)
        metrics.watch(app.state.services.engine)
        yield
        metrics.forget()
        if owned:
            await app.state.services.aclose()
            app.state.services.engine.dispose()
            if tracing is not None:
                tracing.shutdown()  # the last spans are exported before the process ends

    app = FastAPI(
        title="Reclaim",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # The manual is served by api.pages from the fastapi-offline package (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    metrics = app.state.metrics = ApiMetrics()
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger={codec.PREFIX: CODEC_MAX_BODY_BYTES},
    )
    app.add_middleware(codec.CodecCors, settings=settings)
    # Inside the security headers (a refusal page has the pages' CSP) and the request metrics.
    app.add_middleware(Admission, settings=settings, metrics=metrics)
    app.add_middleware(pages.LanguageSwitch, router=app.router)
    # A request for another host, or naming an id of no shape Reclaim gives, is refused
    # before it takes a slot or reaches a route (api/guard.py).
    app.add_middleware(IdShapes, settings=settings)
    app.add_middleware(AllowedHosts, settings=settings)
    app.add_middleware(SafeRedirects)  # every Location: our own path, or a site a route chose
    app.add_middleware(SecurityHeaders, settings=settings)
    app.add_middleware(RequestObserver, metrics=metrics)  # outermost: sees every request
    app.include_router(recovery.router)
    app.include_router(lifecycle.sessions)
    app.include_router(lifecycle.accounts)
    app.include_router(support.claimant)
    app.include_router(support.staff)
    app.include_router(codec.router)
    app.include_router(health.router)
    if settings.dev_mode:
        app.include_router(dev.router)
    pages.install(app, settings)
    console.install(app)
    if tracing is not None:
        tracing.instrument(app)
    return app
