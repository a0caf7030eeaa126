"""Calls into workflows, their failures as Reclaim's domain errors (`reclaim.errors`).

Every call is bounded by `RECLAIM_TEMPORAL_RPC_TIMEOUT`: a server or worker that does not
answer in time becomes `Unavailable` (the API answers 503 with Retry-After), and the case is
unharmed. A refusal from a workflow (an `ApplicationError` whose type is a `CaseError` value)
becomes `Refused` with its details.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from reclaim.errors import NotFound, Refused, Unavailable

log = structlog.get_logger(__name__)
T = TypeVar("T")


async def call(what: Callable[[], Awaitable[T]], not_found: NotFound) -> T:
    """Any call to Temporal: NOT_FOUND becomes `not_found`, no answer becomes `Unavailable`."""
    try:
        return await what()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise not_found from err
        raise _unavailable(err) from err
    except RPCTimeoutOrCancelledError as err:
        raise _unavailable(err) from err
    except RuntimeError as err:
        # The lazily connected client reports an unreachable server this way.
        if not str(err).startswith("Failed client connect"):
            raise
        raise _unavailable(err) from err
    except WorkflowQueryFailedError as err:
        log.error("query_failed", error=str(err))
        raise Unavailable() from err


async def update(
    what: Callable[[], Awaitable[T]],
    not_found: NotFound,
    ended: Callable[[], Awaitable[Exception]],
) -> T:
    """An update, its refusals as `Refused`. An update to a workflow that has ended is
    NOT_FOUND too: `ended` then says what the caller should be told (a closed workflow still
    answers queries)."""
    try:
        return await call(what, not_found)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            raise refusal(cause) from err
        raise
    except NotFound as err:
        if err is not not_found:
            raise
        raise await ended() from err


async def settled(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float) -> T:
    """What `read` answers once `done` holds, or its last answer after `within` seconds: for a
    caller that sent a signal and wants to show the state it led to (a query answers from the
    last workflow task the worker finished, which may not have seen the signal yet)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        answer = await read()
        if done(answer) or asyncio.get_running_loop().time() >= deadline:
            return answer
        await asyncio.sleep(0.1)


def refusal(error: ApplicationError) -> Refused:
    """A workflow's `ApplicationError(type=CaseError...)` as a `Refused` (a type the API does
    not know answers 500: a bug, not the user's doing)."""
    details: dict[str, Any] = {}
    if error.details and isinstance(error.details[0], Mapping):
        details = dict(error.details[0])
    return Refused(error.type or "internal_error", error.message, **details)


def _unavailable(err: Exception) -> Unavailable:
    log.warning("temporal_unavailable", error=type(err).__name__)
    return Unavailable()
