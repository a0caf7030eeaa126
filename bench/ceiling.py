"""The raw Temporal ceiling: a workflow with exactly the action shape of a completed
self-service case, and trivial bodies.

A completed `RecoveryWorkflow` (see `tests/histories/recovery/`) is: a start with search
attributes; an activity (send the code) and a timer (the case deadline); an update (the code)
that waits for the send, upserts a search attribute and starts a timer (the set-password
window); an update (the password) that runs an activity (apply the reset) and upserts a search
attribute; completion. `CeilingCase` does the same with activities that return at once, no
database, no mail, no hashing, and no HTTP in front: what the engine allows for this shape.

`python -m bench.ceiling --address HOST:PORT --task-queue Q` runs its worker (a process of
its own, like `reclaim worker`); `run_case` drives one case through the Temporal client.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from reclaim.temporal import search_attributes

WORKFLOW = "CeilingCase"
TIMEOUT = timedelta(seconds=30)


@activity.defn(name="ceiling_issue_code")
async def issue_code(case_id: str) -> str:
    return "digest"


@activity.defn(name="ceiling_apply_reset")
async def apply_reset(case_id: str) -> None:
    return None


@workflow.defn(name=WORKFLOW)
class CeilingCase:
    @workflow.init
    def __init__(self, case_id: str) -> None:
        self._state = "awaiting_code"
        self._sent = False

    @workflow.run
    async def run(self, case_id: str) -> str:
        self._timer(timedelta(hours=1))  # the case deadline
        await workflow.execute_activity(issue_code, case_id, start_to_close_timeout=TIMEOUT)
        self._sent = True
        await workflow.wait_condition(lambda: self._state == "completed")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    @workflow.update
    async def submit_code(self, digest: str) -> str:
        await workflow.wait_condition(lambda: self._sent)
        self._move_to("verified")
        self._timer(timedelta(minutes=15))  # the set-password window
        return self._state

    @workflow.update
    async def set_password(self, password_hash: str) -> str:
        await workflow.execute_activity(apply_reset, password_hash, start_to_close_timeout=TIMEOUT)
        self._move_to("completed")
        return self._state

    def _move_to(self, state: str) -> None:
        self._state = state
        workflow.upsert_search_attributes([search_attributes.CASE_STATE.value_set(state)])

    def _timer(self, after: timedelta) -> None:
        asyncio.create_task(workflow.sleep(after))  # noqa: RUF006  (lives as long as the case)


async def run_case(client: Client, case_id: str, task_queue: str) -> dict[str, float]:
    """One case, as the API would drive it: start, the code, the password. Milliseconds of
    each step."""
    steps: dict[str, float] = {}
    started = time.perf_counter()
    handle = await client.start_workflow(
        CeilingCase.run,
        case_id,
        id=case_id,
        task_queue=task_queue,
        search_attributes=search_attributes.self_service_case("awaiting_code", "email", None),
    )
    steps["start"] = (time.perf_counter() - started) * 1000
    mark = time.perf_counter()
    await handle.execute_update(CeilingCase.submit_code, "digest")
    steps["code"] = (time.perf_counter() - mark) * 1000
    mark = time.perf_counter()
    await handle.execute_update(CeilingCase.set_password, "hash")
    steps["password"] = (time.perf_counter() - mark) * 1000
    steps["case"] = (time.perf_counter() - started) * 1000
    return steps


async def _serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[CeilingCase],
        activities=[issue_code, apply_reset],
        graceful_shutdown_timeout=timedelta(seconds=5),
    ):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The ceiling workflow's worker.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.address, args.task_queue))
