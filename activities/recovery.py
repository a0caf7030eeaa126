"""The self-service recovery activities: deliver a code, apply the new password, tell every
contact, record how the case ended. Each is a thin adapter over `RecoverySteps`: it turns
the service's refusals into the `ApplicationError` types the workflow matches on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from reclaim.contracts import CaseError
from reclaim.directory import AccountGone, PasswordRejected
from reclaim.notify.errors import Undeliverable
from reclaim.recovery.contracts import (
    ApplyReset,
    CaseClosing,
    GuessingNotice,
    HoldNotice,
    IssueCode,
    IssuedCode,
    PasswordChangedNotice,
    RecoveryActivity,
    ResetApplied,
    SecondFactorVerdict,
    Stopped,
    VerifySecondFactor,
)
from reclaim.recovery.steps import HandoverFailed, RecoverySteps, Superseded

log = structlog.get_logger(__name__)

# How long `apply_reset` gives the password-changed notices before it answers anyway and
# leaves them to a retried activity of their own: the user is waiting on this answer.
INLINE_NOTICE_TIMEOUT = 5.0


class RecoveryActivities:
    def __init__(self, recovery: RecoverySteps) -> None:
        self._recovery = recovery

    @activity.defn(name=RecoveryActivity.ISSUE_CODE)
    async def issue_code(self, request: IssueCode) -> IssuedCode:
        """Generate, keep (sealed) and send the code of one attempt; return its digest.
        Retried after a crash it re-sends the same code, never a new one."""
        try:
            async with heartbeating():
                return await self._recovery.issue_code(request, datetime.now(UTC))
        except Undeliverable as err:
            raise ApplicationError(
                str(err), type=CaseError.UNDELIVERABLE, non_retryable=True
            ) from err

    @activity.defn(name=RecoveryActivity.APPLY_RESET)
    async def apply_reset(self, reset: ApplyReset) -> ResetApplied:
        """The new password in the directory and the case recorded as completed; then one try
        at telling every contact."""
        async with heartbeating():
            try:
                account = await self._recovery.apply_reset(reset)
            except Superseded as err:
                raise ApplicationError(
                    "a newer case was opened for this account",
                    type=CaseError.SUPERSEDED,
                    non_retryable=True,
                ) from err
            except AccountGone as err:
                raise ApplicationError(
                    "the account is gone or banned", type=CaseError.NO_ACCOUNT, non_retryable=True
                ) from err
            except HandoverFailed as err:
                raise ApplicationError(
                    "the account could not move to the claim's address (taken by another "
                    "account, or the account is gone or banned): nothing changed",
                    type=CaseError.NO_ACCOUNT,
                    non_retryable=True,
                ) from err
            except PasswordRejected as err:
                raise ApplicationError(
                    "The directory refused this password: choose another one.",
                    {"reasons": err.reasons},
                    type=err.error.value,
                    non_retryable=True,
                ) from err
            try:
                await asyncio.wait_for(
                    self._recovery.tell_password_changed(
                        reset.case_id, account, reset.at, reset.recovery_codes_left
                    ),
                    INLINE_NOTICE_TIMEOUT,
                )
            except Exception as err:  # the change stands; the workflow retries the notices
                log.warning(
                    "password_changed_notice_deferred",
                    case_id=reset.case_id,
                    error=type(err).__name__,
                )
                return ResetApplied(notices_pending=True)
            return ResetApplied(notices_pending=False)

    @activity.defn(name=RecoveryActivity.NOTIFY_PASSWORD_CHANGED)
    async def notify_password_changed(self, notice: PasswordChangedNotice) -> None:
        await self._recovery.tell_password_changed(
            notice.case_id, notice.account_id, notice.at, notice.recovery_codes_left
        )

    @activity.defn(name=RecoveryActivity.NOTIFY_GUESSING)
    async def notify_guessing(self, notice: GuessingNotice) -> None:
        await self._recovery.tell_guessing(notice)

    @activity.defn(name=RecoveryActivity.NOTIFY_HOLD)
    async def notify_hold(self, notice: HoldNotice) -> None:
        async with heartbeating():
            await self._recovery.tell_held(notice)

    @activity.defn(name=RecoveryActivity.STOP_HOLD)
    async def stop_hold(self, stopped: Stopped) -> None:
        await self._recovery.stop_held(stopped)

    @activity.defn(name=RecoveryActivity.VERIFY_SECOND_FACTOR)
    async def verify_second_factor(self, proof: VerifySecondFactor) -> SecondFactorVerdict:
        """Ask the directory whether a second factor's code is right (it spends what it
        accepts; a retry of this activity gets the same answer)."""
        return await self._recovery.verify_second_factor(proof)

    @activity.defn(name=RecoveryActivity.RECORD_CLOSED_CASE)
    async def record_closed_case(self, closing: CaseClosing) -> None:
        await self._recovery.close(closing)

    def all(self) -> list[Callable[..., Any]]:
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
