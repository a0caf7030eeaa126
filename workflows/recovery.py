"""RecoveryWorkflow: one self-service recovery case, from the first code to the new password.

Deterministic code only: time comes from `workflow.now()` and timers, every side effect from
an activity called by name, and no secret ever reaches this module in clear (codes and reset
tokens arrive as HMAC digests, the new password as an argon2 hash).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from reclaim.contracts import CaseError, seconds_until
    from reclaim.recovery.contracts import (
        ApplyReset,
        CaseClosing,
        CaseState,
        CodeAccepted,
        Delivery,
        GuessingNotice,
        HoldChange,
        HoldNotice,
        IssueCode,
        IssuedCode,
        PasskeyChallenge,
        PasswordChangedNotice,
        RecoveryActivity,
        RecoveryCalls,
        RecoveryInput,
        RecoveryOutcome,
        RecoveryStatus,
        ResetApplied,
        ResetContext,
        SecondFactor,
        SecondFactorVerdict,
        SetPassword,
        StopHold,
        Stopped,
        SubmitCode,
        SubmitSecondFactor,
        VerifySecondFactor,
    )
    from reclaim.temporal import search_attributes
    from reclaim.temporal.case_text import at, current_details

from workflows.policies import ACTIVITY_TIMEOUT, LEDGER_RETRY, NOTICE_DEADLINE, NOTICE_RETRY

# The activities a user waits on heartbeat: a worker that dies mid-way is noticed this soon.
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
# A provider outage is retried with backoff, for as long as the code would be worth anything.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=[CaseError.UNDELIVERABLE],
)
# Patch: a code sent again while its twin waited is answered as the twin was (cases started
# before it counted a repeated wrong code twice).
TWIN_CODES = "twin-codes"
# Patch: an account with a second factor needs a proof of it after the contact code (cases
# started before it went straight to verified).
SECOND_FACTOR = "second-factor"


def _refusal(error: CaseError, message: str, **details: object) -> ApplicationError:
    """The error an update answers with; the API turns `type` and `details` into JSON."""
    return ApplicationError(message, details, type=error.value, non_retryable=True)


def _details(error: ApplicationError) -> dict[str, object]:
    first = error.details[0] if error.details else None
    return dict(first) if isinstance(first, dict) else {}


@workflow.defn(name=RecoveryCalls.WORKFLOW)
class RecoveryWorkflow:
    """Self-service recovery by a one-time code sent to the account's email or phone.

    awaiting_code → verified → completed; or expired (case TTL after the last code, or the
    set-password window), locked (too many wrong codes), superseded (an approved claim took
    the account over), cancelled (by an operator). A code whose time ran out leaves the case
    awaiting_code: the user may ask for a fresh one until the case TTL. A risky recovery (its
    rules carry a hold) goes verified → held → completed, or cancelled when one of the
    account's other contacts stops it during the hold.

    Each code has an unguessable twin, the proof a message's link carries: it works whatever
    the account's guess budget, so its holder always gets through.
    """

    @workflow.init
    def __init__(self, case: RecoveryInput) -> None:
        # Handlers may run before `run` starts, so the whole state is built here.
        self._case = case
        self._rules = case.rules
        self._state = CaseState.AWAITING_CODE
        self._resends = 0
        self._issued_at = case.opened_at
        self._code_digest: str | None = None
        self._proof_digest: str | None = None
        self._delivery = Delivery.SENDING
        self._sending: asyncio.Task[None] | None = None
        self._wrong_codes = 0
        # The wrong codes typed for the current code: typed again (a retry after a lost
        # answer), one gets the same answer and is not counted twice.
        self._wrong: set[str] = set()
        # The digests (code and link proof) of the codes a newer one replaced: typed, they are
        # answered "a newer code was sent" by the validator, which writes nothing to history.
        self._replaced: set[str] = set()
        self._reset_token_digest: str | None = None
        self._reset_expires_at: datetime | None = None
        self._resetting = False
        self._notices_pending = False
        self._changed_at: datetime | None = None
        self._deadline = case.rules.case_expires_at(case.opened_at)
        # Notices sent in the background (someone is guessing, the hold): awaited at the end.
        self._notices: list[asyncio.Task[None]] = []
        self._guessing_told = False
        # The hold: the new password waiting, until when, and what may end it early.
        self._held: SetPassword | None = None
        self._hold_until: datetime | None = None
        self._hold_moves = 0
        self._hold_ended = False
        self._stopped_by: str | None = None
        # The second proof, for an account with a second factor: the digest the right contact
        # code was sent with (a retry gets the same answer), the wrong proofs (digests of the
        # reset tokens they were sent with: a retry is not counted twice), the proof running,
        # and what was proven.
        self._first_proof: str | None = None
        self._wrong_factors: set[str] = set()
        self._verifying = False
        self._second_factor: str | None = None
        self._recovery_codes_left: int | None = None
        # The digest of the challenge the latest passkey prompt signs; spent by one proof.
        self._passkey_challenge: str | None = None

    @workflow.run
    async def run(self, case: RecoveryInput) -> RecoveryOutcome:
        await self._first_step()
        self._send_code()
        self._show()
        self._watch_deadline()
        # From here on, the updates and the deadline timers move the state.
        await workflow.wait_condition(
            lambda: not self._state.is_open or self._state is CaseState.HELD
        )
        if self._state is CaseState.HELD:
            await self._wait_out_the_hold()
        # An update still answering its caller must finish before the workflow does.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._state is CaseState.COMPLETED:
            if self._notices_pending:
                try:
                    await workflow.execute_activity(
                        RecoveryActivity.NOTIFY_PASSWORD_CHANGED,
                        PasswordChangedNotice(
                            case.case_id,
                            self._account_id,
                            self._changed_at or workflow.now(),
                            self._recovery_codes_left,
                        ),
                        start_to_close_timeout=ACTIVITY_TIMEOUT,
                        schedule_to_close_timeout=NOTICE_DEADLINE,
                        retry_policy=NOTICE_RETRY,
                        summary="tell every contact the password changed",
                    )
                except ActivityError:  # a day of retries: the change itself stands
                    workflow.logger.warning("password-changed notices given up")
        else:
            # A completed case was recorded together with its reset, in one transaction.
            await workflow.execute_activity(
                RecoveryActivity.RECORD_CLOSED_CASE,
                CaseClosing(
                    case.case_id, self._state, workflow.now(), self._wrong_codes, self._resends
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=LEDGER_RETRY,
                summary=f"record the case as {self._state.value}",
            )
        # A notice that could not go out within its day of retries does not hold the case.
        await asyncio.gather(*self._notices, return_exceptions=True)
        return RecoveryOutcome(case.case_id, self._state)

    async def _first_step(self) -> None:
        """Nothing (and nothing in history): where the upgrade drill's build adds a step that
        every running case has passed (workflows/drill.py)."""

    # -- the code --------------------------------------------------------------------------

    @workflow.update(
        name=RecoveryCalls.SUBMIT_CODE,
        description="The person types a code (as an HMAC digest): a right one verifies the "
        "case and opens the set-password window, a wrong one counts toward the lock.",
    )
    async def submit_code(self, attempt: SubmitCode) -> CodeAccepted:
        if self._same_right_code(attempt):
            # The answer to the right code was lost (a crash, a timeout): the same again.
            return self._accepted_code()
        # The message can reach the user a moment before its send activity reports back to
        # this workflow: judge the code once the delivery in flight has answered.
        await workflow.wait_condition(
            lambda: self._delivery is not Delivery.SENDING or not self._state.is_open
        )
        # A twin of this request (a retry sent while it waited) may have been judged first.
        twins = workflow.patched(TWIN_CODES)
        if twins and self._same_right_code(attempt):
            return self._accepted_code()
        self._refuse_unless_awaiting_code()  # the case may have moved while we waited
        if twins:
            self._refuse_a_known_wrong_code(attempt)
        if not attempt.evaluate:
            self._tell_someone_is_guessing()
        if attempt.evaluate and self._code_is(attempt.code_digest):
            now = workflow.now()
            # One code opens one reset: it cannot be used twice.
            self._code_digest = None
            self._proof_digest = None
            if self._case.factors and workflow.patched(SECOND_FACTOR):
                return self._await_second_factor(attempt, now)
            self._open_reset(attempt.reset_token_digest, now)
            return CodeAccepted(self._reset_expires_at)
        # A wrong code is not refused by the validator: it must be counted, in history.
        if attempt.evaluate:
            self._wrong.add(attempt.code_digest)
        self._wrong_codes += 1
        raise self._wrong_answer(self._rules.max_attempts - self._wrong_codes)

    def _open_reset(self, reset_token_digest: str, now: datetime) -> None:
        """The case is verified: the set-password window opens, for this reset token."""
        self._reset_token_digest = reset_token_digest
        self._reset_expires_at = self._rules.reset_expires_at(now)
        self._deadline = self._reset_expires_at
        self._move_to(CaseState.VERIFIED)
        self._watch_deadline()

    def _wrong_answer(self, attempts_left: int) -> ApplicationError:
        """The refusal of a wrong code or proof, counted: the last one locks the case."""
        if attempts_left <= 0:
            self._move_to(CaseState.LOCKED)
            return _refusal(
                CaseError.CASE_LOCKED,
                "Too many wrong codes: this case is locked. Start a new recovery.",
                attempts_left=0,
            )
        self._show()
        return _refusal(
            CaseError.INVALID_CODE, "That code is not right.", attempts_left=attempts_left
        )

    def _await_second_factor(self, attempt: SubmitCode, now: datetime) -> CodeAccepted:
        """The contact code was right; the account has a second factor: its proof is
        awaited, on a window of its own."""
        self._first_proof = attempt.reset_token_digest
        self._deadline = now + timedelta(seconds=self._rules.second_factor_window)
        self._move_to(CaseState.AWAITING_SECOND_FACTOR)
        self._watch_deadline()
        return self._accepted_code()

    def _accepted_code(self) -> CodeAccepted:
        if self._state is CaseState.AWAITING_SECOND_FACTOR:
            return CodeAccepted(None, list(self._case.factors))
        assert self._reset_expires_at is not None
        return CodeAccepted(self._reset_expires_at)

    @workflow.update(
        name=RecoveryCalls.SUBMIT_SECOND_FACTOR,
        description="After the contact code, a proof of the account's second factor (a TOTP "
        "or recovery code, sealed for the case): a right one opens the set-password window, "
        "a wrong one counts toward the lock.",
    )
    async def submit_second_factor(self, proof: SubmitSecondFactor) -> CodeAccepted:
        if self._same_second_factor(proof):
            return self._accepted_code()
        # One proof at a time: the directory spends what it accepts.
        await workflow.wait_condition(lambda: not self._verifying)
        if self._same_second_factor(proof):
            return self._accepted_code()
        self._refuse_unless_awaiting_second_factor(proof)
        verdict = SecondFactorVerdict(accepted=False)
        challenge = None
        if proof.method == SecondFactor.WEBAUTHN:  # its challenge is good for one answer
            challenge, self._passkey_challenge = self._passkey_challenge, None
        if proof.evaluate:
            self._verifying = True
            try:
                verdict = await workflow.execute_activity(
                    RecoveryActivity.VERIFY_SECOND_FACTOR,
                    VerifySecondFactor(
                        self._case.case_id,
                        self._account_id,
                        proof.method,
                        proof.sealed_code,
                        workflow.now(),
                        challenge,
                    ),
                    result_type=SecondFactorVerdict,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=LEDGER_RETRY,
                    summary=f"check a {proof.method} proof",
                )
            finally:
                self._verifying = False
            # The window may have closed while the directory answered.
            self._refuse_unless_awaiting_second_factor(proof)
        if verdict.accepted:
            self._second_factor = proof.method
            self._recovery_codes_left = verdict.recovery_codes_left
            self._open_reset(proof.reset_token_digest, workflow.now())
            return self._accepted_code()
        self._wrong_factors.add(proof.reset_token_digest)
        raise self._wrong_answer(self._factor_attempts_left())

    @submit_second_factor.validator
    def _accepts_second_factors(self, proof: SubmitSecondFactor) -> None:
        if not self._same_second_factor(proof):
            self._refuse_unless_awaiting_second_factor(proof)

    @workflow.update(
        name=RecoveryCalls.PASSKEY_CHALLENGE,
        description="At the second step, for an account with a passkey: the digest of the "
        "challenge the browser was just given (it replaces any earlier one).",
    )
    def passkey_challenge(self, challenge: PasskeyChallenge) -> None:
        self._passkey_challenge = challenge.challenge_digest

    @passkey_challenge.validator
    def _accepts_passkey_challenge(self, challenge: PasskeyChallenge) -> None:
        self._refuse_unless(CaseState.AWAITING_SECOND_FACTOR, "passkey")
        if SecondFactor.WEBAUTHN not in self._case.factors:
            raise _refusal(CaseError.INVALID_STATE, "This account has no passkey.")

    def _same_second_factor(self, proof: SubmitSecondFactor) -> bool:
        """The proof that verified this case, sent again (it earns the same reset token)."""
        return (
            self._state is CaseState.VERIFIED
            and self._second_factor is not None
            and self._reset_token_digest is not None
            and hmac.compare_digest(proof.reset_token_digest, self._reset_token_digest)
        )

    def _refuse_unless_awaiting_second_factor(self, proof: SubmitSecondFactor) -> None:
        self._refuse_unless(CaseState.AWAITING_SECOND_FACTOR, "second factor")
        if proof.reset_token_digest in self._wrong_factors:  # a retry: the same answer
            raise _refusal(
                CaseError.INVALID_CODE,
                "That code is not right.",
                attempts_left=self._factor_attempts_left(),
            )

    def _factor_attempts_left(self) -> int:
        return self._rules.second_factor_attempts - len(self._wrong_factors)

    @submit_code.validator
    def _accepts_codes(self, attempt: SubmitCode) -> None:
        # Refusals here never reach history: a locked or finished case costs nothing more.
        if self._same_right_code(attempt):
            return
        self._refuse_unless_awaiting_code()
        self._refuse_a_known_wrong_code(attempt)
        self._refuse_a_replaced_code(attempt)
        if workflow.now() >= self._rules.code_expires_at(self._issued_at):
            raise _refusal(
                CaseError.CODE_EXPIRED,
                "This code has expired. Ask for a new one.",
                code_expired_at=self._rules.code_expires_at(self._issued_at).isoformat(),
            )

    @workflow.update(
        name=RecoveryCalls.RESEND_CODE,
        description="Send a fresh code (the previous one dies); the cooldown doubles each time.",
    )
    def resend_code(self) -> RecoveryStatus:
        self._resends += 1
        self._issued_at = workflow.now()
        self._deadline = self._rules.case_expires_at(self._issued_at)
        self._send_code()
        self._move_to(self._state)
        self._watch_deadline()
        return self.status()

    @resend_code.validator
    def _allows_resend(self) -> None:
        self._refuse_unless_awaiting_code()
        available_at = self._rules.resend_available_at(self._issued_at, self._resends)
        if available_at is None:
            raise _refusal(
                CaseError.RESEND_LIMIT,
                "No more codes can be sent for this case. Start a new recovery later.",
            )
        now = workflow.now()
        if now < available_at:
            raise _refusal(
                CaseError.RESEND_COOLDOWN,
                "Wait a little before asking for another code.",
                retry_after_seconds=seconds_until(available_at, now),
                resend_available_at=available_at.isoformat(),
            )

    # -- the new password ------------------------------------------------------------------

    @workflow.update(
        name=RecoveryCalls.SET_PASSWORD,
        description="With the reset token, set the new password (an argon2 hash) and sign "
        "every session out.",
    )
    async def set_password(self, change: SetPassword) -> RecoveryStatus:
        if self._rules.hold > 0:
            self._hold(change)
            return self.status()
        await self._apply(change)
        return self.status()

    async def _apply(self, change: SetPassword) -> None:
        """The new password into the directory (the apply_reset activity), then completed.
        Refused by the directory's policy: still verified (the person tries another); the case
        taken over meanwhile: superseded, or cancelled."""
        self._resetting = True
        self._changed_at = workflow.now()
        try:
            applied = await workflow.execute_activity(
                RecoveryActivity.APPLY_RESET,
                ApplyReset(
                    self._case.case_id,
                    self._account_id,
                    change.password_hash,
                    self._changed_at,
                    self._wrong_codes,
                    self._resends,
                    change.sealed_password,
                    self._second_factor,
                    self._recovery_codes_left,
                ),
                result_type=ResetApplied,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=LEDGER_RETRY,
                summary="set the new password and sign every session out",
            )
        except ActivityError as err:
            cause = err.cause
            kind = cause.type if isinstance(cause, ApplicationError) else None
            if kind in (CaseError.WEAK_PASSWORD, CaseError.PASSWORD_REUSED):
                # The directory's own policy refused it: the case stays verified, the person
                # chooses another password within the same window.
                assert isinstance(cause, ApplicationError)
                raise _refusal(CaseError(kind), cause.message, **_details(cause)) from err
            superseded = kind == CaseError.SUPERSEDED
            self._move_to(CaseState.SUPERSEDED if superseded else CaseState.CANCELLED)
            raise _refusal(
                CaseError.INVALID_STATE,
                "This case can no longer change the password. Start a new recovery.",
                state=self._state.value,
            ) from err
        finally:
            self._resetting = False
        self._notices_pending = applied.notices_pending
        self._move_to(CaseState.COMPLETED)

    @set_password.validator
    def _allows_reset(self, change: SetPassword) -> None:
        problem = self._reset_problem(change.reset_token_digest)
        if problem is CaseError.INVALID_TOKEN:
            raise _refusal(problem, "This reset token is not valid.")
        if problem is CaseError.RESET_EXPIRED:
            raise _refusal(problem, "The time to choose a new password ran out. Start again.")
        if problem is not None:
            raise _refusal(problem, "This case cannot change the password now.", state=self._state)

    @workflow.query(
        name=RecoveryCalls.RESET_CONTEXT,
        description="Whether a reset token (as a digest) is good now. Used by the API.",
    )
    def reset_context(self, reset_token_digest: str) -> ResetContext:
        """Whether a reset token is good now, and for which account: the API asks before it
        spends time on the password policy and hashing."""
        problem = self._reset_problem(reset_token_digest)
        accepted = (
            self._state in (CaseState.HELD, CaseState.COMPLETED)
            and self._reset_token_digest is not None
            and hmac.compare_digest(reset_token_digest, self._reset_token_digest)
        )
        return ResetContext(
            problem, self._case.account_id if problem is None else None, accepted=accepted
        )

    # -- the hold --------------------------------------------------------------------------

    @workflow.update(
        name=RecoveryCalls.STOP,
        description="During the hold, one of the account's contacts says it was not them: "
        "the new password never takes effect, the account is signed out everywhere.",
    )
    def stop(self, request: StopHold) -> RecoveryStatus:
        self._stopped_by = request.contact_digest
        self._hold_moves += 1
        return self.status()

    @stop.validator
    def _can_stop(self, request: StopHold) -> None:
        self._refuse_unless_held()

    @workflow.update(
        name=RecoveryCalls.CHANGE_HOLD,
        description="An operator ends the hold now, or pushes its end later "
        "(`reclaim cases hold`).",
    )
    def change_hold(self, change: HoldChange) -> RecoveryStatus:
        if change.end_now:
            self._hold_ended = True
        elif self._hold_until is not None:
            self._hold_until += timedelta(seconds=change.extend_seconds)
            self._deadline = self._hold_until
            self._move_to(self._state)
        self._hold_moves += 1
        return self.status()

    @change_hold.validator
    def _can_change_hold(self, change: HoldChange) -> None:
        self._refuse_unless_held()
        if not change.end_now and change.extend_seconds <= 0:
            raise _refusal(CaseError.INVALID_STATE, "Say how long to extend the hold by.")

    def _hold(self, change: SetPassword) -> None:
        """Keep the new password until the hold ends, and tell the other contacts."""
        self._held = change
        self._hold_until = workflow.now() + timedelta(seconds=self._rules.hold)
        self._deadline = self._hold_until
        self._move_to(CaseState.HELD)
        self._in_background(
            RecoveryActivity.NOTIFY_HOLD,
            HoldNotice(self._case.case_id, self._account_id, self._case.channel, self._hold_until),
            "tell the other contacts, with a link to stop it",
        )

    async def _wait_out_the_hold(self) -> None:
        """Until the hold ends (or an operator ends it), unless a contact stops it or the
        case is taken over; then the new password takes effect."""
        while self._state is CaseState.HELD and not self._hold_ended and not self._stopped_by:
            assert self._hold_until is not None
            remaining = self._hold_until - workflow.now()
            if remaining <= timedelta(0):
                break
            try:
                await workflow.wait_condition(
                    self._hold_moved_since(self._hold_moves),
                    timeout=remaining,
                    timeout_summary="hold before the new password takes effect",
                )
            except TimeoutError:
                break
        if self._state is not CaseState.HELD:
            return  # superseded or cancelled meanwhile
        if self._stopped_by is not None:
            self._move_to(CaseState.CANCELLED)
            await workflow.execute_activity(
                RecoveryActivity.STOP_HOLD,
                Stopped(self._case.case_id, self._account_id, self._stopped_by, workflow.now()),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=LEDGER_RETRY,
                summary="sign the account out everywhere, open a support claim",
            )
            return
        assert self._held is not None
        try:
            await self._apply(self._held)
        except ApplicationError:
            if self._state is CaseState.HELD:  # the directory refused it, a day too late
                self._move_to(CaseState.CANCELLED)

    def _hold_moved_since(self, seen: int) -> Callable[[], bool]:
        return lambda: self._hold_moves != seen or self._state is not CaseState.HELD

    def _refuse_unless_held(self) -> None:
        if self._state is not CaseState.HELD or self._resetting:
            raise _refusal(
                CaseError.INVALID_STATE,
                f"This case is {self._state.value}: there is no hold to act on.",
                state=self._state.value,
            )

    # -- the outside world -----------------------------------------------------------------

    @workflow.signal(
        name=RecoveryCalls.SUPERSEDE,
        description="A newer case opened for the same account: this one stops.",
    )
    def supersede(self) -> None:
        """A newer case was opened for the same account: one live code per account."""
        if self._state.is_open and not self._resetting:
            self._move_to(CaseState.SUPERSEDED)

    @workflow.signal(
        name=RecoveryCalls.CANCEL,
        description="An operator stops the case (`reclaim cases cancel`), with a reason.",
    )
    def cancel(self, reason: str) -> None:
        """An operator stops the case (the reason stays in history)."""
        if self._state.is_open and not self._resetting:
            self._move_to(CaseState.CANCELLED)

    @workflow.query(
        name=RecoveryCalls.STATUS,
        description="What the person sees: state, masked destination, attempts left, "
        "code and resend times, delivery.",
    )
    def status(self) -> RecoveryStatus:
        awaiting = self._state is CaseState.AWAITING_CODE
        second = self._state is CaseState.AWAITING_SECOND_FACTOR
        return RecoveryStatus(
            case_id=self._case.case_id,
            state=self._state,
            channel=self._case.channel,
            destination=self._case.destination,
            attempts_left=(
                self._factor_attempts_left()
                if second
                else self._rules.max_attempts - self._wrong_codes
            ),
            code_expires_at=self._rules.code_expires_at(self._issued_at) if awaiting else None,
            resend_available_at=(
                self._rules.resend_available_at(self._issued_at, self._resends)
                if awaiting
                else None
            ),
            reset_expires_at=(
                self._reset_expires_at if self._state is CaseState.VERIFIED else None
            ),
            delivery=self._delivery,
            next_deadline=self._deadline if self._state.is_open else None,
            hold_until=self._hold_until if self._state is CaseState.HELD else None,
            # Told only once the contact code was right.
            factors=list(self._case.factors) if self._first_proof is not None else None,
            second_factor=self._second_factor,
            recovery_codes_left=self._recovery_codes_left,
        )

    # -- helpers ---------------------------------------------------------------------------

    @property
    def _account_id(self) -> int:
        # Only reachable once a code was accepted, which never happens without an account.
        assert self._case.account_id is not None
        return self._case.account_id

    def _code_is(self, digest: str) -> bool:
        """The current code, typed, or its proof, from a message's link."""
        if self._case.account_id is None:
            return False
        code = self._code_digest is not None and hmac.compare_digest(digest, self._code_digest)
        proof = self._proof_digest is not None and hmac.compare_digest(digest, self._proof_digest)
        return code or proof

    def _same_right_code(self, attempt: SubmitCode) -> bool:
        """The code that verified this case (or led it to its second factor), sent again:
        it earns the same answer."""
        if self._state is CaseState.AWAITING_SECOND_FACTOR:
            return self._first_proof is not None and hmac.compare_digest(
                attempt.reset_token_digest, self._first_proof
            )
        return (
            self._state is CaseState.VERIFIED
            and self._second_factor is None
            and self._reset_token_digest is not None
            and hmac.compare_digest(attempt.reset_token_digest, self._reset_token_digest)
        )

    def _refuse_a_known_wrong_code(self, attempt: SubmitCode) -> None:
        if attempt.evaluate and attempt.code_digest in self._wrong:
            raise _refusal(
                CaseError.INVALID_CODE,
                "That code is not right.",
                attempts_left=self._rules.max_attempts - self._wrong_codes,
            )

    def _refuse_a_replaced_code(self, attempt: SubmitCode) -> None:
        """A code (or link) of an earlier message: the person has the account's contact, so
        they hear that a newer code was sent and when; it costs no try. Nobody without a code
        can tell from this (a case with no account keeps no codes)."""
        if (
            attempt.evaluate
            and attempt.code_digest in self._replaced
            and not self._code_is(attempt.code_digest)
        ):
            raise _refusal(
                CaseError.CODE_REPLACED,
                "A newer code was sent: type the code from the latest message.",
                sent_at=self._issued_at.isoformat(),
                attempts_left=self._rules.max_attempts - self._wrong_codes,
            )

    def _tell_someone_is_guessing(self) -> None:
        """The account's guess budget is spent: its holder hears of it (once per case here;
        the activity tells them once an hour whatever the case)."""
        if self._guessing_told:
            return
        self._guessing_told = True
        self._in_background(
            RecoveryActivity.NOTIFY_GUESSING,
            GuessingNotice(self._case.case_id, self._case.account_id, workflow.now()),
            "tell the holder someone is guessing codes",
        )

    def _in_background(self, activity: str, argument: object, summary: str) -> None:
        self._notices.append(
            asyncio.create_task(
                workflow.execute_activity(
                    activity,
                    argument,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    schedule_to_close_timeout=NOTICE_DEADLINE,
                    retry_policy=NOTICE_RETRY,
                    summary=summary,
                )
            )
        )

    def _refuse_unless_awaiting_code(self) -> None:
        self._refuse_unless(CaseState.AWAITING_CODE, "code")

    def _refuse_unless(self, state: CaseState, takes: str) -> None:
        """A locked case answers so (with no try left); any other but `state` takes no
        `takes` now."""
        if self._state is CaseState.LOCKED:
            raise _refusal(
                CaseError.CASE_LOCKED,
                "Too many wrong codes: this case is locked. Start a new recovery.",
                attempts_left=0,
            )
        if self._state is not state:
            raise _refusal(
                CaseError.INVALID_STATE,
                f"This case is {self._state.value}: it takes no {takes} now.",
                state=self._state.value,
            )

    def _reset_problem(self, reset_token_digest: str) -> CaseError | None:
        if self._reset_token_digest is None or not hmac.compare_digest(
            reset_token_digest, self._reset_token_digest
        ):
            return CaseError.INVALID_TOKEN
        if self._state is CaseState.COMPLETED:
            return CaseError.INVALID_TOKEN  # spent: a reset token works once
        if self._state is CaseState.EXPIRED or (
            self._state is CaseState.VERIFIED
            and self._reset_expires_at is not None
            and workflow.now() >= self._reset_expires_at
        ):
            return CaseError.RESET_EXPIRED
        if self._state is not CaseState.VERIFIED or self._resetting:
            return CaseError.INVALID_STATE
        return None

    def _send_code(self) -> None:
        """Start delivering a fresh code; the previous one dies now, delivered or not."""
        if self._sending is not None:
            self._sending.cancel()
        self._keep_replaced(self._code_digest, self._proof_digest)
        self._code_digest = None
        self._proof_digest = None
        self._wrong.clear()
        self._delivery = Delivery.SENDING
        self._sending = asyncio.create_task(self._deliver(self._resends))

    async def _deliver(self, attempt: int) -> None:
        try:
            issued = await workflow.execute_activity(
                RecoveryActivity.ISSUE_CODE,
                IssueCode(
                    case_id=self._case.case_id,
                    account_id=self._case.account_id,
                    channel=self._case.channel,
                    attempt=attempt,
                    expires_at=self._rules.code_expires_at(self._issued_at),
                ),
                result_type=IssuedCode,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                # No point delivering a code after its lifetime.
                schedule_to_close_timeout=timedelta(seconds=self._rules.code_ttl),
                retry_policy=DELIVERY_RETRY,
                summary=f"send code #{attempt + 1} by {self._case.channel.value}",
            )
        except ActivityError:
            if attempt == self._resends:
                self._delivery = Delivery.FAILED
                self._show()
            return
        if attempt == self._resends:
            self._code_digest = issued.code_digest
            self._proof_digest = issued.proof_digest
            self._delivery = Delivery.SENT
            self._show()
        else:  # sent, but a newer code was asked for meanwhile
            self._keep_replaced(issued.code_digest, issued.proof_digest)

    def _keep_replaced(self, *digests: str | None) -> None:
        if self._case.account_id is not None:
            self._replaced.update(digest for digest in digests if digest)

    def _watch_deadline(self) -> None:
        """Expire the case at the current deadline. A timer whose deadline has moved since
        (a resend, a verified code) wakes the workflow and does nothing: leaving it running
        costs no history events, cancelling it would."""
        deadline = self._deadline

        async def expire_when_due() -> None:
            remaining = deadline - workflow.now()
            if remaining > timedelta(0):
                await workflow.sleep(remaining, summary="case deadline")
            if deadline == self._deadline and self._state.is_open and not self._resetting:
                self._move_to(CaseState.EXPIRED)

        asyncio.create_task(expire_when_due())  # noqa: RUF006  (lives as long as the case)

    def _move_to(self, state: CaseState) -> None:
        """The one place state changes, so the Web UI never disagrees with the workflow."""
        self._state = state
        workflow.upsert_search_attributes(
            search_attributes.state_change(state.value, self._deadline if state.is_open else None)
        )
        self._show()

    def _show(self) -> None:
        """The line the Web UI shows as this case's current details."""
        tries = f"wrong codes: {self._wrong_codes} of {self._rules.max_attempts}"
        if self._state is CaseState.AWAITING_CODE:
            code = f"code #{self._resends + 1} by {self._case.channel.value}"
            details = current_details(
                self._state.value,
                f"{code} {self._delivery.value}",
                tries,
                f"expires {at(self._deadline)}",
            )
        elif self._state is CaseState.AWAITING_SECOND_FACTOR:
            details = current_details(
                self._state.value,
                f"a proof of {' or '.join(self._case.factors)} expected by {at(self._deadline)}",
                f"wrong proofs: {len(self._wrong_factors)} of {self._rules.second_factor_attempts}",
            )
        elif self._state is CaseState.VERIFIED:
            details = current_details(
                self._state.value,
                f"new password expected by {at(self._deadline)}",
                f"second factor: {self._second_factor}" if self._second_factor else None,
            )
        elif self._state is CaseState.COMPLETED:
            details = current_details(
                self._state.value,
                "password changed, sessions signed out",
                "telling every contact" if self._notices_pending else None,
            )
        elif self._state is CaseState.HELD:
            details = current_details(
                self._state.value, f"new password takes effect {at(self._deadline)}"
            )
        else:
            details = current_details(self._state.value, tries, f"{self._resends} resends")
        workflow.set_current_details(details)
