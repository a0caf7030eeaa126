"""The words users read: recovery codes, "no account here" notices, password-changed notices.

Each message has a plain-text and an HTML body for email and a short body for SMS. A code SMS
ends with the WebOTP line (`@<domain> #<code>`) so a browser can offer to fill the code in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    sms: str


def _html(title: str, *paragraphs: str, code: str | None = None) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    code_block = (
        f'<p style="font-size:28px;font-weight:bold;letter-spacing:6px;'
        f'font-family:monospace">{escape(code)}</p>'
        if code
        else ""
    )
    return (
        f'<!doctype html><html><body style="font-family:sans-serif;max-width:520px">'
        f"<h2>{escape(title)}</h2>{code_block}{body}</body></html>"
    )


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def recovery_code(
    *, product: str, code: str, valid_for_seconds: float, webotp_domain: str
) -> Message:
    lifetime = _minutes(valid_for_seconds)
    title = f"Your {product} recovery code"
    first = f"Use this code to get back into your {product} account. It expires in {lifetime}."
    ignore = (
        "If you did not ask to recover your account, ignore this message: nothing changes "
        "unless someone enters this code. Never share it; we will never ask you for it."
    )
    return Message(
        subject=title,
        text=f"{first}\n\n    {code}\n\n{ignore}\n",
        html=_html(title, escape(first), escape(ignore), code=code),
        sms=(
            f"{code} is your {product} recovery code. It expires in {lifetime}. "
            f"Don't share it.\n\n@{webotp_domain} #{code}"
        ),
    )


def no_account(*, product: str) -> Message:
    title = f"{product} account recovery"
    first = (
        f"Someone asked to recover a {product} account with this address, but no account uses it."
    )
    second = (
        "If it was you, you may have signed up with another email address, phone number or "
        "username: try those. If it was not you, ignore this message."
    )
    return Message(
        subject=title,
        text=f"{first}\n\n{second}\n",
        html=_html(title, escape(first), escape(second)),
        sms=f"{product}: someone asked to recover an account with this number, but none uses "
        "it. If it wasn't you, ignore this.",
    )


def password_changed(*, product: str, username: str, at: datetime, public_url: str) -> Message:
    when = at.strftime("%Y-%m-%d %H:%M UTC")
    title = f"Your {product} password was changed"
    first = (
        f"The password of the {product} account {username} was changed on {when} through "
        "account recovery, and every device signed in was signed out."
    )
    second = (
        "If this was you, there is nothing to do. If it was not, someone else has your "
        f"account: recover it at {public_url} and contact support."
    )
    return Message(
        subject=title,
        text=f"{first}\n\n{second}\n",
        html=_html(title, escape(first), escape(second)),
        sms=f"{product}: the password of {username} was changed on {when}. "
        "Not you? Recover your account and contact support.",
    )


def _date(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def account_deactivated(
    *, product: str, username: str, purge_at: datetime, public_url: str
) -> Message:
    title = f"Your {product} account is deactivated"
    first = (
        f"The {product} account {username} was deactivated and every device was signed out. "
        f"It will be deleted for good on {_date(purge_at)}."
    )
    second = (
        "Changed your mind? Sign in before then (or recover the account if you cannot) and "
        f"it stays as it was: {public_url}. If you did not ask for this, recover your account "
        "now and contact support."
    )
    return Message(
        subject=title,
        text=f"{first}\n\n{second}\n",
        html=_html(title, escape(first), escape(second)),
        sms=f"{product}: {username} was deactivated and will be deleted on {_date(purge_at)}. "
        "Sign in before then to keep it.",
    )


def banned(
    *, product: str, username: str, until: datetime | None, reason: str | None, appeal_url: str
) -> Message:
    """The answer to a recovery attempt on a banned account: no code, but why and until when."""
    title = f"Your {product} account is suspended"
    end = f"until {_date(until)}" if until else "until further notice"
    first = (
        f"Someone asked to recover the {product} account {username}. This account is "
        f"suspended {end}, so no recovery code was sent."
    )
    why = f"Reason given: {reason}" if reason else ""
    appeal = (
        "If you think this is a mistake, you can appeal: open a support claim "
        f"(reason: banned) at {appeal_url}. A person will review it."
    )
    paragraphs = [p for p in (first, why, appeal) if p]
    return Message(
        subject=title,
        text="\n\n".join(paragraphs) + "\n",
        html=_html(title, *(escape(p) for p in paragraphs)),
        sms=f"{product}: {username} is suspended {end}; no code was sent. Appeal: {appeal_url}",
    )


def ban_ended(*, product: str, username: str, public_url: str) -> Message:
    title = f"Your {product} account is available again"
    first = f"The suspension of the {product} account {username} is over."
    second = f"You can sign in again at {public_url}."
    return Message(
        subject=title,
        text=f"{first}\n\n{second}\n",
        html=_html(title, escape(first), escape(second)),
        sms=f"{product}: the suspension of {username} is over. You can sign in again.",
    )


def _claim_message(title: str, paragraphs: list[str], sms: str) -> Message:
    return Message(
        subject=title,
        text="\n\n".join(paragraphs) + "\n",
        html=_html(title, *(escape(p) for p in paragraphs)),
        sms=sms,
    )


def claim_received(*, product: str, case_id: str, claim_token: str, public_url: str) -> Message:
    return _claim_message(
        f"We received your {product} support claim {case_id}",
        [
            f"Your claim {case_id} is with our support team. A person will review it; it "
            "usually takes a few days. We will write to this address at every step.",
            "To follow it or answer questions, use this claim token (keep it private: it is "
            f"the only key to your claim):\n\n    {claim_token}",
            f"Status: GET {public_url}/v1/support-cases/{case_id} with the header "
            "'Authorization: Bearer <claim token>'.",
        ],
        f"{product}: support claim {case_id} received.",
    )


def claim_question(*, product: str, case_id: str, questions: str, public_url: str) -> Message:
    return _claim_message(
        f"A question about your {product} support claim {case_id}",
        [
            "The reviewer of your claim needs to know more:",
            questions,
            f"Answer with your claim token: POST {public_url}/v1/support-cases/{case_id}/info "
            '{"answer": "..."}. Without an answer, the claim closes after a while.',
        ],
        f"{product}: a question about claim {case_id}.",
    )


def claim_decided(
    *,
    product: str,
    case_id: str,
    approved: bool,
    note: str | None,
    recovery_case_id: str | None,
    public_url: str,
) -> Message:
    if approved:
        first = f"Your support claim {case_id} was approved."
        next_step = (
            f"A recovery code is on its way to this address (recovery case {recovery_case_id}): "
            f"use it at {public_url} to choose a new password."
            if recovery_case_id
            else f"You can sign in again at {public_url}."
        )
    else:
        first = f"Your support claim {case_id} was not approved."
        next_step = "You may file a new claim with more evidence."
    said = f"The reviewer wrote: {note}" if note else ""
    return _claim_message(
        f"Your {product} support claim {case_id}: {'approved' if approved else 'declined'}",
        [p for p in (first, said, next_step) if p],
        f"{product}: claim {case_id} {'approved' if approved else 'declined'}.",
    )


def claim_abandoned(*, product: str, case_id: str) -> Message:
    return _claim_message(
        f"Your {product} support claim {case_id} was closed",
        [
            f"Your claim {case_id} waited for an answer for too long and was closed.",
            "You may file a new claim at any time.",
        ],
        f"{product}: claim {case_id} closed without an answer.",
    )


def claim_cancelled(*, product: str, case_id: str, reason: str | None) -> Message:
    said = f"The reason given: {reason}" if reason else ""
    return _claim_message(
        f"Your {product} support claim {case_id} was closed",
        [
            p
            for p in (
                f"Your claim {case_id} was closed by our support team without a decision.",
                said,
                "You may file a new claim at any time.",
            )
            if p
        ],
        f"{product}: claim {case_id} closed by support.",
    )


def contact_replaced(*, product: str, username: str, new_contact: str, public_url: str) -> Message:
    return _claim_message(
        f"Your {product} account's contact details were changed",
        [
            f"After a support claim, the {product} account {username} now receives its mail at "
            f"{new_contact}, and this address (and any phone number) no longer belongs to it.",
            f"If you did not ask for this, contact support at once: {public_url}/support.",
        ],
        f"{product}: the contact details of {username} were changed after a support claim. "
        "Not you? Contact support.",
    )


def claim_escalated(*, product: str, case_id: str, level: str) -> Message:
    what = {
        "first_response": "nobody picked it up within the first-response SLA",
        "decision": "no decision was made within the decision SLA",
    }.get(level, level)
    return _claim_message(
        f"[{product}] support claim {case_id} escalated",
        [f"Claim {case_id} is escalated: {what}."],
        f"{product}: claim {case_id} escalated ({level}).",
    )
