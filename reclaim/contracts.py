"""What every feature shares: channels, account statuses, who acted, and the error codes that
workflows, activities and services refuse with.

Plain dataclasses and enums from the standard library only: the workflow sandbox imports this
module, and everything here can end up in workflow history. Each feature's own shapes live in
its package (`reclaim/recovery/contracts.py`, `reclaim/support/contracts.py`,
`reclaim/lifecycle/contracts.py`); docs/architecture.md says how they fit together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


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
    """Who changed an account: an operator (by name), the system (a timer), or the user (by
    signing in, by recovering)."""

    kind: ActorKind
    name: str


# How the account holder appears in the account's record (never by name: the record outlives
# the purge of their personal data).
ACCOUNT_HOLDER = Actor(ActorKind.USER, "account holder")


# -- account status changes: asked by the lifecycle cases (and an approved claim), applied by
# the account directory (`reclaim.directory`).


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


class CaseError(StrEnum):
    """`ApplicationError.type` values raised by workflows and activities, and the codes of the
    refusals services raise (`reclaim.errors.Refused`).

    The API maps each to an HTTP status in one place (`api/errors.py`); the values are also
    the `error` field of the JSON the user sees.
    """

    INVALID_CODE = "invalid_code"
    CODE_EXPIRED = "code_expired"
    # A code (or its link) that a newer one replaced: typed, it costs no try.
    CODE_REPLACED = "code_replaced"
    CASE_LOCKED = "case_locked"
    INVALID_STATE = "invalid_state"
    RESEND_COOLDOWN = "resend_cooldown"
    RESEND_LIMIT = "resend_limit"
    INVALID_TOKEN = "invalid_token"
    RESET_EXPIRED = "reset_expired"
    # The new password, refused by Reclaim's policy or by the directory's own.
    WEAK_PASSWORD = "weak_password"
    PASSWORD_REUSED = "password_reused"
    # Support claims.
    SUPERVISOR_REQUIRED = "supervisor_required"
    NOT_ASSIGNEE = "not_assignee"
    CANNOT_RESOLVE = "cannot_resolve"
    # The two-person rule: who asked for an approval never confirms it.
    SAME_PERSON = "same_person"
    # Raised by activities, never shown as such to a user.
    SUPERSEDED = "superseded"
    UNDELIVERABLE = "undeliverable"
    NO_ACCOUNT = "no_account"


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds to wait before `moment` (at least 1), as a Retry-After header wants."""
    return max(1, math.ceil((moment - now).total_seconds()))
