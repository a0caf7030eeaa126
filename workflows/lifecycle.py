"""Account lifecycle cases: a deactivation's grace period before the purge, and a ban.

Each case is one workflow with an id of its own (`del_…`, `ban_…`): deactivating again after
a reactivation, or banning again, starts a new case rather than reusing an id, so a fresh
grace period or ban never inherits the timer of an old one. The database says which case is
in charge of an account's status (`Account.status_case`); an activity acts for a case only
while it still is, so a stale timer can never purge or unban an account by mistake.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from reclaim.contracts import (
        AccountState,
        AccountStatus,
        Actor,
        ActorKind,
        CaseError,
        PurgeAccount,
        StatusChange,
    )
    from reclaim.lifecycle.contracts import (
        AccountNotice,
        BanInput,
        DeletionInput,
        LifecycleActivity,
        LifecycleCalls,
        LifecycleState,
        LifecycleStatus,
        LiftRequest,
        NoticeKind,
    )
    from reclaim.temporal import search_attributes
    from reclaim.temporal.case_text import at, current_details

from workflows.policies import ACTIVITY_TIMEOUT, LEDGER_RETRY, NOTICE_DEADLINE, NOTICE_RETRY

BAN_TIMER = Actor(ActorKind.SYSTEM, "ban timer")


class _LifecycleCase:
    """What deletion and ban cases share: the state, the `applied` update, the `superseded`
    signal, the status query, the activities."""

    _workflow_name: str

    def __init__(self, case_id: str, account_id: int, locale: str | None = None) -> None:
        self._case_id = case_id
        self._account_id = account_id
        self._locale = locale  # of the holder's notices
        self._state = LifecycleState.REQUESTED
        self._account_status: AccountStatus | None = None
        self._until: datetime | None = None
        self._superseded = False

    @workflow.update(name=LifecycleCalls.APPLIED)
    async def applied(self) -> LifecycleStatus:
        """Answers once the status change is in the database (or was refused)."""
        await workflow.wait_condition(lambda: self._state is not LifecycleState.REQUESTED)
        return self.status()

    @workflow.signal(name=LifecycleCalls.SUPERSEDED)
    def superseded(self) -> None:
        """A newer lifecycle case took the account over: this one has nothing left to do."""
        self._superseded = True

    @workflow.query(
        name=LifecycleCalls.STATUS, description="The case's state and the account's status."
    )
    def status(self) -> LifecycleStatus:
        return LifecycleStatus(
            case_id=self._case_id,
            workflow=self._workflow_name,
            state=self._state,
            account_status=self._account_status,
            until=self._until if self._state.is_open else None,
            account_id=self._account_id,
        )

    async def _change(
        self, activity: LifecycleActivity, change: object, summary: str
    ) -> AccountState:
        state: AccountState = await workflow.execute_activity(
            activity,
            change,
            result_type=AccountState,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=LEDGER_RETRY,
            summary=summary,
        )
        self._account_status = state.status
        return state

    async def _notify(self, kind: NoticeKind, until: datetime | None, summary: str) -> None:
        """Tell the holder. A notice that cannot go out within its day of retries is given
        up (the worker logged every failure): the case itself must go on."""
        try:
            await workflow.execute_activity(
                LifecycleActivity.NOTIFY_ACCOUNT,
                AccountNotice(self._case_id, self._account_id, kind, until, self._locale),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                schedule_to_close_timeout=NOTICE_DEADLINE,
                retry_policy=NOTICE_RETRY,
                summary=summary,
            )
        except ActivityError:
            workflow.logger.warning("notice %s given up", kind.value)

    def _move_to(self, state: LifecycleState, until: datetime | None = None) -> None:
        self._state = state
        self._until = until
        workflow.upsert_search_attributes(
            search_attributes.state_change(state.value, until if state.is_open else None)
        )
        workflow.set_current_details(
            current_details(
                state.value,
                f"account {self._account_status}" if self._account_status else None,
                f"until {at(until)}" if until else None,
            )
        )

    async def _finish(self) -> LifecycleStatus:
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.status()


@workflow.defn(name=LifecycleCalls.DELETION_WORKFLOW)
class AccountDeletionWorkflow(_LifecycleCase):
    """A deactivated account, waiting out its grace period.

    requested → deactivated → reactivated (the holder signed in or recovered it) | purged
    (the grace period ended); refused when the account was not active; superseded when a
    ban took over.
    """

    _workflow_name = LifecycleCalls.DELETION_WORKFLOW

    @workflow.init
    def __init__(self, case: DeletionInput) -> None:
        super().__init__(case.case_id, case.account_id, case.locale)
        self._reactivated = False

    @workflow.run
    async def run(self, case: DeletionInput) -> LifecycleStatus:
        now = workflow.now()
        account = await self._change(
            LifecycleActivity.DEACTIVATE_ACCOUNT,
            StatusChange(
                case.case_id,
                case.account_id,
                now,
                case.actor,
                case.reason,
                until=now + timedelta(seconds=case.grace),
            ),
            "deactivate the account and sign it out everywhere",
        )
        if not account.applied or account.until is None:
            self._move_to(LifecycleState.REFUSED)
            return await self._finish()
        purge_at = account.until
        self._move_to(LifecycleState.DEACTIVATED, purge_at)
        await self._notify(
            NoticeKind.ACCOUNT_DEACTIVATED, purge_at, "tell the holder when the purge will be"
        )
        try:
            await workflow.wait_condition(
                lambda: self._reactivated or self._superseded,
                timeout=max(purge_at - workflow.now(), timedelta(0)),
                timeout_summary="grace period before the purge",
            )
        except TimeoutError:
            purged = await self._change(
                LifecycleActivity.PURGE_ACCOUNT,
                PurgeAccount(case.case_id, case.account_id, workflow.now(), case.quarantine),
                "purge the account's personal data, reserve its username",
            )
            if purged.applied:
                self._move_to(LifecycleState.PURGED)
            elif purged.status is AccountStatus.ACTIVE:
                self._move_to(LifecycleState.REACTIVATED)  # the signal never came
            else:
                self._move_to(LifecycleState.SUPERSEDED)
        else:
            self._move_to(
                LifecycleState.REACTIVATED if self._reactivated else LifecycleState.SUPERSEDED
            )
        return await self._finish()

    @workflow.signal(name=LifecycleCalls.REACTIVATED)
    def reactivated(self) -> None:
        """The holder signed in or completed a recovery: the account is active again (the
        database already says so) and the purge is off."""
        self._reactivated = True


@workflow.defn(name=LifecycleCalls.BAN_WORKFLOW)
class AccountBanWorkflow(_LifecycleCase):
    """A banned account: until its end (then lifted and the holder told), or until someone
    lifts it.

    requested → banned → ended (time up) | lifted (the `lift` update); refused when the
    account is gone; superseded when a newer ban took over.
    """

    _workflow_name = LifecycleCalls.BAN_WORKFLOW

    @workflow.init
    def __init__(self, case: BanInput) -> None:
        super().__init__(case.case_id, case.account_id, case.locale)
        self._lift: LiftRequest | None = None

    @workflow.run
    async def run(self, case: BanInput) -> LifecycleStatus:
        now = workflow.now()
        ends_at = now + timedelta(seconds=case.duration) if case.duration else None
        account = await self._change(
            LifecycleActivity.BAN_ACCOUNT,
            StatusChange(case.case_id, case.account_id, now, case.actor, case.reason, ends_at),
            "ban the account and sign it out everywhere",
        )
        if not account.applied:
            self._move_to(LifecycleState.REFUSED)
            return await self._finish()
        self._move_to(LifecycleState.BANNED, account.until)
        if account.previous_case is not None:
            await self._stop_previous(account.previous_case)
        time_up = False
        try:
            await workflow.wait_condition(
                lambda: self._lift is not None or self._superseded,
                timeout=max(account.until - workflow.now(), timedelta(0))
                if account.until
                else None,
                timeout_summary="ban period",
            )
        except TimeoutError:
            time_up = True
        lift = LiftRequest(BAN_TIMER, "the ban period ended") if time_up else self._lift
        if lift is not None:
            lifted = await self._change(
                LifecycleActivity.LIFT_BAN,
                StatusChange(
                    case.case_id, case.account_id, workflow.now(), lift.actor, lift.reason
                ),
                "lift the ban",
            )
            if lifted.applied:
                self._move_to(LifecycleState.ENDED if time_up else LifecycleState.LIFTED)
                await self._notify(NoticeKind.BAN_ENDED, None, "tell the holder the ban is over")
                return await self._finish()
        self._move_to(LifecycleState.SUPERSEDED)
        return await self._finish()

    @workflow.update(name=LifecycleCalls.LIFT)
    async def lift(self, request: LiftRequest) -> LifecycleStatus:
        """Lift the ban now (an operator, an approved support claim); answers once done."""
        self._lift = request
        await workflow.wait_condition(lambda: not self._state.is_open)
        return self.status()

    @lift.validator
    def _can_lift(self, request: LiftRequest) -> None:
        if self._lift is not None or not self._state.is_open or self._superseded:
            raise ApplicationError(
                f"This ban is {self._state.value}: there is nothing to lift.",
                {"state": self._state.value},
                type=CaseError.INVALID_STATE,
                non_retryable=True,
            )

    async def _stop_previous(self, case_id: str) -> None:
        """The account's previous lifecycle case (an older ban, a deactivation) no longer
        decides anything: let it end now rather than when its timer fires."""
        try:
            await workflow.get_external_workflow_handle(case_id).signal(LifecycleCalls.SUPERSEDED)
        except Exception:  # it had ended already: nothing to stop
            workflow.logger.info("previous lifecycle case already closed")
