"""Shapes passed between the API, the workflows and the activities.

Plain dataclasses from the standard library only: the workflow sandbox imports this module,
and everything here ends up in workflow history. That is why no field ever holds a code, a
token or a password: codes and tokens travel as HMAC digests, passwords as argon2 hashes, and
addresses stay in the database (the history names an account id and a masked destination).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


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


class CaseError(StrEnum):
    """`ApplicationError.type` values raised by workflows and activities.

    The API maps each to an HTTP status in one place (`api/errors.py`); the values are also
    the `error` field of the JSON the user sees.
    """

    INVALID_CODE = "invalid_code"
    CODE_EXPIRED = "code_expired"
    CASE_LOCKED = "case_locked"
    INVALID_STATE = "invalid_state"
    RESEND_COOLDOWN = "resend_cooldown"
    RESEND_LIMIT = "resend_limit"
    INVALID_TOKEN = "invalid_token"
    RESET_EXPIRED = "reset_expired"
    # Raised by activities, never shown as such to a user.
    SUPERSEDED = "superseded"
    UNDELIVERABLE = "undeliverable"
    NO_ACCOUNT = "no_account"


class ActivityName(StrEnum):
    """Workflows call activities by name so they never import database code."""

    ISSUE_CODE = "issue_code"
    APPLY_RESET = "apply_reset"
    NOTIFY_PASSWORD_CHANGED = "notify_password_changed"
    RECORD_CLOSED_CASE = "record_closed_case"
    DEACTIVATE_ACCOUNT = "deactivate_account"
    PURGE_ACCOUNT = "purge_account"
    BAN_ACCOUNT = "ban_account"
    LIFT_BAN = "lift_ban"
    NOTIFY_ACCOUNT = "notify_account"


class RecoveryCalls(StrEnum):
    """Names of the self-service workflow and its handlers: the API calls them by name."""

    WORKFLOW = "RecoveryWorkflow"
    SUBMIT_CODE = "submit_code"
    RESEND_CODE = "resend_code"
    SET_PASSWORD = "set_password"
    STATUS = "status"
    RESET_CONTEXT = "reset_context"
    SUPERSEDE = "supersede"
    CANCEL = "cancel"


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
    password_hash: str  # argon2id, computed by the API


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
    password_hash: str
    at: datetime
    wrong_codes: int
    resends: int


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


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds to wait before `moment` (at least 1), as a Retry-After header wants."""
    return max(1, math.ceil((moment - now).total_seconds()))


# -- account lifecycle ------------------------------------------------------------------------


class AccountStatus(StrEnum):
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    BANNED = "banned"
    PURGED = "purged"


class ActorKind(StrEnum):
    OPERATOR = "operator"
    SYSTEM = "system"
    USER = "user"


@dataclass(frozen=True)
class Actor:
    """Who changed an account's status: an operator (by name), the system (a timer), or the
    user (by signing in, by recovering)."""

    kind: ActorKind
    name: str


class LifecycleCalls(StrEnum):
    """Names of the account lifecycle workflows and their handlers."""

    DELETION_WORKFLOW = "AccountDeletionWorkflow"
    BAN_WORKFLOW = "AccountBanWorkflow"
    # update: wait for the status change to be applied, answer what the account now is
    APPLIED = "applied"
    # signal: the user came back inside the grace period (deletion only)
    REACTIVATED = "reactivated"
    # signal: a newer lifecycle case took over the account
    SUPERSEDED = "superseded"
    # update: an operator (or an approved claim) lifts the ban (ban only)
    LIFT = "lift"
    STATUS = "status"


class LifecycleState(StrEnum):
    """Where a deletion or ban case is. Deletion: requested → deactivated → reactivated |
    purged. Ban: requested → banned → ended (time up) | lifted (by someone). Either: refused
    (the account was not in a state that allows it) or superseded (a newer case took over)."""

    REQUESTED = "requested"
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"
    PURGED = "purged"
    BANNED = "banned"
    ENDED = "ended"
    LIFTED = "lifted"
    REFUSED = "refused"
    SUPERSEDED = "superseded"

    @property
    def is_open(self) -> bool:
        return self in (LifecycleState.REQUESTED, LifecycleState.DEACTIVATED, LifecycleState.BANNED)


@dataclass(frozen=True)
class DeletionInput:
    case_id: str
    account_id: int
    grace: int  # seconds between deactivation and purge
    quarantine: int  # seconds the username stays reserved after the purge
    actor: Actor
    reason: str | None = None


@dataclass(frozen=True)
class BanInput:
    case_id: str
    account_id: int
    reason: str
    actor: Actor
    duration: int | None = None  # seconds; None: until lifted


@dataclass(frozen=True)
class StatusChange:
    """An activity's request to move an account's status, made on behalf of a case."""

    case_id: str
    account_id: int
    at: datetime
    actor: Actor
    reason: str | None = None
    until: datetime | None = None  # purge time of a deactivation, end of a ban


@dataclass(frozen=True)
class AccountState:
    """What an account is after a status change was asked for. `applied` says whether this
    case made the change; `previous_case` names the lifecycle case it took over from."""

    applied: bool
    status: AccountStatus
    until: datetime | None = None
    case_id: str | None = None  # the lifecycle case now in charge of the status
    previous_case: str | None = None


@dataclass(frozen=True)
class PurgeAccount:
    case_id: str
    account_id: int
    at: datetime
    quarantine: int  # seconds the username stays reserved


@dataclass(frozen=True)
class LiftRequest:
    """Argument of the `lift` update."""

    actor: Actor
    reason: str | None = None


class NoticeKind(StrEnum):
    ACCOUNT_DEACTIVATED = "account_deactivated"
    BAN_ENDED = "ban_ended"


@dataclass(frozen=True)
class AccountNotice:
    case_id: str
    account_id: int
    kind: NoticeKind
    until: datetime | None = None


@dataclass(frozen=True)
class LifecycleStatus:
    case_id: str
    workflow: str
    state: LifecycleState
    account_status: AccountStatus | None
    until: datetime | None
