from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from api.auth import MetricsScraper
from api.deps import AppServices
from api.metrics import ApiMetrics
from reclaim.directory import DirectoryUnavailable

router = APIRouter(tags=["operations"])

# Seconds /readyz gives the directory.
READY_TIMEOUT = 5.0


async def _checks(services: AppServices) -> dict[str, str]:
    """The database and Temporal: "ok", or why not."""

    def database() -> None:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(asyncio.to_thread(database), timeout=5)
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"unavailable ({type(err).__name__})"
    try:
        healthy = await services.client.service_client.check_health(timeout=timedelta(seconds=5))
        checks["temporal"] = "ok" if healthy else "unavailable"
    except Exception as err:
        checks["temporal"] = f"unavailable ({type(err).__name__})"
    return checks


def _answer(checks: dict[str, str], **extra: str) -> JSONResponse:
    ok = all(value == "ok" for value in checks.values())
    body: dict[str, str] = {"status": "ok" if ok else "unavailable", **checks, **extra}
    if not ok:
        body["reason"] = "; ".join(
            f"{name}: {value}" for name, value in checks.items() if value != "ok"
        )
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/healthz", summary="Whether the database and Temporal answer")
async def healthz(services: AppServices) -> JSONResponse:
    checks = await _checks(services)
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503
    )


@router.get(
    "/readyz",
    summary="Whether the database, Temporal, a worker and the account directory answer "
    "(503 says why)",
)
async def readyz(services: AppServices) -> JSONResponse:
    checks = await _checks(services)
    directory = services.directory
    try:
        await asyncio.wait_for(directory.ping(), timeout=READY_TIMEOUT)
        checks["directory"] = "ok"
    except DirectoryUnavailable as err:
        checks["directory"] = f"unavailable ({err})"
    except TimeoutError:
        checks["directory"] = f"unavailable (no answer within {READY_TIMEOUT:g} s)"
    except Exception as err:
        checks["directory"] = f"unavailable ({type(err).__name__})"
    if checks["temporal"] != "ok":
        checks["worker"] = "unknown (Temporal does not answer)"
    else:
        try:
            missing = await services.workers.problem()
            checks["worker"] = "ok" if missing is None else f"unavailable ({missing})"
        except Exception as err:
            checks["worker"] = f"unavailable ({type(err).__name__})"
    return _answer(checks, directory_kind=directory.name)


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, cases, codes, deliveries, claims, accounts",
    response_class=Response,
    dependencies=[MetricsScraper],
)
async def metrics(request: Request, services: AppServices) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    accounts = await services.directory.status_counts()
    body, content_type = await asyncio.to_thread(registry.exposition, accounts)
    return Response(body, media_type=content_type)
