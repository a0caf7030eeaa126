"""How people use the pages beyond a mouse and a quiet mail server: a whole recovery driven by
the keyboard alone, and a code's delivery, slow or refused, told on the page as it happens
(JavaScript on), without a reload."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect

from reclaim.support.evidence import MAX_PREVIOUS_PASSWORDS
from tests.codes import wrong_codes
from tests.conftest import StackParts
from tests.mailbox import MailSink, smtp_server
from tests.pages.browser import WORDS, accessible, needs_chromium, person
from tests.sms_gateway import SmsGateway
from tests.stack import Stack, running_stack

pytestmark = needs_chromium

OLD = "correct horse battery staple"
NEW = "violet tangerine marmalade kayak"
CASE = re.compile(r"/recover/rc_[\w-]{22}$")


async def _tab_to(page: Page, target: Locator, most: int = 25) -> int:
    """Press Tab until `target` has the focus; how many presses it took."""
    for presses in range(most + 1):
        if await target.evaluate("element => element === document.activeElement"):
            return presses
        await page.keyboard.press("Tab")
    raise AssertionError(f"{target} is not reached by Tab within {most} presses on {page.url}")


async def test_a_whole_recovery_by_keyboard_alone(stack: Stack, browser: Browser):
    words = WORDS["en-US"]
    await stack.add_account("jane", "jane@example.com", None, OLD)
    async with person(browser, str(stack.http.base_url)) as page:
        await page.goto("/recover")
        # The first Tab is the skip link; it leads past the header, to the form.
        await page.keyboard.press("Tab")
        await expect(page.locator("a.skip")).to_be_focused()
        await page.keyboard.press("Enter")
        await page.keyboard.press("Tab")
        await expect(page.locator("#identifier")).to_be_focused()
        await page.keyboard.type("jane@example.com")
        await page.keyboard.press("Enter")

        await page.wait_for_url(CASE)
        await expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")
        code_field = page.get_by_label(words.code, exact=True)
        await _tab_to(page, code_field)
        code = await stack.mail.code_for("jane@example.com")
        await page.keyboard.type(wrong_codes(code, 1)[0])
        await page.keyboard.press("Enter")

        # The refusal: announced, tied to the field, and the field has the focus again.
        await expect(page.get_by_role("alert")).to_contain_text(words.not_right)
        await expect(code_field).to_be_focused()
        await expect(code_field).to_have_attribute("aria-invalid", "true")
        await expect(code_field).to_have_attribute("aria-describedby", re.compile(r"code-error"))
        await expect(page.locator("#code-error")).to_contain_text(words.not_right)
        await page.keyboard.type(code)
        await page.keyboard.press("Enter")

        await expect(page.get_by_role("heading", level=1)).to_have_text(words.choose)
        await _tab_to(page, page.get_by_label("New password"))
        await page.keyboard.type(NEW)
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Type it again")).to_be_focused()
        await page.keyboard.type(NEW)
        await page.keyboard.press("Enter")

        await expect(page.get_by_role("heading", level=1)).to_have_text(words.changed)
        await _tab_to(page, page.locator("main").get_by_role("link", name="Sign in"))
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"/signin$"))
    assert (await stack.sign_in("jane", NEW)).status_code == 200


class FlakyMail(MailSink):
    """A mail server that, for the addresses in `down`, answers "try again later", and for
    those in `refused`, refuses the message for good."""

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()
        self.refused: set[str] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refused & set(envelope.rcpt_tos):
            return "554 5.7.1 message refused"
        if self.down & set(envelope.rcpt_tos):
            return "451 4.3.0 local error, try again later"
        return await super().handle_DATA(server, session, envelope)


async def test_the_delivery_of_the_code_is_told_in_place_as_it_goes(
    stack_parts: StackParts, sms: SmsGateway, browser: Browser
):
    words = WORDS["es-ES"]
    with smtp_server(FlakyMail()) as mail:
        mail.down.add("jane@example.com")
        mail.refused.add("joe@example.com")
        settings, engine = stack_parts(mail=mail)
        async with running_stack(settings, engine, mail, sms) as stack:
            await stack.add_account("jane", "jane@example.com", None, OLD)
            await stack.add_account("joe", "joe@example.com", None, OLD)
            async with person(browser, str(stack.http.base_url), locale="es-ES") as page:
                await _open(page, "jane@example.com")
                await page.evaluate("() => { window.sameDocument = true; }")
                delivery = page.locator("[data-delivery]")

                await expect(delivery).to_have_text(words.retrying, timeout=15_000)
                await expect(delivery).to_have_attribute("data-delivery", "retrying")
                await accessible(page)
                mail.down.clear()  # the mail server is back
                await expect(delivery).to_have_text(words.sent, timeout=20_000)
                assert await page.evaluate("() => window.sameDocument === true")  # no reload
                code = await stack.mail.code_for("jane@example.com")
                await page.get_by_label(words.code, exact=True).fill(code)
                await page.locator("form[action$='/code'] button").click()
                await expect(page.get_by_role("heading", level=1)).to_have_text(words.choose)

            async with person(browser, str(stack.http.base_url), locale="es-ES") as page:
                await _open(page, "joe@example.com")
                delivery = page.locator("[data-delivery]")
                await expect(delivery).to_have_text(words.failed, timeout=15_000)
                await expect(delivery).to_have_attribute("data-delivery", "failed")
                await expect(page.get_by_role("button", name=words.send_new_code)).to_be_visible()
                await accessible(page)


async def _open(page: Page, identifier: str) -> None:
    await page.goto("/recover")
    await page.locator("#identifier").fill(identifier)
    await page.locator("form[action='/recover'] button[type=submit]").click()
    await page.wait_for_url(CASE)


async def test_send_a_new_code_waits_for_its_countdown(
    stack_parts: StackParts, mail: MailSink, sms: SmsGateway, browser: Browser
):
    """With JavaScript the button is disabled until the countdown ends; without it the page
    says when it works, and pressing it sooner answers on the code's page with that time."""
    words = WORDS["en-US"]
    settings, engine = stack_parts(resend_cooldown=4)
    async with running_stack(settings, engine, mail, sms) as stack:
        await stack.add_account("jane", "jane@example.com", None, OLD)
        async with person(browser, str(stack.http.base_url)) as page:
            await _open(page, "jane@example.com")
            button = page.get_by_role("button", name=words.send_new_code)

            await expect(button).to_be_disabled()
            await expect(page.locator("#resend-when")).to_contain_text(words.new_code_in)
            await accessible(page)
            await expect(button).to_be_enabled(timeout=10_000)
            await expect(page.locator("#resend-when")).to_have_text(words.new_code_now)
            await button.click()
            await expect(page.get_by_role("status")).to_contain_text(words.new_code_sent)

        async with person(browser, str(stack.http.base_url), javascript=False) as page:
            await _open(page, "jane@example.com")
            button = page.get_by_role("button", name=words.send_new_code)
            await expect(button).to_be_enabled()
            await expect(page.locator("#resend-when")).to_contain_text(
                "You can ask for a new code at"
            )
            await button.click()

            await expect(page.get_by_role("alert")).to_contain_text(
                "before asking for another code"
            )
            await expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")
            await expect(page.locator("#resend-when")).to_contain_text(
                "You can ask for a new code at"
            )


async def test_the_support_form_takes_as_many_previous_passwords_as_the_api(
    stack: Stack, browser: Browser
):
    """With JavaScript one field, and "Add another password" up to the limit; without it every
    field at once."""
    async with person(browser, str(stack.http.base_url)) as page:
        await page.goto("/support")
        fields = page.locator("input[id^=password_]:visible")
        add = page.get_by_role("button", name="Add another password")

        await expect(fields).to_have_count(1)
        for shown in range(2, MAX_PREVIOUS_PASSWORDS + 1):
            await add.click()
            await expect(fields).to_have_count(shown)
            await expect(fields.nth(shown - 1)).to_be_focused()
        await expect(add).to_be_hidden()
        await accessible(page)

    async with person(browser, str(stack.http.base_url), javascript=False) as page:
        await page.goto("/support")
        fields = page.locator("input[id^=password_]:visible")
        await expect(fields).to_have_count(MAX_PREVIOUS_PASSWORDS)
        await expect(page.get_by_role("button", name="Add another password")).to_be_hidden()
