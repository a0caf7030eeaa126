"""What the console's templates show, in words a reviewer reads, in the reviewer's language
(`t`, a `reclaim.i18n.Text`): states, deadlines, ages, the evidence checks and why they make
the risk, and refusals. The routes hand these facts to the templates, which compute nothing.
The tables hold the English texts (the catalogs' message ids, marked with `N_` for
`make translations`); each is translated where it is shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reclaim.errors import DomainError, NotFound, Refused, Unauthorized, Unavailable
from reclaim.i18n import Text
from reclaim.support.contracts import ClaimState, ClaimView, ContactMatch, Evidence


def N_(message: str) -> str:
    return message


STATES = {
    "submitted": N_("Waiting for a reviewer"),
    "in_review": N_("In review"),
    "awaiting_claimant": N_("Waiting for the claimant"),
    "awaiting_confirmation": N_("Waiting for a supervisor's confirmation"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "abandoned": N_("Abandoned (no answer)"),
    "cancelled": N_("Cancelled by an operator"),
}
REASONS = {
    "compromised": N_("Account taken over"),
    "lost_contact": N_("Lost email and phone"),
    "deleted": N_("Deleted account"),
    "banned": N_("Ban appeal"),
    "lost_authenticator": N_("Lost second factors"),
}
# What the next deadline of a claim in each open state is for.
DEADLINES = {
    "submitted": N_("first response"),
    "in_review": N_("decision"),
    "awaiting_claimant": N_("claimant's answer"),
    "awaiting_confirmation": N_("confirmation"),
}
VIEWS = {
    "mine": N_("Mine"),
    "unassigned": N_("Unassigned"),
    "escalated": N_("Escalated"),
    "high_risk": N_("High risk"),
    "due_soon": N_("Due within a day"),
}
ROLES = {
    "reviewer": N_("reviewer"),
    "supervisor": N_("supervisor"),
    "operator": N_("operator"),
}
# An account's status in the directory, when the claim was filed and now.
ACCOUNT_STATUSES = {
    "active": N_("active"),
    "deactivated": N_("deactivated"),
    "banned": N_("banned"),
    "purged": N_("purged"),
}
RISKS = {"low": N_("low"), "medium": N_("medium"), "high": N_("high")}
DONE = {
    "assigned": N_("The claim is assigned."),
    "released": N_("The claim is back in the queue, assigned to nobody."),
    "asked": N_("Your questions were mailed to the claimant; the claim waits for the answer."),
    "approved": N_("Approved: the claimant is told, and what the approval does is done."),
    "requested": N_(
        "Your approval waits for a supervisor's confirmation: a high-risk claim needs two people."
    ),
    "confirmed": N_("Confirmed: the claim is approved and the claimant is told."),
    "rejected": N_("Rejected: the claimant is told why."),
}
# A self-service recovery's closed state, and how it reached the claimant.
RECOVERY_STATES = {
    "completed": N_("completed"),
    "expired": N_("expired"),
    "locked": N_("locked"),
    "superseded": N_("superseded"),
    "cancelled": N_("cancelled"),
    "held": N_("held"),
}
CHANNELS = {"email": N_("email"), "sms": N_("SMS")}
# How a second factor is named on the case page.
FACTORS = {
    "totp": N_("authenticator app (TOTP)"),
    "recovery_code": N_("recovery codes"),
    "webauthn": N_("passkey"),
}


# The services' refusals whose whole sentence the console can say in the reviewer's language
# (the same English words as the service's message); any other is shown as the service wrote it.
SERVICE_WORDS = {
    "invalid_key": N_(
        "This staff key does not work: it is wrong, was replaced, or was turned off."
    ),
    "staff_disabled": N_("Your access to the console was turned off."),
    "not_configured": N_("Staff sign in with their staff key here."),
    "reviewer_required": N_("Operators read claims; a reviewer or a supervisor acts on them."),
}


def said(t: Text, error: DomainError) -> str:
    """A service's own explanation, in the reviewer's language where the console knows it."""
    code = getattr(error, "code", None)
    return t(SERVICE_WORDS[code]) if code in SERVICE_WORDS else error.message


@dataclass(frozen=True)
class Problem:
    """A refusal in words, the field it is about, and its HTTP status."""

    message: str
    field: str | None = None
    status: int = 409
    start_again: bool = False  # the pages' problem box asks
    at_field: str | None = None  # the pages' field macro asks (the console says it once)


def words(t: Text, table: dict[str, str], key: str | None, otherwise: str | None = None) -> str:
    """`key`'s words in `table`, translated; else `otherwise` (default: the key itself)."""
    if key and key in table:
        return t(table[key])
    return otherwise if otherwise is not None else (key or "-")


def state_words(t: Text, state: str | None) -> str:
    return t(STATES[state]) if state in STATES else (state or t("open"))


