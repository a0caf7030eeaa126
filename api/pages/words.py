"""What a refusal means to the person reading the page, and what to do next, in their
language. The services refuse with stable codes (`reclaim.errors.Refused.code`); these are the
sentences the pages put in their place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reclaim.errors import DomainError, NotFound, Refused, Unauthorized, Unavailable
from reclaim.i18n import Text


@dataclass(frozen=True)
class Problem:
    """A sentence for the person, the field it is about (if any), and a next step."""

    message: str
    field: str | None = None
    start_again: bool = False  # the next step is a new request
    at_field: str | None = None  # the field's shorter message, when the summary says more


def minutes(t: Text, seconds: int) -> str:
    return t.duration(seconds)


def problem(t: Text, error: DomainError) -> Problem:
    if isinstance(error, Unavailable):
        return Problem(t("We cannot answer right now. Try again in a few seconds."))
    if isinstance(error, NotFound):
        return Problem(t("This link does not open anything any more. Start again."), None, True)
    if isinstance(error, Unauthorized):
        return Problem(t("This is not the right key for this page."))
    assert isinstance(error, Refused)
    details: dict[str, Any] = error.details
    code = error.code
    if code == "invalid_identifier":
        return Problem(
            t("Enter the email address, phone number or username of your account."),
            "identifier",
        )
    if code == "rate_limited":
        wait = int(details.get("retry_after_seconds") or 60)
        return Problem(
            t(
                "There were too many requests for this account. Try again in %(wait)s.",
                wait=minutes(t, wait),
            )
        )
    if code == "challenge_required":
        wait = int(details.get("retry_after_seconds") or 60)
        return Problem(
            t(
                "There were many requests for this account. Try again in %(wait)s, at %(when)s.",
                wait=minutes(t, wait),
                when=t.moment(datetime.now(UTC) + timedelta(seconds=wait)),
            )
        )
    if code == "invalid_code":
        left = int(details.get("attempts_left") or 0)
        return Problem(
            t.plural(
                "That code is not right. You have %(num)d try left.",
                "That code is not right. You have %(num)d tries left.",
                left,
            ),
            "code",
            at_field=t("That code is not right."),
        )
    if code == "invalid_link":
        return Problem(
            t(
                "This link does not work (it is incomplete, or a newer message replaced it): "
                "open the link in the latest message, or type its code."
            ),
            None,
        )
    if code == "code_expired":
        return Problem(t("This code has expired. Ask for a new one below."), "code")
    if code == "code_replaced":
        sent = details.get("sent_at")
        when = t.moment(datetime.fromisoformat(sent)) if isinstance(sent, str) else None
        return Problem(
            t("We sent a newer code on %(when)s: type the code from the latest message.", when=when)
            if when
            else t("We sent a newer code: type the code from the latest message."),
            "code",
            at_field=t("A newer code replaced this one."),
        )
    if code == "replaced_link":
        return Problem(
            t(
                "A newer message replaced this one: open the link in the latest message, "
                "or type its code."
            ),
            None,
        )
    if code == "case_locked":
        return Problem(t("Too many wrong codes: this request is locked. Start again."), None, True)
    if code == "resend_cooldown":
        wait = int(details.get("retry_after_seconds") or 60)
        return Problem(t("Wait %(wait)s before asking for another code.", wait=minutes(t, wait)))
    if code == "resend_limit":
        return Problem(
            t("No more codes can be sent for this request. Start again later."), None, True
        )
    if code in ("invalid_token", "reset_expired"):
        return Problem(t("The time to choose a new password ran out. Start again."), None, True)
    if code == "token_used":
        changed = details.get("changed_at")
        if changed:
            when = t.moment(datetime.fromisoformat(changed))
            return Problem(
                t(
                    "Your password was already changed on %(when)s: this one was not saved.",
                    when=when,
                )
            )
        return Problem(t("Your password was already changed: this one was not saved."))
    if code == "weak_password":
        reasons = [REASONS[r](t) for r in details.get("reasons", []) if r in REASONS]
        return Problem(" ".join(reasons) or t("Choose a stronger password."), "password")
    if code == "password_reused":
        return Problem(
            t("You used this password before on this account: choose a new one."), "password"
        )
    if code == "invalid_state":
        return Problem(t("This request cannot do that any more. Start again."), None, True)
    if code == "invalid_request":
        fields = details.get("fields") or [{}]
        return Problem(
            t("Check this field: it is not valid."), str(fields[0].get("field") or "") or None
        )
    if code == "account_banned":
        return Problem(t("This account is suspended."))
    return Problem(error.message)


REASONS = {
    "too_short": lambda t: t("Use at least 8 characters."),
    "too_long": lambda t: t("Use at most 128 characters."),
    "contains_username": lambda t: t("Do not put your username in it."),
    "contains_email": lambda t: t("Do not put your email address in it."),
    "too_guessable": lambda t: t(
        "It is too easy to guess: add another word or two; uncommon words are better."
    ),
}
