"""Support claims on the time-skipping server with the real worker: a reviewer, a
supervisor, and the claimant's mailbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from reclaim.support.claims import FiledClaim
from reclaim.support.contracts import (
    Approve,
    AssignRequest,
    ClaimCalls,
    ClaimReason,
    ClaimView,
    ConfirmApproval,
    ProvideInfo,
    Reject,
    RequestInfo,
    Reviewer,
    StaffRole,
)
from reclaim.temporal.proofs import ActorProofs
from tests.workflows.lifecycle_harness import PASSWORD, Lifecycle

REVIEWER = Reviewer(1, "rita", StaffRole.REVIEWER)
SUPERVISOR = Reviewer(2, "sam", StaffRole.SUPERVISOR)
OTHER_SUPERVISOR = Reviewer(3, "sue", StaffRole.SUPERVISOR)
CONTACT = "jane.new@example.net"


@dataclass
class Claim:
    desk: SupportDesk
    filed: FiledClaim
    handle: WorkflowHandle[Any, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.handle = self.desk.life.env.client.get_workflow_handle(
            self.filed.case_id, result_type=ClaimView
        )

    @property
    def case_id(self) -> str:
        return self.filed.case_id

    async def view(self) -> ClaimView:
        view: ClaimView = await self.handle.query(ClaimCalls.STAFF_VIEW, result_type=ClaimView)
        return view

    async def update(self, name: str, arg: object) -> ClaimView:
        """As a door sends it: signed (reclaim/temporal/proofs.py)."""
        signed = self.desk.proofs.sign(self.case_id, name, arg)
        view: ClaimView = await self.handle.execute_update(name, signed, result_type=ClaimView)
        return view

    async def assign(self, by: Reviewer = REVIEWER, to: str | None = None) -> ClaimView:
        return await self.update(ClaimCalls.ASSIGN, AssignRequest(by, to))

    async def ask(self, *questions: str, by: Reviewer = REVIEWER) -> ClaimView:
        return await self.update(ClaimCalls.REQUEST_INFO, RequestInfo(by, list(questions)))

    async def answer(self) -> None:
        at = await self.desk.life.env.get_current_time()
        signed = self.desk.proofs.sign(self.case_id, ClaimCalls.PROVIDE_INFO, ProvideInfo(at))
        await self.handle.execute_update(ClaimCalls.PROVIDE_INFO, signed)

    async def approve(self, by: Reviewer = REVIEWER, note: str | None = None) -> ClaimView:
        return await self.update(ClaimCalls.APPROVE, Approve(by, note))

    async def confirm(self, by: Reviewer = SUPERVISOR, note: str | None = None) -> ClaimView:
        return await self.update(ClaimCalls.CONFIRM_APPROVAL, ConfirmApproval(by, note))

    async def reject(self, reason: str, by: Reviewer = REVIEWER) -> ClaimView:
        return await self.update(ClaimCalls.REJECT, Reject(by, reason))

    async def refusal(self, call: Any) -> ApplicationError:
        try:
            await call
        except WorkflowUpdateFailedError as err:
            assert isinstance(err.cause, ApplicationError), err.cause
            return err.cause
        raise AssertionError("the update was accepted")

    async def closed(self) -> ClaimView:
        view: ClaimView = await self.handle.result()
        return view


@dataclass
class SupportDesk:
    life: Lifecycle

    @property
    def proofs(self) -> ActorProofs:
        """What a door signs with (reclaim/temporal/proofs.py)."""
        return ActorProofs(self.life.services.keys.actor_proof_key)

    async def file(
        self, reason: ClaimReason = ClaimReason.COMPROMISED, username: str = "jane", **evidence: Any
    ) -> Claim:
        filed = await self.life.services.claims.file(
            username=username, contact_email=CONTACT, reason=reason, **evidence
        )
        return Claim(self, filed)


STRONG_EVIDENCE: dict[str, Any] = {
    "previous_passwords": ("not it", PASSWORD),
    "registered_email": "jane@example.com",
}
