"""Self-service recovery: what the API, the `RecoveryWorkflow` and its activities exchange.

Plain dataclasses from the standard library only: the workflow sandbox imports this module, and
everything here ends up in workflow history. That is why no field ever holds a code, a token or
a password in clear: codes and tokens travel as HMAC digests, a new password as an argon2 hash
or sealed for its case, and addresses stay in the database (the history names an account id and
a masked destination).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from reclaim.contracts import CaseError, Channel


class CaseState(StrEnum):
    AWAITING_CODE = "awaiting_code"
    VERIFIED = "verified"
    COMPLETED = "completed"
    EXPIRED = "expired"
    LOCKED = "locked"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"
    # The new password waits out a hold (a risky recovery) before it takes effect; every
    # other contact may stop it meanwhile.
    HELD = "held"
    # The contact code was right; the account has a second factor: one proof of it (a TOTP
    # code, a recovery code) is still needed before a new password may be chosen.
    AWAITING_SECOND_FACTOR = "awaiting_second_factor"

    @property
    def is_open(self) -> bool:
        return self in (
            CaseState.AWAITING_CODE,
            CaseState.AWAITING_SECOND_FACTOR,
            CaseState.VERIFIED,
            CaseState.HELD,
        )


class SecondFactor(StrEnum):
    """The second factors a recovery may ask a proof of (the directory's `FactorKind`s)."""

    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    WEBAUTHN = "webauthn"


class Delivery(StrEnum):
    """Where the current code is on its way to the user."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class RecoveryCalls(StrEnum):
    """Names of the self-service workflow and its handlers: the service calls them by name."""

    WORKFLOW = "RecoveryWorkflow"
    SUBMIT_CODE = "submit_code"
    SUBMIT_SECOND_FACTOR = "submit_second_factor"
    RESEND_CODE = "resend_code"
    SET_PASSWORD = "set_password"
    STATUS = "status"
    RESET_CONTEXT = "reset_context"
    SUPERSEDE = "supersede"
    CANCEL = "cancel"
    STOP = "stop"  # update: a contact said "Wasn't you? Stop it" during the hold
    CHANGE_HOLD = "change_hold"  # update: an operator ends the hold now or extends it
    # update: the challenge a passkey must sign next (its digest), at the second step
    PASSKEY_CHALLENGE = "passkey_challenge"


# A contact's stop and an operator's change of a hold act on someone's say-so: proven
# (reclaim/temporal/proofs.py). A code, a proof link and a reset token prove themselves: only
# their keyed digests match.
PROVEN_UPDATES = [
    (RecoveryCalls.WORKFLOW.value, RecoveryCalls.STOP.value),
    (RecoveryCalls.WORKFLOW.value, RecoveryCalls.CHANGE_HOLD.value),
]


class RecoveryActivity(StrEnum):
    """The workflow calls its activities by name, so it never imports database code."""

    ISSUE_CODE = "issue_code"
    APPLY_RESET = "apply_reset"
    NOTIFY_PASSWORD_CHANGED = "notify_password_changed"
    RECORD_CLOSED_CASE = "record_closed_case"
    NOTIFY_GUESSING = "notify_guessing"
    NOTIFY_HOLD = "notify_hold"
    STOP_HOLD = "stop_hold"
    VERIFY_SECOND_FACTOR = "verify_second_factor"


@dataclass(frozen=True)
class RecoveryRules:
    """The self-service limits, carried in each case's input so tests can shrink them and a
    configuration change never alters a case already running. Durations in seconds."""

    code_ttl: int = 600
    max_attempts: int = 5
    resend_cooldown: int = 60
    max_resends: int = 3
    reset_window: int = 900
    case_ttl: int = 3600
    # Seconds a new password waits before it takes effect (0: none). Set for a recovery through
    # a contact changed lately, and for the case an approved claim opens.
    hold: int = 0
    # For an account with a second factor: how long its proof may take once the contact code
    # was right, and how many wrong proofs lock the case.
    second_factor_window: int = 600
    second_factor_attempts: int = 5

    def code_expires_at(self, issued_at: datetime) -> datetime:
        return issued_at + timedelta(seconds=self.code_ttl)

    def resend_available_at(self, issued_at: datetime, resends: int) -> datetime | None:
        """The cooldown doubles with each resend (60, 120, 240 s); None once none are left."""
        if resends >= self.max_resends:
            return None
        return issued_at + timedelta(seconds=self.resend_cooldown * 2**resends)

    def case_expires_at(self, issued_at: datetime) -> datetime:
        return issued_at + timedelta(seconds=self.case_ttl)

    def reset_expires_at(self, verified_at: datetime) -> datetime:
        return verified_at + timedelta(seconds=self.reset_window)


@dataclass(frozen=True)
class RecoveryInput:
    case_id: str
    # None when nobody has an account under the identifier: the case then runs exactly like
    # any other (same states, timers and answers) but no code it issues is ever delivered.
    account_id: int | None
    channel: Channel
    destination: str  # masked, as shown to the user
    opened_at: datetime
    rules: RecoveryRules
    # The second factors the account has (`SecondFactor` values): after the contact code, a
    # proof of one of them. Empty for an account without any, and for no account at all.
    factors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RecoveryStatus:
    case_id: str
    state: CaseState
    channel: Channel
    destination: str
    attempts_left: int
    code_expires_at: datetime | None
    resend_available_at: datetime | None
    reset_expires_at: datetime | None
    delivery: Delivery
    next_deadline: datetime | None
    hold_until: datetime | None = None  # while held: when the new password takes effect
    # Once the contact code was right, for an account with second factors: which ones it may
    # prove (None before: someone who only knows an identifier learns nothing of them).
    factors: list[str] | None = None
    second_factor: str | None = None  # the one proven, once it was
    recovery_codes_left: int | None = None  # after a recovery code proved it

    @staticmethod
    def at_opening(case: RecoveryInput) -> RecoveryStatus:
        """What a case looks like the moment it opens: the API answers the create call with
        this without waiting for the workflow's first task."""
        rules = case.rules
        return RecoveryStatus(
            case_id=case.case_id,
            state=CaseState.AWAITING_CODE,
            channel=case.channel,
            destination=case.destination,
            attempts_left=rules.max_attempts,
            code_expires_at=rules.code_expires_at(case.opened_at),
            resend_available_at=rules.resend_available_at(case.opened_at, 0),
            reset_expires_at=None,
            delivery=Delivery.SENDING,
            next_deadline=rules.case_expires_at(case.opened_at),
        )


@dataclass(frozen=True)
class SubmitCode:
    # The digest of a typed code, or of a message link's proof token.
    code_digest: str
    # Digest of the reset token the API will hand out if this code is right: derived from the
    # code, so the same code sent again (after a lost answer) earns the same token.
    reset_token_digest: str
    # False when the account's guess budget is spent: the code is not compared (a wrong
    # guess, whatever it was), so that nobody learns from the answer that the budget matters.
    evaluate: bool = True


@dataclass(frozen=True)
class CodeAccepted:
    # None when a second factor is still needed (`factors`): no reset token yet.
    reset_expires_at: datetime | None
    factors: list[str] | None = None


@dataclass(frozen=True)
class SubmitSecondFactor:
    """A proof of the account's second factor. The code never enters history in clear: it
    travels sealed for its case (`reclaim.recovery.steps.seal_factor_code`), and only the
    `verify_second_factor` activity opens it, to ask the directory."""

    method: str  # a `SecondFactor` value
    sealed_code: str
    # Digest of the reset token the API hands out if the proof is right: derived from the
    # case, the method and the code, so a retry after a lost answer earns the same token.
    reset_token_digest: str
    # False when the account's guess budget is spent: nothing is asked of the directory.
    evaluate: bool = True


@dataclass(frozen=True)
class PasskeyChallenge:
    """The challenge the API handed to the browser for a passkey to sign, as a keyed digest:
    the workflow keeps the latest one and gives it to the next passkey proof only, once."""

    challenge_digest: str


@dataclass(frozen=True)
class VerifySecondFactor:
    case_id: str
    account_id: int
    method: str
    sealed_code: str
    at: datetime
    # For a passkey: the digest of the challenge it had to sign (None: none was asked for).
    challenge_digest: str | None = None


@dataclass(frozen=True)
class SecondFactorVerdict:
    accepted: bool
    recovery_codes_left: int | None = None  # after a recovery code was used


@dataclass(frozen=True)
class SetPassword:
    reset_token_digest: str
    # The new password as the account's directory takes it (`reclaim.directory.NewPassword`):
    # an argon2id hash for the built-in directory, or, for a directory that needs the password
    # itself (LDAP, a host application), "" here and the password sealed for this case below.
    # The hash travels sealed for its case (`reclaim.directory.port.seal_hash`): the codec
    # endpoint, which shows histories to staff, cannot open it.
    password_hash: str
    sealed_password: str | None = None


@dataclass(frozen=True)
class ResetContext:
    """Answer of the `reset_context` query: whether a reset token is good right now, and for
    which account, so the API can check the password policy before hashing anything."""

    problem: CaseError | None
    account_id: int | None
    # True when this token's new password was already taken (held or applied): a retried
    # request after a lost answer is told so.
    accepted: bool = False


@dataclass(frozen=True)
class IssueCode:
    case_id: str
    account_id: int | None
    channel: Channel
    attempt: int  # 0 for the first code, n after n resends
    expires_at: datetime


@dataclass(frozen=True)
class IssuedCode:
    code_digest: str
    proof_digest: str | None = None  # of the unguessable link that proves the same code


@dataclass(frozen=True)
class ApplyReset:
    case_id: str
    account_id: int
    password_hash: str  # as in `SetPassword`
    at: datetime
    wrong_codes: int
    resends: int
    sealed_password: str | None = None
    # The second factor proven, and, for a recovery code, how many of the set are left: the
    # mail that says the password changed says so.
    second_factor: str | None = None
    recovery_codes_left: int | None = None


@dataclass(frozen=True)
class ResetApplied:
    # True when a contact could not be told of the change yet (provider outage): the
    # workflow then retries the notices in an activity of their own before it ends.
    notices_pending: bool


@dataclass(frozen=True)
class PasswordChangedNotice:
    case_id: str
    account_id: int
    at: datetime
    recovery_codes_left: int | None = None  # after a recovery code was used


@dataclass(frozen=True)
class CaseClosing:
    case_id: str
    state: CaseState
    at: datetime
    wrong_codes: int
    resends: int
    second_factor: str | None = None


@dataclass(frozen=True)
class GuessingNotice:
    """The account's guess budget is spent: its holder hears that someone is guessing."""

    case_id: str
    account_id: int | None
    at: datetime


@dataclass(frozen=True)
class HoldNotice:
    """Tell the account's other contacts (and the ones an approved claim replaced) that a new
    password takes effect at `until` unless one of them stops it."""

    case_id: str
    account_id: int
    channel: Channel  # the one the recovery went through: its address is not told
    until: datetime


@dataclass(frozen=True)
class StopHold:
    """A contact stopped the held recovery: named by the keyed digest of its address."""

    contact_digest: str
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class HoldChange:
    """An operator's `reclaim cases hold`: end the hold now, or push its end later."""

    end_now: bool = False
    extend_seconds: int = 0
    by: str = ""  # "operator:<name>"
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class Stopped:
    """Argument of the `stop_hold` activity: sign the account out, open a claim for the
    contact who stopped the recovery."""

    case_id: str
    account_id: int
    contact_digest: str
    at: datetime


@dataclass(frozen=True)
class RecoveryOutcome:
    case_id: str
    state: CaseState
