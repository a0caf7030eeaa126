"""The words people read in their mail and on their phone, in the language of the request that
caused them (`reclaim.i18n.Text`).

Each message has a plain-text and an HTML body for email and a short body for SMS. Every page
a message mentions is a link to a page Reclaim serves (`Links`). A code SMS ends with the
WebOTP line (`@<domain> #<code>`) so a browser can offer to fill the code in. A code's message
also links to the case with the code's proof, an unguessable twin of the code that works
however many codes strangers typed for the account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from urllib.parse import quote

from reclaim.i18n import Text


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    sms: str


@dataclass(frozen=True)
class Links:
    """The pages a message may send someone to, under the public URL."""

    public_url: str
    support_url: str | None = None  # RECLAIM_SUPPORT_URL, when support is elsewhere

    @property
    def base(self) -> str:
        return self.public_url.rstrip("/")

    def recover(self) -> str:
        return f"{self.base}/recover"

    def case(self, case_id: str, proof: str | None = None) -> str:
        """A recovery case's page; with the code's `proof`, the page keeps it in a cookie,
        takes it out of the address and offers to continue without typing the code."""
        return f"{self.base}/recover/{case_id}" + (
            f"?proof={quote(proof, safe='')}" if proof else ""
        )

    def stop(self, case_id: str, token: str) -> str:
        """The "Wasn't you? Stop it" page of a held recovery, signed for one recipient."""
        return f"{self.base}/stop/{case_id}?token={quote(token, safe='')}"

    def sign_in(self) -> str:
        return f"{self.base}/signin"

    def support(self, reason: str | None = None) -> str:
        if self.support_url:
            return self.support_url
        return f"{self.base}/support" + (f"?reason={reason}" if reason else "")

    def console_case(self, case_id: str) -> str:
        """A claim's case file in the support console (staff sign in there)."""
        return f"{self.base}/console/cases/{case_id}"

    def claim(self, case_id: str, token: str | None = None) -> str:
        """A claim's status page; with the claim token, the page keeps it in a cookie and
        takes it out of the address."""
        return f"{self.base}/support/claims/{case_id}" + (
            f"?token={quote(token, safe='')}" if token else ""
        )


def _html(title: str, paragraphs: list[str], code: str | None = None) -> str:
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


def _link(url: str, label: str) -> str:
    return f'<a href="{escape(url)}">{escape(label)}</a>'


def _message(
    title: str,
    paragraphs: list[tuple[str, str | None]],
    sms: str,
    *,
    code: str | None = None,
    text_code: bool = False,
) -> Message:
    """A message from paragraphs, each with the link it ends with (or None)."""
    text_parts: list[str] = []
    html_parts: list[str] = []
    for paragraph, url in paragraphs:
        if not paragraph:
            continue
        text_parts.append(f"{paragraph}\n{url}" if url else paragraph)
        html_parts.append(f"{escape(paragraph)}<br>{_link(url, url)}" if url else escape(paragraph))
    if text_code and code:
        text_parts.insert(1, f"    {code}")
    return Message(
        subject=title,
        text="\n\n".join(text_parts) + "\n",
        html=_html(title, html_parts, code=code),
        sms=sms,
    )


def recovery_code(
    t: Text,
    *,
    product: str,
    code: str,
    valid_for_seconds: float,
    webotp_domain: str,
    links: Links,
    case_id: str,
    proof: str,
) -> Message:
    lifetime = t.duration(valid_for_seconds)
    link = links.case(case_id, proof)
    title = t("Your %(product)s recovery code", product=product)
    first = t(
        "Use this code to get back into your %(product)s account. It expires in %(lifetime)s.",
        product=product,
        lifetime=lifetime,
    )
    page = t("Or open this page to continue without typing the code:")
    ignore = t(
        "If you did not ask to recover your account, ignore this message: nothing changes "
        "unless someone enters this code. Never share it; we will never ask you for it."
    )
    sms = t(
        "%(code)s is your %(product)s recovery code. It expires in %(lifetime)s. Don't share it.",
        code=code,
        product=product,
        lifetime=lifetime,
    )
    return _message(
        title,
        [(first, None), (page, link), (ignore, None)],
        f"{sms}\n{link}\n\n@{webotp_domain} #{code}",
        code=code,
        text_code=True,
    )


