"""A request's deadline, applied to every Temporal call made while serving it.

The API's admission control (`api/admission.py`) sets `request_deadline` when a request
arrives: the request's whole life, the time it waited for a slot included, is bounded by
`RECLAIM_API_REQUEST_TIMEOUT`. `DeadlineInterceptor`, installed on the API's Temporal client,
shortens the `rpc_timeout` of each call to what is left of it, so a request that waited, or
that makes several calls one after the other, does not wait past its deadline: the call ends
with DEADLINE_EXCEEDED, which the services already turn into `Unavailable` (503 with
Retry-After), and the case is unharmed (every call that changes a case can be sent again).

Outside a request (the worker, the CLI) nothing is set and calls keep their own timeouts.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Protocol

from temporalio.client import (
    CancelWorkflowInput,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    TerminateWorkflowInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)

# `time.monotonic()` by which the request being served must be answered; None: no deadline.
request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)
# The least time a call is given once the deadline has passed: it then fails at once.
_SPENT = timedelta(milliseconds=1)


class _HasTimeout(Protocol):
    rpc_timeout: timedelta | None


def remaining() -> timedelta | None:
    """What is left of the current request's deadline (never less than a millisecond)."""
    deadline = request_deadline.get()
    if deadline is None:
        return None
    return max(timedelta(seconds=deadline - time.monotonic()), _SPENT)


def _cap(input: _HasTimeout) -> None:
    left = remaining()
    if left is not None and (input.rpc_timeout is None or input.rpc_timeout > left):
        input.rpc_timeout = left


class DeadlineInterceptor(Interceptor):
    """Every workflow call the API makes ends by the request's deadline."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Outbound(next)


class _Outbound(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        _cap(input)
        return await super().start_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        _cap(input)
        return await super().query_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        _cap(input)
        await super().signal_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        _cap(input)
        return await super().start_workflow_update(input)

    async def describe_workflow(self, input: DescribeWorkflowInput) -> Any:
        _cap(input)
        return await super().describe_workflow(input)

    async def cancel_workflow(self, input: CancelWorkflowInput) -> None:
        _cap(input)
        await super().cancel_workflow(input)

    async def terminate_workflow(self, input: TerminateWorkflowInput) -> None:
        _cap(input)
        await super().terminate_workflow(input)
