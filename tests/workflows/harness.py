"""RecoveryWorkflow on the time-skipping server, with activities that stand in for delivery
and the database and remember what they were asked, so a test can read the code a user
would have received."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from reclaim.contracts import CaseError, Channel
from reclaim.recovery.contracts import (
    ApplyReset,
    CaseClosing,
    Delivery,
    GuessingNotice,
    HoldChange,
    HoldNotice,
    IssueCode,
    IssuedCode,
    PasswordChangedNotice,
    RecoveryActivity,
    RecoveryInput,
    RecoveryRules,
    RecoveryStatus,
    ResetApplied,
    SecondFactorVerdict,
    SetPassword,
    StopHold,
    Stopped,
    SubmitCode,
    SubmitSecondFactor,
    VerifySecondFactor,
)
from reclaim.recovery.factors import open_factor_code, seal_factor_code
from reclaim.security import Keys, new_case_id, new_code
from workflows.recovery import RecoveryWorkflow

KEYS = Keys(b"workflow-tests-secret-0123456789")


@dataclass
class Ledger:
    """What the activities were asked to do."""

    codes: dict[tuple[str, int], str] = field(default_factory=dict)
    resets: list[ApplyReset] = field(default_factory=list)
    closings: list[CaseClosing] = field(default_factory=list)
    notices: list[PasswordChangedNotice] = field(default_factory=list)
    guessing: list[GuessingNotice] = field(default_factory=list)
    holds: list[HoldNotice] = field(default_factory=list)
    # The second-factor codes the stand-in directory takes: (method, code) → recovery codes
    # left after it (None for TOTP); each accepted once per case, like the real ones.
    factor_codes: dict[tuple[str, str], int | None] = field(default_factory=dict)
    factor_checks: list[VerifySecondFactor] = field(default_factory=list)
    spent_factors: dict[tuple[str, str], str] = field(default_factory=dict)
    stops: list[Stopped] = field(default_factory=list)
    refuse_delivery: bool = False
    # When set, the send activity hands the code over, then waits for this before answering.
    hold_delivery: asyncio.Event | None = None
    code_handed_over: asyncio.Event = field(default_factory=asyncio.Event)
    # When set, recording the closed case waits for this: the case has ended but still runs.
    hold_closing: asyncio.Event | None = None
    supersede_reset: bool = False
    # The directory's own policy refuses this many new passwords before it takes one.
    directory_refusals: int = 0
    notices_pending: bool = False

    @activity.defn(name=RecoveryActivity.ISSUE_CODE)
    async def issue_code(self, request: IssueCode) -> IssuedCode:
        if self.refuse_delivery:
            raise ApplicationError(
                "address refused", type=CaseError.UNDELIVERABLE, non_retryable=True
            )
        code = new_code()
        self.codes[(request.case_id, request.attempt)] = code
        self.code_handed_over.set()
        if self.hold_delivery is not None:
            await self.hold_delivery.wait()
        proof = KEYS.proof_token(request.case_id, code)
        return IssuedCode(
            KEYS.code_digest(request.case_id, code), KEYS.proof_digest(request.case_id, proof)
        )

    @activity.defn(name=RecoveryActivity.VERIFY_SECOND_FACTOR)
    async def verify_second_factor(self, proof: VerifySecondFactor) -> SecondFactorVerdict:
        self.factor_checks.append(proof)
        key = (proof.method, open_factor_code(KEYS, proof.case_id, proof.sealed_code))
        if (
            key not in self.factor_codes
            or self.spent_factors.get(key, proof.case_id) != proof.case_id
        ):
            return SecondFactorVerdict(accepted=False)
        self.spent_factors[key] = proof.case_id
        return SecondFactorVerdict(True, self.factor_codes[key])

    @activity.defn(name=RecoveryActivity.APPLY_RESET)
    async def apply_reset(self, reset: ApplyReset) -> ResetApplied:
        if self.supersede_reset:
            raise ApplicationError("newer case", type=CaseError.SUPERSEDED, non_retryable=True)
        if self.directory_refusals > 0:
            self.directory_refusals -= 1
            raise ApplicationError(
                "The directory refused this password: choose another one.",
                {"reasons": ["in_history"]},
                type=CaseError.PASSWORD_REUSED,
                non_retryable=True,
            )
        self.resets.append(reset)
        return ResetApplied(notices_pending=self.notices_pending)

    @activity.defn(name=RecoveryActivity.NOTIFY_PASSWORD_CHANGED)
    async def notify_password_changed(self, notice: PasswordChangedNotice) -> None:
        self.notices.append(notice)

    @activity.defn(name=RecoveryActivity.NOTIFY_GUESSING)
    async def notify_guessing(self, notice: GuessingNotice) -> None:
        self.guessing.append(notice)

    @activity.defn(name=RecoveryActivity.NOTIFY_HOLD)
    async def notify_hold(self, notice: HoldNotice) -> None:
        self.holds.append(notice)

    @activity.defn(name=RecoveryActivity.STOP_HOLD)
    async def stop_hold(self, stopped: Stopped) -> None:
        self.stops.append(stopped)

    @activity.defn(name=RecoveryActivity.RECORD_CLOSED_CASE)
    async def record_closed_case(self, closing: CaseClosing) -> None:
        self.closings.append(closing)
        if self.hold_closing is not None:
            await self.hold_closing.wait()

    def activities(self) -> list[Any]:
        return [
            self.issue_code,
            self.apply_reset,
            self.notify_password_changed,
            self.notify_guessing,
            self.notify_hold,
            self.stop_hold,
            self.verify_second_factor,
            self.record_closed_case,
        ]


@dataclass
class Case:
    env: WorkflowEnvironment
    handle: WorkflowHandle[Any, Any]
    ledger: Ledger
    case_id: str

    def code(self, attempt: int = 0) -> str:
        return self.ledger.codes[(self.case_id, attempt)]

    async def status(self) -> RecoveryStatus:
        status: RecoveryStatus = await self.handle.query(RecoveryWorkflow.status)
        return status

    async def submit(self, code: str, token: str = "reset-token", *, evaluate: bool = True) -> Any:
        return await self.handle.execute_update(
            RecoveryWorkflow.submit_code,
            SubmitCode(KEYS.code_digest(self.case_id, code), KEYS.token_digest(token), evaluate),
        )

    async def second_factor(
        self, method: str, code: str, token: str = "reset-token-2", *, evaluate: bool = True
    ) -> Any:
        return await self.handle.execute_update(
            RecoveryWorkflow.submit_second_factor,
            SubmitSecondFactor(
                method,
                seal_factor_code(KEYS, self.case_id, code),
                KEYS.token_digest(token),
                evaluate,
            ),
        )

    def proof(self, attempt: int = 0) -> str:
        """The proof the code's message links to."""
        return KEYS.proof_token(self.case_id, self.code(attempt))

    async def submit_proof(self, proof: str, token: str = "reset-token") -> Any:
        return await self.handle.execute_update(
            RecoveryWorkflow.submit_code,
            SubmitCode(KEYS.proof_digest(self.case_id, proof), KEYS.token_digest(token)),
        )

    async def stop(self, contact: str = "jane@old.example") -> Any:
        return await self.handle.execute_update(
            RecoveryWorkflow.stop, StopHold(KEYS.identifier_digest(contact))
        )

    async def change_hold(self, *, end_now: bool = False, extend_seconds: int = 0) -> Any:
        return await self.handle.execute_update(
            RecoveryWorkflow.change_hold, HoldChange(end_now, extend_seconds)
        )

    async def resend(self) -> RecoveryStatus:
        status: RecoveryStatus = await self.handle.execute_update(RecoveryWorkflow.resend_code)
        return status

    async def set_password(self, token: str = "reset-token", hash_: str = "$argon2id$x") -> Any:
        return await self.handle.execute_update(
            RecoveryWorkflow.set_password, SetPassword(KEYS.token_digest(token), hash_)
        )

    async def wait_delivered(self) -> RecoveryStatus:
        """Poll until the send activity has answered (the code went out, or failed)."""
        deadline = time.monotonic() + 10
        while (status := await self.status()).delivery is Delivery.SENDING:
            if time.monotonic() > deadline:
                raise AssertionError("the code was never delivered")
            await asyncio.sleep(0.02)
        return status


