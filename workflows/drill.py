"""The upgrade drill: Reclaim's recovery and claim workflows with one change each, of the kind
that breaks the cases already running when it is made without care, for `python -m bench
cluster upgrade` and its tests (RECLAIM_UPGRADE_DRILL on a worker; never in production).

- The recovery gains a first step: a short pause before the first code is sent.
- The claim gains a first timer: a short wait before its receipt is mailed.

Both come before what every running case has already done, so its history has something else
where the new code expects them. `guarded` puts each behind `workflow.patched`, as every
change to a running workflow type must be: an old case replays past the point without it (its
history has no patch marker there), a new case takes it. `careless` does not: replaying a
case that had passed the point fails with a non-determinism error, which `reclaim workflows
check-replay` must report before such a build is rolled out.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from reclaim.recovery.contracts import RecoveryCalls, RecoveryInput, RecoveryOutcome
    from reclaim.support.contracts import ClaimCalls, ClaimInput, ClaimView

from workflows.lifecycle import AccountBanWorkflow, AccountDeletionWorkflow
from workflows.recovery import RecoveryWorkflow
from workflows.support import SupportCaseWorkflow

PATCH = "upgrade-drill"
STEP = timedelta(seconds=1)
TIMER = timedelta(seconds=2)


@workflow.defn(name=RecoveryCalls.WORKFLOW)
class GuardedDrillRecovery(RecoveryWorkflow):
    @workflow.run
    async def run(self, case: RecoveryInput) -> RecoveryOutcome:
        return await super().run(case)

    async def _first_step(self) -> None:
        if workflow.patched(PATCH):
            await workflow.sleep(STEP, summary="upgrade drill: the new step")


@workflow.defn(name=ClaimCalls.WORKFLOW)
class GuardedDrillClaim(SupportCaseWorkflow):
    @workflow.run
    async def run(self, claim: ClaimInput) -> ClaimView:
        return await super().run(claim)

    async def _first_step(self) -> None:
        if workflow.patched(PATCH):
            await workflow.sleep(TIMER, summary="upgrade drill: the new timer")


@workflow.defn(name=RecoveryCalls.WORKFLOW)
class CarelessDrillRecovery(RecoveryWorkflow):
    @workflow.run
    async def run(self, case: RecoveryInput) -> RecoveryOutcome:
        return await super().run(case)

    async def _first_step(self) -> None:
        await workflow.sleep(STEP, summary="upgrade drill: the new step")


@workflow.defn(name=ClaimCalls.WORKFLOW)
class CarelessDrillClaim(SupportCaseWorkflow):
    @workflow.run
    async def run(self, claim: ClaimInput) -> ClaimView:
        return await super().run(claim)

    async def _first_step(self) -> None:
        await workflow.sleep(TIMER, summary="upgrade drill: the new timer")


# The worker's workflow list for each drill (worker.workflows_for).
DRILLS: dict[str, list[type]] = {
    "guarded": [
        GuardedDrillRecovery,
        AccountDeletionWorkflow,
        AccountBanWorkflow,
        GuardedDrillClaim,
    ],
    "careless": [
        CarelessDrillRecovery,
        AccountDeletionWorkflow,
        AccountBanWorkflow,
        CarelessDrillClaim,
    ],
}
