"""Support claims' side effects: applying an approval, mailing the claimant and the support
leads, recording the closed claim."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError

from reclaim import claims, messages
from reclaim.account_cases import AccountCases, NotBanned, signal_reactivated
from reclaim.contracts import (
    ActivityName,
    Channel,
    ClaimClosing,
    ClaimNotice,
    ClaimNoticeKind,
    ClaimReason,
    Escalation,
    RecoveryCalls,
    Resolution,
    ResolveClaim,
)
from reclaim.delivery.errors import Undeliverable
from reclaim.lifecycle import PURGED_MARK
from reclaim.messages import Message
from reclaim.models import Account, NotificationKind, SupportClaim
from reclaim.notifications import Contact, Notifier
from reclaim.security import Keys
from reclaim.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

ESCALATION_ATTEMPT = {"first_response": 0, "decision": 1}


class ClaimActivities:
    def __init__(self, engine: Engine, keys: Keys, notifier: Notifier, settings: Settings):
        self._engine = engine
        self._keys = keys
        self._notifier = notifier
        self._settings = settings

    @activity.defn(name=ActivityName.RESOLVE_CLAIM)
    async def resolve_claim(self, request: ResolveClaim) -> Resolution:
        """Apply an approval. A resolution that cannot be applied (the account was purged,
        is banned...) comes back as `problem`, for the reviewer; the claim stays open."""
        try:
            if request.reason in (ClaimReason.COMPROMISED, ClaimReason.LOST_CONTACT):
                return await self._hand_over(request)
            if request.reason is ClaimReason.DELETED:
                deletion = await self._in_session(lambda s: claims.restore(s, request))
                if deletion is not None:
                    await signal_reactivated(activity.client(), deletion)
                return Resolution()
            cases = AccountCases(activity.client(), self._engine, self._settings)
            try:
                await cases.unban(
                    request.account_id,
                    claims.reviewer_actor(request),
                    f"appeal approved in support claim {request.case_id}",
                )
            except NotBanned:
                pass  # lifted meanwhile: nothing left to do
            return Resolution()
        except claims.Unresolvable as err:
            return Resolution(problem=str(err))

    async def _hand_over(self, request: ResolveClaim) -> Resolution:
        handover = await self._in_session(
            lambda s: claims.hand_over(s, self._keys, self._notifier, request)
        )
        client = activity.client()
        for case_id in handover.superseded:  # one live code per account
            try:
                await client.get_workflow_handle(case_id).signal(RecoveryCalls.SUPERSEDE)
            except (RPCError, RPCTimeoutOrCancelledError) as err:
                log.warning("supersede_failed", case_id=case_id, error=type(err).__name__)
        if handover.reactivated is not None:
            await signal_reactivated(client, handover.reactivated)
        account = await self._in_session(lambda s: s.get(Account, request.account_id))
        assert account is not None
        await self._notifier.flush(
            request.case_id,
            NotificationKind.CONTACT_REPLACED,
            messages.contact_replaced(
                product=self._settings.product_name,
                username=account.username,
                new_contact=handover.destination,
                public_url=self._settings.public_url,
            ),
        )
        return Resolution(
            recovery_case_id=handover.recovery_case_id, destination=handover.destination
        )

    @activity.defn(name=ActivityName.NOTIFY_CLAIMANT)
    async def notify_claimant(self, notice: ClaimNotice) -> None:
        claim = await self._in_session(lambda s: s.get(SupportClaim, notice.case_id))
        if claim is None or claim.contact_email == PURGED_MARK:
            return
        try:
            await self._notifier.tell_claimant(
                notice.case_id,
                notice.kind.value,
                notice.attempt,
                claim.contact_email,
                lambda: self._compose(notice, claim),
            )
        except Undeliverable:
            log.warning("claimant_undeliverable", case_id=notice.case_id, kind=notice.kind)
        if notice.kind is ClaimNoticeKind.RECEIVED and claim.sealed_token is not None:
            await self._in_session(lambda s: self._forget_token(s, notice.case_id))

    def _compose(self, notice: ClaimNotice, claim: SupportClaim) -> Message:
        product, url = self._settings.product_name, self._settings.public_url
        if notice.kind is ClaimNoticeKind.RECEIVED:
            if claim.sealed_token is None:
                raise Undeliverable("the claim token is gone")
            token = claims.unseal_claim_token(self._keys, claim)
            return messages.claim_received(
                product=product, case_id=claim.case_id, claim_token=token, public_url=url
            )
        if notice.kind is ClaimNoticeKind.QUESTION:
            return messages.claim_question(
                product=product,
                case_id=claim.case_id,
                questions=notice.detail or "",
                public_url=url,
            )
        if notice.kind is ClaimNoticeKind.ABANDONED:
            return messages.claim_abandoned(product=product, case_id=claim.case_id)
        return messages.claim_decided(
            product=product,
            case_id=claim.case_id,
            approved=notice.kind is ClaimNoticeKind.APPROVED,
            note=notice.detail,
            recovery_case_id=notice.recovery_case_id,
            public_url=url,
        )

    @staticmethod
    def _forget_token(session: Session, case_id: str) -> None:
        claim = session.get(SupportClaim, case_id)
        if claim is not None:
            claim.sealed_token = None
            session.add(claim)
            session.commit()

    @activity.defn(name=ActivityName.NOTIFY_ESCALATION)
    async def notify_escalation(self, escalation: Escalation) -> None:
        log.warning("claim_escalated", case_id=escalation.case_id, level=escalation.level)
        await self._in_session(
            lambda s: claims.mark_escalated(s, escalation.case_id, escalation.at)
        )
        address = self._settings.escalation_email
        if not address:
            return
        await self._notifier.tell(
            escalation.case_id,
            NotificationKind.ESCALATION,
            ESCALATION_ATTEMPT.get(escalation.level, 2),
            Contact(Channel.EMAIL, address),
            messages.claim_escalated(
                product=self._settings.product_name,
                case_id=escalation.case_id,
                level=escalation.level,
            ),
        )

    @activity.defn(name=ActivityName.RECORD_CLAIM)
    async def record_claim(self, closing: ClaimClosing) -> None:
        await self._in_session(lambda s: claims.record_closing(s, closing))

    async def _in_session(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with Session(self._engine, expire_on_commit=False) as session:
                return work(session)

        return await asyncio.to_thread(run)
