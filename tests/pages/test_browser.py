"""The pages in a real browser (Debian's Chromium through Playwright), as people use them: a
recovery by email and by SMS, a wrong code until the lock, a new code after its countdown, a
weak and a reused password, a support claim from the form to the new password; in two
languages; and axe-core finds no WCAG 2.1 AA violation on any page, in any state."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pyotp
import pytest
from playwright.async_api import Browser, Page, Route, expect

from reclaim.notify.outbox import text_of
from tests.codes import wrong_codes
from tests.conftest import StackParts
from tests.mailbox import MailSink
from tests.pages.browser import WORDS, accessible, needs_chromium, person
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

pytestmark = needs_chromium

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"


async def _start(page: Page, identifier: str, *, javascript: bool = True) -> None:
    await page.goto("/recover")
    if javascript:  # axe-core runs as a script in the page
        await accessible(page)
    await page.locator("#identifier").fill(identifier)
    await page.locator("button[type=submit]").first.click()
    await page.wait_for_url(re.compile(r"/recover/rc_[\w-]{22}$"))


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
async def test_a_recovery_by_email_with_a_weak_and_a_reused_password(
    stack: Stack, browser: Browser, locale: str
):
    words = WORDS[locale]
    await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
    async with person(browser, str(stack.http.base_url), locale=locale) as page:
        await page.goto("/recover")
        await expect(page.locator("html")).to_have_attribute("lang", words.lang)
        await expect(page.get_by_role("heading", level=1)).to_have_text(words.forgot)
        await accessible(page)
        await page.locator("#identifier").fill("jane@example.com")
        await page.locator("form[action='/recover'] button[type=submit]").click()

        await expect(page.get_by_text(words.by_email)).to_be_visible()
        await expect(page.locator(".destination")).to_have_text("j•••@e•••.com")
        await accessible(page)
        code = await stack.mail.code_for("jane@example.com")
        await page.get_by_label(words.code, exact=True).fill(code)
        await page.locator("form[action$='/code'] button").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text(words.choose)
        await accessible(page)
        for password, problem in (("jane1234", words.username_in_it), (OLD, words.used_before)):
            await page.locator("#password").fill(password)
            await page.locator("#confirm").fill(password)
            await page.locator("form[action$='/password'] button").click()
            await expect(page.get_by_role("alert")).to_contain_text(problem)
            await expect(page.locator("#password")).to_be_focused()
            await expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
            await accessible(page)
        await page.locator("#password").fill(NEW)
        await page.locator("#confirm").fill(NEW)
        await page.locator("form[action$='/password'] button").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text(words.changed)
        await accessible(page)
    assert (await stack.sign_in("jane", NEW)).status_code == 200


@pytest.mark.parametrize("locale", ["fr-FR", "es-ES"])
async def test_a_recovery_by_sms(stack: Stack, browser: Browser, locale: str):
    words = WORDS[locale]
    await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
    async with person(browser, str(stack.http.base_url), locale=locale) as page:
        await page.goto("/recover")
        await expect(page.get_by_role("heading", level=1)).to_have_text(words.forgot)
        await accessible(page)
        await page.locator("#identifier").fill("+1 415 555 0123")
        await page.locator("button[type=submit]").click()
        await page.wait_for_url(re.compile(r"/recover/rc_[\w-]{22}$"))
        await expect(page.get_by_text(words.by_sms)).to_be_visible()
        await expect(page.locator(".destination")).to_have_text("+1••••••••23")
        await accessible(page)
        code = await stack.sms.code_for("+14155550123")
        await page.get_by_label(words.code, exact=True).fill(code)
        await page.locator("form[action$='/code'] button").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(words.choose)
        await accessible(page)
        await page.locator("#password").fill(NEW)
        await page.locator("#confirm").fill(NEW)
        await page.locator("form[action$='/password'] button").click()
        await expect(page.locator("html")).to_have_attribute("lang", words.lang)
        await expect(page.get_by_role("heading", level=1)).to_have_text(words.changed)
        await expect(page.get_by_role("status")).to_be_visible()
        await accessible(page)
    assert (await stack.sign_in("jane", NEW)).status_code == 200
    notice = await stack.sms.wait_for("+14155550123", words.password)
    assert "jane" in notice


async def _from_a_mail(page: Page, url: str) -> None:
    """Click `url` on a page of another site (a webmail): the browser then sends no
    SameSite=Strict cookie, as when someone clicks a link in their mail."""
    await page.set_content(f'<a href="{url}">the link</a>')
    await page.get_by_role("link", name="the link").click()


def _on_the_stack(stack: Stack, url: str) -> str:
    return str(stack.http.base_url).rstrip("/") + url.removeprefix(stack.settings.public_url)


async def test_the_link_in_the_code_mail_continues_without_typing_the_code(
    stack: Stack, browser: Browser
):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    case_id = (await stack.open_case("jane@example.com"))["case_id"]
    mail = await stack.mail.wait_for(lambda m: m["To"] == "jane@example.com")
    link = re.search(rf"https://\S+/recover/{case_id}\?proof=[\w-]{{43}}", _text(mail))
    assert link is not None

    async with person(browser, str(stack.http.base_url)) as page:
        await _from_a_mail(page, _on_the_stack(stack, link.group(0)))

        await expect(page).to_have_url(re.compile(rf"/recover/{case_id}$"))  # proof out of sight
        await expect(page.get_by_text("You opened the link from our message")).to_be_visible()
        await accessible(page)
        await page.get_by_role("button", name="Continue").first.click()
        await expect(page.locator("#password")).to_be_visible()
        await page.locator("#password").fill(NEW)
        await page.locator("#confirm").fill(NEW)
        await page.locator("form[action$='/password'] button").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Your password is changed")
    assert (await stack.sign_in("jane", NEW)).status_code == 200


async def test_a_replaced_address_stops_the_held_recovery_from_its_link(
    stack: Stack, browser: Browser
):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    # A mistake: approved, though not jane's.
    recovery_id = await stack.approved_claim("jane", "mallory@example.net", "compromised")
    code = await stack.mail.code_for("mallory@example.net")
    token = (await stack.http.post(f"/v1/recovery/{recovery_id}/code", json={"code": code})).json()[
        "reset_token"
    ]
    held = await stack.http.post(
        f"/v1/recovery/{recovery_id}/password", json={"reset_token": token, "new_password": NEW}
    )
    assert held.json()["state"] == "held"
    # The claim's address takes the account over only when the hold ends: until then the
    # old password still opens it, and whoever signs in is signed out by the stop.
    assert (await stack.sign_in("mallory@example.net", OLD)).status_code == 401
    session = (await stack.sign_in("jane", OLD)).json()["session_token"]
    notice = await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "recovering" in m["Subject"]
    )
    stop = re.search(rf"https://\S+/stop/{recovery_id}\?token=[\w-]{{43}}", _text(notice))
    assert stop is not None

    async with person(browser, str(stack.http.base_url)) as page:
        await _from_a_mail(page, _on_the_stack(stack, stop.group(0)))
        await expect(page).to_have_url(re.compile(rf"/stop/{recovery_id}$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("Wasn't you?")
        await accessible(page)
        await page.get_by_role("button", name="Stop it").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text("The recovery is stopped")
        await expect(page.get_by_role("status")).to_contain_text("signed out")
        filed = page.get_by_text("We opened support claim sc_")
        await expect(filed).to_be_visible()
        claim_id = re.search(r"sc_[\w-]{22}", await filed.inner_text() or "").group(0)  # type: ignore[union-attr]
        await accessible(page)
        await page.reload()  # the link works once: it now says what happened
        await expect(page.get_by_role("heading", level=1)).to_have_text("The recovery is stopped")

    view = await stack.http.get(f"/v1/recovery/{recovery_id}")
    assert view.json()["state"] == "cancelled"
    current = await stack.http.get(
        "/v1/sessions/current", headers={"Authorization": f"Bearer {session}"}
    )
    assert current.status_code == 401  # signed out everywhere
    assert (await stack.sign_in("jane", NEW)).status_code == 401  # never took effect
    claim = await stack.mail.wait_for(
        lambda m: m["To"] == "jane@example.com" and "/support/claims/sc_" in _text(m)
    )
    assert claim_id in claim["Subject"]  # the claim the page named, for jane's address


@pytest.mark.parametrize("locale", ["en-US", "es-ES"])
async def test_wrong_codes_lock_the_request_and_say_what_to_do(
    stack: Stack, browser: Browser, locale: str
):
    words = WORDS[locale]
    await stack.add_account("jane", "jane@example.com", None, OLD)
    async with person(browser, str(stack.http.base_url), locale=locale) as page:
        await _start(page, "jane")
        code = await stack.mail.code_for("jane@example.com")
        wrong = wrong_codes(code, 5)
        for typed, left in zip(wrong, (4, 3, 2, 1), strict=False):
            await page.locator("#code").fill(typed)
            await page.locator("form[action$='/code'] button").click()
            await expect(page.get_by_role("alert")).to_contain_text(words.not_right)
            await expect(page.get_by_role("alert")).to_contain_text(words.left(left))
            await expect(page.locator("#code")).to_have_attribute("aria-invalid", "true")
        await accessible(page)
        await page.locator("#code").fill(wrong[4])
        await page.locator("form[action$='/code'] button").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text(words.over)
        await expect(page.get_by_role("alert")).to_contain_text(words.too_many)
        await accessible(page)
        await page.locator("main a[href='/recover']").first.click()
        await expect(page).to_have_url(re.compile(r"/recover$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text(words.forgot)


async def test_a_reload_after_a_refused_form_posts_nothing_and_shows_the_case(
    stack: Stack, browser: Browser
):
    words = WORDS["en-US"]
    await stack.add_account("jane", "jane@example.com", None, OLD)
    async with person(browser, str(stack.http.base_url)) as page:
        await _start(page, "jane")
        case_url = page.url
        code = await stack.mail.code_for("jane@example.com")
        posts: list[str] = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        await page.locator("#code").fill(wrong_codes(code, 1)[0])
        await page.locator("form[action$='/code'] button").click()
        await expect(page.get_by_role("alert")).to_contain_text(words.not_right)
        await expect(page.locator("#code")).to_be_focused()
        assert page.url == case_url  # the case's page, not the address the form posted to
        assert len(posts) == 1

        await page.reload()

        await expect(page.get_by_role("alert")).to_have_count(0)  # said once, not again
        await expect(page.get_by_label(words.code, exact=True)).to_be_visible()
        assert len(posts) == 1  # the reload sent no form
        status = await stack.services.recovery.status(case_url.rsplit("/", 1)[1])
        assert status.attempts_left == 4  # one wrong code counted, not two


@pytest.mark.parametrize("locale", ["en-US", "fr-FR"])
async def test_a_new_code_after_its_countdown_and_the_old_one_dies(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, browser: Browser, locale: str
):
    words = WORDS[locale]
    settings, engine = stack_parts(resend_cooldown=3)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, OLD)
        async with person(browser, str(stack.http.base_url), locale=locale) as page:
            await _start(page, "jane@example.com")
            first = await stack.mail.code_for("jane@example.com")
            countdown = page.locator("[data-done]")
            ticking = re.compile(re.escape(words.new_code_in) + r"0:0[0-3]\.$")
            await expect(countdown).to_have_text(ticking)
            await expect(countdown).to_have_text(words.new_code_now, timeout=10_000)
            await page.get_by_role("button", name=words.send_new_code).click()
            await expect(page.get_by_role("status")).to_contain_text(words.new_code_sent)
            await accessible(page)
            second = await stack.mail.code_for("jane@example.com", nth=2)
            if second != first:
                await page.locator("#code").fill(first)
                await page.locator("form[action$='/code'] button").click()
                # Told apart from a wrong code: the person has the newer message.
                await expect(page.get_by_role("alert")).to_contain_text(words.replaced)
                await accessible(page)
            await page.locator("#code").fill(second)
            await page.locator("form[action$='/code'] button").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(words.choose)


async def test_the_pages_work_with_javascript_off(stack: Stack, browser: Browser):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    async with person(browser, str(stack.http.base_url), javascript=False) as page:
        await _start(page, "jane", javascript=False)
        code = await stack.mail.code_for("jane@example.com")
        await page.locator("#code").fill(code)
        await page.locator("form[action$='/code'] button").click()
        await page.locator("#password").fill(NEW)
        await page.locator("#confirm").fill(NEW)
        await page.locator("form[action$='/password'] button").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text("Your password is changed")


async def test_the_owner_locked_out_by_a_stranger_gets_through_in_the_browser(
    stack: Stack, browser: Browser
):
    """Five requests on each of jane's identifiers: her own request comes back with a proof
    of work, which the page solves and sends by itself; without JavaScript it says when to
    try again; either way the page is accessible."""
    await stack.add_account("jane", "jane@example.com", "+14155550123", OLD)
    for identifier in ("jane", "jane@example.com", "+14155550123"):
        for _ in range(5):
            await stack.open_case(identifier)

    async with person(browser, str(stack.http.base_url), javascript=False) as page:
        await _start_over_the_limit(page, "jane@example.com")
        await expect(page.get_by_role("alert")).to_contain_text(
            "There were many requests for this account. Try again in"
        )
    async with person(browser, str(stack.http.base_url)) as page:
        await page.route("**/assets/pow.js", lambda route: route.abort())
        await _start_over_the_limit(page, "jane@example.com")
        await expect(page.get_by_role("alert")).to_be_visible()
        await accessible(page)
    async with person(browser, str(stack.http.base_url)) as page:
        # The page as the browser solved the challenge and sends the form: that answer is
        # held back (a 204 leaves the page as it is) long enough for axe to read the page.
        async def no_answer_to_the_solution(route: Route) -> None:
            if re.search(r"(^|&)altcha=[^&]", route.request.post_data or ""):
                await route.fulfill(status=204)
            else:
                await route.continue_()

        await page.route("**/recover", no_answer_to_the_solution)
        await page.goto("/recover")
        await page.get_by_label("Email, phone number or username").fill("jane@example.com")
        await page.get_by_role("button", name="Send me a code").click()
        await expect(page.locator("#challenge-status")).to_have_text(
            "Done: sending your request.", timeout=30_000
        )
        await expect(page.locator("#problem")).to_be_hidden()  # its "try again in" is moot
        await accessible(page)
        await page.unroute("**/recover", no_answer_to_the_solution)

        await page.goto("/recover")
        await page.get_by_label("Email, phone number or username").fill("jane@example.com")
        await page.get_by_role("button", name="Send me a code").click()
        await page.wait_for_url(re.compile(r"/recover/rc_[\w-]{22}$"))
        await expect(page.locator(".destination")).to_have_text("j•••@e•••.com")
        code = await stack.mail.code_of_case(page.url.rsplit("/", 1)[1])
        await page.get_by_label("Code", exact=True).fill(code)
        await page.get_by_role("button", name="Continue").click()
        await page.get_by_label("New password").fill(NEW)
        await page.get_by_label("Type it again").fill(NEW)
        await page.get_by_role("button", name="Change my password").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Your password is changed")
    assert (await stack.sign_in("jane", NEW)).status_code == 200


async def _start_over_the_limit(page: Page, identifier: str) -> None:
    await page.goto("/recover")
    await page.get_by_label("Email, phone number or username").fill(identifier)
    await page.get_by_role("button", name="Send me a code").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Forgot your password?")
    assert page.url.endswith("/recover")


HOLD_SAVED = {"en-US": "Your new password is saved", "es-ES": "Su nueva contraseña está guardada"}


@pytest.mark.parametrize("locale", ["en-US", "es-ES"])
async def test_a_claim_filed_questioned_answered_and_approved_in_the_browser(
    stack: Stack, browser: Browser, locale: str
):
    await stack.add_account("jane", "jane@example.com", None, OLD)
    _, key = await stack.services.staff_members.add_staff("sam", "supervisor")
    staff = {"Authorization": f"Bearer {key}"}
    async with person(browser, str(stack.http.base_url), locale=locale) as page:
        await page.goto("/support")
        await accessible(page)
        await page.locator("button[type=submit]").click()  # nothing chosen: the form says so
        await expect(page.get_by_role("alert")).to_be_visible()
        await accessible(page)
        await page.locator("input[name=reason][value=lost_contact]").check()
        await page.locator("#username").fill("jane")
        await page.locator("#contact_email").fill("jane.new@example.net")
        await page.locator("#registered_email").fill("jane@example.com")
        await page.locator("#password_0").fill(OLD)
        await page.locator("#description").fill("I lost my phone and my old mailbox.")
        await page.locator("button[type=submit]").click()

        await page.wait_for_url(re.compile(r"/support/claims/sc_[\w-]{22}\?filed=1$"))
        case_id = page.url.rsplit("/", 1)[1].split("?")[0]
        await expect(page.get_by_role("status")).to_be_visible()
        await accessible(page)
        assert "token" not in page.url
        # The reviewer asks a question; the claimant answers on the claim's page.
        await _staff(stack, staff, f"/v1/staff/cases/{case_id}/assign", {})
        await _staff(
            stack, staff, f"/v1/staff/cases/{case_id}/request-info", {"questions": ["Which city?"]}
        )
        await stack.mail.wait_for(lambda m: "Which city?" in _text(m))  # the question, mailed
        await page.reload()
        await expect(page.locator("ul.questions")).to_contain_text("Which city?")
        await accessible(page)
        await page.locator("form[action$='/answer'] button").click()  # nothing written yet
        await expect(page.get_by_role("alert")).to_be_visible()
        await expect(page.locator("#answer")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator("#answer")).to_be_focused()
        await accessible(page)
        await page.locator("#answer").fill("Lyon.")
        await page.locator("form[action$='/answer'] button").click()
        await expect(page.get_by_role("status")).to_be_visible()
        await _staff(stack, staff, f"/v1/staff/cases/{case_id}/approve", {"note": "Welcome back."})
        await page.reload()
        await expect(page.get_by_text("Welcome back.")).to_be_visible()
        await accessible(page)

        await page.locator("a[href^='/recover/rc_']").click()
        await page.wait_for_url(re.compile(r"/recover/rc_[\w-]{22}$"))
        code = await stack.mail.code_for("jane.new@example.net")
        await page.locator("#code").fill(code)
        await page.locator("form[action$='/code'] button").click()
        await page.locator("#password").fill(NEW)
        await page.locator("#confirm").fill(NEW)
        await page.locator("form[action$='/password'] button").click()
        # The new password (and the contacts' replacement) waits out the hold, and says until
        # when.
        await expect(page.get_by_role("status")).to_contain_text(HOLD_SAVED[locale])
        await accessible(page)
        assert (await stack.sign_in("jane.new@example.net", NEW)).status_code == 401
        recovery_case_id = page.url.rsplit("/", 1)[1]
        await stack.services.recovery.change_hold(recovery_case_id, end_now=True)
        await page.reload()
        await expect(page.get_by_role("heading", level=1)).to_have_text(WORDS[locale].changed)
    assert (await stack.sign_in("jane.new@example.net", NEW)).status_code == 200


async def test_the_claim_link_in_the_mail_opens_the_claim_and_leaves_the_address(
    stack: Stack, browser: Browser
):
    filed = await stack.http.post(
        "/v1/support-cases",
        json={"username": "ghost", "contact_email": "ghost@example.net", "reason": "deleted"},
    )
    case_id = filed.json()["case_id"]
    mail = await stack.mail.wait_for(lambda m: m["To"] == "ghost@example.net")
    link = re.search(r"https://\S+/support/claims/sc_[\w-]{22}\?token=\S+", _text(mail))
    assert link is not None

    async with person(browser, str(stack.http.base_url)) as page:
        await page.set_content("<p>a webmail</p>")
        plain = await page.evaluate("() => window.history.length")
        await _from_a_mail(page, _on_the_stack(stack, link.group(0)))

        await expect(page).to_have_url(re.compile(rf"/support/claims/{case_id}$"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("Your support claim")
        await accessible(page)
        # The address with the token was never a page of its own: one more entry, not two.
        assert await page.evaluate("() => window.history.length") == plain + 1


async def test_every_other_page_is_accessible(stack: Stack, browser: Browser):
    async with person(browser, str(stack.http.base_url), width=1280) as page:
        unknown = "/recover/rc_AAAAAAAAAAAAAAAAAAAAAA"
        for path in ("/", "/signin", "/support?reason=banned", unknown):
            await page.goto(path)
            await accessible(page)
        await page.goto("/support/claims/sc_AAAAAAAAAAAAAAAAAAAAAA")
        await accessible(page)
        await page.goto("/signin")
        await page.locator("#identifier").fill("nobody")
        await page.locator("#password").fill("wrong password")
        await page.locator("button[type=submit]").click()
        await expect(page.get_by_role("alert")).to_be_visible()
        await accessible(page)


async def _staff(stack: Stack, headers: dict[str, str], path: str, body: dict[str, object]) -> None:
    response = await stack.http.post(path, json=body, headers=headers)
    assert response.status_code == 202, response.text


def _text(mail: EmailMessage) -> str:
    return text_of(mail)


async def test_the_api_manual_lists_the_operations(stack: Stack, browser: Browser):
    """/docs in a browser: Swagger UI reads the OpenAPI document FastAPI serves (3.1) and
    lists the operations, every file from Reclaim and nothing refused by the page's policy."""
    base = str(stack.http.base_url)
    elsewhere: list[str] = []
    refused: list[str] = []
    async with person(browser, base, width=1280) as page:
        page.on("request", lambda r: None if r.url.startswith(base) else elsewhere.append(r.url))
        page.on("console", lambda m: refused.append(m.text) if "Policy" in m.text else None)
        await page.goto("/docs")

        await expect(page.locator(".opblock").first).to_be_visible()
        start = page.locator(".opblock-post .opblock-summary-path[data-path='/v1/recovery']")
        await expect(start).to_have_text("/v1/recovery")
        await expect(page.locator(".info .title")).to_contain_text("Reclaim")
        await expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
    assert elsewhere == []
    assert refused == []


