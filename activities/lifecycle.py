"""The account lifecycle's side effects: status changes in the database, and the notices."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity

from reclaim import lifecycle
from reclaim.accounts import username_digest
from reclaim.contracts import (
    AccountNotice,
    AccountState,
    AccountStatus,
    ActivityName,
    NoticeKind,
    PurgeAccount,
    StatusChange,
)
from reclaim.models import Account
from reclaim.notifications import Notifier
from reclaim.security import Keys

T = TypeVar("T")


class LifecycleActivities:
    def __init__(self, engine: Engine, keys: Keys, notifier: Notifier) -> None:
        self._engine = engine
        self._keys = keys
        self._notifier = notifier

    @activity.defn(name=ActivityName.DEACTIVATE_ACCOUNT)
    async def deactivate_account(self, change: StatusChange) -> AccountState:
        return await self._in_session(lambda session: lifecycle.deactivate(session, change))

    @activity.defn(name=ActivityName.PURGE_ACCOUNT)
    async def purge_account(self, request: PurgeAccount) -> AccountState:
        return await self._in_session(
            lambda session: lifecycle.purge(
                session, request, lambda name: username_digest(self._keys, name)
            )
        )

    @activity.defn(name=ActivityName.BAN_ACCOUNT)
    async def ban_account(self, change: StatusChange) -> AccountState:
        return await self._in_session(lambda session: lifecycle.ban(session, change))

    @activity.defn(name=ActivityName.LIFT_BAN)
    async def lift_ban(self, change: StatusChange) -> AccountState:
        return await self._in_session(lambda session: lifecycle.lift_ban(session, change))

    @activity.defn(name=ActivityName.NOTIFY_ACCOUNT)
    async def notify_account(self, notice: AccountNotice) -> None:
        """Tell the holder, unless the news is stale by now (they signed in again since the
        deactivation, the account was banned again since the ban ended)."""
        account = await self._in_session(lambda session: session.get(Account, notice.account_id))
        if account is None:
            return
        still_true = (
            account.status_case == notice.case_id
            if notice.kind is NoticeKind.ACCOUNT_DEACTIVATED
            else account.status == AccountStatus.ACTIVE
        )
        if still_true:
            await self._notifier.account_notice(notice.case_id, account, notice.kind, notice.until)

    async def _in_session(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with Session(self._engine, expire_on_commit=False) as session:
                return work(session)

        return await asyncio.to_thread(run)
