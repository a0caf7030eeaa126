"""Development-only routes: mounted when `RECLAIM_DEV_MODE` is on (as under `reclaim dev`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query

from api.deps import AppServices
from reclaim.notify.outbox import read_outbox

router = APIRouter(prefix="/dev", tags=["development"])


@router.get("/outbox", summary="Mail and SMS sent locally, newest first")
async def outbox(services: AppServices, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    messages = await asyncio.to_thread(read_outbox, services.settings.outbox_dir, limit)
    return {"messages": messages}