async def test_after_a_wrong_code_the_language_switcher_opens_the_case_in_that_language(
    stack: Stack, browser: Browser
):
    """A refused code comes back at the address it was posted to (`…/code`): a language
    chosen there opens the case's page in that language, not a 405."""
    await stack.add_account("jane", "jane@example.com", None, OLD)
    async with person(browser, str(stack.http.base_url)) as page:
        await _start(page, "jane")
        case_url = page.url
        code = await stack.mail.code_for("jane@example.com")
        await page.locator("#code").fill(wrong_codes(code, 1)[0])
        await page.locator("form[action$='/code'] button").click()
        await expect(page.get_by_role("alert")).to_contain_text("That code is not right")

        await (
            page.get_by_role("navigation", name="Language")
            .get_by_role("link", name="Français")
            .click()
        )

        await expect(page).to_have_url(case_url)
        await expect(page.locator("html")).to_have_attribute("lang", "fr")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Saisissez votre code")
        await expect(page.get_by_text("Il vous reste 4 essais.")).to_be_visible()
        await accessible(page)


async def test_an_account_with_an_authenticator_app_proves_it_in_the_browser(
    stack: Stack, browser: Browser
):
    words = WORDS["en-US"]
    jane = await stack.add_account("jane", "jane@example.com", None, OLD)
    await stack.services.directory.new_recovery_codes(jane, datetime.now(UTC))
    totp = pyotp.parse_uri(await stack.services.directory.enrol_totp(jane, datetime.now(UTC)))
    async with person(browser, str(stack.http.base_url)) as page:
        await _start(page, "jane")
        await page.locator("#code").fill(await stack.mail.code_for("jane@example.com"))
        await page.locator("form[action$='/code'] button").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text("One more step")
        await expect(page.get_by_label("Code from your authenticator app")).to_be_visible()
        await expect(page.get_by_role("link", name="Use a recovery code instead")).to_be_visible()
        await accessible(page)
        await page.locator("#code").fill(wrong_codes(totp.now(), 1)[0])
        await page.locator("form[action$='/second-factor'] button").click()
        await expect(page.get_by_role("alert")).to_contain_text(words.not_right)
        await accessible(page)
        await page.locator("#code").fill(totp.now())
        await page.locator("form[action$='/second-factor'] button").click()

        await expect(page.get_by_role("heading", level=1)).to_have_text(words.choose)


