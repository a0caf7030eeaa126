"""The self-service recovery service: open a case, say where it stands, check a code, send a
fresh one, take the new password; and what the recovery activities do (deliver a code, apply
the new password, tell every contact, record the end).

It is the only code that starts, updates, signals or queries a `RecoveryWorkflow`, and the
only place that puts the ledger, the directory and the workflow together. It raises domain
errors (`reclaim.errors`), which the API and the CLI put in their own words.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from reclaim.contracts import AccountStatus, Actor, ActorKind, CaseError, Channel
from reclaim.directory import (
    AccountExists,
    AccountGone,
    AccountRecord,
    Directory,
    NewPassword,
    PasswordRejected,
)
from reclaim.directory.port import open_hash, seal_hash
from reclaim.errors import NotFound, Refused, Unavailable
from reclaim.i18n import Text, supported
from reclaim.identifiers import (
    IdentifierKind,
    InvalidIdentifier,
    identifier_digest,
    mask_email,
    notice_address,
)
from reclaim.identifiers import parse_identifier as parse
from reclaim.lifecycle.service import LifecycleService
from reclaim.notify import messages
from reclaim.notify.errors import Undeliverable
from reclaim.notify.notifier import Contact, Notifier
from reclaim.password_policy import check_password
from reclaim.recovery.challenge import Challenges, MalformedProof
from reclaim.recovery.contracts import (
    ApplyReset,
    CaseClosing,
    CaseState,
    CodeAccepted,
    GuessingNotice,
    HoldChange,
    HoldNotice,
    IssueCode,
    IssuedCode,
    RecoveryActivity,
    RecoveryCalls,
    RecoveryInput,
    RecoveryRules,
    RecoveryStatus,
    ResetContext,
    SetPassword,
    StopHold,
    Stopped,
    SubmitCode,
)
from reclaim.recovery.ledger import CaseFacts, CaseRow, RateLimited, RecoveryLedger
from reclaim.recovery.rules import plan_case
from reclaim.security import CASE_ID_PREFIX, Keys, new_case_id, new_code, new_token
from reclaim.settings import Settings
from reclaim.store.models import NotificationKind, RecoveryCase
from reclaim.temporal import calls, search_attributes
from reclaim.temporal.case_text import STATIC_DETAILS
from reclaim.temporal.proofs import ActorProofs

log = structlog.get_logger(__name__)

CASE_ID = re.compile(rf"^{CASE_ID_PREFIX}[A-Za-z0-9_-]{{22}}$")
# A proof (a message link's twin of the code) and a stop link's signature: 256 bits, URL-safe.
LINK_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
GUESS_WINDOW = timedelta(hours=1)
# The answers of a code that was compared (and was wrong).
_GUESSED = (CaseError.INVALID_CODE.value, CaseError.CASE_LOCKED.value)
NOT_FOUND = NotFound("recovery case")

# What a request for a case that has already ended gets, by the state it ended in.
_ENDED_CODE = {CaseState.LOCKED: CaseError.CASE_LOCKED, CaseState.EXPIRED: CaseError.CODE_EXPIRED}
_ENDED_MESSAGE = {
    CaseError.CASE_LOCKED: "Too many wrong codes: this case is locked. Start a new recovery.",
    CaseError.CODE_EXPIRED: "This case has expired. Start a new recovery.",
    CaseError.RESET_EXPIRED: "The time to choose a new password ran out. Start again.",
    CaseError.INVALID_TOKEN: "This reset token is not valid.",
}


def guessing_key(account_id: int, window: int | None) -> str:
    """The notice "someone is guessing codes" is sent once per account and hour: this key
    stands for the case in the notification ledger (None: every window's, as a prefix)."""
    return f"guess_{account_id}_" + ("" if window is None else str(window))


def ended_refusal(error: CaseError, state: str | None = None) -> Refused:
    """The refusal a workflow would have given, for a case that has already ended."""
    details: dict[str, Any] = {}
    if error is CaseError.CASE_LOCKED:
        details["attempts_left"] = 0
    if error is CaseError.INVALID_STATE and state:
        details["state"] = state
    return Refused(
        error.value, _ENDED_MESSAGE.get(error, f"This case is {state or 'closed'}."), **details
    )


@dataclass(frozen=True)
class ResetGranted:
    reset_token: str  # single use, shown once
    reset_expires_at: datetime


@dataclass(frozen=True)
class StoppedBy:
    """Who stopped a held recovery: the contact the stop link was sent to, and the account."""

    contact: Contact
    username: str
    status: RecoveryStatus


class Superseded(Exception):
    """An approved claim took the account over: this older case may not change its password."""


class HandoverFailed(Exception):
    """When the hold of an approved claim's case ended, the account could not move to the
    claim's address (another account uses it now, the account was purged or banned): nothing
    changed, the claimant was told, and the case ends cancelled."""


class RecoveryService:
    def __init__(
        self,
        client: Client,
        ledger: RecoveryLedger,
        directory: Directory,
        notifier: Notifier,
        keys: Keys,
        settings: Settings,
        lifecycle: LifecycleService,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._directory = directory
        self._notifier = notifier
        self._keys = keys
        self._proofs = ActorProofs(keys.actor_proof_key)
        self._settings = settings
        self._lifecycle = lifecycle
        self._timeout = timedelta(seconds=settings.temporal_rpc_timeout)
        self._challenges = Challenges(keys, settings)

    # -- the person recovering ---------------------------------------------------------------

    async def open(
        self,
        identifier_text: str,
        channel: Channel | None,
        locale: str | None = None,
        proof: str | None = None,
    ) -> RecoveryStatus:
        """A code goes to the account's email or phone, in `locale`'s words. The answer is
        the same whether or not an account exists under the identifier. Over the rate limit
        the refusal carries a proof-of-work challenge; `proof`, its solution, lets the case
        in (`reclaim.recovery.challenge`)."""
        settings = self._settings
        try:
            identifier = parse(identifier_text, settings.default_region)
        except InvalidIdentifier as err:
            raise Refused(
                "invalid_identifier",
                f"Give the email address, phone number or username of the account ({err}).",
            ) from err
        checked = None
        if proof is not None:
            try:
                checked = self._challenges.check(identifier.key, proof)
            except MalformedProof as err:
                raise Refused(
                    "invalid_proof",
                    f"`altcha` is not the solution of a challenge ({err}): send the base64 "
                    "JSON of {algorithm, challenge, number, salt, signature}.",
                ) from err
        case_id = new_case_id()
        opened_at = datetime.now(UTC)
        # The same reads for every identifier, known or not: the account it names, and the
        # real account whose contacts stand in for its own when it names nobody.
        seed = self._keys.decoy_seed(identifier.key)
        account = await self._directory.find(identifier)
        sample = await self._directory.decoy(seed)
        plan = plan_case(account, identifier, channel, sample, seed, settings.default_region)
        outcome = await self._ledger.open(
            RecoveryCase(
                case_id=case_id,
                account_id=plan.account_id,
                identifier_digest=self._keys.identifier_digest(identifier.key),
                channel=plan.channel.value,
                unknown_address=plan.unknown_address,
                locale=supported(locale),
                opened_at=opened_at,
            ),
            per_hour=settings.cases_per_hour,
            proof=checked,
        )
        if isinstance(outcome, RateLimited):
            # Not a wall: a proof of work as hard as the identifier is far over the limit
            # lets the next case in (the owner always gets through); or wait.
            refused = (
                "That solution was not accepted (expired, used already, or for another "
                "request): solve this challenge instead, or wait."
                if proof is not None
                else "There were many recovery requests for this account: solve this "
                "proof-of-work challenge and send its solution as `altcha`, or wait."
            )
            raise Refused(
                "challenge_required",
                refused,
                retry_after_seconds=outcome.retry_after,
                challenge=self._challenges.issue(identifier.key, outcome.level, opened_at),
            )
        case = RecoveryInput(
            case_id=case_id,
            account_id=plan.account_id,
            channel=plan.channel,
            destination=plan.destination,
            opened_at=opened_at,
            rules=self._rules_for(account, opened_at),
        )
        status = RecoveryStatus.at_opening(case)
        try:
            await self._client.start_workflow(
                RecoveryCalls.WORKFLOW,
                case,
                id=case.case_id,
                task_queue=settings.task_queue,
                search_attributes=search_attributes.self_service_case(
                    status.state, case.channel, status.next_deadline
                ),
                static_summary=f"Self-service recovery by {case.channel.value}",
                static_details=STATIC_DETAILS[search_attributes.SELF_SERVICE],
                rpc_timeout=self._timeout,
            )
        except Exception as err:
            log.warning("case_start_failed", case_id=case_id, error=type(err).__name__)
            await self._ledger.forget(case_id)
            raise Unavailable(
                message="Recovery is not available right now. Try again in a few seconds."
            ) from err
        return status

    async def status(self, case_id: str) -> RecoveryStatus:
        handle = self._handle(case_id)
        return await calls.call(
            lambda: handle.query(
                RecoveryCalls.STATUS, result_type=RecoveryStatus, rpc_timeout=self._timeout
            ),
            NOT_FOUND,
        )

    async def delivery_attempts(self, case_id: str) -> int:
        """How many times the worker has tried to deliver the current code so far."""
        handle = self._handle(case_id)
        description = await calls.call(
            lambda: handle.describe(rpc_timeout=self._timeout), NOT_FOUND
        )
        attempts = [
            activity.attempt
            for activity in description.raw_description.pending_activities
            if activity.activity_type.name == RecoveryActivity.ISSUE_CODE
        ]
        return max(attempts, default=0)

    async def submit_code(self, case_id: str, code: str) -> ResetGranted:
        """A right code returns a single-use reset token; a wrong one says how many tries are
        left; the last wrong one locks the case. Beyond the account's guess budget a code is
        not compared (it answers as a wrong one). The same code sent again after a lost answer
        gets the same answer, and costs nothing more."""
        handle = self._handle(case_id)
        digest = self._keys.code_digest(case_id, code)
        guess = await self._ledger.reserve_guess(
            case_id,
            digest,
            datetime.now(UTC),
            self._settings.guesses_per_hour,
            budget_of=lambda subject: self._keys.identifier_digest(f"guess-budget:{subject}"),
        )
        if guess is None and not await self._ledger.exists(case_id):
            raise NOT_FOUND
        try:
            granted = await self._prove(handle, case_id, digest, evaluate=guess is not None)
        except Refused as err:
            # Refused before any comparison (the code ran out, the case ended): not a guess.
            if guess is not None and err.code not in _GUESSED:
                await self._ledger.forgive_guess(guess)
            raise
        except Unavailable:
            if guess is not None:  # not answered: not counted (a retry gets the truth)
                await self._ledger.forgive_guess(guess)
            raise
        if guess is not None:  # a right code costs no budget
            await self._ledger.forgive_guess(guess)
        return granted

    async def submit_proof(self, case_id: str, proof: str) -> ResetGranted:
        """The proof a code's message links to: as good as the code, and never refused for
        the guess budget (nobody can guess it)."""
        handle = self._handle(case_id)
        if not LINK_TOKEN.match(proof):
            raise Refused(
                "invalid_link",
                "This link is not complete: open the whole link from the message, or type the "
                "code.",
            )
        return await self._prove(
            handle, case_id, self._keys.proof_digest(case_id, proof), evaluate=True
        )

    async def resend(self, case_id: str) -> RecoveryStatus:
        """The previous code stops working. The wait between codes doubles each time."""
        handle = self._handle(case_id)
        return await calls.update(
            lambda: handle.execute_update(
                RecoveryCalls.RESEND_CODE, result_type=RecoveryStatus, rpc_timeout=self._timeout
            ),
            NOT_FOUND,
            self._by_final_state(case_id, {CaseState.LOCKED: CaseError.CASE_LOCKED}),
        )

    async def set_password(self, case_id: str, reset_token: str, password: str) -> RecoveryStatus:
        """Every session of the account is signed out and every contact told."""
        handle = self._handle(case_id)
        # The token is checked first: nobody without one makes the server hash anything. A
        # pass (the token, its expiry and their signature) is checked here, without asking the
        # workflow; anything else (a token handed out before passes were signed) is asked.
        opened = self._keys.open_reset_pass(case_id, reset_token)
        if opened is not None:
            token, expires_at = opened
            if time.time() >= expires_at:
                raise ended_refusal(CaseError.RESET_EXPIRED)
            account_id = await self._ledger.account_of(case_id)
            token_digest = self._keys.token_digest(token)
        else:
            token_digest = self._keys.token_digest(reset_token)
            context = await self._reset_context(handle, token_digest)
            if context.accepted:  # sent again after a lost answer, or another password
                return await self._taken(case_id, context.account_id, password)
            if context.problem is not None:
                raise ended_refusal(context.problem)
            account_id = context.account_id
        if account_id is None:
            raise ended_refusal(CaseError.INVALID_TOKEN)
        try:
            new = await self._prepare_password(case_id, account_id, password)
        except Refused:
            # The same request again after a lost answer: its password is now the account's
            # (reused), yet it was taken. Only a refusal asks the workflow.
            if opened is not None and (await self._reset_context(handle, token_digest)).accepted:
                return await self._taken(case_id, account_id, password)
            raise
        change = SetPassword(token_digest, seal_hash(self._keys, case_id, new.hash), new.sealed)

        async def refusal() -> Exception:
            # The case ended between the token check and this call (its window closed).
            ended = await self._reset_context(handle, token_digest)
            return ended_refusal(ended.problem or CaseError.INVALID_STATE)

        try:
            return await calls.update(
                lambda: handle.execute_update(
                    RecoveryCalls.SET_PASSWORD,
                    change,
                    result_type=RecoveryStatus,
                    rpc_timeout=self._timeout,
                ),
                NOT_FOUND,
                refusal,
            )
        except Refused:
            # A twin request (the same token, sent twice) may have been taken first.
            if (await self._reset_context(handle, token_digest)).accepted:
                return await self._taken(case_id, account_id, password)
            raise

    async def _taken(self, case_id: str, account_id: int | None, password: str) -> RecoveryStatus:
        """The token's password was taken already. The same request again (its answer was
        lost) is told so; another password under the spent token is refused with when the
        password changed. Only a spent token reaches here: the normal path checks nothing."""
        status = await self.status(case_id)
        if status.state != CaseState.COMPLETED:
            return status  # held, not applied yet: nothing to compare with
        if account_id is None:  # a token from before passes were signed: the ledger knows
            account_id = await self._ledger.account_of(case_id)
            if account_id is None:
                return status
        if await self._directory.is_current_password(account_id, password):
            return status
        account = await self._directory.get(account_id)
        changed_at = account.password_changed_at if account is not None else None
        when = f" ({changed_at.isoformat()})" if changed_at is not None else ""
        raise Refused(
            "token_used",
            f"This reset token was used already: the password was changed{when}. "
            "Sign in with that password, or start a new recovery.",
            changed_at=changed_at.isoformat() if changed_at is not None else None,
        )

    # -- operators ---------------------------------------------------------------------------

    async def cancel(self, case_id: str, reason: str) -> RecoveryStatus:
        """Stop an open case (its code stops working at once); the reason stays in history."""
        handle = self._handle(case_id)
        status = await self.status(case_id)
        if not status.state.is_open:
            raise Refused(
                "invalid_state",
                f"This case is {status.state.value}: there is nothing to stop.",
                state=status.state.value,
            )
        await calls.call(
            lambda: handle.signal(RecoveryCalls.CANCEL, reason, rpc_timeout=self._timeout),
            NOT_FOUND,
        )
        return await calls.settled(
            lambda: self.status(case_id),
            lambda status: not status.state.is_open,
            self._timeout.total_seconds(),
        )

    async def change_hold(
        self,
        case_id: str,
        *,
        end_now: bool = False,
        extend_seconds: int = 0,
        by: str = "operator",
    ) -> RecoveryStatus:
        """`reclaim cases hold`: the held new password takes effect now (answered once it
        has, or after the RPC timeout), or later."""
        handle = self._handle(case_id)
        status = await calls.update(
            lambda: handle.execute_update(
                RecoveryCalls.CHANGE_HOLD,
                self._proofs.sign(
                    case_id, RecoveryCalls.CHANGE_HOLD, HoldChange(end_now, extend_seconds, by)
                ),
                result_type=RecoveryStatus,
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
            self._no_hold(case_id),
        )
        if not end_now:
            return status
        return await calls.settled(
            lambda: self.status(case_id),
            lambda status: status.state is not CaseState.HELD,
            self._timeout.total_seconds(),
        )

    # -- the account's other contacts, during a hold -----------------------------------------

    async def stop(self, case_id: str, token: str) -> StoppedBy:
        """ "Wasn't you? Stop it": the link's signature names the contact it was sent to. The
        held password never takes effect; the case signs the account out everywhere."""
        handle = self._handle(case_id)
        contact = await self._stopper(case_id, token)
        status = await calls.update(
            lambda: handle.execute_update(
                RecoveryCalls.STOP,
                self._proofs.sign(
                    case_id,
                    RecoveryCalls.STOP,
                    StopHold(self._keys.identifier_digest(contact.address)),
                ),
                result_type=RecoveryStatus,
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
            self._no_hold(case_id),
        )
        account = await self._held_account(case_id)
        return StoppedBy(contact, account.username if account else "", status)

    async def hold_stop_preview(self, case_id: str, token: str) -> RecoveryStatus:
        """What the stop page shows before the person confirms: the case, if the link is
        one of its own."""
        self._handle(case_id)
        await self._stopper(case_id, token)
        return await self.status(case_id)

    async def cases_of(self, account_id: int, limit: int = 10) -> list[CaseRow]:
        return await self._ledger.cases_of(account_id, limit)

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
            except Exception as err:
                log.warning("supersede_failed", case_id=case_id, error=type(err).__name__)

    # -- for the support service -------------------------------------------------------------

    async def open_for_claim(
        self,
        case_id: str,
        account_id: int,
        email: str,
        at: datetime,
        *,
        handover_claim: str | None = None,
    ) -> None:
        """Record the case an approved claim opens to its verified address (the claim's
        workflow starts it as a child), outside the rate limit, and stop the account's older
        cases. With `handover_claim` the account does not hold the address yet: the code goes
        to it all the same, and it replaces the account's contacts when the case's new
        password takes effect, after the hold. Applying it again changes nothing."""
        if await self._ledger.exists(case_id):
            return
        opened = await self._ledger.open(
            RecoveryCase(
                case_id=case_id,
                account_id=account_id,
                identifier_digest=identifier_digest(self._keys, IdentifierKind.EMAIL, email),
                channel=Channel.EMAIL.value,
                opened_at=at,
                handover_email=email if handover_claim else None,
                handover_claim=handover_claim,
            ),
            per_hour=None,
        )
        assert not isinstance(opened, RateLimited)
        await self.supersede(opened.superseded)

    async def case_recorded(self, case_id: str) -> bool:
        return await self._ledger.exists(case_id)

    # -- what the recovery activities do -----------------------------------------------------

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
        recovering = facts.handover_email or account.address(notice.channel)
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
            await self.close(
                CaseClosing(
                    reset.case_id, CaseState.COMPLETED, reset.at, reset.wrong_codes, reset.resends
                )
            )
            if reactivated is not None:  # the recovery kept a deactivated account
                await self._lifecycle.signal_reactivated(reactivated)
        return await self._directory.get(reset.account_id) or account

    async def _hand_over(
        self, reset: ApplyReset, email: str, claim_id: str, facts: CaseFacts
    ) -> None:
        """The hold of an approved claim's case ended unstopped: the claim's address replaces
        the account's (the phone goes too), once for the claim however often this runs."""
        try:
            reactivated = await self._directory.replace_contacts(
                reset.account_id,
                email=email,
                case_id=claim_id,
                at=reset.at,
                actor=Actor(ActorKind.SYSTEM, "hold"),
                reason=f"support claim {claim_id} approved; its recovery's hold ended",
            )
        except (AccountExists, AccountGone) as err:
            await self._handover_failed(reset.case_id, facts)
            raise HandoverFailed(reset.case_id) from err
        if reactivated is not None:
            await self._lifecycle.signal_reactivated(reactivated)

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
        await self._notifier.flush(
            facts.handover_claim,
            NotificationKind.CONTACT_REPLACED,
            messages.contact_replaced(
                Text(facts.locale or self._settings.default_locale),
                product=self._settings.product_name,
                username=account.username,
                new_contact=mask_email(account.email),
                links=self._settings.links,
            ),
        )

    async def tell_password_changed(
        self, case_id: str, account: AccountRecord | int, at: datetime
    ) -> None:
        """Tell every contact of the account that its password changed (and, after an
        approved claim's hold, the addresses it replaced that they no longer belong to it)."""
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
        )
        contacts = [Contact(channel, address) for channel, address in account.contacts]
        await self._notifier.tell_every(
            case_id, NotificationKind.PASSWORD_CHANGED, contacts, message
        )

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

    # -- helpers -----------------------------------------------------------------------------

    def _rules_for(self, account: AccountRecord | None, at: datetime) -> RecoveryRules:
        """A recovery of an account whose contacts changed lately is held."""
        settings = self._settings
        changed = account.contacts_changed_at if account is not None else None
        if changed is not None and at - changed < timedelta(days=settings.recent_contact_days):
            return settings.held_recovery_rules
        return settings.recovery_rules

    def _issued(self, case_id: str, code: str) -> IssuedCode:
        return IssuedCode(
            self._keys.code_digest(case_id, code),
            self._keys.proof_digest(case_id, self._keys.proof_token(case_id, code)),
        )

    async def _prove(
        self, handle: WorkflowHandle[Any, Any], case_id: str, digest: str, *, evaluate: bool
    ) -> ResetGranted:
        """Submit a code's (or a proof's) digest. The reset token is derived from it: the same
        code again after a lost answer earns the same token (and a wrong one the same
        refusal, counted once)."""
        token = self._keys.reset_token(case_id, digest)
        attempt = SubmitCode(digest, self._keys.token_digest(token), evaluate)
        accepted = await calls.update(
            lambda: handle.execute_update(
                RecoveryCalls.SUBMIT_CODE,
                attempt,
                result_type=CodeAccepted,
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
            self._by_final_state(case_id, _ENDED_CODE),
        )
        expires_at = math.ceil(accepted.reset_expires_at.timestamp())
        return ResetGranted(
            self._keys.reset_pass(case_id, token, expires_at), accepted.reset_expires_at
        )

    async def _stopper(self, case_id: str, token: str) -> Contact:
        """The contact a stop link was signed for."""
        if LINK_TOKEN.match(token):
            for _, contact in await self._notifier.recipients(case_id, NotificationKind.HOLD):
                if hmac.compare_digest(token, self._keys.stop_token(case_id, contact.address)):
                    return contact
        raise Refused(
            "invalid_link", "This link is not valid: open the whole link from the message."
        )

    async def _held_account(self, case_id: str) -> AccountRecord | None:
        row = await self._ledger.account_of(case_id)
        return await self._directory.get(row) if row is not None else None

    def _handle(self, case_id: str) -> WorkflowHandle[Any, Any]:
        if not CASE_ID.match(case_id):
            raise NOT_FOUND
        return self._client.get_workflow_handle(case_id)

    async def _reset_context(
        self, handle: WorkflowHandle[Any, Any], token_digest: str
    ) -> ResetContext:
        return await calls.call(
            lambda: handle.query(
                RecoveryCalls.RESET_CONTEXT,
                token_digest,
                result_type=ResetContext,
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
        )

    async def _prepare_password(self, case_id: str, account_id: int, password: str) -> NewPassword:
        """Check the policy and the last passwords, then hash or seal: that is all that
        reaches the workflow."""
        account = await self._directory.get(account_id)
        if account is None:
            raise Refused("invalid_state", "This case cannot change the password now.")
        # zxcvbn is pure Python (about 10 ms for a long password): not on the event loop.
        verdict = await asyncio.to_thread(
            check_password,
            password,
            username=account.username,
            email=account.email or "",
            phone=account.phone,
        )
        if not verdict.ok:
            raise Refused(
                CaseError.WEAK_PASSWORD.value,
                "Choose a stronger password.",
                reasons=verdict.reasons,
                hints=verdict.hints,
            )
        if await self._directory.password_reused(account_id, password):
            raise Refused(
                CaseError.PASSWORD_REUSED.value,
                "Choose a password you have not used for this account.",
            )
        return await self._directory.new_password(case_id, password)

    def _no_hold(self, case_id: str) -> Any:
        async def refusal() -> Exception:
            final = await self.status(case_id)
            return Refused(
                CaseError.INVALID_STATE.value,
                f"This case is {final.state.value}: there is no hold to act on.",
                state=final.state.value,
            )

        return refusal

    def _by_final_state(self, case_id: str, refusals: dict[CaseState, CaseError]) -> Any:
        async def refusal() -> Exception:
            final = await self.status(case_id)
            error = refusals.get(final.state, CaseError.INVALID_STATE)
            return ended_refusal(error, final.state.value)

        return refusal
