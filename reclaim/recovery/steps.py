"""The steps of a self-service recovery, as its workflow's activities take them
(`activities/recovery.py`): deliver a code, tell about guessing or a hold, end a stopped hold's
sessions, apply the new password (handing the account over for an approved claim's case),
tell every contact, record the end, forget a purged account.

Each step may run more than once (an activity is retried): each is written to change things
once per case however often it runs. Nothing here starts or asks a workflow.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog

from reclaim.contracts import AccountStatus, Actor, ActorKind, Channel
from reclaim.directory import (
    AccountExists,
    AccountGone,
    AccountRecord,
    Directory,
    FactorKind,
    NewPassword,
    PasswordRejected,
)
from reclaim.directory.port import open_hash
from reclaim.i18n import Text
from reclaim.identifiers import (
    mask_email,
    notice_address,
)
from reclaim.lifecycle.service import LifecycleService
from reclaim.notify import messages
from reclaim.notify.errors import Undeliverable
from reclaim.notify.notifier import Contact, Notifier
from reclaim.recovery.contracts import (
    ApplyReset,
    CaseClosing,
    CaseState,
    GuessingNotice,
    HoldNotice,
    IssueCode,
    IssuedCode,
    SecondFactorVerdict,
    Stopped,
    VerifySecondFactor,
)
from reclaim.recovery.factors import open_factor_code
from reclaim.recovery.handover import Handover
from reclaim.recovery.ledger import CaseFacts, RecoveryLedger
from reclaim.recovery.lost_factors import remove_chosen
from reclaim.recovery.passkey_proofs import PasskeyProofs
from reclaim.security import Keys, new_code, new_token
from reclaim.settings import Settings
from reclaim.store.models import NotificationKind

log = structlog.get_logger(__name__)

GUESS_WINDOW = timedelta(hours=1)


def guessing_key(account_id: int, window: int | None) -> str:
    """The notice "someone is guessing codes" is sent once per account and hour: this key
    stands for the case in the notification ledger (None: every window's, as a prefix)."""
    return f"guess_{account_id}_" + ("" if window is None else str(window))


class Superseded(Exception):
    """An approved claim took the account over: this older case may not change its password."""


class HandoverFailed(Exception):
    """When the hold of an approved claim's case ended, the account could not move to the
    claim's address (another account uses it now, the account was purged or banned): nothing
    changed, the claimant was told, and the case ends cancelled."""


class RecoverySteps:
    """What a recovery's activities do."""

    def __init__(
        self,
        ledger: RecoveryLedger,
        directory: Directory,
        notifier: Notifier,
        keys: Keys,
        settings: Settings,
        lifecycle: LifecycleService,
    ) -> None:
        self._ledger = ledger
        self._directory = directory
        self._notifier = notifier
        self._keys = keys
        self._settings = settings
        self._lifecycle = lifecycle
        self._handover = Handover(directory, notifier, settings, lifecycle)
        self._passkeys = PasskeyProofs(ledger, directory, notifier, keys, settings)

    async def issue_code(self, request: IssueCode, now: datetime) -> IssuedCode:
        """Deliver the code of `request.attempt` (and its proof, in the message's link) and
        return their digests. For a case without an account, tell the address typed that no
        account uses it (first attempt only, and once per `no_account_notice_interval` per
        address however it is spelt), and return the digests of a code nobody will ever
        receive."""
        settings = self._settings
        facts = await self._ledger.facts(request.case_id)
        t = Text(facts.locale or settings.default_locale)
        if request.account_id is None:
            address = facts.unknown_address if request.attempt == 0 else None
            if (
                address is not None
                and settings.notify_unknown
                and await self._ledger.claim_no_account_notice(
                    self._keys.identifier_digest(f"no_account:{notice_address(address)}"),
                    request.case_id,
                    now,
                    timedelta(seconds=settings.no_account_notice_interval),
                )
            ):
                await self._notifier.tell(
                    request.case_id,
                    NotificationKind.NO_ACCOUNT,
                    0,
                    Contact(request.channel, address),
                    messages.no_account(t, product=settings.product_name, links=settings.links),
                )
            else:
                # Nothing to send (or the address heard it lately): take as long as a send
                # does (the delivery state shows it), so the person asking cannot tell.
                await asyncio.sleep(self._notifier.typical_send_seconds(request.channel))
            return self._issued(request.case_id, new_code())

        account = await self._directory.get(request.account_id)
        if account is None or account.status is AccountStatus.PURGED:
            raise Undeliverable("the account no longer exists")
        address = account.address(request.channel)
        if facts.handover_email and request.channel is Channel.EMAIL:
            address = facts.handover_email  # an approved claim's: the account moves there later
        if not address:
            raise Undeliverable(f"the account has no {request.channel} contact")
        contact = Contact(request.channel, address)
        if account.status is AccountStatus.BANNED:
            # No code for a banned account: its holder learns why, until when, and how to
            # appeal (once per case), while the person asking sees the usual answer.
            if request.attempt == 0:
                await self._notifier.tell(
                    request.case_id,
                    NotificationKind.BANNED,
                    0,
                    contact,
                    messages.banned(
                        t,
                        product=settings.product_name,
                        username=account.username,
                        until=account.status_until,
                        reason=account.status_reason,
                        links=settings.links,
                    ),
                )
            else:  # a new code asked for: nothing is sent, in the time a send takes
                await asyncio.sleep(self._notifier.typical_send_seconds(request.channel))
            # The digest of something no 6-digit code can ever match.
            return self._issued(request.case_id, new_token())
        valid_for = (request.expires_at - now).total_seconds()
        code = await self._notifier.send_once(
            request.case_id,
            NotificationKind.CODE,
            request.attempt,
            contact,
            lambda code: messages.recovery_code(
                t,
                product=settings.product_name,
                code=code or "",
                valid_for_seconds=valid_for,
                webotp_domain=settings.resolved_webotp_domain,
                links=settings.links,
                case_id=request.case_id,
                proof=self._keys.proof_token(request.case_id, code or ""),
            ),
            with_code=True,
        )
        assert code is not None
        return self._issued(request.case_id, code)

    async def tell_guessing(self, notice: GuessingNotice) -> None:
        """The account's guess budget is spent: its contacts hear that someone is guessing,
        once an hour whatever the case."""
        if notice.account_id is None:
            return
        account = await self._directory.get(notice.account_id)
        if account is None or account.status is AccountStatus.PURGED:
            return
        facts = await self._ledger.facts(notice.case_id)
        window = int(notice.at.timestamp() // GUESS_WINDOW.total_seconds())
        message = messages.guessing(
            Text(facts.locale or self._settings.default_locale),
            product=self._settings.product_name,
            username=account.username,
            links=self._settings.links,
        )
        contacts = [Contact(channel, address) for channel, address in account.contacts]
        await self._notifier.tell_every(
            guessing_key(notice.account_id, window), NotificationKind.GUESSING, contacts, message
        )

    async def tell_held(self, notice: HoldNotice) -> None:
        """Every contact but the one recovering (and the ones an approved claim replaced)
        hears when the new password takes effect, with a link of its own to stop it."""
        account = await self._directory.get(notice.account_id)
        if account is None or account.status is AccountStatus.PURGED:
            return
        facts = await self._ledger.facts(notice.case_id)
        # An approved claim's case recovers through the claim's address, not yet the account's.
        # A lost-authenticator claim's case tells every contact, the one recovering too: the
        # second factor that guarded it is what goes.
        recovering = facts.handover_email or account.address(notice.channel)
        if facts.remove_factors is not None:
            recovering = None
        others = [Contact(channel, address) for channel, address in account.contacts]
        # The addresses replaced lately (an approved claim's case was told to hold for them).
        since = datetime.now(UTC) - timedelta(days=self._settings.recent_contact_days)
        for case in await self._ledger.cases_of(notice.account_id):
            if case.case_id != notice.case_id and case.opened_at >= since:
                told = await self._notifier.recipients(case.case_id, NotificationKind.HOLD)
                others += [contact for _, contact in told]
        owed = {
            contact: None
            for contact in others
            if not (contact.channel is notice.channel and contact.address == recovering)
        }
        await self._notifier.queue_once(
            notice.case_id, NotificationKind.HOLD, list(owed), numbered=True
        )
        t = Text(facts.locale or self._settings.default_locale)
        # An approved claim's case: these addresses are replaced too when the hold ends.
        moving_to = mask_email(facts.handover_email) if facts.handover_email else None
        for attempt, contact in await self._notifier.recipients(
            notice.case_id, NotificationKind.HOLD
        ):
            stop_url = self._settings.links.stop(
                notice.case_id, self._keys.stop_token(notice.case_id, contact.address)
            )
            try:
                await self._notifier.tell(
                    notice.case_id,
                    NotificationKind.HOLD,
                    attempt,
                    contact,
                    messages.recovery_held(
                        t,
                        product=self._settings.product_name,
                        username=account.username,
                        until=notice.until,
                        stop_url=stop_url,
                        new_contact=moving_to,
                        removes_factors=bool(facts.remove_factors),
                    ),
                )
            except Undeliverable:
                log.warning("hold_notice_undeliverable", case_id=notice.case_id)

    async def stop_held(self, stopped: Stopped) -> None:
        """A held recovery was stopped: every session of the account ends now."""
        await self._directory.revoke_sessions(stopped.account_id, stopped.at)

    async def apply_reset(self, reset: ApplyReset) -> AccountRecord:
        """The new password in the directory (with its history, every session signed out, a
        deactivated account reactivated), then the case recorded as completed. For the case
        an approved claim opened with a hold, the claim's address replaces the account's
        contacts first, in the same step. Running it again for the same case changes nothing
        (the directory applies each change once per case). Raises `Superseded`, `AccountGone`,
        `HandoverFailed` or `reclaim.directory.PasswordRejected`."""
        facts = await self._ledger.facts(reset.case_id)
        account = await self._directory.get(reset.account_id)
        if account is None or account.status in (AccountStatus.PURGED, AccountStatus.BANNED):
            if facts.handover_claim is not None and not await self._ledger.completed(reset.case_id):
                await self._handover_failed(reset.case_id, facts)
                raise HandoverFailed(reset.case_id)
            raise AccountGone(reset.account_id)
        if not await self._ledger.completed(reset.case_id):
            if await self._ledger.superseded(reset.case_id):
                raise Superseded(reset.case_id)
            if facts.handover_email is not None and facts.handover_claim is not None:
                await self._hand_over(reset, facts.handover_email, facts.handover_claim, facts)
            try:
                reactivated = await self._directory.set_password(
                    reset.account_id,
                    NewPassword(
                        open_hash(self._keys, reset.case_id, reset.password_hash),
                        reset.sealed_password,
                    ),
                    case_id=reset.case_id,
                    at=reset.at,
                )
            except PasswordRejected:
                # The directory's own policy, asked only now: the case ends and the person
                # recovers again, at the address the hold let the account move to.
                if facts.handover_claim is not None:
                    await self._tell_contacts_replaced(reset.case_id, reset.account_id)
                raise
            if facts.remove_factors:
                await self._remove_lost_factors(reset, account, facts.remove_factors)
            await self.close(
                CaseClosing(
                    reset.case_id,
                    CaseState.COMPLETED,
                    reset.at,
                    reset.wrong_codes,
                    reset.resends,
                    reset.second_factor,
                )
            )
            if reactivated is not None:  # the recovery kept a deactivated account
                await self._lifecycle.signal_reactivated(reactivated)
        return await self._directory.get(reset.account_id) or account

    async def _remove_lost_factors(
        self, reset: ApplyReset, account: AccountRecord, chosen: tuple[str, ...]
    ) -> None:
        """The case an approved lost-authenticator claim opened took effect (its hold ended
        unstopped): the factors the reviewer chose go, and every contact is told which (once
        each: a retried activity tells only those not told yet)."""
        removed = await remove_chosen(self._directory, reset.account_id, chosen)
        log.info("lost_factors_removed", case_id=reset.case_id, count=len(removed))
        if not removed:
            return
        facts = await self._ledger.facts(reset.case_id)
        await self._notifier.tell_every(
            reset.case_id,
            NotificationKind.FACTORS_REMOVED,
            [Contact(channel, address) for channel, address in account.contacts],
            messages.factors_removed(
                Text(facts.locale or self._settings.default_locale),
                product=self._settings.product_name,
                username=account.username,
                removed=removed,
                at=reset.at,
                links=self._settings.links,
            ),
        )

    async def _hand_over(
        self, reset: ApplyReset, email: str, claim_id: str, facts: CaseFacts
    ) -> None:
        """The hold of an approved claim's case ended unstopped: the claim's address replaces
        the account's (the phone goes too), once for the claim however often this runs."""
        try:
            await self._handover.move_contacts(
                reset.account_id,
                email,
                claim_id=claim_id,
                at=reset.at,
                actor=Actor(ActorKind.SYSTEM, "hold"),
                reason=f"support claim {claim_id} approved; its recovery's hold ended",
            )
        except (AccountExists, AccountGone) as err:
            await self._handover_failed(reset.case_id, facts)
            raise HandoverFailed(reset.case_id) from err

    async def _handover_failed(self, case_id: str, facts: CaseFacts) -> None:
        """Tell the claimant that nothing changed (once per case)."""
        log.warning("handover_failed", case_id=case_id, claim=facts.handover_claim)
        if facts.handover_email is None or facts.handover_claim is None:
            return
        try:
            await self._notifier.tell(
                case_id,
                NotificationKind.HANDOVER_FAILED,
                0,
                Contact(Channel.EMAIL, facts.handover_email),
                messages.handover_failed(
                    Text(facts.locale or self._settings.default_locale),
                    product=self._settings.product_name,
                    case_id=facts.handover_claim,
                    links=self._settings.links,
                ),
            )
        except Undeliverable:
            log.warning("handover_failed_undeliverable", case_id=case_id)

    async def _tell_contacts_replaced(self, case_id: str, account_id: int) -> None:
        """The addresses an approved claim's case replaced when its hold ended (owed since the
        approval, under the claim) hear where the account's mail goes now."""
        facts = await self._ledger.facts(case_id)
        if facts.handover_claim is None:
            return
        account = await self._directory.get(account_id)
        if account is None or account.status is AccountStatus.PURGED or not account.email:
            return
        await self._handover.tell_replaced(
            facts.handover_claim, facts.locale, account.username, mask_email(account.email)
        )

    async def tell_password_changed(
        self,
        case_id: str,
        account: AccountRecord | int,
        at: datetime,
        recovery_codes_left: int | None = None,
    ) -> None:
        """Tell every contact of the account that its password changed (and, after an
        approved claim's hold, the addresses it replaced that they no longer belong to it;
        after a recovery code was used, how many are left)."""
        if isinstance(account, int):
            found = await self._directory.get(account)
            if found is None or found.status is AccountStatus.PURGED:
                return
            account = found
        facts = await self._ledger.facts(case_id)
        if facts.handover_claim is not None:
            await self._tell_contacts_replaced(case_id, account.id)
        message = messages.password_changed(
            Text(facts.locale or self._settings.default_locale),
            product=self._settings.product_name,
            username=account.username,
            at=at,
            links=self._settings.links,
            recovery_codes_left=recovery_codes_left,
        )
        contacts = [Contact(channel, address) for channel, address in account.contacts]
        await self._notifier.tell_every(
            case_id, NotificationKind.PASSWORD_CHANGED, contacts, message
        )

    async def verify_second_factor(self, proof: VerifySecondFactor) -> SecondFactorVerdict:
        """Whether the sealed code proves the account's factor (the directory spends what it
        accepts, once per case: a retry answers the same). An unknown method, an account
        gone, or a directory without second factors: not proven."""
        try:
            kind = FactorKind(proof.method)
        except ValueError:
            return SecondFactorVerdict(accepted=False)
        code = open_factor_code(self._keys, proof.case_id, proof.sealed_code)
        if kind is FactorKind.WEBAUTHN:
            accepted = await self._passkeys.verify(proof, code)
            log.info("second_factor_checked", case_id=proof.case_id, method=kind.value,
                     accepted=accepted)  # fmt: skip
            return SecondFactorVerdict(accepted)
        try:
            check = await self._directory.verify_factor(
                proof.account_id, kind, code, case_id=proof.case_id, at=proof.at
            )
        except AccountGone:
            return SecondFactorVerdict(accepted=False)
        log.info(
            "second_factor_checked",
            case_id=proof.case_id,
            method=kind.value,
            accepted=check.accepted,
        )
        return SecondFactorVerdict(check.accepted, check.recovery_codes_left)

    async def close(self, closing: CaseClosing) -> None:
        """Record how the case ended and drop the codes kept for re-sending."""
        await self._ledger.close(closing)
        await self._notifier.forget_codes(closing.case_id)

    async def forget_account(self, account_id: int) -> None:
        """The account was purged: the messages its cases sent forget their recipients."""
        cases = await self._ledger.cases_of(account_id)
        await self._notifier.forget_recipients([case.case_id for case in cases])
        await self._notifier.forget_recipients_like(guessing_key(account_id, None))
        await self._ledger.forget_account(account_id)

    def _issued(self, case_id: str, code: str) -> IssuedCode:
        return IssuedCode(
            self._keys.code_digest(case_id, code),
            self._keys.proof_digest(case_id, self._keys.proof_token(case_id, code)),
        )