async def test_i_lost_my_authenticator_files_a_claim_with_its_reason_chosen(
    stack: Stack, browser: Browser
):
    jane = await stack.add_account("jane", "jane@example.com", None, OLD)
    await stack.services.directory.enrol_totp(jane, datetime.now(UTC))
    async with person(browser, str(stack.http.base_url)) as page:
        await _start(page, "jane")
        await page.locator("#code").fill(await stack.mail.code_for("jane@example.com"))
        await page.locator("form[action$='/code'] button").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("One more step")
        await page.get_by_role("link", name="I lost my authenticator").click()

        await page.wait_for_url(re.compile(r"/support\?about=authenticator$"))
        chosen = page.get_by_label("I lost my authenticator app, passkeys and recovery codes")
        await expect(chosen).to_be_checked()
        await expect(page.locator("#description")).to_have_value(
            re.compile("^I lost my second factor")
        )
        await expect(page.get_by_text("If you lost your second factors:")).to_be_attached()
        await accessible(page)
        await page.locator("#username").fill("jane")
        await page.locator("#contact_email").fill("jane@example.com")
        await page.locator("#password_0").fill(OLD)
        await page.locator("button[type=submit]").click()

        await page.wait_for_url(re.compile(r"/support/claims/sc_[\w-]{22}\?filed=1$"))
        await expect(page.get_by_role("status")).to_be_visible()
        await accessible(page)
        case_id = page.url.rsplit("/", 1)[1].split("?")[0]
    claim = await stack.services.claims.staff_view(case_id)
    assert (claim.reason.value, claim.risk.value) == ("lost_authenticator", "high")
    assert claim.evidence.wrote_from_account_email is True