def no_account(t: Text, *, product: str, links: Links) -> Message:
    title = t("%(product)s account recovery", product=product)
    first = t(
        "Someone asked to recover a %(product)s account with this address, but no account uses it.",
        product=product,
    )
    second = t(
        "If it was you, you may have signed up with another email address, phone number or "
        "username: try those."
    )
    third = t("If it was not you, ignore this message.")
    return _message(
        title,
        [(first, None), (second, links.recover()), (third, None)],
        t(
            "%(product)s: someone asked to recover an account with this number, but none uses "
            "it. If it wasn't you, ignore this.",
            product=product,
        ),
    )


def password_changed(
    t: Text,
    *,
    product: str,
    username: str,
    at: datetime,
    links: Links,
    recovery_codes_left: int | None = None,
) -> Message:
    when = t.moment(at)
    title = t("Your %(product)s password was changed", product=product)
    first = t(
        "The password of the %(product)s account %(username)s was changed on %(when)s through "
        "account recovery, and every device signed in was signed out.",
        product=product,
        username=username,
        when=when,
    )
    second = t("If this was you, there is nothing to do.")
    third = t(
        "If it was not, someone else has your account: ask our support team to give it back to you."
    )
    paragraphs: list[tuple[str, str | None]] = [(first, None)]
    if recovery_codes_left is not None:  # a recovery code proved the account's second factor
        paragraphs.append(
            (
                t.plural(
                    "One of your recovery codes was used for this: %(num)d is left.",
                    "One of your recovery codes was used for this: %(num)d are left.",
                    recovery_codes_left,
                )
                if recovery_codes_left
                else t(
                    "Your last recovery code was used for this: none are left. Make a new set "
                    "of recovery codes."
                ),
                None,
            )
        )
    return _message(
        title,
        [*paragraphs, (second, None), (third, links.support("compromised"))],
        t(
            "%(product)s: the password of %(username)s was changed on %(when)s. Not you? %(url)s",
            product=product,
            username=username,
            when=when,
            url=links.support("compromised"),
        ),
    )


def guessing(t: Text, *, product: str, username: str, links: Links) -> Message:
    title = t("Someone is guessing codes for your %(product)s account", product=product)
    first = t(
        "Many wrong recovery codes were typed for the %(product)s account %(username)s in the "
        "last hour. For the rest of the hour, typed codes are not checked.",
        product=product,
        username=username,
    )
    second = t(
        "If you are recovering your account, open the link in the message that brought your "
        "code: it works without typing the code."
    )
    third = t(
        "If it is not you, nothing changes: without the code nobody gets in. If you think "
        "someone else has your account, ask our support team:"
    )
    return _message(
        title,
        [(first, None), (second, None), (third, links.support("compromised"))],
        t(
            "%(product)s: many wrong codes were typed for %(username)s. Recovering it yourself? "
            "Use the link in your code's message.",
            product=product,
            username=username,
        ),
    )


def passkey_cloned(t: Text, *, product: str, username: str, name: str, links: Links) -> Message:
    title = t("A copy of your passkey was refused")
    first = t(
        "Your passkey “%(name)s” was used to recover the %(product)s account "
        "%(username)s, but its counter went back: another device holds a copy of it. We "
        "refused it.",
        name=name,
        product=product,
        username=username,
    )
    second = t(
        "Remove that passkey on your security page once you are signed in, and register it "
        "again from the device you trust. If you think someone else has your account, ask our "
        "support team:"
    )
    return _message(
        title,
        [(first, None), (second, links.support("compromised"))],
        t(
            "%(product)s: a copy of your passkey %(name)s was refused for %(username)s. Remove "
            "it on your security page.",
            product=product,
            name=name,
            username=username,
        ),
    )


