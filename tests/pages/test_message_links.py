"""Every link in every message Reclaim sends opens a page that works and does what the message
says. The messages are the real ones, sent by real cases of every kind to the test's SMTP
sink and SMS gateway; each URL in them is then opened by someone with a fresh browser."""

from __future__ import annotations

import re

from reclaim.contracts import Actor, ActorKind
from reclaim.lifecycle.contracts import LifecycleStatus
from reclaim.notify.outbox import text_of
from tests.codes import wrong_codes
from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.pages.people import Person
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

PASSWORD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
OPERATOR = Actor(ActorKind.OPERATOR, "olivia")
URL = re.compile(r"https://reclaim\.example[^\s<>\"]*")
# What the page a link opens must say, by the kind of link.
CASE_PAGES = (
    "Enter your code",
    "Your password is changed",
    "This request is over",
    "Your new password is on hold",
)
PAGES = [
    (re.compile(r"^/recover/rc_[\w-]{22}(\?proof=[\w-]{43})?$"), CASE_PAGES),
    (
        re.compile(r"^/stop/rc_[\w-]{22}\?token=[\w-]{43}$"),
        ("Wasn&#39;t you?", "Wasn't you?", "already took effect"),
    ),
    (re.compile(r"^/recover$"), ("Forgot your password?",)),
    (re.compile(r"^/signin$"), ("Sign in",)),
    (re.compile(r"^/support(\?reason=\w+)?$"), ("Ask our support team",)),
    (re.compile(r"^/support/claims/sc_[\w-]{22}\?token=[\w%-]+$"), ("Your support claim",)),
    (re.compile(r"^/support/claims/sc_[\w-]{22}$"), ("Open your support claim",)),
]  # fmt: skip


async def _staff(stack: Stack, key: str, path: str, body: dict[str, object]) -> None:
    response = await stack.http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 202, response.text


async def _claim(stack: Stack, username: str, contact: str, reason: str) -> tuple[str, str]:
    filed = await stack.http.post(
        "/v1/support-cases",
        json={"username": username, "contact_email": contact, "reason": reason},
    )
    assert filed.status_code == 202, filed.text
    return filed.json()["case_id"], filed.json()["claim_token"]


