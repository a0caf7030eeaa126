"""Calls into support-claim workflows and Temporal visibility, and their failures as HTTP."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.case_calls import CaseCalls
from api.errors import CLAIM_NOT_FOUND, ApiError, from_refusal
from reclaim import search_attributes as sa
from reclaim.contracts import ClaimantView, ClaimCalls, ClaimState, ClaimView
from reclaim.security import CLAIM_CASE_PREFIX

CLAIM_ID = re.compile(rf"^{CLAIM_CASE_PREFIX}[A-Za-z0-9_-]{{22}}$")
T = TypeVar("T")


def check_claim_id(case_id: str) -> str:
    if not CLAIM_ID.match(case_id):
        raise CLAIM_NOT_FOUND
    return case_id


class SupportCalls:
    def __init__(
        self, client: Client, calls: CaseCalls, task_queue: str, rpc_timeout: float
    ) -> None:
        self._client = client
        self._calls = calls
        self._task_queue = task_queue
        self._timeout = timedelta(seconds=rpc_timeout)

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        return self._client.get_workflow_handle(check_claim_id(case_id))

    async def staff_view(self, case_id: str) -> ClaimView:
        handle = self._handle(case_id)
        return await self._calls.call(
            lambda: handle.query(
                ClaimCalls.STAFF_VIEW, result_type=ClaimView, rpc_timeout=self._timeout
            ),
            CLAIM_NOT_FOUND,
        )

    async def claimant_view(self, case_id: str) -> ClaimantView:
        handle = self._handle(case_id)
        return await self._calls.call(
            lambda: handle.query(
                ClaimCalls.CLAIMANT_VIEW, result_type=ClaimantView, rpc_timeout=self._timeout
            ),
            CLAIM_NOT_FOUND,
        )

    async def update(self, case_id: str, name: str, arg: object, result_type: type[T]) -> T:
        """A claim's update, its refusals as HTTP errors; an update to a claim that has
        closed answers 409 with the state it closed in."""
        handle = self._handle(case_id)
        try:
            return await self._calls.call(
                lambda: handle.execute_update(
                    name, arg, result_type=result_type, rpc_timeout=self._timeout
                ),
                CLAIM_NOT_FOUND,
            )
        except WorkflowUpdateFailedError as err:
            if isinstance(err.cause, ApplicationError):
                raise from_refusal(err.cause) from err
            raise
        except ApiError as err:
            if err is not CLAIM_NOT_FOUND:
                raise
            final = await self.staff_view(case_id)
            raise ApiError(
                409,
                "invalid_state",
                f"This claim is {final.state.value}: that cannot be done now.",
                state=final.state.value,
            ) from err

    async def queue(self, filters: dict[str, str | bool], limit: int) -> list[dict[str, Any]]:
        """This deployment's claims (its task queue) from Temporal visibility, oldest first.
        `filters` hold values already checked against their enums or patterns: nothing typed
        reaches the query raw."""
        clauses = [
            f'{sa.CASE_KIND.name} = "{sa.SUPPORT_CLAIM}"',
            f'TaskQueue = "{self._task_queue}"',
        ]
        keys = {"state": sa.CASE_STATE, "reason": sa.REASON, "risk": sa.RISK}
        keys["assignee"] = sa.ASSIGNEE
        for name, value in filters.items():
            if name == "escalated":
                clauses.append(f"{sa.ESCALATED.name} = {'true' if value else 'false'}")
            else:
                clauses.append(f'{keys[name].name} = "{value}"')
        if "state" not in filters:
            clauses.append('ExecutionStatus = "Running"')
        query = " AND ".join(clauses)

        async def fetch() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            async for execution in self._client.list_workflows(
                query, limit=limit, rpc_timeout=self._timeout
            ):
                attrs = execution.typed_search_attributes
                found.append(
                    {
                        "case_id": execution.id,
                        "state": attrs.get(sa.CASE_STATE) or ClaimState.SUBMITTED.value,
                        "reason": attrs.get(sa.REASON),
                        "risk": attrs.get(sa.RISK),
                        "assignee": attrs.get(sa.ASSIGNEE),
                        "escalated": bool(attrs.get(sa.ESCALATED)),
                        "opened_at": execution.start_time,
                        "next_deadline": attrs.get(sa.NEXT_DEADLINE),
                    }
                )
            return sorted(found, key=lambda c: c["opened_at"])

        return await self._calls.call(fetch)
