"""Self-service recovery: what the API, the `RecoveryWorkflow` and its activities exchange.

Plain dataclasses from the standard library only: the workflow sandbox imports this module, and
everything here ends up in workflow history. That is why no field ever holds a code, a token or
a password in clear: codes and tokens travel as HMAC digests, a new password as an argon2 hash
or sealed for its case, and addresses stay in the database (the history names an account id and
a masked destination).
"""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def is_open(self) -> bool:
        return self in (CaseState.AWAITING_CODE, CaseState.VERIFIED)


class Delivery(StrEnum):
    """Where the current code is on its way to the user."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class RecoveryCalls(StrEnum):
    """Names of the self-service workflow and its handlers: the service calls them by name."""

    WORKFLOW = "RecoveryWorkflow"
    SUBMIT_CODE = "submit_code"
    RESEND_CODE = "resend_code"
    SET_PASSWORD = "set_password"
    STATUS = "status"
    RESET_CONTEXT = "reset_context"
    SUPERSEDE = "supersede"
    CANCEL = "cancel"


class RecoveryActivity(StrEnum):
    """The workflow calls its activities by name, so it never imports database code."""

    ISSUE_CODE = "issue_code"
    APPLY_RESET = "apply_reset"
    NOTIFY_PASSWORD_CHANGED = "notify_password_changed"
    RECORD_CLOSED_CASE = "record_closed_case"


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
    code_digest: str
    # Digest of the reset token the API will hand out if this code is right.
    reset_token_digest: str


@dataclass(frozen=True)
class CodeAccepted:
    reset_expires_at: datetime


@dataclass(frozen=True)
class SetPassword:
    reset_token_digest: str
    # The new password as the account's directory takes it (`reclaim.directory.NewPassword`):
    # an argon2id hash for the built-in directory, or, for a directory that needs the password
    # itself (LDAP, a host application), "" here and the password sealed for this case below.
    password_hash: str
    sealed_password: str | None = None


@dataclass(frozen=True)
class ResetContext:
    """Answer of the `reset_context` query: whether a reset token is good right now, and for
    which account, so the API can check the password policy before hashing anything."""

    problem: CaseError | None
    account_id: int | None


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


@dataclass(frozen=True)
class ApplyReset:
    case_id: str
    account_id: int
    password_hash: str  # as in `SetPassword`
    at: datetime
    wrong_codes: int
    resends: int
    sealed_password: str | None = None


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


@dataclass(frozen=True)
class CaseClosing:
    case_id: str
    state: CaseState
    at: datetime
    wrong_codes: int
    resends: int


@dataclass(frozen=True)
class RecoveryOutcome:
    case_id: str
    state: CaseState
