"""What the console's templates show, in words a reviewer reads: states, deadlines, ages, the
evidence checks and why they make the risk, and refusals. The routes hand these facts to the
templates, which compute nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reclaim.errors import DomainError, NotFound, Refused, Unauthorized, Unavailable
from reclaim.support.contracts import ClaimState, ClaimView, ContactMatch, Evidence

STATES = {
    "submitted": "Waiting for a reviewer",
    "in_review": "In review",
    "awaiting_claimant": "Waiting for the claimant",
    "awaiting_confirmation": "Waiting for a supervisor's confirmation",
    "approved": "Approved",
    "rejected": "Rejected",
    "abandoned": "Abandoned (no answer)",
    "cancelled": "Cancelled by an operator",
}
REASONS = {
    "compromised": "Account taken over",
    "lost_contact": "Lost email and phone",
    "deleted": "Deleted account",
    "banned": "Ban appeal",
}
# What the next deadline of a claim in each open state is for.
DEADLINES = {
    "submitted": "first response",
    "in_review": "decision",
    "awaiting_claimant": "claimant's answer",
    "awaiting_confirmation": "confirmation",
}
VIEWS = {
    "mine": "Mine",
    "unassigned": "Unassigned",
    "escalated": "Escalated",
    "high_risk": "High risk",
}
DONE = {
    "assigned": "The claim is assigned.",
    "released": "The claim is back in the queue, assigned to nobody.",
    "asked": "Your questions were mailed to the claimant; the claim waits for the answer.",
    "approved": "Approved: the claimant is told, and what the approval does is done.",
    "requested": "Your approval waits for a supervisor's confirmation: a high-risk claim needs "
    "two people.",
    "confirmed": "Confirmed: the claim is approved and the claimant is told.",
    "rejected": "Rejected: the claimant is told why.",
}


@dataclass(frozen=True)
class Problem:
    """A refusal in words, the field it is about, and its HTTP status."""

    message: str
    field: str | None = None
    status: int = 409
    start_again: bool = False  # the pages' problem box asks
    at_field: str | None = None  # the pages' field macro asks (the console says it once)


def state_words(state: str | None) -> str:
    return STATES.get(state or "", state or "open")


def span(delta: timedelta) -> str:
    """A duration as a reviewer reads it: "3 d 4 h", "5 h 10 min", "12 min"."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else "under a minute"


def due(deadline: datetime | None, now: datetime) -> tuple[str, bool]:
    """Time to a deadline in words, and whether it has passed."""
    if deadline is None:
        return "no deadline", False
    if deadline < now:
        return f"overdue by {span(now - deadline)}", True
    return f"in {span(deadline - now)}", False


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def _address(match: ContactMatch, past_checked: bool) -> tuple[str, str]:
    no_match = (
        "not an address of this account"
        if past_checked
        else "not the account's current address (the directory keeps no former addresses: "
        "an old one cannot be recognised)"
    )
    return {
        ContactMatch.CURRENT: ("matched", "the account's current address"),
        ContactMatch.PAST: ("matched", "an address the account had before"),
        ContactMatch.NO_MATCH: ("not matched", no_match),
        ContactMatch.NOT_GIVEN: ("not given", "the claimant did not give one"),
    }[match]


def evidence_checks(evidence: Evidence) -> list[dict[str, str]]:
    """Each check as matched / not matched / not given, with a word on it (never what the
    claimant typed: the case holds results only)."""
    if evidence.passwords_given == 0:
        passwords = ("not given", "the claimant remembered none")
    elif evidence.passwords_matched and not evidence.previous_passwords_checked:
        passwords = ("matched", "the account's current password")
    elif evidence.passwords_matched:
        passwords = (
            "matched",
            f"{evidence.passwords_matched} of {evidence.passwords_given} among the account's "
            "recent passwords",
        )
    elif evidence.previous_passwords_checked:
        passwords = ("not matched", f"none of the {evidence.passwords_given} given")
    else:
        passwords = (
            "not matched",
            f"none of the {evidence.passwords_given} given is the current password (the "
            "directory keeps no readable history: an older one cannot be recognised)",
        )
    past = evidence.past_addresses_checked
    email = _address(evidence.registered_email, past)
    phone = _address(evidence.registered_phone, past)
    return [
        {"check": "A previous password", "result": passwords[0], "detail": passwords[1]},
        {"check": "A registered email address", "result": email[0], "detail": email[1]},
        {"check": "A registered phone number", "result": phone[0], "detail": phone[1]},
    ]


def risk_reason(evidence: Evidence) -> str:
    """Why the evidence made this risk (the rule of reclaim/support/evidence.py)."""
    if not evidence.account_found:
        return "High: no account has this username, so there is nothing to give back."
    known = (ContactMatch.CURRENT, ContactMatch.PAST)
    password = evidence.passwords_matched > 0
    addresses = (evidence.registered_email in known) + (evidence.registered_phone in known)
    if password and addresses:
        return "Low: a previous password and a registered address matched."
    if password:
        return "Medium: a previous password matched, no registered address did."
    if addresses:
        return "Medium: a registered address matched, no previous password did."
    return "High: neither a previous password nor a registered address matched."


def refusal(error: DomainError, view: ClaimView | None = None) -> Problem:
    """A service's refusal as the sentence the reviewer reads where they acted."""
    if isinstance(error, NotFound):
        return Problem("No claim has this reference.", status=404)
    if isinstance(error, Unavailable):
        return Problem(f"{error.message} Nothing was done.", status=503)
    if isinstance(error, Unauthorized):
        return Problem(error.message, status=401)
    assert isinstance(error, Refused)
    code = error.code
    if code == "invalid_state":
        state = str(error.details.get("state") or (view.state.value if view else ""))
        if state and not ClaimState(state).is_open:
            return Problem(f"Already decided: this claim is {state_words(state).lower()}.")
        if state == "awaiting_confirmation":
            return Problem(
                "An approval of this claim is waiting for a supervisor's confirmation: a "
                "supervisor confirms it or rejects the claim."
            )
        if state == "submitted":
            return Problem("Nobody has taken this claim yet: assign it to yourself first.")
        return Problem(f"Not now: the claim is {state_words(state).lower()}.")
    if code == "not_assignee":
        return Problem(f"You are not the assignee. {error.message}", status=403)
    if code == "supervisor_required":
        return Problem(f"This needs a supervisor. {error.message}", status=403)
    if code == "same_person":
        return Problem(f"Two people are needed. {error.message}", status=403)
    if code == "cannot_resolve":
        return Problem(f"The approval cannot be applied: {error.message}")
    if code == "unknown_assignee":
        return Problem(error.message, "to", status=422)
    return Problem(error.message, status=422)


def plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value