def recovery_held(
    t: Text,
    *,
    product: str,
    username: str,
    until: datetime,
    stop_url: str,
    new_contact: str | None = None,
    removes_factors: bool = False,
) -> Message:
    """`new_contact`: the (masked) address an approved support claim moves the account to when
    the hold ends, replacing this one and any phone number. `removes_factors`: an approved
    lost-authenticator claim's recovery, which removes second factors when the hold ends."""
    when = t.moment(until)
    title = t("Someone is recovering your %(product)s account", product=product)
    if removes_factors:
        first = t(
            "After a support claim about lost second factors, someone is recovering the "
            "%(product)s account %(username)s and chose a new password. On %(when)s the new "
            "password takes effect and second factors of the account are removed.",
            product=product,
            username=username,
            when=when,
        )
        third = t(
            "If it was not, stop it now: the account keeps its password and its second "
            "factors, every device is signed out, and our support team looks into it."
        )
        sms = t(
            "%(product)s: after a support claim, %(username)s gets a new password and loses "
            "second factors on %(when)s. Not you? Stop it: %(url)s",
            product=product,
            username=username,
            when=when,
            url=stop_url,
        )
    elif new_contact is None:
        first = t(
            "Someone is recovering the %(product)s account %(username)s and chose a new "
            "password. As the account's contact details changed recently, it takes effect only "
            "on %(when)s.",
            product=product,
            username=username,
            when=when,
        )
        third = t(
            "If it was not, stop it now: the new password never takes effect, every device is "
            "signed out, and our support team looks into it."
        )
        sms = t(
            "%(product)s: a new password for %(username)s takes effect on %(when)s. "
            "Not you? Stop it: %(url)s",
            product=product,
            username=username,
            when=when,
            url=stop_url,
        )
    else:
        first = t(
            "After a support claim, someone is recovering the %(product)s account %(username)s "
            "and chose a new password. On %(when)s the account will receive its mail at "
            "%(contact)s instead: this address (and any phone number) will no longer belong to "
            "it, and the new password will take effect.",
            product=product,
            username=username,
            when=when,
            contact=new_contact,
        )
        third = t(
            "If it was not, stop it now: the account keeps its contact details, the new "
            "password never takes effect, every device is signed out, and our support team "
            "looks into it."
        )
        sms = t(
            "%(product)s: after a support claim, %(username)s moves to %(contact)s with a new "
            "password on %(when)s. Not you? Stop it: %(url)s",
            product=product,
            username=username,
            contact=new_contact,
            when=when,
            url=stop_url,
        )
    second = t("If this was you, there is nothing to do.")
    return _message(title, [(first, None), (second, None), (third, stop_url)], sms)


def account_deactivated(
    t: Text, *, product: str, username: str, purge_at: datetime, links: Links
) -> Message:
    title = t("Your %(product)s account is deactivated", product=product)
    first = t(
        "The %(product)s account %(username)s was deactivated and every device was signed "
        "out. It will be deleted for good on %(when)s.",
        product=product,
        username=username,
        when=t.moment(purge_at),
    )
    second = t("Changed your mind? Sign in before then and it stays as it was:")
    third = t("If you did not ask for this, recover your account now:")
    return _message(
        title,
        [(first, None), (second, links.sign_in()), (third, links.recover())],
        t(
            "%(product)s: %(username)s was deactivated and will be deleted on %(when)s. Sign "
            "in before then to keep it: %(url)s",
            product=product,
            username=username,
            when=t.day(purge_at),
            url=links.sign_in(),
        ),
    )


