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
    # Support claims.
    SUPERVISOR_REQUIRED = "supervisor_required"
    NOT_ASSIGNEE = "not_assignee"
    CANNOT_RESOLVE = "cannot_resolve"
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
    RESOLVE_CLAIM = "resolve_claim"
    NOTIFY_CLAIMANT = "notify_claimant"
    NOTIFY_ESCALATION = "notify_escalation"
    RECORD_CLAIM = "record_claim"


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


# -- support claims ---------------------------------------------------------------------------


class ClaimReason(StrEnum):
    COMPROMISED = "compromised"  # someone else took the account over
    LOST_CONTACT = "lost_contact"  # the email and phone on file are no longer the holder's
    DELETED = "deleted"  # the holder deactivated it and wants it back
    BANNED = "banned"  # an appeal


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ClaimState(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    AWAITING_CLAIMANT = "awaiting_claimant"
    APPROVED = "approved"
    REJECTED = "rejected"
    ABANDONED = "abandoned"

    @property
    def is_open(self) -> bool:
        return self in (ClaimState.SUBMITTED, ClaimState.IN_REVIEW, ClaimState.AWAITING_CLAIMANT)


class StaffRole(StrEnum):
    REVIEWER = "reviewer"
    SUPERVISOR = "supervisor"


class ContactMatch(StrEnum):
    """How an address the claimant remembers compares with the account's."""

    CURRENT = "current"  # the account's address today
    PAST = "past"  # an address the account had before
    NO_MATCH = "no_match"
    NOT_GIVEN = "not_given"


class ClaimCalls(StrEnum):
    WORKFLOW = "SupportCaseWorkflow"
    ASSIGN = "assign"
    REQUEST_INFO = "request_info"
    PROVIDE_INFO = "provide_info"
    APPROVE = "approve"
    REJECT = "reject"
    STAFF_VIEW = "staff_view"
    CLAIMANT_VIEW = "claimant_view"


@dataclass(frozen=True)
class Reviewer:
    """A member of staff acting on a claim, as the API authenticated them."""

    id: int
    name: str
    role: StaffRole

    @property
    def label(self) -> str:
        return f"{self.role.value}:{self.name}"


@dataclass(frozen=True)
class Evidence:
    """What the claim's evidence showed when it was checked, before the case started: results
    only, never what the claimant typed."""

    account_found: bool
    account_status: str | None
    account_age_days: int | None
    passwords_given: int
    passwords_matched: int
    registered_email: ContactMatch
    registered_phone: ContactMatch


@dataclass(frozen=True)
class ClaimRules:
    """Durations in seconds (DESIGN.md, "Support claim"), fixed for the life of a case."""

    first_response_sla: int = 86_400
    decision_sla: int = 259_200
    claimant_window: int = 604_800
    recovery: RecoveryRules = RecoveryRules()


@dataclass(frozen=True)
class ClaimInput:
    case_id: str
    account_id: int | None  # None: nobody has the username (a reviewer will reject it)
    reason: ClaimReason
    risk: Risk
    evidence: Evidence
    opened_at: datetime
    rules: ClaimRules


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str  # "claimant", "system", or "<role>:<name>"
    action: str
    detail: str | None = None


@dataclass(frozen=True)
class Question:
    n: int
    text: str
    asked_at: datetime
    asked_by: str
    answered_at: datetime | None = None


@dataclass(frozen=True)
class Decision:
    outcome: ClaimState  # approved, rejected or abandoned
    at: datetime
    by: str
    note: str | None = None
    # The self-service case opened to the verified contact when a takeover or lost-contact
    # claim is approved.
    recovery_case_id: str | None = None


@dataclass(frozen=True)
class AssignRequest:
    by: Reviewer
    to: str | None = None  # a reviewer's name; None: the one asking


@dataclass(frozen=True)
class RequestInfo:
    by: Reviewer
    questions: list[str]


@dataclass(frozen=True)
class ProvideInfo:
    """The claimant answered: the text stays in the database, the case learns when."""

    answered_at: datetime


@dataclass(frozen=True)
class Approve:
    by: Reviewer
    note: str | None = None


@dataclass(frozen=True)
class Reject:
    by: Reviewer
    reason: str


@dataclass(frozen=True)
class ClaimView:
    case_id: str
    state: ClaimState
    reason: ClaimReason
    risk: Risk
    evidence: Evidence
    assignee: str | None
    escalated: bool
    opened_at: datetime
    next_deadline: datetime | None
    questions: list[Question]
    timeline: list[TimelineEntry]
    decision: Decision | None


@dataclass(frozen=True)
class ClaimantView:
    case_id: str
    state: ClaimState
    questions: list[Question]
    answer_by: datetime | None  # while questions wait for an answer
    decision: Decision | None


@dataclass(frozen=True)
class ResolveClaim:
    case_id: str
    account_id: int
    reason: ClaimReason
    by: Reviewer
    at: datetime


@dataclass(frozen=True)
class Resolution:
    """What approving did; `problem` says why it could not (the claim stays in review)."""

    problem: str | None = None
    recovery_case_id: str | None = None
    destination: str | None = None  # masked: where the recovery case sends its code


class ClaimNoticeKind(StrEnum):
    RECEIVED = "claim_received"
    QUESTION = "claim_question"
    APPROVED = "claim_approved"
    REJECTED = "claim_rejected"
    ABANDONED = "claim_abandoned"


@dataclass(frozen=True)
class ClaimNotice:
    case_id: str
    kind: ClaimNoticeKind
    attempt: int = 0  # the n-th notice of this kind in the case (questions come in rounds)
    detail: str | None = None  # the questions, the decision's note or reason
    recovery_case_id: str | None = None


@dataclass(frozen=True)
class Escalation:
    case_id: str
    level: str  # "first_response" or "decision"
    at: datetime


@dataclass(frozen=True)
class ClaimClosing:
    case_id: str
    state: ClaimState
    at: datetime
    decision: Decision | None
    timeline: list[TimelineEntry]