async def refusal(call: Any) -> ApplicationError:
    """Run an update that must be refused; return the workflow's ApplicationError."""
    try:
        await call
    except WorkflowUpdateFailedError as err:
        assert isinstance(err.cause, ApplicationError), err.cause
        return err.cause
    raise AssertionError("the update was accepted")


def details(error: ApplicationError) -> dict[str, Any]:
    return dict(error.details[0]) if error.details else {}


@asynccontextmanager
async def recovery_case(
    env: WorkflowEnvironment,
    *,
    rules: RecoveryRules | None = None,
    account_id: int | None = 7,
    ledger: Ledger | None = None,
    factors: list[str] | None = None,
) -> AsyncIterator[Case]:
    ledger = ledger or Ledger()
    task_queue = f"tq-{uuid.uuid4().hex[:8]}"
    case_id = new_case_id()
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[RecoveryWorkflow],
        activities=ledger.activities(),
    ):
        opened_at = await env.get_current_time()
        handle = await env.client.start_workflow(
            RecoveryWorkflow.run,
            RecoveryInput(
                case_id=case_id,
                account_id=account_id,
                channel=Channel.EMAIL,
                destination="j•••@e•••.com",
                opened_at=opened_at,
                rules=rules or RecoveryRules(),
                factors=factors or [],
            ),
            id=case_id,
            task_queue=task_queue,
            execution_timeout=timedelta(days=10),
        )
        case = Case(env, handle, ledger, case_id)
        if ledger.hold_delivery is None:
            await case.wait_delivered()
        yield case
