"""Would the workflow code of this build take over the cases that are running now?

Before workers are rolled to a new build, the histories of the open cases are fetched from
Temporal and replayed against the new build's workflow classes (`reclaim workflows
check-replay`). A case whose history the new code cannot reproduce (a non-determinism
error) would be stuck on its next workflow task once a new worker picks it up: that change
needs `workflow.patched` before it ships.

Nothing here writes to Temporal or prints a payload: histories are decoded with the
worker's own data converter (the codec keys) only to be replayed in memory, and a failure
is reported by workflow id, type and the first line of its error.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

RUNNING = 'ExecutionStatus = "Running"'
# The first line of an error is all that is shown of it; long ones are cut here.
MAX_ERROR_CHARS = 240
# The SDK core reports a replay failure as the debug form of its `Failure`: its `message`
# field is the part that says what went wrong (the rest may hold encoded details).
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_quiet: Runtime | None = None


class TemporalUnreachable(Exception):
    """The server did not answer: nothing was checked."""


class QueryRefused(Exception):
    """The server would not run the visibility query (a typo in `--query`)."""


@dataclass(frozen=True)
class ReplayFailure:
    """A case this build would fail to replay: which one, and why in one line."""

    workflow_id: str
    run_id: str
    workflow_type: str
    nondeterminism: bool
    first_line: str


@dataclass
class ReplayCheck:
    """What a check found: cases replayed per workflow type, and the ones that would fail."""

    searched: str  # the visibility query that found the cases (or where they came from)
    replayed: Counter[str] = field(default_factory=Counter)
    failures: list[ReplayFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.replayed.values())

    @property
    def ok(self) -> bool:
        return not self.failures


def deployment_query(task_queue: str, query: str = RUNNING) -> str:
    """`query` limited to this deployment's task queue: other applications' workflows in a
    shared namespace are not this build's to replay."""
    return f'TaskQueue = "{task_queue}" AND ({query})'


def first_line(err: BaseException) -> str:
    """The error's first line (its type when it says nothing), cut at MAX_ERROR_CHARS; of
    the core's debug form of a failure, its message alone."""
    text = str(err).strip()
    core = _CORE_MESSAGE.search(text)
    if core is not None:
        text = core.group(1).replace('\\"', '"')
    lines = text.splitlines()
    line = lines[0].strip() if lines else type(err).__name__
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def workflow_type_of(history: WorkflowHistory) -> str:
    """The workflow type named by a history's first event ("?" when it has none)."""
    if not history.events:
        return "?"
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name or "?"


def quiet_runtime() -> Runtime:
    """A runtime whose core logs nothing: a failing replay is reported once, by the check,
    not also as the core's warning about a workflow task it would fail."""
    global _quiet
    if _quiet is None:
        _quiet = Runtime(telemetry=TelemetryConfig(logging=None))
    return _quiet


async def replay_histories(
    histories: AsyncIterator[WorkflowHistory],
    workflows: Sequence[type],
    data_converter: DataConverter,
    *,
    searched: str = "",
    sandboxed: bool = False,
    namespace: str = "default",
) -> ReplayCheck:
    """Replay every history against `workflows`, decoding payloads with `data_converter`.
    The source of the histories is the caller's (the server today; files could be another).
    `sandboxed` runs them in Temporal's sandbox, as a worker with RECLAIM_WORKFLOW_SANDBOX
    does."""
    check = ReplayCheck(searched=searched)
    seen: dict[str, tuple[str, str]] = {}  # run id -> (workflow id, type)

    async def noted() -> AsyncIterator[WorkflowHistory]:
        async for history in histories:
            kind = workflow_type_of(history)
            seen[history.run_id] = (history.workflow_id, kind)
            check.replayed[kind] += 1
            yield history

    runner: WorkflowRunner = SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()
    replayer = Replayer(
        workflows=list(workflows),
        data_converter=data_converter,
        workflow_runner=runner,
        namespace=namespace,
        runtime=quiet_runtime(),
    )
    started = time.monotonic()
    results = await replayer.replay_workflows(noted(), raise_on_replay_failure=False)
    check.seconds = time.monotonic() - started
    for run_id, err in results.replay_failures.items():
        workflow_id, kind = seen.get(run_id, ("?", "?"))
        check.failures.append(
            ReplayFailure(
                workflow_id=workflow_id,
                run_id=run_id,
                workflow_type=kind,
                nondeterminism=isinstance(err, NondeterminismError),
                first_line=first_line(err),
            )
        )
    check.failures.sort(key=lambda failure: (failure.workflow_type, failure.workflow_id))
    return check


async def check_replay(
    client: Client,
    workflows: Sequence[type],
    query: str = RUNNING,
    *,
    limit: int | None = None,
    sandboxed: bool = False,
    rpc_timeout: timedelta | None = None,
) -> ReplayCheck:
    """Replay the histories of the workflows `query` finds on `client`'s namespace (at most
    `limit`) against `workflows`, with the client's data converter (the worker's codec).
    Raises TemporalUnreachable when the server does not answer, QueryRefused for a query it
    will not run."""
    listed = client.list_workflows(query, limit=limit, rpc_timeout=rpc_timeout)
    try:
        return await replay_histories(
            listed.map_histories(rpc_timeout=rpc_timeout),
            workflows,
            client.data_converter,
            searched=query,
            sandboxed=sandboxed,
            namespace=client.namespace,
        )
    except RPCError as err:
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise QueryRefused(first_line(err)) from err
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise TemporalUnreachable(first_line(err)) from err
        raise
