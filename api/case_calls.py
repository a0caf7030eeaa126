"""Calls into recovery workflows, and what their failures mean over HTTP.

Blocking on a workflow is bounded by `RECLAIM_TEMPORAL_RPC_TIMEOUT`: a worker or server that
does not answer in time gives the user a 503 with Retry-After, and the case is unharmed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import CASE_NOT_FOUND, ApiError, from_refusal, refusal_for, unavailable
from reclaim import search_attributes
from reclaim.case_text import STATIC_DETAILS
from reclaim.contracts import (
    ActivityName,
    CaseError,
    CaseState,
    CodeAccepted,
    RecoveryCalls,
    RecoveryInput,
    RecoveryStatus,
    ResetContext,
    SetPassword,
    SubmitCode,
)
from reclaim.security import CASE_ID_PREFIX

log = structlog.get_logger(__name__)

CASE_ID = re.compile(rf"^{CASE_ID_PREFIX}[A-Za-z0-9_-]{{22}}$")
T = TypeVar("T")

# What a request for a case that has already ended gets, by the state it ended in.
_ENDED_CODE = {CaseState.LOCKED: CaseError.CASE_LOCKED, CaseState.EXPIRED: CaseError.CODE_EXPIRED}


class CaseCalls:
    def __init__(self, client: Client, task_queue: str, rpc_timeout: float) -> None:
        self._client = client
        self._task_queue = task_queue
        self._timeout = timedelta(seconds=rpc_timeout)

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        if not CASE_ID.match(case_id):
            raise CASE_NOT_FOUND
        return self._client.get_workflow_handle(case_id)

    async def start(self, case: RecoveryInput, opening: RecoveryStatus) -> None:
        await self._client.start_workflow(
            RecoveryCalls.WORKFLOW,
            case,
            id=case.case_id,
            task_queue=self._task_queue,
            search_attributes=search_attributes.self_service_case(
                opening.state, case.channel, opening.next_deadline
            ),
            static_summary=f"Self-service recovery by {case.channel.value}",
            static_details=STATIC_DETAILS[search_attributes.SELF_SERVICE],
            rpc_timeout=self._timeout,
        )

    async def supersede(self, case_ids: list[str]) -> None:
        """Stop older open cases of the account. Best effort: should this fail, the reset of
        an older case is refused anyway (the ledger knows a newer case exists)."""
        for case_id in case_ids:
            try:
                await self._client.get_workflow_handle(case_id).signal(
                    RecoveryCalls.SUPERSEDE, rpc_timeout=self._timeout
                )
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    log.warning("supersede_failed", case_id=case_id, error=err.status.name)

    async def status(self, case_id: str) -> RecoveryStatus:
        handle = self._handle(case_id)
        return await self.call(
            lambda: handle.query(
                RecoveryCalls.STATUS, result_type=RecoveryStatus, rpc_timeout=self._timeout
            )
        )

    async def delivery_attempts(self, case_id: str) -> int:
        """How many times the worker has tried to deliver the current code so far."""
        description = await self.call(
            lambda: self._handle(case_id).describe(rpc_timeout=self._timeout)
        )
        attempts = [
            activity.attempt
            for activity in description.raw_description.pending_activities
            if activity.activity_type.name == ActivityName.ISSUE_CODE
        ]
        return max(attempts, default=0)

    async def submit_code(self, case_id: str, attempt: SubmitCode) -> CodeAccepted:
        handle = self._handle(case_id)
        return await self._update(
            lambda: handle.execute_update(
                RecoveryCalls.SUBMIT_CODE,
                attempt,
                result_type=CodeAccepted,
                rpc_timeout=self._timeout,
            ),
            self._by_final_state(case_id, _ENDED_CODE),
        )

    async def resend_code(self, case_id: str) -> RecoveryStatus:
        handle = self._handle(case_id)
        return await self._update(
            lambda: handle.execute_update(
                RecoveryCalls.RESEND_CODE, result_type=RecoveryStatus, rpc_timeout=self._timeout
            ),
            self._by_final_state(case_id, {CaseState.LOCKED: CaseError.CASE_LOCKED}),
        )

    async def reset_context(self, case_id: str, reset_token_digest: str) -> ResetContext:
        handle = self._handle(case_id)
        return await self.call(
            lambda: handle.query(
                RecoveryCalls.RESET_CONTEXT,
                reset_token_digest,
                result_type=ResetContext,
                rpc_timeout=self._timeout,
            )
        )

    async def set_password(self, case_id: str, change: SetPassword) -> RecoveryStatus:
        handle = self._handle(case_id)

        async def ended_refusal() -> ApiError:
            # The case ended between the token check and this call (its window closed).
            context = await self.reset_context(case_id, change.reset_token_digest)
            return refusal_for(context.problem or CaseError.INVALID_STATE)

        return await self._update(
            lambda: handle.execute_update(
                RecoveryCalls.SET_PASSWORD,
                change,
                result_type=RecoveryStatus,
                rpc_timeout=self._timeout,
            ),
            ended_refusal,
        )

    async def call(
        self, call: Callable[[], Awaitable[T]], not_found: ApiError = CASE_NOT_FOUND
    ) -> T:
        """Any call to Temporal, its failures as HTTP errors (404, 503)."""
        try:
            return await call()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found from err
            raise self._unavailable(err) from err
        except RPCTimeoutOrCancelledError as err:
            raise self._unavailable(err) from err
        except RuntimeError as err:
            # The lazily connected client reports an unreachable server this way.
            if not str(err).startswith("Failed client connect"):
                raise
            raise self._unavailable(err) from err
        except WorkflowQueryFailedError as err:
            log.error("query_failed", error=str(err))
            raise unavailable() from err

    async def _update(
        self, call: Callable[[], Awaitable[T]], ended: Callable[[], Awaitable[ApiError]]
    ) -> T:
        """An update, its refusals as HTTP errors. An update to a workflow that has ended is
        NOT_FOUND too: `ended` then says what the user should be told (the case still
        answers queries)."""
        try:
            return await self.call(call)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise from_refusal(cause) from err
            raise
        except ApiError as err:
            if err is not CASE_NOT_FOUND:
                raise
            raise await ended() from err

    def _by_final_state(
        self, case_id: str, refusals: dict[CaseState, CaseError]
    ) -> Callable[[], Awaitable[ApiError]]:
        async def refusal() -> ApiError:
            final = await self.status(case_id)
            error = refusals.get(final.state, CaseError.INVALID_STATE)
            return refusal_for(error, final.state.value)

        return refusal

    @staticmethod
    def _unavailable(err: Exception) -> ApiError:
        log.warning("temporal_unavailable", error=type(err).__name__)
        return unavailable()