def banned(
    t: Text,
    *,
    product: str,
    username: str,
    until: datetime | None,
    reason: str | None,
    links: Links,
) -> Message:
    """The answer to a recovery attempt on a banned account: no code, but why and until when."""
    title = t("Your %(product)s account is suspended", product=product)
    end = t("until %(when)s", when=t.moment(until)) if until else t("until further notice")
    first = t(
        "Someone asked to recover the %(product)s account %(username)s. This account is "
        "suspended %(end)s, so no recovery code was sent.",
        product=product,
        username=username,
        end=end,
    )
    why = t("Reason given: %(reason)s", reason=reason) if reason else ""
    appeal = t("If you think this is a mistake, you can appeal: a person will review your request.")
    return _message(
        title,
        [(first, None), (why, None), (appeal, links.support("banned"))],
        t(
            "%(product)s: %(username)s is suspended %(end)s; no code was sent. Appeal: %(url)s",
            product=product,
            username=username,
            end=end,
            url=links.support("banned"),
        ),
    )


def ban_ended(t: Text, *, product: str, username: str, links: Links) -> Message:
    title = t("Your %(product)s account is available again", product=product)
    first = t(
        "The suspension of the %(product)s account %(username)s is over.",
        product=product,
        username=username,
    )
    second = t("You can sign in again:")
    return _message(
        title,
        [(first, None), (second, links.sign_in())],
        t(
            "%(product)s: the suspension of %(username)s is over. You can sign in again: %(url)s",
            product=product,
            username=username,
            url=links.sign_in(),
        ),
    )


def claim_received(
    t: Text, *, product: str, case_id: str, claim_token: str, links: Links
) -> Message:
    first = t(
        "Your claim %(case_id)s is with our support team. A person will review it; it usually "
        "takes a few days. We will write to this address at every step.",
        case_id=case_id,
    )
    follow = t(
        "Follow your claim and answer questions on this page (the link holds your claim "
        "token: keep this mail private):"
    )
    token = t("If the page asks for your claim token, it is: %(token)s", token=claim_token)
    return _message(
        t(
            "We received your %(product)s support claim %(case_id)s",
            product=product,
            case_id=case_id,
        ),
        [(first, None), (follow, links.claim(case_id, claim_token)), (token, None)],
        t("%(product)s: support claim %(case_id)s received.", product=product, case_id=case_id),
    )


def claim_question(t: Text, *, product: str, case_id: str, questions: str, links: Links) -> Message:
    return _message(
        t(
            "A question about your %(product)s support claim %(case_id)s",
            product=product,
            case_id=case_id,
        ),
        [
            (t("The reviewer of your claim needs to know more:"), None),
            (questions, None),
            (
                t(
                    "Answer on your claim's page (with your claim token, from our first mail). "
                    "Without an answer, the claim closes after a while."
                ),
                links.claim(case_id),
            ),
        ],
        t(
            "%(product)s: a question about claim %(case_id)s: %(url)s",
            product=product,
            case_id=case_id,
            url=links.claim(case_id),
        ),
    )


def claim_decided(
    t: Text,
    *,
    product: str,
    case_id: str,
    approved: bool,
    note: str | None,
    recovery_case_id: str | None,
    links: Links,
) -> Message:
    if approved:
        first = t("Your support claim %(case_id)s was approved.", case_id=case_id)
        next_step: tuple[str, str | None] = (
            (
                t(
                    "A recovery code is on its way to this address. Open this page and enter "
                    "it to choose a new password:"
                ),
                links.case(recovery_case_id),
            )
            if recovery_case_id
            else (t("You can sign in again:"), links.sign_in())
        )
        title = t(
            "Your %(product)s support claim %(case_id)s: approved", product=product, case_id=case_id
        )
        sms = t("%(product)s: claim %(case_id)s approved.", product=product, case_id=case_id)
    else:
        first = t("Your support claim %(case_id)s was not approved.", case_id=case_id)
        next_step = (t("You may file a new claim with more evidence:"), links.support())
        title = t(
            "Your %(product)s support claim %(case_id)s: declined", product=product, case_id=case_id
        )
        sms = t("%(product)s: claim %(case_id)s declined.", product=product, case_id=case_id)
    said = t("The reviewer wrote: %(note)s", note=note) if note else ""
    return _message(title, [(first, None), (said, None), next_step], sms)


