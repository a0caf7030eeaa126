"""Custom search attributes: how operators find cases in the Temporal Web UI.

Search attributes are stored and indexed in clear, so none of them ever holds personal data:
no address, username or account id. `reclaim dev` and `reclaim temporal setup` register them.
"""

from __future__ import annotations

from datetime import datetime

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

CASE_KIND = SearchAttributeKey.for_keyword("RecoveryCaseKind")
CASE_STATE = SearchAttributeKey.for_keyword("RecoveryCaseState")
CHANNEL = SearchAttributeKey.for_keyword("RecoveryChannel")
NEXT_DEADLINE = SearchAttributeKey.for_datetime("RecoveryNextDeadline")
# Support claims.
REASON = SearchAttributeKey.for_keyword("RecoveryReason")
RISK = SearchAttributeKey.for_keyword("RecoveryRisk")
ASSIGNEE = SearchAttributeKey.for_keyword("RecoveryAssignee")  # a staff name, never a user's
ESCALATED = SearchAttributeKey.for_bool("RecoveryEscalated")

ALL: tuple[SearchAttributeKey, ...] = (
    CASE_KIND,
    CASE_STATE,
    CHANNEL,
    NEXT_DEADLINE,
    REASON,
    RISK,
    ASSIGNEE,
    ESCALATED,
)

SELF_SERVICE = "self_service"
ACCOUNT_DELETION = "account_deletion"
ACCOUNT_BAN = "account_ban"
SUPPORT_CLAIM = "support_claim"


def self_service_case(
    state: str, channel: str, next_deadline: datetime | None
) -> TypedSearchAttributes:
    """The attributes a self-service case starts with (set by the API at start, no event)."""
    pairs: list[SearchAttributePair] = [
        SearchAttributePair(CASE_KIND, SELF_SERVICE),
        SearchAttributePair(CASE_STATE, state),
        SearchAttributePair(CHANNEL, channel),
    ]
    if next_deadline is not None:
        pairs.append(SearchAttributePair(NEXT_DEADLINE, next_deadline))
    return TypedSearchAttributes(pairs)


def lifecycle_case(kind: str, state: str) -> TypedSearchAttributes:
    """The attributes an account deletion or ban case starts with."""
    return TypedSearchAttributes(
        [SearchAttributePair(CASE_KIND, kind), SearchAttributePair(CASE_STATE, state)]
    )


def support_claim(
    state: str, reason: str, risk: str, next_deadline: datetime
) -> TypedSearchAttributes:
    """The attributes a support claim starts with."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(CASE_KIND, SUPPORT_CLAIM),
            SearchAttributePair(CASE_STATE, state),
            SearchAttributePair(REASON, reason),
            SearchAttributePair(RISK, risk),
            SearchAttributePair(ESCALATED, False),
            SearchAttributePair(NEXT_DEADLINE, next_deadline),
        ]
    )


def claim_change(
    state: str, next_deadline: datetime | None, assignee: str | None, escalated: bool
) -> list[SearchAttributeUpdate]:
    """What a support claim upserts when anything a queue filters on moves."""
    return [
        *state_change(state, next_deadline),
        ASSIGNEE.value_set(assignee) if assignee else ASSIGNEE.value_unset(),
        ESCALATED.value_set(escalated),
    ]


def state_change(state: str, next_deadline: datetime | None) -> list[SearchAttributeUpdate]:
    """What a workflow upserts when its state moves."""
    deadline = (
        NEXT_DEADLINE.value_set(next_deadline)
        if next_deadline is not None
        else NEXT_DEADLINE.value_unset()
    )
    return [CASE_STATE.value_set(state), deadline]
