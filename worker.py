"""The Reclaim worker: every workflow and activity on one task queue.

Run it with `reclaim worker` (or let `reclaim dev` do it). SIGTERM or SIGINT stop it
gracefully: it takes no new tasks, gives running activities RECLAIM_WORKER_SHUTDOWN_GRACE
seconds to finish, and whatever is left is retried by Temporal on another worker.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.lifecycle import LifecycleActivities
from activities.recovery import RecoveryActivities
from activities.support import SupportActivities
from reclaim.directory import check_settings
from reclaim.lifecycle.contracts import PROVEN_UPDATES as LIFECYCLE_PROVEN
from reclaim.logs import ActivityLogContext
from reclaim.notify.courier import Courier
from reclaim.recovery.contracts import PROVEN_UPDATES as RECOVERY_PROVEN
from reclaim.services import Services, build_services, courier_for
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import require_current
from reclaim.support.audit import RefusalRecorder
from reclaim.support.contracts import PROVEN_UPDATES as CLAIM_PROVEN
from reclaim.temporal.connection import connect_options, connect_when_up, worker_runtime
from reclaim.temporal.deployments import deployment_config
from reclaim.temporal.proofs import ActorProofs, ProvenActors, validated
from reclaim.tracing import WORKER, check_environment, from_env, traced, workflow_runner
from workflows.drill import DRILLS
from workflows.lifecycle import AccountBanWorkflow, AccountDeletionWorkflow
from workflows.recovery import RecoveryWorkflow
from workflows.support import SupportCaseWorkflow

log = structlog.get_logger(__name__)

WORKFLOWS = [RecoveryWorkflow, AccountDeletionWorkflow, AccountBanWorkflow, SupportCaseWorkflow]
# The updates that act on someone's say-so and must prove who sent them.
PROVEN_UPDATES = [*RECOVERY_PROVEN, *CLAIM_PROVEN, *LIFECYCLE_PROVEN]
validated(WORKFLOWS, PROVEN_UPDATES)

__all__ = ["build_worker", "courier_for", "run_worker"]


def workflows_for(settings: Settings) -> list[type]:
    """The workflows this worker runs: Reclaim's, or the upgrade drill's (RECLAIM_UPGRADE_DRILL,
    for `bench cluster upgrade` only), which replace two of them under the same names."""
    if settings.upgrade_drill == "off":
        return WORKFLOWS
    drill = DRILLS[settings.upgrade_drill]
    validated(drill, PROVEN_UPDATES)
    return drill


def activities(services: Services) -> list[Callable[..., Any]]:
    """Every activity of every feature, bound to this process's services."""
    return [
        *RecoveryActivities(services.recovery_steps).all(),
        *SupportActivities(services.claim_steps).all(),
        *LifecycleActivities(
            services.lifecycle, services.recovery_steps, services.claim_steps
        ).all(),
    ]


def build_worker(
    client: Client, settings: Settings, engine: Engine, courier: Courier, *, task_queue: str
) -> Worker:
    """The worker on `client`. A client with the tracing interceptor (reclaim/tracing.py)
    traces this worker's workflows and activities too: the interceptor comes with it."""
    services = build_services(settings, client, engine, courier)
    # Workflows run outside the sandbox unless RECLAIM_WORKFLOW_SANDBOX (the tests turn it
    # on); a traced sandbox passes OpenTelemetry through.
    runner: WorkflowRunner = UnsandboxedWorkflowRunner()
    if settings.workflow_sandbox:
        runner = workflow_runner() if traced(client) else SandboxedWorkflowRunner()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows_for(settings),
        activities=activities(services),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        max_cached_workflows=settings.worker_max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout),
        interceptors=[
            ActivityLogContext(),
            ProvenActors(
                ActorProofs(services.keys.actor_proof_key, window=settings.actor_proof_window),
                PROVEN_UPDATES,
                RefusalRecorder(engine),
            ),
        ],
        workflow_runner=runner,
        deployment_config=deployment_config(settings),
    )


def compile_workflows() -> None:
    """The sandbox imports a workflow's module afresh for every new case. Without bytecode
    on disk (PYTHONDONTWRITEBYTECODE, common in containers) each import compiles the source
    again, about 1.5 ms of CPU per new case: write it once at start, where the directory
    allows (a read-only one only costs the compile)."""
    import compileall

    import workflows

    compileall.compile_dir(Path(workflows.__file__).parent, quiet=2)


async def run_worker(settings: Settings) -> None:
    # Settings that cannot work are refused before anything starts.
    connect_options(settings)
    deployment_config(settings)
    check_settings(settings)
    check_environment()
    if settings.workflow_sandbox:  # outside it, each module is imported once, as usual
        compile_workflows()
    engine = make_engine(settings.resolved_database_url)
    require_current(engine)  # the schema is `reclaim db upgrade`'s business, not the worker's
    tracing = from_env(WORKER)  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    client = await connect_when_up(settings, runtime=worker_runtime(settings), tracing=tracing)
    courier = courier_for(settings)
    worker = build_worker(client, settings, engine, courier, task_queue=settings.task_queue)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker_started",
        task_queue=settings.task_queue,
        temporal=settings.temporal_address,
        deployment=settings.worker_deployment,
        build_id=settings.worker_build_id,
        upgrade_drill=settings.upgrade_drill,
    )
    async with worker:
        await stop.wait()
        log.info("worker_stopping")
    await courier.aclose()
    engine.dispose()
    if tracing is not None:
        tracing.shutdown()  # the last spans are exported before the process ends
    log.info("worker_stopped")


if __name__ == "__main__":
    from reclaim.settings import load_settings

    asyncio.run(run_worker(load_settings()))
