"""Support claims: what the API, the `SupportCaseWorkflow`, its activities and the support
service exchange. Plain dataclasses (the workflow sandbox imports this module): the history
holds the evidence's results, who did what and the reviewers' words, never what the claimant
typed or where to reach them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reclaim.recovery.contracts import RecoveryRules


class ClaimReason(StrEnum):
    COMPROMISED = "compromised"  # someone else took the account over
    LOST_CONTACT = "lost_contact"  # the email and phone on file are no longer the holder's
    DELETED = "deleted"  # the holder deactivated it and wants it back
    BANNED = "banned"  # an appeal
    # Every second factor is gone (the authenticator app, the recovery codes, the passkeys):
    # always high risk; the approval opens a held recovery and removes the factors chosen.
    LOST_AUTHENTICATOR = "lost_authenticator"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ClaimState(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    AWAITING_CLAIMANT = "awaiting_claimant"
    # A reviewer approved a high-risk claim: another member of staff, a supervisor, must
    # confirm it within RECLAIM_APPROVAL_CONFIRM_WINDOW, or it goes back to in_review.
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    APPROVED = "approved"
    REJECTED = "rejected"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"  # closed by an operator (`reclaim cases cancel`)

    @property
    def is_open(self) -> bool:
        return self in (
            ClaimState.SUBMITTED,
            ClaimState.IN_REVIEW,
            ClaimState.AWAITING_CLAIMANT,
            ClaimState.AWAITING_CONFIRMATION,
        )


class StaffRole(StrEnum):
    REVIEWER = "reviewer"
    SUPERVISOR = "supervisor"
    # Runs the service: reads cases through the codec endpoint, decides no claim.
    OPERATOR = "operator"


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
    CONFIRM_APPROVAL = "confirm_approval"
    REJECT = "reject"
    CANCEL = "cancel"
    RELEASE = "release"
    STAFF_VIEW = "staff_view"
    CLAIMANT_VIEW = "claimant_view"


# The updates that act on someone's say-so: each carries a proof of who sent it, checked by the
# worker before the validator (reclaim/temporal/proofs.py).
PROVEN_UPDATES = [
    (ClaimCalls.WORKFLOW.value, update.value)
    for update in (
        ClaimCalls.ASSIGN,
        ClaimCalls.REQUEST_INFO,
        ClaimCalls.PROVIDE_INFO,
        ClaimCalls.APPROVE,
        ClaimCalls.CONFIRM_APPROVAL,
        ClaimCalls.REJECT,
        ClaimCalls.CANCEL,
        ClaimCalls.RELEASE,
    )
]


class ClaimActivity(StrEnum):
    RESOLVE_CLAIM = "resolve_claim"
    NOTIFY_CLAIMANT = "notify_claimant"
    NOTIFY_ESCALATION = "notify_escalation"
    RECORD_CLAIM = "record_claim"
    KEEP_QUEUE_ROW = "keep_queue_row"


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
    # What the directory could check (claims recorded before these existed read True): the
    # previous passwords as well as the current one, a former address as well as the current.
    previous_passwords_checked: bool = True
    past_addresses_checked: bool = True
    # A lost-authenticator claim: whether it came from the account's current email address (the
    # claimant reads the claim's mail there), which its recovery goes through. None otherwise.
    wrote_from_account_email: bool | None = None


@dataclass(frozen=True)
class ClaimRules:
    """The claim's deadlines in seconds (RECLAIM_FIRST_RESPONSE_SLA, _DECISION_SLA,
    _CLAIMANT_WINDOW), fixed for the life of a case, and the rules of the recovery case an
    approval opens."""

    first_response_sla: int = 86_400
    decision_sla: int = 259_200
    claimant_window: int = 604_800
    # A reviewer's approval of a high-risk claim waits this long for a supervisor's
    # confirmation (RECLAIM_APPROVAL_CONFIRM_WINDOW). Histories started before it existed
    # read the default.
    confirm_window: int = 86_400
    recovery: RecoveryRules = RecoveryRules()  # noqa: RUF009  (frozen: safe to share)


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
    outcome: ClaimState  # approved, rejected, abandoned or cancelled
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
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class ReleaseRequest:
    """The assignee gives the claim back to the queue (a supervisor may too)."""

    by: Reviewer
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class RequestInfo:
    by: Reviewer
    questions: list[str]
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class ProvideInfo:
    """The claimant answered: the text stays in the database, the case learns when."""

    answered_at: datetime
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class Approve:
    by: Reviewer
    note: str | None = None
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)
    # A lost-authenticator claim: the second factors removed when the recovery's hold ends
    # (`totp`, `recovery_code`, `webauthn:<passkey key>`: names, never a secret); None: all.
    remove_factors: list[str] | None = None


@dataclass(frozen=True)
class ConfirmApproval:
    """A supervisor confirms a reviewer's approval of a high-risk claim (the two-person rule:
    never the member of staff who asked for it)."""

    by: Reviewer
    note: str | None = None  # replaces the reviewer's note for the claimant, when given
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class ApprovalRequest:
    """A reviewer's approval waiting for a supervisor's confirmation."""

    by: str  # "<role>:<name>"
    by_name: str
    at: datetime
    note: str | None
    confirm_by: datetime
    remove_factors: list[str] | None = None  # as in `Approve`


@dataclass(frozen=True)
class Reject:
    by: Reviewer
    reason: str
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


@dataclass(frozen=True)
class CancelClaim:
    """An operator closes the claim without a decision on its merits."""

    by: str  # "operator:<name>"
    reason: str
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


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
    approval_request: ApprovalRequest | None = None  # while awaiting_confirmation
    # The workflow's change counter: the version of the claim's queue row (the rebuild's).
    version: int = 0


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
    # A lost-authenticator claim: the factors to remove at the hold's end (None: all).
    remove_factors: list[str] | None = None


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
    CANCELLED = "claim_cancelled"


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


@dataclass(frozen=True)
class QueueRowChange:
    """A claim's row in the reviewers' queue (`reclaim.support.queue_rows`), as of the
    workflow's change `version`: what its search attributes carry, no personal data."""

    case_id: str
    version: int
    state: str
    reason: str
    risk: str
    assignee: str | None
    escalated: bool
    opened_at: datetime
    next_deadline: datetime | None