def span(t: Text, delta: timedelta) -> str:
    """A duration as a reviewer reads it: "3 d 4 h", "5 h 10 min", "12 min"."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        if hours:
            return t("%(days)d d %(hours)d h", days=days, hours=hours)
        return t("%(days)d d", days=days)
    if hours:
        if minutes:
            return t("%(hours)d h %(minutes)d min", hours=hours, minutes=minutes)
        return t("%(hours)d h", hours=hours)
    return t("%(minutes)d min", minutes=minutes) if minutes else t("under a minute")


def due(t: Text, deadline: datetime | None, now: datetime) -> tuple[str, bool]:
    """Time to a deadline in words, and whether it has passed."""
    if deadline is None:
        return t("no deadline"), False
    if deadline < now:
        return t("overdue by %(span)s", span=span(t, now - deadline)), True
    return t("in %(span)s", span=span(t, deadline - now)), False


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


def _address(t: Text, match: ContactMatch, past_checked: bool) -> tuple[str, str]:
    no_match = (
        t("not an address of this account")
        if past_checked
        else t(
            "not the account's current address (the directory keeps no former addresses: "
            "an old one cannot be recognised)"
        )
    )
    if match is ContactMatch.CURRENT:
        return "matched", t("the account's current address")
    if match is ContactMatch.PAST:
        return "matched", t("an address the account had before")
    if match is ContactMatch.NO_MATCH:
        return "not matched", no_match
    return "not given", t("the claimant did not give one")


RESULTS = {"matched": N_("matched"), "not matched": N_("not matched"), "not given": N_("not given")}


def evidence_checks(t: Text, evidence: Evidence) -> list[dict[str, str]]:
    """Each check as matched / not matched / not given (`result`, for the style; `said`, in
    words), with a word on it (never what the claimant typed: the case holds results only)."""
    given, matched = evidence.passwords_given, evidence.passwords_matched
    if given == 0:
        passwords = ("not given", t("the claimant remembered none"))
    elif matched and not evidence.previous_passwords_checked:
        passwords = ("matched", t("the account's current password"))
    elif matched:
        passwords = (
            "matched",
            t(
                "%(matched)d of %(given)d among the account's recent passwords",
                matched=matched,
                given=given,
            ),
        )
    elif evidence.previous_passwords_checked:
        passwords = ("not matched", t("none of the %(given)d given", given=given))
    else:
        passwords = (
            "not matched",
            t(
                "none of the %(given)d given is the current password (the directory keeps no "
                "readable history: an older one cannot be recognised)",
                given=given,
            ),
        )
    past = evidence.past_addresses_checked
    email = _address(t, evidence.registered_email, past)
    phone = _address(t, evidence.registered_phone, past)
    checks = [
        (N_("A previous password"), passwords),
        (N_("A registered email address"), email),
        (N_("A registered phone number"), phone),
    ]
    if evidence.wrote_from_account_email is not None:
        checks.append(
            (
                N_("The claim's mail, at the account's email address"),
                ("matched", t("the claimant wrote from it and reads its mail"))
                if evidence.wrote_from_account_email
                else ("not matched", t("the claimant wrote from another address")),
            )
        )
    return [
        {"check": t(check), "result": result, "said": t(RESULTS[result]), "detail": detail}
        for check, (result, detail) in checks
    ]


def risk_reason(t: Text, evidence: Evidence) -> str:
    """Why the evidence made this risk (the rule of reclaim/support/evidence.py)."""
    if not evidence.account_found:
        return t("High: no account has this username, so there is nothing to give back.")
    known = (ContactMatch.CURRENT, ContactMatch.PAST)
    password = evidence.passwords_matched > 0
    addresses = (evidence.registered_email in known) + (evidence.registered_phone in known)
    if password and addresses:
        return t("Low: a previous password and a registered address matched.")
    if password:
        return t("Medium: a previous password matched, no registered address did.")
    if addresses:
        return t("Medium: a registered address matched, no previous password did.")
    return t("High: neither a previous password nor a registered address matched.")


def refusal(t: Text, error: DomainError, view: ClaimView | None = None) -> Problem:
    """A service's refusal as the sentence the reviewer reads where they acted. The service's
    own explanation (`error.message`, in English) follows the console's translated words."""
    if isinstance(error, NotFound):
        return Problem(t("No claim has this reference."), status=404)
    if isinstance(error, Unavailable):
        return Problem(t("%(why)s Nothing was done.", why=error.message), status=503)
    if isinstance(error, Unauthorized):
        return Problem(said(t, error), status=401)
    assert isinstance(error, Refused)
    code = error.code
    if code == "invalid_state":
        state = str(error.details.get("state") or (view.state.value if view else ""))
        if state and not ClaimState(state).is_open:
            return Problem(
                t("Already decided: this claim is %(state)s.", state=state_words(t, state).lower())
            )
        if state == "awaiting_confirmation":
            return Problem(
                t(
                    "An approval of this claim is waiting for a supervisor's confirmation: a "
                    "supervisor confirms it or rejects the claim."
                )
            )
        if state == "submitted":
            return Problem(t("Nobody has taken this claim yet: assign it to yourself first."))
        return Problem(t("Not now: the claim is %(state)s.", state=state_words(t, state).lower()))
    if code == "not_assignee":
        return Problem(t("You are not the assignee. %(why)s", why=error.message), status=403)
    if code == "supervisor_required":
        return Problem(t("This needs a supervisor. %(why)s", why=error.message), status=403)
    if code == "same_person":
        return Problem(t("Two people are needed. %(why)s", why=error.message), status=403)
    if code == "cannot_resolve":
        return Problem(t("The approval cannot be applied: %(why)s", why=error.message))
    if code == "unknown_assignee":
        return Problem(error.message, "to", status=422)
    return Problem(said(t, error), status=422)


def plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value
