"""The account lifecycle activities: status changes in the directory, the purge (and what each
feature must forget with it), and the notices. Thin adapters over the services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from reclaim.contracts import AccountState, PurgeAccount, StatusChange
from reclaim.lifecycle.contracts import AccountNotice, LifecycleActivity
from reclaim.lifecycle.service import LifecycleService
from reclaim.recovery.steps import RecoverySteps
from reclaim.support.steps import ClaimSteps


class LifecycleActivities:
    def __init__(
        self, lifecycle: LifecycleService, recovery: RecoverySteps, claim_steps: ClaimSteps
    ) -> None:
        self._lifecycle = lifecycle
        self._recovery = recovery
        self._claim_steps = claim_steps

    @activity.defn(name=LifecycleActivity.DEACTIVATE_ACCOUNT)
    async def deactivate_account(self, change: StatusChange) -> AccountState:
        return await self._lifecycle.apply_deactivation(change)

    @activity.defn(name=LifecycleActivity.PURGE_ACCOUNT)
    async def purge_account(self, request: PurgeAccount) -> AccountState:
        """The directory erases the account; then every feature forgets what it kept about
        it (the addresses its messages went to, what its claims said). Each step is safe to
        run again, so a retried activity finishes the job."""
        state = await self._lifecycle.apply_purge(request)
        if state.applied:
            await self._recovery.forget_account(request.account_id)
            await self._claim_steps.forget_account(request.account_id)
        return state

    @activity.defn(name=LifecycleActivity.BAN_ACCOUNT)
    async def ban_account(self, change: StatusChange) -> AccountState:
        return await self._lifecycle.apply_ban(change)

    @activity.defn(name=LifecycleActivity.LIFT_BAN)
    async def lift_ban(self, change: StatusChange) -> AccountState:
        return await self._lifecycle.apply_lift(change)

    @activity.defn(name=LifecycleActivity.NOTIFY_ACCOUNT)
    async def notify_account(self, notice: AccountNotice) -> None:
        await self._lifecycle.notify_account(notice)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.deactivate_account,
            self.purge_account,
            self.ban_account,
            self.lift_ban,
            self.notify_account,
        ]