async def _every_kind_of_message(stack: Stack) -> None:
    """Cases of every kind, played until each kind of message has gone out."""
    await stack.add_account("jane", "jane@example.com", "+14155550123", PASSWORD)
    joe = await stack.add_account("joe", "joe@example.com", None, PASSWORD)
    ann = await stack.add_account("ann", "ann@example.com", None, PASSWORD)
    await stack.add_account("kim", "kim@example.com", "+14155550188", PASSWORD)
    await stack.add_account("lee", "lee@example.com", None, PASSWORD)
    _, key = await stack.services.staff_members.add_staff("sam", "supervisor")

    case = await stack.open_case("jane@example.com")  # the code, then password changed
    code = await stack.mail.code_for("jane@example.com")
    token = (
        await stack.http.post(f"/v1/recovery/{case['case_id']}/code", json={"code": code})
    ).json()["reset_token"]
    await stack.http.post(
        f"/v1/recovery/{case['case_id']}/password", json={"reset_token": token, "new_password": NEW}
    )
    await stack.open_case("+14155550123")  # a code by SMS
    await stack.open_case("nobody@example.com")  # no account here
    ban = await stack.services.lifecycle.ban(ann, "spam", OPERATOR)
    assert isinstance(ban, LifecycleStatus)
    await stack.open_case("ann@example.com")  # banned: why, and how to appeal
    await stack.mail.wait_for(lambda m: m["To"] == "ann@example.com")
    await stack.services.lifecycle.unban(ann, OPERATOR)  # the ban is over
    await stack.services.lifecycle.deactivate(joe, OPERATOR)  # deactivated, purge scheduled

    approved, _ = await _claim(stack, "kim", "kim.new@example.net", "lost_contact")
    await _staff(stack, key, f"/v1/staff/cases/{approved}/assign", {})
    await _staff(stack, key, f"/v1/staff/cases/{approved}/request-info", {"questions": ["Why?"]})
    decided = await stack.http.post(
        f"/v1/staff/cases/{approved}/approve", headers={"Authorization": f"Bearer {key}"}
    )  # the new password held, the old contacts told with a link to stop it
    held = decided.json()["decision"]["recovery_case_id"]
    kim_code = await stack.mail.code_for("kim.new@example.net")
    kim_token = (
        await stack.http.post(f"/v1/recovery/{held}/code", json={"code": kim_code})
    ).json()["reset_token"]
    await stack.http.post(
        f"/v1/recovery/{held}/password", json={"reset_token": kim_token, "new_password": NEW}
    )
    # Another claim's hold ends: its old addresses are told they were replaced (its stop
    # link then says the recovery already took effect).
    await stack.add_account("max", "max@example.com", "+14155550177", PASSWORD)
    await stack.handed_over("max", "max.new@example.net", "lost_contact")
    guessed = (await stack.open_case("lee@example.com"))["case_id"]  # someone is guessing
    lee_code = await stack.mail.code_for("lee@example.com")
    for wrong in wrong_codes(lee_code, 3):  # the budget (2 an hour here) and one more
        await stack.http.post(f"/v1/recovery/{guessed}/code", json={"code": wrong})
    rejected, _ = await _claim(stack, "jane", "someone@example.net", "compromised")
    await _staff(stack, key, f"/v1/staff/cases/{rejected}/assign", {})
    await _staff(stack, key, f"/v1/staff/cases/{rejected}/reject", {"reason": "No evidence."})
    cancelled, _ = await _claim(stack, "joe", "joe.new@example.net", "deleted")
    await stack.services.cancel_case(cancelled, OPERATOR, "duplicate")
    abandoned, _ = await _claim(stack, "ann", "ann.new@example.net", "banned")
    await _staff(stack, key, f"/v1/staff/cases/{abandoned}/assign", {})
    await _staff(stack, key, f"/v1/staff/cases/{abandoned}/request-info", {"questions": ["When?"]})

    for address, subject in (
        ("jane@example.com", "password was changed"),
        ("nobody@example.com", "account recovery"),
        ("ann@example.com", "available again"),
        ("joe@example.com", "deactivated"),
        ("max@example.com", "contact details"),
        ("kim.new@example.net", "recovery code"),
        ("kim@example.com", "recovering"),
        ("lee@example.com", "guessing"),
        ("someone@example.net", "declined"),
        ("joe.new@example.net", "was closed"),
        ("ann.new@example.net", "was closed"),  # abandoned: nobody answered in time
    ):
        await stack.mail.wait_for(
            lambda m, a=address, s=subject: m["To"] == a and s in m["Subject"], timeout=30
        )
    await stack.sms.wait_for("+14155550177", "contact details")
    await stack.sms.wait_for("+14155550188", "Stop it")


async def test_every_link_in_every_message_opens_a_page_that_works(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway
):
    settings, engine = stack_parts(claimant_window=3, guesses_per_hour=2)
    async with running_stack(settings, engine, mail, sms) as stack:
        await _every_kind_of_message(stack)
        bodies = [text_of(m) for m in mail.messages] + [m["body"] for m in sms.messages]
        links = sorted({url for body in bodies for url in URL.findall(body)})
        kinds = {
            next(i for i, (shape, _) in enumerate(PAGES) if shape.match(_path(u))) for u in links
        }

        assert kinds == set(range(len(PAGES))), links  # every kind of page is linked to
        for url in links:
            someone = Person(str(stack.http.base_url))
            try:
                response = await someone.open(_path(url).split("#", 1)[0])
                expected = next(words for shape, words in PAGES if shape.match(_path(url)))

                assert response.status_code == 200, (url, someone.text[:300])
                assert any(w in someone.text for w in expected), (url, someone.text[:300])
                if "reason=" in url:  # the support form opens on the reason the mail is about
                    reason = url.rsplit("=", 1)[1]
                    assert f'value="{reason}" checked' in someone.page, url
            finally:
                await someone.aclose()


def _kind(url: str) -> int:
    """Which of PAGES a link opens (StopIteration: a link to a page that is none of them)."""
    return next(n for n, (shape, _) in enumerate(PAGES) if shape.match(_path(url)))


def _path(url: str) -> str:
    return url.removeprefix("https://reclaim.example").rstrip(".,")
