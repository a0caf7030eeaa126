"""Temporal worker versioning for Reclaim's workers (docs/deploy.md, "Upgrading with cases open").

A worker with `RECLAIM_WORKER_DEPLOYMENT` and `RECLAIM_WORKER_BUILD_ID` joins that worker
deployment as that build. Temporal then sends the workflow and activity tasks of the task queue
only to the deployment's **current** build; a new build's workers poll but get nothing until an
operator makes it current (`reclaim temporal set-current-build`). Every workflow is
**auto-upgrade**: a case started on one build moves to the current build at its next task, so
multi-day claims do not keep old workers alive for a week, and an old worker never receives a
task of a case that a new build has already moved on (the one way `workflow.patched` alone
fails during a rolling upgrade: an old worker meeting a step it does not know). The new build
still replays the old cases' histories: changes to a workflow stay behind `workflow.patched`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from temporalio.api.enums.v1 import WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from reclaim.settings import CannotStart, Settings

IDENTITY = "reclaim temporal set-current-build"


class VersioningSettingsError(CannotStart):
    """One of RECLAIM_WORKER_DEPLOYMENT and RECLAIM_WORKER_BUILD_ID set without the other."""


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The worker's versioning, or None for an unversioned worker."""
    deployment, build = settings.worker_deployment, settings.worker_build_id
    if deployment is None and build is None:
        return None
    if deployment is None or build is None:
        raise VersioningSettingsError(
            "RECLAIM_WORKER_DEPLOYMENT and RECLAIM_WORKER_BUILD_ID go together: set both "
            "(worker versioning) or neither"
        )
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=deployment, build_id=build),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
    )


@dataclass(frozen=True)
class Deployment:
    name: str
    current_build: str | None
    builds: dict[str, str]  # build id -> its status ("current", "draining", "drained", ...)


async def describe(client: Client, name: str) -> Deployment | None:
    """The deployment as Temporal knows it, or None before any of its workers polled."""
    try:
        answer = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=name)
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    info = answer.worker_deployment_info
    current = info.routing_config.current_deployment_version.build_id or None
    builds = {
        summary.deployment_version.build_id: _status(summary.status)
        for summary in info.version_summaries
    }
    return Deployment(name, current, builds)


async def set_current_build(client: Client, name: str, build_id: str, wait: float) -> Deployment:
    """Make `build_id` the deployment's current build, once its workers poll (up to `wait`
    seconds); from then on every task of every case goes to that build's workers."""
    deadline = time.monotonic() + wait
    while True:
        found = await describe(client, name)
        if found is not None and found.current_build == build_id:
            return found
        if found is not None and build_id in found.builds:
            answer = await client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=name)
            )
            try:
                await client.workflow_service.set_worker_deployment_current_version(
                    SetWorkerDeploymentCurrentVersionRequest(
                        namespace=client.namespace,
                        deployment_name=name,
                        build_id=build_id,
                        conflict_token=answer.conflict_token,
                        identity=IDENTITY,
                    )
                )
            except RPCError as err:  # another change got there first, or not yet possible
                if time.monotonic() > deadline:
                    raise
                del err
            else:
                continue
        if time.monotonic() > deadline:
            known = ", ".join(found.builds) if found else "none"
            raise TimeoutError(
                f"no worker of build {build_id} polled deployment {name} within {wait:g} s "
                f"(builds seen: {known})"
            )
        await asyncio.sleep(0.5)


def _status(value: WorkerDeploymentVersionStatus.ValueType) -> str:
    name = WorkerDeploymentVersionStatus.Name(value)
    return name.removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_").lower()
