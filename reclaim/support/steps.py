"""What the claim activities do (activities/support.py, and the purge in
activities/lifecycle.py): apply an approval (hand the account over, restore it, lift a ban),
mail the claimant and the support leads, record the closed claim, keep its queue row, forget a
purged account's claims. An approval calls the recovery and lifecycle services for their parts.
"""

from __future__ import annotations

import hmac

import structlog

from reclaim.contracts import AccountStatus, Actor, ActorKind, Channel
from reclaim.directory import AccountExists, AccountGone, CapabilityMissing, Directory
from reclaim.errors import Refused
from reclaim.i18n import Text
from reclaim.identifiers import Identifier, IdentifierKind, mask_email
from reclaim.lifecycle.service import LifecycleService, NotBanned
from reclaim.notify import messages
from reclaim.notify.errors import Undeliverable
from reclaim.notify.messages import Message
from reclaim.notify.notifier import Contact, Notifier
from reclaim.recovery.cases import RecoveryCases
from reclaim.recovery.handover import Handover
from reclaim.recovery.lost_factors import choices, is_choice
from reclaim.settings import Settings
from reclaim.store.models import FORGOTTEN, NotificationKind, SupportClaim
from reclaim.support.contracts import (
    ClaimClosing,
    ClaimNotice,
    ClaimNoticeKind,
    ClaimReason,
    Escalation,
    QueueRowChange,
    Resolution,
    ResolveClaim,
)
from reclaim.support.ledger import SupportLedger
from reclaim.support.queue_rows import QueueRows

log = structlog.get_logger(__name__)
ESCALATION_ATTEMPT = {"first_response": 0, "decision": 1}


class Unresolvable(Exception):
    """The approval cannot be applied; the message says why, for the reviewer."""


