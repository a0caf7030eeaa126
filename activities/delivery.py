from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from reclaim.contracts import ActivityName, CaseError, IssueCode, IssuedCode
from reclaim.delivery.errors import Undeliverable
from reclaim.notifications import Notifier


class DeliveryActivities:
    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    @activity.defn(name=ActivityName.ISSUE_CODE)
    async def issue_code(self, request: IssueCode) -> IssuedCode:
        """Generate, keep (sealed) and send the code of one attempt; return its digest.
        Retried after a crash it re-sends the same code, never a new one."""
        try:
            async with heartbeating():
                digest = await self._notifier.issue_code(request, datetime.now(UTC))
        except Undeliverable as err:
            raise ApplicationError(
                str(err), type=CaseError.UNDELIVERABLE, non_retryable=True
            ) from err
        return IssuedCode(code_digest=digest)
