from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import AppServices

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Whether the database and Temporal answer")
async def healthz(services: AppServices) -> JSONResponse:
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
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503
    )
