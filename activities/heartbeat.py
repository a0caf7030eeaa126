from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeating(every: float = 1.0) -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs.

    A user waits on these activities: should the worker die mid-way, Temporal notices within
    the heartbeat timeout and retries elsewhere, instead of after the whole start-to-close
    timeout. The SDK throttles what it sends, and a body that finishes within `every` sends
    nothing at all."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
