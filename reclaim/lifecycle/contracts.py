"""Account lifecycle: what the deletion and ban workflows, their activities and the lifecycle
service exchange. Plain dataclasses (the workflow sandbox imports this module)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from reclaim.contracts import AccountStatus, Actor


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


# Lifting a ban acts on someone's say-so: proven (reclaim/temporal/proofs.py).
PROVEN_UPDATES = [(LifecycleCalls.BAN_WORKFLOW.value, LifecycleCalls.LIFT.value)]


class LifecycleActivity(StrEnum):
    DEACTIVATE_ACCOUNT = "deactivate_account"
    PURGE_ACCOUNT = "purge_account"
    BAN_ACCOUNT = "ban_account"
    LIFT_BAN = "lift_ban"
    NOTIFY_ACCOUNT = "notify_account"


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
    locale: str | None = None  # the language of the holder's notices (None: the default)


@dataclass(frozen=True)
class BanInput:
    case_id: str
    account_id: int
    reason: str
    actor: Actor
    duration: int | None = None  # seconds; None: until lifted
    locale: str | None = None


@dataclass(frozen=True)
class LiftRequest:
    """Argument of the `lift` update."""

    actor: Actor
    reason: str | None = None
    proof: str = ""  # who asks, proven (reclaim/temporal/proofs.py)


class NoticeKind(StrEnum):
    ACCOUNT_DEACTIVATED = "account_deactivated"
    BAN_ENDED = "ban_ended"


@dataclass(frozen=True)
class AccountNotice:
    case_id: str
    account_id: int
    kind: NoticeKind
    until: datetime | None = None
    locale: str | None = None


@dataclass(frozen=True)
class LifecycleStatus:
    case_id: str
    workflow: str
    state: LifecycleState
    account_status: AccountStatus | None
    until: datetime | None
    account_id: int | None = None  # the account the case is about (for operators)
