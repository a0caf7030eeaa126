from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from reclaim import cases
from reclaim.account_cases import signal_reactivated
from reclaim.contracts import (
    ActivityName,
    ApplyReset,
    CaseClosing,
    CaseError,
    PasswordChangedNotice,
    ResetApplied,
)
from reclaim.models import Account
from reclaim.notifications import Notifier

log = structlog.get_logger(__name__)

# How long `apply_reset` gives the password-changed notices before it answers anyway and
# leaves them to a retried activity of their own: the user is waiting on this answer.
INLINE_NOTICE_TIMEOUT = 5.0


class AccountActivities:
    def __init__(self, engine: Engine, notifier: Notifier) -> None:
        self._engine = engine
        self._notifier = notifier

    @activity.defn(name=ActivityName.APPLY_RESET)
    async def apply_reset(self, reset: ApplyReset) -> ResetApplied:
        """New password, password history, every session revoked and the case recorded as
        completed, in one transaction; then one try at telling every contact."""
        async with heartbeating():
            return await self._apply_and_tell(reset)

    async def _apply_and_tell(self, reset: ApplyReset) -> ResetApplied:
        try:
            done = await asyncio.to_thread(self._apply, reset)
        except cases.Superseded as err:
            raise ApplicationError(
                "a newer case was opened for this account",
                type=CaseError.SUPERSEDED,
                non_retryable=True,
            ) from err
        except cases.NoAccount as err:
            raise ApplicationError(
                "the account is gone or banned", type=CaseError.NO_ACCOUNT, non_retryable=True
            ) from err
        account = done.account
        if done.reactivated is not None:  # the recovery kept a deactivated account
            await signal_reactivated(activity.client(), done.reactivated)
        try:
            await asyncio.wait_for(
                self._notifier.password_changed(reset.case_id, account, reset.at),
                INLINE_NOTICE_TIMEOUT,
            )
        except Exception as err:  # the change stands; the workflow retries the notices
            log.warning(
                "password_changed_notice_deferred", case_id=reset.case_id, error=type(err).__name__
            )
            return ResetApplied(notices_pending=True)
        return ResetApplied(notices_pending=False)

    @activity.defn(name=ActivityName.NOTIFY_PASSWORD_CHANGED)
    async def notify_password_changed(self, notice: PasswordChangedNotice) -> None:
        account = await asyncio.to_thread(self._account, notice.account_id)
        if account is not None:
            await self._notifier.password_changed(notice.case_id, account, notice.at)

    @activity.defn(name=ActivityName.RECORD_CLOSED_CASE)
    async def record_closed_case(self, closing: CaseClosing) -> None:
        await asyncio.to_thread(self._close, closing)

    def _apply(self, reset: ApplyReset) -> cases.ResetDone:
        with Session(self._engine) as session:
            done = cases.apply_reset(session, reset)
            session.expunge(done.account)
            return done

    def _account(self, account_id: int) -> Account | None:
        with Session(self._engine) as session:
            account = session.get(Account, account_id)
            if account is not None:
                session.expunge(account)
            return account

    def _close(self, closing: CaseClosing) -> None:
        with Session(self._engine) as session:
            cases.close_case(session, closing)
