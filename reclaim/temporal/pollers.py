"""Whether a worker is polling this deployment's task queue (`GET /readyz`).

Temporal keeps, per task queue, the pollers it saw recently (DescribeTaskQueue). A worker polls
its queue's workflow tasks and activity tasks all the time: an idle one starts a new long poll
about every minute, so a poller whose last poll is older than `RECENT` has gone (a worker that
dies is noticed within that time). A "yes" is kept for `CACHE_SECONDS`, so a load balancer
probing `/readyz` often costs Temporal little; a "no" is asked again at the next probe.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

# A poll older than this is not a live worker's (Temporal's long polls last a minute).
RECENT = timedelta(seconds=90)
CACHE_SECONDS = 5.0
_KINDS = {
    TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW: "workflow",
    TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY: "activity",
}


class TaskQueuePollers:
    def __init__(self, client: Client, task_queue: str, timeout: float = 5.0) -> None:
        self._client = client
        self._task_queue = task_queue
        self._timeout = timedelta(seconds=timeout)
        self._kept: tuple[float, None] | None = None  # when a worker was last seen

    async def problem(self) -> str | None:
        """None when a worker polls both kinds of tasks of the queue, else what is missing.
        Raises what the client raises when Temporal does not answer."""
        now = time.monotonic()
        if self._kept is not None and now - self._kept[0] < CACHE_SECONDS:
            return self._kept[1]
        polled = await asyncio.gather(*(self._polled(kind) for kind in _KINDS))
        missing = [name for name, seen in zip(_KINDS.values(), polled, strict=True) if not seen]
        if not missing:
            self._kept = (now, None)
            return None
        self._kept = None  # a worker that starts is seen at the next probe
        if len(missing) == len(_KINDS):
            return f"no worker polls task queue {self._task_queue}"
        return f"no worker polls the {' and '.join(missing)} tasks of {self._task_queue}"

    async def _polled(self, kind: TaskQueueType.ValueType) -> bool:
        answer = await self._client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._client.namespace,
                task_queue=TaskQueue(name=self._task_queue),
                task_queue_type=kind,
            ),
            timeout=self._timeout,
        )
        since = datetime.now(UTC) - RECENT
        return any(
            poller.last_access_time.ToDatetime(tzinfo=UTC) > since for poller in answer.pollers
        )