def claim_abandoned(t: Text, *, product: str, case_id: str, links: Links) -> Message:
    return _message(
        t(
            "Your %(product)s support claim %(case_id)s was closed",
            product=product,
            case_id=case_id,
        ),
        [
            (
                t(
                    "Your claim %(case_id)s waited for an answer for too long and was closed.",
                    case_id=case_id,
                ),
                None,
            ),
            (t("You may file a new claim at any time:"), links.support()),
        ],
        t(
            "%(product)s: claim %(case_id)s closed without an answer.",
            product=product,
            case_id=case_id,
        ),
    )


def claim_cancelled(
    t: Text, *, product: str, case_id: str, reason: str | None, links: Links
) -> Message:
    return _message(
        t(
            "Your %(product)s support claim %(case_id)s was closed",
            product=product,
            case_id=case_id,
        ),
        [
            (
                t(
                    "Your claim %(case_id)s was closed by our support team without a decision.",
                    case_id=case_id,
                ),
                None,
            ),
            (t("The reason given: %(reason)s", reason=reason) if reason else "", None),
            (t("You may file a new claim at any time:"), links.support()),
        ],
        t("%(product)s: claim %(case_id)s closed by support.", product=product, case_id=case_id),
    )


def contact_replaced(
    t: Text, *, product: str, username: str, new_contact: str, links: Links
) -> Message:
    return _message(
        t("Your %(product)s account's contact details were changed", product=product),
        [
            (
                t(
                    "After a support claim, the %(product)s account %(username)s now receives "
                    "its mail at %(contact)s, and this address (and any phone number) no longer "
                    "belongs to it.",
                    product=product,
                    username=username,
                    contact=new_contact,
                ),
                None,
            ),
            (
                t("If you did not ask for this, tell our support team at once:"),
                links.support("compromised"),
            ),
        ],
        t(
            "%(product)s: the contact details of %(username)s were changed after a support "
            "claim. Not you? %(url)s",
            product=product,
            username=username,
            url=links.support("compromised"),
        ),
    )


def handover_failed(t: Text, *, product: str, case_id: str, links: Links) -> Message:
    """To the claimant: when the hold of an approved claim's recovery ended, the account could
    not move to their address. Nothing changed."""
    return _message(
        t(
            "Your %(product)s support claim %(case_id)s could not be completed",
            product=product,
            case_id=case_id,
        ),
        [
            (
                t(
                    "Your claim %(case_id)s was approved, but when the waiting period ended the "
                    "account could not be moved to this address (another account uses it now, "
                    "or the account was closed). Nothing was changed and the new password did "
                    "not take effect.",
                    case_id=case_id,
                ),
                None,
            ),
            (t("You may file a new claim at any time:"), links.support()),
        ],
        t(
            "%(product)s: claim %(case_id)s could not be completed; nothing was changed.",
            product=product,
            case_id=case_id,
        ),
    )


def claim_escalated(t: Text, *, product: str, case_id: str, level: str, links: Links) -> Message:
    """To the support leads (RECLAIM_ESCALATION_EMAIL), in the deployment's language
    (RECLAIM_DEFAULT_LOCALE): a claim missed its SLA; the link opens its case file in the
    console."""
    what = {
        "first_response": t("nobody picked it up within the first-response SLA"),
        "decision": t("no decision was made within the decision SLA"),
    }.get(level, level)
    deadline = {"first_response": t("first response"), "decision": t("decision")}.get(level, level)
    return _message(
        t("[%(product)s] support claim %(case_id)s escalated", product=product, case_id=case_id),
        [
            (t("Claim %(case_id)s is escalated: %(what)s.", case_id=case_id, what=what), None),
            (t("Its case file in the support console:"), links.console_case(case_id)),
        ],
        t(
            "%(product)s: claim %(case_id)s escalated (%(level)s).",
            product=product,
            case_id=case_id,
            level=deadline,
        )
        + f" {links.console_case(case_id)}",
    )


