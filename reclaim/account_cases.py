"""Starting and steering account lifecycle cases (deactivation, ban): shared by the API, the
CLI and the activities.

A status change is made by the case's workflow itself (its first activity), never by the
caller: once Temporal has accepted the start, the change and its timer happen even if the
caller dies the next instant. The caller then waits, bounded, for the `applied` update to
say what the account has become.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from reclaim import lifecycle, search_attributes
from reclaim.case_text import STATIC_DETAILS
from reclaim.contracts import (
    AccountStatus,
    Actor,
    BanInput,
    DeletionInput,
    LifecycleCalls,
    LifecycleStatus,
    LiftRequest,
    StatusChange,
)
from reclaim.models import Account, utcnow
from reclaim.security import BAN_CASE_PREFIX, DELETION_CASE_PREFIX, new_case_id
from reclaim.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Pending:
    """Temporal accepted the case but no worker applied it in time: it will, later."""

    case_id: str


class NotBanned(Exception):
    pass


SIGNAL_TIMEOUT = timedelta(seconds=5)


async def signal_reactivated(client: Client, case_id: str) -> None:
    """Tell a deletion case its account is active again. Best effort: if this is lost, the
    case finds the account active when its grace period ends and purges nothing."""
    try:
        await client.get_workflow_handle(case_id).signal(
            LifecycleCalls.REACTIVATED, rpc_timeout=SIGNAL_TIMEOUT
        )
    except (RPCError, RPCTimeoutOrCancelledError, RuntimeError) as err:
        log.warning("reactivated_signal_failed", case_id=case_id, error=type(err).__name__)


class AccountCases:
    def __init__(self, client: Client, engine: Engine, settings: Settings) -> None:
        self._client = client
        self._engine = engine
        self._settings = settings
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)

    async def deactivate(
        self, account_id: int, actor: Actor, reason: str | None = None
    ) -> LifecycleStatus | Pending:
        case_id = new_case_id(DELETION_CASE_PREFIX)
        case = DeletionInput(
            case_id=case_id,
            account_id=account_id,
            grace=self._settings.deletion_grace,
            quarantine=self._settings.username_quarantine,
            actor=actor,
            reason=reason,
        )
        return await self._start(
            LifecycleCalls.DELETION_WORKFLOW,
            case,
            case_id,
            search_attributes.ACCOUNT_DELETION,
            "Account deletion: grace period, then purge",
        )

    async def ban(
        self, account_id: int, reason: str, actor: Actor, duration: int | None = None
    ) -> LifecycleStatus | Pending:
        case_id = new_case_id(BAN_CASE_PREFIX)
        case = BanInput(case_id, account_id, reason, actor, duration)
        return await self._start(
            LifecycleCalls.BAN_WORKFLOW,
            case,
            case_id,
            search_attributes.ACCOUNT_BAN,
            "Account ban" + (f" for {timedelta(seconds=duration)}" if duration else ""),
        )

    async def unban(
        self, account_id: int, actor: Actor, reason: str | None = None
    ) -> LifecycleStatus | None:
        """Lift the account's ban through its case, which then tells the holder. Returns
        None when no case was there to do it (it had been lost, or the ban predates
        lifecycle cases): the ban is then lifted in the database directly."""
        account = await asyncio.to_thread(self._account, account_id)
        if account is None or account.status != AccountStatus.BANNED:
            raise NotBanned(account_id)
        if account.status_case:
            handle = self._client.get_workflow_handle(account.status_case)
            try:
                status: LifecycleStatus = await handle.execute_update(
                    LifecycleCalls.LIFT,
                    LiftRequest(actor, reason),
                    result_type=LifecycleStatus,
                    rpc_timeout=self._timeout,
                )
                return status
            except WorkflowUpdateFailedError:
                pass  # the case is ending on its own; the database decides below
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
        change = StatusChange(account.status_case or "", account_id, utcnow(), actor, reason)
        await asyncio.to_thread(self._lift_directly, change)
        return None

    async def _start(
        self, workflow: str, case: object, case_id: str, kind: str, summary: str
    ) -> LifecycleStatus | Pending:
        handle = await self._client.start_workflow(
            workflow,
            case,
            id=case_id,
            task_queue=self._settings.task_queue,
            search_attributes=search_attributes.lifecycle_case(kind, "requested"),
            static_summary=summary,
            static_details=STATIC_DETAILS[kind],
            rpc_timeout=self._timeout,
        )
        try:
            status: LifecycleStatus = await handle.execute_update(
                LifecycleCalls.APPLIED, result_type=LifecycleStatus, rpc_timeout=self._timeout
            )
        except RPCTimeoutOrCancelledError:
            return Pending(case_id)
        return status

    def _account(self, account_id: int) -> Account | None:
        with Session(self._engine) as session:
            return session.get(Account, account_id)

    def _lift_directly(self, change: StatusChange) -> None:
        with Session(self._engine) as session:
            lifecycle.lift_ban(session, change)
