"""The FastAPI application: `create_app()` for uvicorn, tests build it with their own parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.case_calls import CaseCalls
from api.deps import Services
from api.errors import install_error_handlers
from api.limits import BodySizeLimit
from api.metrics import ApiMetrics, RequestObserver
from api.routes import accounts, codec, dev, health, recovery, sessions, staff, support
from api.support_calls import SupportCalls
from reclaim.account_cases import AccountCases
from reclaim.claim_cases import SupportClaims
from reclaim.db import make_engine
from reclaim.migrations import require_current
from reclaim.security import Keys, Passwords
from reclaim.settings import Settings, load_settings
from reclaim.temporal import connect

CODEC_MAX_BODY_BYTES = 4 * 1024 * 1024

DESCRIPTION = """
Account recovery for people who lost access: a one-time code by email or SMS, then a new
password. Every case is a durable Temporal workflow. Errors are JSON
`{"error": "<code>", "message": "..."}`.
"""


async def build_services(settings: Settings) -> Services:
    engine = make_engine(settings.resolved_database_url)
    require_current(engine)  # the schema is `reclaim db upgrade`'s business, not the API's
    # Lazy: the API starts (and /healthz says what is missing) even if Temporal is not up yet.
    client = await connect(settings, lazy=True)
    keys = Keys(settings.secret_bytes())
    passwords = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )
    cases = CaseCalls(client, settings.task_queue, settings.temporal_rpc_timeout)
    return Services(
        settings=settings,
        engine=engine,
        client=client,
        keys=keys,
        passwords=passwords,
        cases=cases,
        accounts=AccountCases(client, engine, settings),
        claims=SupportClaims(client, engine, keys, passwords, settings),
        support=SupportCalls(client, cases, settings.task_queue, settings.temporal_rpc_timeout),
        codec=settings.codec(),
    )


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or (services.settings if services else load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or await build_services(settings)
        metrics.watch(app.state.services.engine)
        yield
        metrics.forget()
        if owned:
            app.state.services.engine.dispose()

    app = FastAPI(
        title="Reclaim",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    metrics = app.state.metrics = ApiMetrics()
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        larger={codec.PREFIX: CODEC_MAX_BODY_BYTES},
    )
    app.add_middleware(codec.CodecCors, settings=settings)
    app.add_middleware(RequestObserver, metrics=metrics)  # outermost: sees every request
    app.include_router(recovery.router)
    app.include_router(sessions.router)
    app.include_router(accounts.router)
    app.include_router(support.router)
    app.include_router(staff.router)
    app.include_router(codec.router)
    app.include_router(health.router)
    if settings.dev_mode:
        app.include_router(dev.router)
    return app