# What changed in `factors_changed`, said in the holder's language.
FACTOR_CHANGES = (
    "totp_added",
    "totp_replaced",
    "totp_removed",
    "codes_created",
    "codes_replaced",
    "codes_removed",
    "passkey_added",
    "passkey_removed",
)


def _factor_change(t: Text, change: str) -> str:
    said = {
        "totp_added": t("an authenticator app was added as a second factor"),
        "totp_replaced": t(
            "the authenticator app was replaced: codes from the old one no longer work"
        ),
        "totp_removed": t("the authenticator app was removed as a second factor"),
        "codes_created": t("a set of ten recovery codes was created"),
        "codes_replaced": t(
            "a new set of ten recovery codes was created: the old codes no longer work"
        ),
        "codes_removed": t("the recovery codes were removed: none of them works any more"),
        "passkey_added": t("a passkey was added as a second factor"),
        "passkey_removed": t("a passkey was removed: it no longer works for this account"),
    }
    return said[change]


def factors_changed(
    t: Text, *, product: str, username: str, change: str, at: datetime, links: Links
) -> Message:
    """The account's second factors changed on its security page (`change`, one of
    `FACTOR_CHANGES`): what, when, and what to do if it was not its holder."""
    when = t.moment(at)
    what = _factor_change(t, change)
    return _message(
        t("The second factors of your %(product)s account changed", product=product),
        [
            (
                t(
                    "On %(when)s, on the security page of the %(product)s account %(username)s, "
                    "%(change)s.",
                    when=when,
                    product=product,
                    username=username,
                    change=what,
                ),
                None,
            ),
            (t("If this was you, there is nothing to do."), None),
            (
                t(
                    "If it was not, someone else is signed in to your account: change your "
                    "password now through account recovery, and tell our support team."
                ),
                links.recover(),
            ),
        ],
        t(
            "%(product)s: the second factors of %(username)s changed on %(when)s. Not you? %(url)s",
            product=product,
            username=username,
            when=when,
            url=links.recover(),
        ),
    )


def factors_removed(
    t: Text, *, product: str, username: str, removed: list[str], at: datetime, links: Links
) -> Message:
    """To every contact: the held recovery an approved lost-authenticator claim opened took
    effect, and these second factors (`removed`: `totp`, `recovery_code`, a passkey's name, or
    `webauthn` for a passkey without one) were removed with it."""
    said = [
        _factor_change(t, "totp_removed")
        if kind == "totp"
        else _factor_change(t, "codes_removed")
        if kind == "recovery_code"
        else _factor_change(t, "passkey_removed")
        if kind == "webauthn"
        else t("the passkey “%(name)s” was removed", name=kind)
        for kind in removed
    ]
    when = t.moment(at)
    return _message(
        t("Second factors removed from your %(product)s account", product=product),
        [
            (
                t(
                    "After a support claim about lost second factors, the new password of the "
                    "%(product)s account %(username)s took effect on %(when)s, and %(changes)s.",
                    product=product,
                    username=username,
                    when=when,
                    changes="; ".join(said),
                ),
                None,
            ),
            (t("Once signed in, add a second factor again on your security page."), None),
            (
                t("If you did not ask for this, tell our support team at once:"),
                links.support("compromised"),
            ),
        ],
        t(
            "%(product)s: second factors of %(username)s removed after a support claim. "
            "Not you? %(url)s",
            product=product,
            username=username,
            url=links.support("compromised"),
        ),
    )