class ClaimSteps:
    """What a support claim's activities do."""

    def __init__(
        self,
        ledger: SupportLedger,
        directory: Directory,
        notifier: Notifier,
        settings: Settings,
        recovery: RecoveryCases,
        lifecycle: LifecycleService,
        queue_rows: QueueRows,
    ) -> None:
        self._ledger = ledger
        self._queue_rows = queue_rows
        self._directory = directory
        self._notifier = notifier
        self._settings = settings
        self._recovery = recovery
        self._lifecycle = lifecycle
        self._handover = Handover(directory, notifier, settings, lifecycle)

    async def resolve(self, request: ResolveClaim) -> Resolution:
        """Apply an approval. A resolution that cannot be applied (the account was purged,
        is banned...) comes back as `problem`, for the reviewer; the claim stays open."""
        try:
            if request.reason in (ClaimReason.COMPROMISED, ClaimReason.LOST_CONTACT):
                return await self._hand_over(request)
            if request.reason is ClaimReason.LOST_AUTHENTICATOR:
                return await self._without_factors(request)
            actor = Actor(ActorKind.OPERATOR, request.by.name)
            if request.reason is ClaimReason.DELETED:
                await self._restore(request, actor)
                return Resolution()
            try:
                await self._lifecycle.unban(
                    request.account_id, actor, f"appeal approved in support claim {request.case_id}"
                )
            except NotBanned:
                pass  # lifted meanwhile: nothing left to do
            except Refused as err:  # the directory kept the ban: the reviewer hears why
                return Resolution(problem=err.message)
            return Resolution()
        except Unresolvable as err:
            return Resolution(problem=str(err))
        except CapabilityMissing as err:  # e.g. an LDAP lock is lifted in the directory itself
            said = str(err)
            return Resolution(problem=said[:1].upper() + said[1:])

    async def notify_claimant(self, notice: ClaimNotice) -> None:
        claim = await self._ledger.get(notice.case_id)
        if claim is None or claim.contact_email == FORGOTTEN:
            return
        try:
            await self._notifier.send_once(
                notice.case_id,
                notice.kind.value,
                notice.attempt,
                Contact(Channel.EMAIL, claim.contact_email),
                lambda _code: self._compose(notice, claim),
            )
        except Undeliverable:
            log.warning("claimant_undeliverable", case_id=notice.case_id, kind=notice.kind)
        if notice.kind is ClaimNoticeKind.RECEIVED:
            await self._ledger.forget_token(notice.case_id)

    async def notify_escalation(self, escalation: Escalation) -> None:
        log.warning("claim_escalated", case_id=escalation.case_id, level=escalation.level)
        await self._ledger.mark_escalated(escalation.case_id, escalation.at)
        address = self._settings.escalation_email
        if not address:
            return
        await self._notifier.tell(
            escalation.case_id,
            NotificationKind.ESCALATION,
            ESCALATION_ATTEMPT.get(escalation.level, 2),
            Contact(Channel.EMAIL, address),
            messages.claim_escalated(
                Text(self._settings.default_locale),
                product=self._settings.product_name,
                case_id=escalation.case_id,
                level=escalation.level,
                links=self._settings.links,
            ),
        )

    async def record(self, closing: ClaimClosing) -> None:
        await self._ledger.record_closing(closing)

    async def keep_queue_row(self, change: QueueRowChange) -> None:
        await self._queue_rows.upsert(change)

    async def forget_account(self, account_id: int) -> None:
        """The account was purged: its claims forget the claimant's words and address."""
        claims = await self._ledger.forget_account(account_id)
        await self._notifier.forget_recipients(claims)

    async def _hand_over(self, request: ResolveClaim) -> Resolution:
        """An approved takeover or lost-contact claim: the verified contact replaces the
        account's addresses (the phone goes too: the claim did not verify one), every session
        is signed out, the old addresses are told, and a recovery case is open to the new
        address. With a claim hold (`claim_recovery_hold`) the replacement waits for it (the
        sign-out does not): the
        recovery case's code goes to the claim's address, the old addresses hear of the
        replacement with a link to stop it when the new password is held, and the recovery
        service replaces the contacts (and tells them) when it takes effect; a stop leaves
        them as they are. Each step is applied once however often the activity is retried."""
        claim = await self._ledger.get(request.case_id)
        assert claim is not None
        new_email = claim.contact_email
        destination = mask_email(new_email)
        held = self._settings.claim_recovery_hold > 0
        recovery_case_id = await self._ledger.handover_case_id(request.case_id)
        if not await self._recovery.case_recorded(recovery_case_id):
            account = await self._directory.get(request.account_id)
            if account is None or account.status is AccountStatus.PURGED:
                raise Unresolvable("The account was deleted for good: it cannot be handed over.")
            if account.status is AccountStatus.BANNED:
                raise Unresolvable(
                    "The account is banned: lift the ban first, or decide the appeal."
                )
            holder = await self._directory.find(Identifier(IdentifierKind.EMAIL, new_email))
            if holder is not None and holder.id != account.id:
                raise Unresolvable("Another account uses the claim's contact address.")
            # The old addresses are kept in the outbox before they are replaced.
            owed = [
                Contact(channel, address)
                for channel, address in account.contacts
                if not (channel is Channel.EMAIL and address == new_email)
            ]
            await self._notifier.queue_once(
                request.case_id, NotificationKind.CONTACT_REPLACED, owed
            )
            if held:
                # The recovery case waits out a hold: these addresses may stop it meanwhile.
                await self._notifier.queue_once(
                    recovery_case_id, NotificationKind.HOLD, owed, numbered=True
                )
                # Whoever holds a session now (a hijacker, in a takeover claim) is out at once;
                # the owner, if the claim was not theirs, signs in again and stops the hold.
                await self._directory.revoke_sessions(request.account_id, request.at)
                await self._recovery.open_for_claim(
                    recovery_case_id,
                    request.account_id,
                    new_email,
                    request.at,
                    handover_claim=request.case_id,
                )
                return Resolution(recovery_case_id=recovery_case_id, destination=destination)
            try:
                await self._handover.move_contacts(
                    request.account_id,
                    new_email,
                    claim_id=request.case_id,
                    at=request.at,
                    actor=Actor(ActorKind.OPERATOR, request.by.name),
                    reason=f"support claim ({request.reason.value}) approved",
                )
            except AccountExists as err:
                raise Unresolvable("Another account uses the claim's contact address.") from err
            except AccountGone as err:
                raise Unresolvable(
                    "The account is gone or banned: it cannot be handed over."
                ) from err
            await self._recovery.open_for_claim(
                recovery_case_id, request.account_id, new_email, request.at
            )
        elif held:
            return Resolution(recovery_case_id=recovery_case_id, destination=destination)
        account = await self._directory.get(request.account_id)
        username = account.username if account is not None else ""
        await self._handover.tell_replaced(request.case_id, claim.locale, username, destination)
        return Resolution(recovery_case_id=recovery_case_id, destination=destination)

    async def _without_factors(self, request: ResolveClaim) -> Resolution:
        """An approved lost-authenticator claim: a recovery case to the account's own email
        address (the claim's: the claimant wrote from it), without the second step, held
        (`claim_recovery_hold`) with a link to stop it for every contact; the factors the
        reviewer chose are removed when the held password takes effect, never before (a stop
        leaves them). Every session is signed out now. Applied once however often it runs."""
        claim = await self._ledger.get(request.case_id)
        assert claim is not None
        recovery_case_id = await self._ledger.handover_case_id(request.case_id)
        account = await self._directory.get(request.account_id)
        if account is None or account.status is AccountStatus.PURGED:
            raise Unresolvable("The account was deleted for good: there is nothing to recover.")
        if account.status is AccountStatus.BANNED:
            raise Unresolvable("The account is banned: decide the appeal instead.")
        if account.email is None or not hmac.compare_digest(
            account.email.encode(), claim.contact_email.encode()
        ):
            raise Unresolvable(
                "The claim was not written from the account's email address: a lost second "
                "factor is recovered through it. Reject the claim, or ask for a lost-contact "
                "claim."
            )
        destination = mask_email(account.email)
        if not await self._recovery.case_recorded(recovery_case_id):
            have = choices(await self._directory.factors(request.account_id))
            chosen = (
                have
                if request.remove_factors is None
                else [key for key in request.remove_factors if is_choice(key) and key in have]
            )
            if self._settings.claim_recovery_hold > 0:
                # Every contact, the one recovering too, may stop the held recovery.
                await self._notifier.queue_once(
                    recovery_case_id,
                    NotificationKind.HOLD,
                    [Contact(channel, address) for channel, address in account.contacts],
                    numbered=True,
                )
            await self._directory.revoke_sessions(request.account_id, request.at)
            await self._recovery.open_for_claim(
                recovery_case_id,
                request.account_id,
                account.email,
                request.at,
                remove_factors=chosen,
            )
        return Resolution(recovery_case_id=recovery_case_id, destination=destination)

    async def _restore(self, request: ResolveClaim, actor: Actor) -> None:
        """An approved `deleted` claim: reactivate the account if it is still inside its grace
        period, and stop its deletion case."""
        account = await self._directory.get(request.account_id)
        if account is None:
            raise Unresolvable("No account to restore.")
        if account.status is AccountStatus.PURGED:
            when = f" on {account.status_since:%Y-%m-%d}" if account.status_since else ""
            raise Unresolvable(
                f"The account's grace period ended and it was purged{when}: it cannot be restored."
            )
        if account.status is AccountStatus.BANNED:
            raise Unresolvable("The account is banned: decide the appeal instead.")
        try:
            deletion = await self._directory.reactivate(
                request.account_id, request.at, actor, case_id=request.case_id
            )
        except AccountGone as err:
            raise Unresolvable("The account is gone or banned: it cannot be restored.") from err
        if deletion is not None:
            await self._lifecycle.signal_reactivated(deletion)

    def _compose(self, notice: ClaimNotice, claim: SupportClaim) -> Message:
        t = Text(claim.locale or self._settings.default_locale)
        product, links = self._settings.product_name, self._settings.links
        case_id = claim.case_id
        if notice.kind is ClaimNoticeKind.RECEIVED:
            if claim.sealed_token is None:
                raise Undeliverable("the claim token is gone")
            token = self._ledger.unseal_token(claim)
            return messages.claim_received(
                t, product=product, case_id=case_id, claim_token=token, links=links
            )
        if notice.kind is ClaimNoticeKind.QUESTION:
            return messages.claim_question(
                t, product=product, case_id=case_id, questions=notice.detail or "", links=links
            )
        if notice.kind is ClaimNoticeKind.ABANDONED:
            return messages.claim_abandoned(t, product=product, case_id=case_id, links=links)
        if notice.kind is ClaimNoticeKind.CANCELLED:
            return messages.claim_cancelled(
                t, product=product, case_id=case_id, reason=notice.detail, links=links
            )
        return messages.claim_decided(
            t,
            product=product,
            case_id=case_id,
            approved=notice.kind is ClaimNoticeKind.APPROVED,
            note=notice.detail,
            recovery_case_id=notice.recovery_case_id,
            links=links,
        )
