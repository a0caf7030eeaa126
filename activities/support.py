"""The support claim activities: apply an approval, mail the claimant and the support leads,
record the closed claim, keep its row in the reviewers' queue. Thin adapters over `ClaimSteps`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from reclaim.support.contracts import (
    ClaimActivity,
    ClaimClosing,
    ClaimNotice,
    Escalation,
    QueueRowChange,
    Resolution,
    ResolveClaim,
)
from reclaim.support.steps import ClaimSteps


class SupportActivities:
    def __init__(self, steps: ClaimSteps) -> None:
        self._steps = steps

    @activity.defn(name=ClaimActivity.RESOLVE_CLAIM)
    async def resolve_claim(self, request: ResolveClaim) -> Resolution:
        """Apply an approval. One that cannot be applied (the account was purged, is
        banned...) comes back as `problem`, for the reviewer; the claim stays open."""
        return await self._steps.resolve(request)

    @activity.defn(name=ClaimActivity.NOTIFY_CLAIMANT)
    async def notify_claimant(self, notice: ClaimNotice) -> None:
        await self._steps.notify_claimant(notice)

    @activity.defn(name=ClaimActivity.NOTIFY_ESCALATION)
    async def notify_escalation(self, escalation: Escalation) -> None:
        await self._steps.notify_escalation(escalation)

    @activity.defn(name=ClaimActivity.RECORD_CLAIM)
    async def record_claim(self, closing: ClaimClosing) -> None:
        await self._steps.record(closing)

    @activity.defn(name=ClaimActivity.KEEP_QUEUE_ROW)
    async def keep_queue_row(self, change: QueueRowChange) -> None:
        """The claim's row in the reviewers' queue; an older change never overwrites a newer."""
        await self._steps.keep_queue_row(change)

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.resolve_claim,
            self.notify_claimant,
            self.notify_escalation,
            self.record_claim,
            self.keep_queue_row,
        ]
