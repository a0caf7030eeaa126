"""The door of a recovery case for the person recovering, as the pages, the API and the CLI
ask: open a case (the same answer whether or not the account exists), check a code or a
message link's proof, send a fresh code, take the new password.

It raises domain errors (`reclaim.errors`), which the API and the CLI put in their own words.
What the operator, the other contacts and the support feature do to a case is in
`reclaim.recovery.oversight`; what the workflow's activities do, in `reclaim.recovery.steps`.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from temporalio.client import WorkflowHandle

from reclaim import passkeys
from reclaim.contracts import CaseError, Channel
from reclaim.directory import (
    AccountRecord,
    NewPassword,
)
from reclaim.directory.port import seal_hash
from reclaim.errors import Refused, Unavailable
from reclaim.i18n import supported
from reclaim.identifiers import (
    InvalidIdentifier,
)
from reclaim.identifiers import parse_identifier as parse
from reclaim.password_policy import check_password
from reclaim.recovery.challenge import MalformedProof
from reclaim.recovery.contracts import (
    CaseState,
    CodeAccepted,
    PasskeyChallenge,
    RecoveryActivity,
    RecoveryCalls,
    RecoveryInput,
    RecoveryRules,
    RecoveryStatus,
    ResetContext,
    SetPassword,
    SubmitCode,
    SubmitSecondFactor,
)
from reclaim.recovery.door import LINK_TOKEN, NOT_FOUND, ended_refusal
from reclaim.recovery.factors import passkey_challenge_digest, seal_factor_code
from reclaim.recovery.ledger import RateLimited
from reclaim.recovery.oversight import CaseOversight
from reclaim.recovery.rules import plan_case
from reclaim.security import new_case_id
from reclaim.store.models import RecoveryCase
from reclaim.temporal import calls, search_attributes
from reclaim.temporal.case_text import STATIC_DETAILS

log = structlog.get_logger(__name__)


# The answers of a code that was compared (and was wrong).
_GUESSED = (CaseError.INVALID_CODE.value, CaseError.CASE_LOCKED.value)

# What a request for a case that has already ended gets, by the state it ended in.
_ENDED_CODE = {CaseState.LOCKED: CaseError.CASE_LOCKED, CaseState.EXPIRED: CaseError.CODE_EXPIRED}


@dataclass(frozen=True)
class ResetGranted:
    reset_token: str | None  # single use, shown once; None while a second factor is needed
    reset_expires_at: datetime | None
    # The second factors the account may prove before the reset token (none: not needed).
    factors: list[str] = field(default_factory=list)


class RecoveryCases(CaseOversight):
    """A recovery case: the person's way through it, and (inherited) everyone else's."""

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
            # Asked for after the contact code; never shown before it.
            factors=[kind.value for kind in account.factors]
            if account is not None and plan.account_id is not None
            else [],
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
        """A right code returns a single-use reset token (or, for an account with a second
        factor, the factors it may prove next); a wrong one says how many tries are left; the
        last wrong one locks the case. Beyond the account's guess budget a code is not
        compared (it answers as a wrong one). The same code sent again after a lost answer
        gets the same answer, and costs nothing more."""
        handle = self._handle(case_id)
        digest = self._keys.code_digest(case_id, code)
        return await self._as_guess(
            case_id, digest, lambda evaluate: self._prove(handle, case_id, digest, evaluate)
        )

    async def passkey_options(self, case_id: str) -> dict[str, Any]:
        """At the second step of a case whose account has a passkey: the options the browser
        asks it with (WebAuthn `navigator.credentials.get`), with a fresh challenge whose
        digest the case keeps for the next passkey proof (an earlier one stops working)."""
        handle = self._handle(case_id)
        challenge = secrets.token_bytes(32)
        await calls.update(
            lambda: handle.execute_update(
                RecoveryCalls.PASSKEY_CHALLENGE,
                PasskeyChallenge(passkey_challenge_digest(self._keys, case_id, challenge)),
                rpc_timeout=self._timeout,
            ),
            NOT_FOUND,
            self._by_final_state(case_id, _ENDED_CODE),
        )
        account_id = await self._ledger.account_of(case_id)
        keys = await self._directory.passkeys(account_id) if account_id is not None else []
        return passkeys.assertion_options(self._settings, allow=keys, challenge=challenge)

    async def submit_second_factor(self, case_id: str, method: str, code: str) -> ResetGranted:
        """After the contact code, for an account with a second factor: a TOTP code or one of
        its recovery codes. Right, it returns the reset token; wrong (or a method the account
        does not have), how many tries are left; the last wrong one locks the case. Each
        wrong one counts in the account's guess budget, as a wrong contact code does."""
        handle = self._handle(case_id)
        digest = self._keys.code_digest(case_id, f"{method}:{code}")
        token = self._keys.reset_token(case_id, digest)

        async def prove(evaluate: bool) -> ResetGranted:
            proof = SubmitSecondFactor(
                method,
                seal_factor_code(self._keys, case_id, code),
                self._keys.token_digest(token),
                evaluate,
            )
            return await self._grant(
                handle, case_id, token, RecoveryCalls.SUBMIT_SECOND_FACTOR, proof
            )

        return await self._as_guess(case_id, digest, prove)

    async def _as_guess(
        self, case_id: str, digest: str, prove: Callable[[bool], Awaitable[ResetGranted]]
    ) -> ResetGranted:
        """`prove` a typed code as a guess on the account's budget: compared only while the
        budget lasts; a right one, or one refused before any comparison, costs nothing."""
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
            granted = await prove(guess is not None)
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
        return await self._prove(handle, case_id, self._keys.proof_digest(case_id, proof), True)

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

    def _rules_for(self, account: AccountRecord | None, at: datetime) -> RecoveryRules:
        """A recovery of an account whose contacts changed lately is held."""
        settings = self._settings
        changed = account.contacts_changed_at if account is not None else None
        if changed is not None and at - changed < timedelta(days=settings.recent_contact_days):
            return settings.held_recovery_rules
        return settings.recovery_rules

    async def _prove(
        self, handle: WorkflowHandle[Any, Any], case_id: str, digest: str, evaluate: bool
    ) -> ResetGranted:
        """Submit a code's (or a proof's) digest. The reset token is derived from it: the same
        code again after a lost answer earns the same token (and a wrong one the same
        refusal, counted once)."""
        token = self._keys.reset_token(case_id, digest)
        attempt = SubmitCode(digest, self._keys.token_digest(token), evaluate)
        return await self._grant(handle, case_id, token, RecoveryCalls.SUBMIT_CODE, attempt)

    async def _grant(
        self,
        handle: WorkflowHandle[Any, Any],
        case_id: str,
        token: str,
        update: str,
        proof: SubmitCode | SubmitSecondFactor,
    ) -> ResetGranted:
        """Send a proof (`update`) whose right answer earns `token`: the reset token as a
        signed pass, or, when a second factor is still needed, the factors the account may
        prove (and no token)."""
        accepted = await calls.update(
            lambda: handle.execute_update(
                update, proof, result_type=CodeAccepted, rpc_timeout=self._timeout
            ),
            NOT_FOUND,
            self._by_final_state(case_id, _ENDED_CODE),
        )
        if accepted.reset_expires_at is None:
            return ResetGranted(None, None, accepted.factors or [])
        expires_at = math.ceil(accepted.reset_expires_at.timestamp())
        return ResetGranted(
            self._keys.reset_pass(case_id, token, expires_at), accepted.reset_expires_at
        )

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
